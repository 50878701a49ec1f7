"""muse_xcorr: redshifts with honest uncertainties from MUSE cubes.

The normalised cross-correlation of every spaxel with a template over a
redshift grid, as batched matrix products in TensorFlow, with the error on
the correlation propagated from the data's variance.

Public names: `MuseCube`, `MuseSpectrum`, `Template`, `zgrid`, `Correlator`,
`Redshift`, and the subpackages `datasets`, `flags`, `io`, `visualization`.
"""
from .version import __version__  # noqa: F401

from .grid import zgrid  # noqa: E402
from .spectra import MuseCube, MuseSpectrum  # noqa: E402
from .templates import Template  # noqa: E402
from .correlate import Correlator  # noqa: E402
from .result import Redshift  # noqa: E402
from .flags import Flag  # noqa: E402
from . import datasets, flags, io, templates, visualization  # noqa: E402,F401

__all__ = ["MuseCube", "MuseSpectrum", "Template", "zgrid", "Correlator", "Redshift", "Flag",
           "datasets", "flags", "io", "templates", "visualization", "__version__"]
