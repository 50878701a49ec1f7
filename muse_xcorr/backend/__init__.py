"""The compute backend: TensorFlow, behind one module (:mod:`._tensorflow`)."""
from ._tensorflow import configure_threads, devices  # noqa: F401

__all__ = ["configure_threads", "devices"]
