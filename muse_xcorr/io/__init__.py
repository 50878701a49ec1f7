"""Reading and writing: MUSE cubes and spectra, 1D spectra in common formats, result maps.

`read_muse_fits` reads the MUSE DATA/STAT/DQ layout; `read_spectrum_parts`
any supported 1D format (`identify_format` says which); both return parts
(arrays, units, medium, headers) that `muse_xcorr.MuseCube.read` and
`muse_xcorr.MuseSpectrum.read` build objects from. `register_specutils_loaders`
makes specutils read the same formats.
"""
from .muse import read_muse_fits, write_muse_fits, parse_fits_unit, atomic_write  # noqa: F401
from .spectrum1d import (identify_format, read_spectrum_parts, zero_run_mask,  # noqa: F401
                         DEFAULT_MIN_ZERO_RUN)
from .specutils_io import register_specutils_loaders  # noqa: F401

__all__ = ["read_muse_fits", "write_muse_fits", "parse_fits_unit", "atomic_write",
           "identify_format", "read_spectrum_parts", "zero_run_mask", "DEFAULT_MIN_ZERO_RUN",
           "register_specutils_loaders"]
