"""Reading and writing FITS files: MUSE cubes and spectra, result maps."""
from .muse import read_muse_fits, write_muse_fits, parse_fits_unit, atomic_write  # noqa: F401

__all__ = ["read_muse_fits", "write_muse_fits", "parse_fits_unit", "atomic_write"]
