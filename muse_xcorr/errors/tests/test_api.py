"""Error estimators: references, reproducibility, bad input, and the Redshift API."""
import warnings

import numpy as np
import pytest
import astropy.units as u
from astropy.nddata import VarianceUncertainty
from astropy.utils.exceptions import AstropyUserWarning

from muse_xcorr import Correlator, MuseSpectrum, Redshift, Template, datasets, zgrid
from muse_xcorr.errors import METHODS
from muse_xcorr.errors.bootstrap import block_resample
from muse_xcorr.errors.parabolic import vertex_gradient
from muse_xcorr.errors.tonrydavis import tonry_davis
from muse_xcorr.flags import Flag


@pytest.fixture(scope="module")
def small():
    """A 3 x 4 cube with two empty spaxels, weighted correlation."""
    template = datasets.make_template("starforming")
    cube, truth = datasets.make_cube((3, 4), template, z=(0.41, 0.42), snr=30, seed=5,
                                     empty_spaxels=2)
    result = Correlator(template, zgrid(0.38, 0.45, 1e-4),
                        weighting="inverse_variance").correlate(cube, progress=False)
    return result, truth


@pytest.mark.parametrize("method", ["montecarlo", "bootstrap"])
def test_seed_reproducible(small, method):
    result, _ = small
    first = result.z_error(method, n_samples=30, seed=4)
    again = result.z_error(method, n_samples=30, seed=4)
    other = result.z_error(method, n_samples=30, seed=5)
    finite = np.isfinite(first)
    assert np.array_equal(first[finite], again[finite])
    assert not np.allclose(first[finite], other[finite])


@pytest.mark.parametrize("method", METHODS)
def test_no_data_gives_nan_with_flag(small, method):
    result, truth = small
    options = {"n_samples": 20, "seed": 0} if method in ("montecarlo", "bootstrap") else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyUserWarning)
        sigma = result.z_error(method, **options)
    empty = truth["empty"]
    assert np.all(np.isnan(sigma[empty]))
    assert np.all(result.flags[empty] & Flag.NO_DATA)
    assert np.all(np.isfinite(sigma[~empty]))


def test_unknown_method_and_bad_options(small):
    result, _ = small
    with pytest.raises(ValueError, match="unknown z-error method"):
        result.z_error("magic")
    with pytest.raises(TypeError, match="unexpected option"):
        result.z_error("analytic", seed=3)
    for bad in (1, 2.5, True):
        with pytest.raises(ValueError, match="n_samples"):
            result.z_error("montecarlo", n_samples=bad)
    with pytest.raises(ValueError, match="perturb"):
        result.z_error("montecarlo", perturb="sky")
    with pytest.raises(ValueError, match="block"):
        result.z_error("bootstrap", block=0)


def test_chi2_and_pdf_need_weighting():
    template = datasets.make_template("starforming")
    cube, _ = datasets.make_cube((1, 2), template, z=0.41, snr=30, seed=1)
    result = Correlator(template, zgrid(0.38, 0.45, 1e-4), weighting="uniform").correlate(
        cube, progress=False)
    with pytest.raises(ValueError, match="inverse_variance"):
        result.z_error("chi2")
    with pytest.raises(ValueError, match="inverse_variance"):
        result.pdf(0, 0)


def test_pdf_against_numpy(small):
    """p(z) = exp(-chi2 / 2) normalised, chi2 = ||d||_w^2 (1 - max(f, 0)^2) of the curve."""
    result, _ = small
    z, p = result.pdf(0, 0)
    _, f, _ = result.ccf(0, 0)
    chi2 = result.norm2[0, 0] * (1 - np.clip(f, 0, None) ** 2)
    reference = np.exp(-0.5 * (chi2 - chi2.min()))
    reference /= np.trapezoid(reference, z)
    assert np.allclose(p, reference)
    assert abs(np.trapezoid(p, z) - 1) < 1e-12
    assert abs(z[np.argmax(p)] - result.z_best[0, 0]) < 2e-4


def test_table_write_read_keep_errors(small, tmp_path):
    result, _ = small
    sigma = result.z_error("analytic")
    table = result.to_table()
    assert "zerr_analytic" in table.colnames and "delta_chi2" in table.colnames
    result.write(tmp_path / "z.fits")
    back = Redshift.read(tmp_path / "z.fits")
    assert np.allclose(back.z_errors["analytic"], sigma, equal_nan=True)


def test_read_result_cannot_recompute(small, tmp_path):
    result, _ = small
    result.write(tmp_path / "r.fits")
    back = Redshift.read(tmp_path / "r.fits")
    with pytest.raises(RuntimeError, match="read from a file"):
        back.z_error("analytic")
    with pytest.raises(RuntimeError, match="read from a file"):
        back.crb()


def test_ambiguity_flag_follows_delta_chi2():
    """AMBIGUOUS exactly where the second candidate's delta_chi2 is below the threshold."""
    template = datasets.make_template("starforming")
    cube, _ = datasets.make_cube((4, 10), template, z=(0.41, 0.42), snr=6, seed=3)
    correlator = Correlator(template, zgrid(0.3, 0.55, 1e-4))
    result = correlator.correlate(cube, progress=False)
    chi2 = result.candidates("chi2")
    second = np.isfinite(chi2[..., 1])
    np.testing.assert_allclose(result.delta_chi2[second], (chi2[..., 1] - chi2[..., 0])[second])
    assert np.all(np.isinf(result.delta_chi2[~second]))
    ambiguous = (result.flags & Flag.AMBIGUOUS) != 0
    assert np.array_equal(ambiguous, result.delta_chi2 < correlator.ambiguity_threshold)
    assert ambiguous.any() and not ambiguous.all()


