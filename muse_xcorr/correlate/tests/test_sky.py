"""Detections that rest on sky-line pixels: the sky pixels, the share, the SKY_RESIDUAL flag."""
import numpy as np
import pytest
from astropy.nddata import VarianceUncertainty

from muse_xcorr import Correlator, MuseSpectrum, datasets, zgrid
from muse_xcorr.correlate.sky import SKY_VARIANCE_RATIO, sky_pixels, sky_share
from muse_xcorr.flags import Flag
from muse_xcorr.templates import default_set


def _gaussian(x, centre, sigma):
    return np.exp(-0.5 * ((x - centre) / sigma) ** 2)


def test_sky_pixels_are_the_variance_peaks_and_not_bright_source_lines():
    x = np.arange(600.0)
    floor = 1.0 + 0.3 * x / 600             # a slow slope is no sky line
    variance = floor * (1 + 5.0 * _gaussian(x, 150, 1.2) + 5.0 * _gaussian(x, 400, 1.2))
    valid = np.ones(x.size, bool)
    valid[398] = False                      # an invalid pixel is never a sky pixel
    flux = np.zeros(x.size)
    flux[148:153] = 50.0 * np.sqrt(variance[148:153])   # the source's own bright line at 150
    sky = sky_pixels(variance, valid, flux)[0]
    expected = (variance > SKY_VARIANCE_RATIO * floor) & valid
    expected[148:153] = False
    np.testing.assert_array_equal(sky, expected)
    assert sky[399:402].all() and sky.sum() >= 3
    # a constant variance (an error column of one value) has no sky line
    assert not sky_pixels(np.full((2, 300), 4.0), np.ones((2, 300), bool)).any()


def test_sky_share_is_the_part_of_the_chi2_gain_on_sky_pixels():
    # noiseless data equal to the model: the gain of a pixel is (m / sigma)^2, so two
    # lines of the same shape and amplitudes a (on sky) and b (off sky) share a^2 : b^2
    x = np.arange(400.0)
    a, b = 3.0, 4.0
    model = a * _gaussian(x, 100, 2.0) + b * _gaussian(x, 300, 2.0)
    sky = np.abs(x - 100) < 20
    valid = np.ones(x.size, bool)
    share = sky_share(model[None], np.zeros((1, x.size)), valid[None], sky[None])
    np.testing.assert_allclose(share, [a ** 2 / (a ** 2 + b ** 2)], rtol=1e-12)
    # no gain at all: NaN, not 0
    assert np.isnan(sky_share(np.zeros((1, 10)), np.zeros((1, 10)), np.ones((1, 10), bool),
                              np.ones((1, 10), bool)))[0]


SKY_LINE = 5577.34     # air, Angstrom: the brightest line of the night sky


def _spectrum(line_wave, peak_sigma, seed):
    """Noise with MUSE's variance and one line of LSF width, ``peak_sigma`` local sigmas high."""
    wave = datasets.muse_wavelength()
    variance = datasets.muse_variance(wave)
    sigma = np.sqrt(variance)
    rng = np.random.default_rng(seed)
    x = wave.value
    j = np.argmin(np.abs(x - line_wave))
    flux = rng.normal(0.0, sigma) + peak_sigma * sigma[j] * _gaussian(x, line_wave, 2.6 / 2.3548)
    return MuseSpectrum(wave, flux * datasets.FLUX_UNIT,
                        VarianceUncertainty(variance * datasets.FLUX_UNIT ** 2), medium="air")


@pytest.fixture(scope="module")
def correlator():
    lae = [t for t in default_set() if t.name == "lae"]
    return Correlator(lae, zgrid(3.3, 4.1, 1e-4))


def test_a_line_on_a_sky_line_is_no_confident_redshift(correlator):
    # a residual at 5577 A (where MUSE's STAT is ~30 times its floor), 6 local sigmas high:
    # a single-line LAE at z ~ 3.59 to the search, fap ~ 0; all of its gain is on sky pixels
    result = correlator.correlate(_spectrum(SKY_LINE, 6.0, seed=3), progress=False)
    assert result.fap.ravel()[0] < 1e-3            # it is a detection of *something*
    assert result.sky_share.ravel()[0] > 0.9
    assert result.flags.ravel()[0] & Flag.SKY_RESIDUAL


def test_the_same_line_between_sky_lines_stays_a_detection(correlator):
    # the positive control: the same line, as many local sigmas high, where the sky is dark
    result = correlator.correlate(_spectrum(6080.0, 6.0, seed=3), progress=False)
    z = result.z_best.ravel()[0]
    assert abs(1215.67 * (1 + z) - 6081.7) < 5       # Lya (vacuum) at 6080 A (air)
    assert result.sky_share.ravel()[0] < 0.05
    assert not result.flags.ravel()[0] & (Flag.SKY_RESIDUAL | Flag.LOW_SIGNIFICANCE)
