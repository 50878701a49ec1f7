"""Spectra and cubes: what the correlator reads (flux, variance, mask, medium, WCS).

`MuseSpectrum` (one spectrum) and `MuseCube` (spectra on a spatial grid) wrap
the arrays without copying them; `SpectraBatch` is a batch of spectra as
float64 arrays, the unit the correlator works on.
"""
from .data import (MuseCube, MuseSpectrum, SpectraBatch, VARIANCE_FLOOR,  # noqa: F401
                   as_spectral_data, inspect_spectrum_wcs, variance_from_uncertainty)

__all__ = ["MuseSpectrum", "MuseCube", "SpectraBatch", "as_spectral_data",
           "variance_from_uncertainty", "VARIANCE_FLOOR", "inspect_spectrum_wcs"]
