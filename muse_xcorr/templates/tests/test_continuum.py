"""Continuum subtraction: estimators against NumPy references, and its hook in the Correlator."""
import numpy as np
import pytest
import astropy.units as u

from muse_xcorr import Correlator, zgrid, datasets
from muse_xcorr.templates.continuum import (ContinuumSubtraction, continuum_subtraction,
                                            subtracted_view)

WAVE = datasets.muse_wavelength(801)


def test_running_median_matches_numpy_reference_on_its_lattice():
    rng = np.random.default_rng(3)
    flux = rng.normal(size=(2, WAVE.size)) + np.linspace(0, 5, WAVE.size)
    valid = rng.random(flux.shape) > 0.1
    estimate = ContinuumSubtraction("median", 50 * u.AA).continuum(flux, valid, WAVE)
    width = 40  # 50 A / 1.25 A
    for row in range(2):
        for centre in range(40, WAVE.size - 40, 10):  # the lattice step is width // 4
            low, high = centre - width // 2, centre - width // 2 + width
            expected = np.median(flux[row, low:high][valid[row, low:high]])
            assert estimate[row, centre] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("method", ["spline", "polynomial"])
def test_least_squares_fits_remove_smooth_continua_exactly(method):
    x = np.linspace(-1, 1, WAVE.size)
    flux = np.vstack([3 + 2 * x - x ** 2 + 0.5 * x ** 3, 1 - x])
    valid = np.ones(flux.shape, bool)
    valid[1, 100:200] = False  # a row with its own mask takes the per-row path
    residual = ContinuumSubtraction(method, 200 * u.AA).subtract(flux, valid, WAVE)
    assert np.max(np.abs(residual)) < 1e-9
    assert np.all(residual[1, 100:200] == 0)


def test_median_keeps_a_narrow_line_and_bad_input_raises():
    flux = 10 + np.exp(-0.5 * ((WAVE.value - 5000) / 1.2) ** 2)[None]
    out = ContinuumSubtraction("median", 100 * u.AA).subtract(flux, True, WAVE)
    assert out.max() == pytest.approx(1.0, abs=0.02)
    assert np.abs(out[0, np.abs(WAVE.value - 5000) > 20]).max() < 1e-9
    with pytest.raises(ValueError):
        ContinuumSubtraction("savgol")
    with pytest.raises(ValueError):
        ContinuumSubtraction("median", -3 * u.AA)
    assert continuum_subtraction(None) is None
    flat = np.ones((WAVE.size, 3))
    with pytest.raises(ValueError, match="nothing of the template"):
        ContinuumSubtraction("polynomial", 100 * u.AA).subtract_from_template(flat, WAVE)


def test_correlator_hook_matches_a_numpy_reference():
    """f(z) after subtraction = the normalised correlation of subtracted data and columns."""
    wave = datasets.muse_wavelength(1200)
    template = datasets.make_template()
    spectrum, _ = datasets.make_spectrum(template, z=0.35, snr=40, seed=2, wavelength=wave,
                                         variance=datasets.muse_variance(wave))
    z = zgrid(0.3, 0.4, 1e-3)
    correlator = Correlator(template, z, continuum="median", continuum_window=100 * u.AA,
                            dtype="float64")
    result = correlator.correlate(spectrum, progress=False)
    _, f, _ = result.ccf()
    operator = ContinuumSubtraction("median", 100 * u.AA)
    d = operator.subtract(spectrum.flux.value[None], True, wave)[0]
    columns = operator.subtract_from_template(template.matrix(wave, z, medium="air"), wave)
    expected = d @ columns / (np.linalg.norm(d) * np.linalg.norm(columns, axis=0))
    assert np.allclose(f, expected, atol=1e-10)
    assert abs(result.z_best - 0.35) < 1e-3
    # the view is idempotent: window() on result.data does not subtract twice
    view = subtracted_view(result.data, correlator.continuum)
    assert view is result.data
