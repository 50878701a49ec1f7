"""The compute backend: TensorFlow, behind one module, and the settings users may change.

- :func:`configure_threads`: TensorFlow's CPU thread pools (before it starts);
- :func:`allow_tf32`, :func:`tf32_enabled`: TF32 matrix products on recent
  NVIDIA GPUs, off by default (they round float32 inputs to a 10-bit mantissa);
- :func:`devices`: the devices TensorFlow sees.
"""
from ._tensorflow import allow_tf32, configure_threads, devices, tf32_enabled  # noqa: F401

__all__ = ["configure_threads", "devices", "allow_tf32", "tf32_enabled"]
