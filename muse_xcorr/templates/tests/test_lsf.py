"""The line spread function: FWHM laws, and the band kernel against analytic Gaussians."""
import numpy as np
import pytest
import astropy.units as u

from muse_xcorr import Template, datasets
from muse_xcorr.templates.lsf import band_kernel, lsf_fwhm, muse_fwhm
from muse_xcorr.templates.resample import generator_for

FWHM_PER_SIGMA = np.sqrt(8 * np.log(2))


def moments(wave, flux):
    area = np.trapezoid(flux, wave)
    mean = np.trapezoid(flux * wave, wave) / area
    return area, mean, np.sqrt(np.trapezoid(flux * (wave - mean) ** 2, wave) / area)


def test_muse_fwhm_matches_bacon_2017_polynomial():
    lam = np.array([4750.0, 6000.0, 7000.0, 9350.0])
    expected = 5.866e-8 * lam ** 2 - 9.187e-4 * lam + 6.040
    assert np.allclose(muse_fwhm(lam * u.AA).to_value(u.AA), expected, rtol=1e-12)
    assert np.all((expected > 2.4) & (expected < 3.1))


def test_resolution_specifications():
    lam = np.array([5000.0, 8000.0]) * u.AA
    assert np.allclose(lsf_fwhm(lam, 2.5 * u.AA).value, 2.5)
    assert np.allclose(lsf_fwhm(lam, 2000.0).value, lam.value / 2000)
    assert np.allclose(lsf_fwhm(lam, 100 * u.km / u.s).value, lam.value * 100 / 299792.458)
    with pytest.raises(ValueError):
        lsf_fwhm(lam, -3.0)
    with pytest.raises(ValueError):
        lsf_fwhm(lam, "keck")
    with pytest.raises(u.UnitTypeError):
        lsf_fwhm(lam, 3 * u.s)


def test_band_kernel_rows_are_normalised_gaussians_of_the_lsf_less_the_pixel():
    wave = datasets.muse_wavelength()
    kernel = band_kernel(wave, "muse")
    assert kernel.shape[0] == wave.size and kernel.shape[1] % 2 == 1
    np.testing.assert_allclose(kernel.sum(axis=1), 1.0, rtol=1e-12)
    half = kernel.shape[1] // 2
    offsets = np.arange(-half, half + 1)
    variance = kernel @ offsets ** 2 - (kernel @ offsets) ** 2
    sigma = muse_fwhm(wave).value / FWHM_PER_SIGMA / 1.25
    np.testing.assert_allclose(variance, sigma ** 2 - 1 / 12, rtol=2e-3)


@pytest.mark.parametrize("z, resolution", [(0.0, 2.5 * u.AA), (0.3, "muse"), (0.8, 3000.0)])
def test_observed_line_widens_in_quadrature(z, resolution):
    """A Gaussian line redshifted onto MUSE pixels: width^2 = intrinsic^2 + LSF^2 (observed).

    The column is a pixel mean spread by the band kernel, so its second
    moment is the intrinsic (1 + z)^2 sigma0^2 plus the LSF's, with the
    pixel's own width^2 / 12 already inside the LSF (Bacon et al. 2017 measured
    it on the pixels).
    """
    centre, sigma0 = 5008.24, 0.8
    line = Template.from_lines({"[OIII]5007": 2.0}, width=sigma0 * u.AA, step=0.02)
    wave = datasets.muse_wavelength()
    column = generator_for(line, wave, "vacuum", [z], lsf=resolution).at_redshifts([z])[0]
    area, mean, sigma = moments(wave.value, column)
    observed = centre * (1 + z)
    sigma_lsf = lsf_fwhm(observed * u.AA, resolution).value / FWHM_PER_SIGMA
    assert area == pytest.approx(2.0 * (1 + z), rel=1e-3)   # the template's unit per rest A
    assert mean == pytest.approx(observed, abs=0.02)
    assert sigma == pytest.approx(np.hypot(sigma0 * (1 + z), sigma_lsf), rel=1e-2)


def test_flat_continuum_is_unchanged_by_the_kernel():
    wave = datasets.muse_wavelength(800)
    flat = Template(np.arange(2000.0, 9000.0, 2.0) * u.AA, np.full(3500, 3.0))
    column = generator_for(flat, wave, "vacuum", [0.1], lsf="muse").at_redshifts([0.1])[0]
    np.testing.assert_allclose(column, 3.0, rtol=1e-9)


def test_spread_columns_match_an_explicit_loop_over_the_band():
    """Columns with the LSF = the unspread pixel means on the padded grid, spread pixel by pixel.

    The reference is a plain float64 double loop over the kernel's rows and
    taps, written here, on columns of the same table without the kernel; both
    the fast path (grid indices) and arbitrary redshifts are compared.
    """
    from muse_xcorr.templates.resample import ColumnGenerator

    wave = datasets.muse_wavelength(300)
    line = Template.from_lines({"[OIII]5007": 2.0, "Hbeta": 1.0}, width=0.5 * u.AA, step=0.02)
    z = np.exp(np.log1p(0.0) + 1e-4 * np.arange(600)) - 1
    spread = generator_for(line, wave, "vacuum", z, lsf="muse")
    half = (spread.kernel.shape[1] - 1) // 2
    plain = ColumnGenerator(spread.table, spread.edges, z, None)   # padded pixel means
    index = np.array([3, 250, 251, 417])
    for got, padded in ((spread.at_indices(index), plain.at_indices(index)),
                        (spread.at_redshifts(z[index] + 3e-5),
                         plain.at_redshifts(z[index] + 3e-5))):
        expected = np.zeros((index.size, wave.size))
        for j in range(wave.size):
            for tap in range(2 * half + 1):
                expected[:, j] += spread.kernel[j, tap] * padded[:, j + tap]
        assert np.abs(expected).max() > 0.1            # the lines are on the grid
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12 * np.abs(expected).max())
