"""Noiseless rest-frame templates: the `Template` class, line lists, the line
spread, continuum subtraction and the default template library.

`default_set` returns the templates the one-line default correlates with.
"""
from .template import Template, pixel_edges  # noqa: F401
from .library import default_set  # noqa: F401
from .composite import CompositeTemplate  # noqa: F401

__all__ = ["Template", "CompositeTemplate", "pixel_edges", "default_set"]