def test_parabolic_gradient_against_finite_differences():
    rng = np.random.default_rng(0)
    f = np.array([0.8, 1.0, 0.7]) + 0.01 * rng.standard_normal((5, 3))

    def vertex(y):
        return (y[:, 0] - y[:, 2]) / (2 * (y[:, 0] - 2 * y[:, 1] + y[:, 2]))

    step = 1e-7
    numeric = np.stack([(vertex(f + step * np.eye(3)[i]) - vertex(f - step * np.eye(3)[i]))
                        / (2 * step) for i in range(3)], axis=1)
    assert np.allclose(vertex_gradient(f), numeric, rtol=1e-6, atol=1e-8)


def test_tonry_davis_against_numpy():
    lags = np.arange(-30, 31, dtype=float)
    sigma = 3.0
    f = 0.2 + 0.5 * np.exp(-0.5 * (lags / sigma) ** 2) + 0.01 * np.sin(0.7 * lags)
    r, fwhm, epsilon = tonry_davis(f[None, :])
    antisymmetric = 0.5 * (f[31:60] - f[29:0:-1])    # lags 1..29 about the sample
    r_reference = (f[30] - np.median(f)) / (np.sqrt(2) * np.sqrt(np.mean(antisymmetric ** 2)))
    assert np.isclose(r[0], r_reference)
    assert abs(fwhm[0] - 2.3548 * sigma) < 0.3
    assert np.isclose(epsilon[0], 0.375 * fwhm[0] / (1 + r[0]))


def test_tonry_davis_about_the_refined_peak():
    """A noiseless peak a quarter step off the grid has no antisymmetric part about itself.

    Taken about the grid sample (release 0.1.dev) it got epsilon = 0.05 steps.
    """
    lags = np.arange(-30, 31, dtype=float)
    f = 0.1 + 0.6 * np.exp(-0.5 * ((lags - 0.25) / 4.0) ** 2)
    r, fwhm, epsilon = tonry_davis(f[None, :], np.array([0.25]))
    assert epsilon[0] < 0.002
    _, _, about_sample = tonry_davis(f[None, :])
    assert about_sample[0] > 10 * epsilon[0]


def test_block_resample_keeps_blocks():
    rng = np.random.default_rng(1)
    residuals = np.arange(100.0)
    copies = block_resample(residuals, 5, 4, rng)
    assert copies.shape == (5, 100)
    # inside each block of 4 the values are consecutive residuals
    blocks = copies.reshape(5, 25, 4)
    assert np.all(np.diff(blocks, axis=2) == 1)


def test_crb_against_analytic_gaussian_line():
    """One Gaussian line: dT/dz in closed form, the CRB by NumPy, vs Redshift.crb()."""
    rest = np.arange(3000.0, 7000.0, 0.5)
    centre, width = 5000.0, 8.0
    template = Template(rest * u.AA, np.exp(-0.5 * ((rest - centre) / width) ** 2),
                        medium="vacuum")
    wave = np.arange(6000.0, 7000.0, 1.25)
    variance = np.full(wave.size, 2.0)
    z_true = 0.3
    model = 5.0 * np.exp(-0.5 * ((wave / (1 + z_true) - centre) / width) ** 2)
    flux = model + np.random.default_rng(2).normal(size=wave.size) * np.sqrt(variance)
    spectrum = MuseSpectrum(wave * u.AA, flux * u.Jy, VarianceUncertainty(variance * u.Jy ** 2),
                            medium="vacuum")
    result = Correlator(template, zgrid(0.25, 0.35, 1e-4), continuum=None, lsf=None,
                        weighting="inverse_variance").correlate(spectrum, progress=False)
    z = float(result.z_best)
    shape = np.exp(-0.5 * ((wave / (1 + z) - centre) / width) ** 2)
    slope = shape * (wave / (1 + z) - centre) / width ** 2 * wave / (1 + z) ** 2
    w = 1 / variance
    amplitude = np.sum(w * flux * shape) / np.sum(w * shape ** 2)
    information = amplitude ** 2 * (np.sum(w * slope ** 2)
                                    - np.sum(w * slope * shape) ** 2 / np.sum(w * shape ** 2))
    assert np.isclose(float(result.crb()), 1 / np.sqrt(information), rtol=2e-3)


def test_peakfit_warns_and_flags_when_covariance_singular():
    """Three valid pixels: the 7 x 7 window covariance of f has rank <= 3."""
    template = datasets.make_template("starforming")
    spectrum, _ = datasets.make_spectrum(template, z=0.41, snr=30, seed=2)
    mask = np.ones(spectrum.flux.shape, bool)
    mask[2000:2003] = False
    thin = MuseSpectrum(spectrum.spectral_axis, spectrum.flux, spectrum.uncertainty, mask=mask,
                        medium="air")
    result = Correlator(template, zgrid(0.38, 0.45, 1e-4), min_pixels=3, continuum=None,
                        min_coverage=0).correlate(thin, progress=False)
    with pytest.warns(AstropyUserWarning, match="could not be estimated"):
        sigma = result.z_error("peakfit")
    assert np.isnan(sigma)
    assert result.flags & Flag.ZERR_UNRELIABLE
