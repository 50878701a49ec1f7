"""The one-line default on real MUSE spectra of ../shared/data/real_spectra.

The expected redshifts are those of ``redshifts.ecsv`` (measured by hand from
the named lines, good to ~1e-4 in 1 + z), not outputs of the package. Success
means |z_best - z| < 2e-3 (1 + z), the criterion of the real-spectra issue.
Each run includes the detection calibration on noise-only spectra, so the
spectra of one wavelength grid are correlated together as one cube.
"""
import warnings

import numpy as np
import astropy.units as u
from astropy.nddata import VarianceUncertainty
from astropy.table import Table

from muse_xcorr import Correlator, MuseCube, MuseSpectrum
from muse_xcorr.flags import Flag

TDOSE = [f"TDOSE/tdose_spectrum_mxdf_{kind}.fits" for kind in (
    "aperture_0000005082", "gauss_0000005082", "modelimg_0000005082-0000005082",
    "aperture_0000006729", "gauss_0000006729", "modelimg_0000006729-0000006729")]
#: Flags that do not make a redshift doubtful (a bad-variance pixel, partial coverage).
HARMLESS = int(Flag.BAD_VARIANCE | Flag.LOW_COVERAGE | Flag.OUTLIER_PIXELS)


def _truth(shared_data):
    table = Table.read(shared_data / "real_spectra" / "redshifts.ecsv")
    return {str(row["file"]): float(row["z"]) for row in table}


def _read(path, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")    # no flux unit in these files
        return MuseSpectrum.read(path, **kwargs)


def _as_cube(spectra):
    """The spectra of one wavelength grid as one (n_wave, n) cube, masks as NaN."""
    wave = spectra[0].spectral_axis
    for s in spectra[1:]:
        np.testing.assert_array_equal(s.spectral_axis.value, wave.value)
    flux = np.stack([np.where(s.mask, np.nan, s.flux.value) for s in spectra], axis=1)
    variance = np.stack([np.where(s.mask, np.nan, s.uncertainty.represent_as(
        VarianceUncertainty).array) for s in spectra], axis=1)
    unit = spectra[0].flux.unit
    return MuseCube(wave, flux * unit, VarianceUncertainty(variance, unit=unit ** 2),
                    medium="air")


def _check(result, expected, names):
    z_best = np.ravel(result.z_best)
    flags = np.ravel(result.flags).astype(int)
    conf = np.ravel(result.z_conf)
    for name, z, got, flag, p in zip(names, expected, z_best, flags, conf):
        assert abs(got - z) < 2e-3 * (1 + z), f"{name}: z_best {got:.5f}, measured {z:.5f}"
        assert flag & ~HARMLESS == 0, f"{name}: flagged {flag}"
        assert p > 0.9, f"{name}: z_conf {p:.3f}"


def test_the_two_mxdf_galaxies_in_three_extractions_each(shared_data):
    truth = _truth(shared_data)
    spectra = [_read(shared_data / "real_spectra" / name, medium="air") for name in TDOSE]
    result = Correlator().correlate(_as_cube(spectra), progress=False)
    _check(result, [truth[name] for name in TDOSE], TDOSE)


def test_an_early_type_nucleus_with_absorption_lines_only(shared_data):
    name = "pPXF_wrapper/FCC47_MUSE_spec.dat"
    spectrum = _read(shared_data / "real_spectra" / name, medium="air",
                     flux_unit=u.dimensionless_unscaled)
    result = Correlator().correlate(spectrum, progress=False)
    _check(result, [_truth(shared_data)[name]], [name])
