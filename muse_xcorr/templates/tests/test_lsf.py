"""The line spread function and template convolution against analytic Gaussians."""
import numpy as np
import pytest
import astropy.units as u

from muse_xcorr import Template
from muse_xcorr.templates.lsf import convolve_lsf, lsf_fwhm, muse_fwhm, width_mismatch

FWHM_PER_SIGMA = np.sqrt(8 * np.log(2))


def moments(template):
    wave, flux = template.wavelength.value, template.flux
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


@pytest.mark.parametrize("z, resolution", [(0.0, 2.0 * u.AA), (0.5, 2.0 * u.AA),
                                           (0.3, "muse"), (1.0, 3000.0)])
def test_gaussian_line_widens_in_quadrature(z, resolution):
    """A Gaussian line convolved with a Gaussian LSF: sigma^2 adds, area and centre kept."""
    centre, sigma0 = 5008.24, 0.8
    line = Template.from_lines({"[OIII]5007": 2.0}, width=sigma0 * u.AA, step=0.02)
    convolved = convolve_lsf(line, z, resolution)
    area, mean, sigma = moments(convolved)
    sigma_lsf = lsf_fwhm(centre * (1 + z) * u.AA, resolution).value / FWHM_PER_SIGMA / (1 + z)
    assert area == pytest.approx(2.0, rel=2e-4)
    assert mean == pytest.approx(centre, abs=2e-3)
    assert sigma == pytest.approx(np.hypot(sigma0, sigma_lsf), rel=2e-3)
    # the profile itself is the analytic Gaussian
    wave = convolved.wavelength.value
    width = np.hypot(sigma0, sigma_lsf)
    analytic = 2.0 * np.exp(-0.5 * ((wave - centre) / width) ** 2) / (width * np.sqrt(2 * np.pi))
    assert np.max(np.abs(convolved.flux - analytic)) < 2e-3 * analytic.max()


def test_flat_continuum_is_unchanged_and_method_matches_function():
    wave = np.arange(3000.0, 4000.0, 2.0) * u.AA
    flat = Template(wave, np.full(wave.size, 3.0))
    out = flat.convolve_lsf(z=1.0)
    assert np.allclose(out.flux, 3.0, rtol=1e-12)
    line = Template.from_lines(["Halpha"])
    a, b = line.convolve_lsf(0.2, 2.0 * u.AA), convolve_lsf(line, 0.2, 2.0 * u.AA)
    assert np.array_equal(a.flux, b.flux)
    assert a.meta["lsf_z"] == 0.2


def test_width_mismatch_is_one_at_reference_and_grows_away():
    rest = 3728.0 * u.AA
    assert width_mismatch(rest, 1.0, 1.0) == pytest.approx(1.0)
    # a constant-R resolution has no mismatch at all: FWHM/lambda is the same at every z
    assert width_mismatch(rest, 0.3, 1.0, resolution=2000.0) == pytest.approx(1.0)
    # constant FWHM in Angstrom: convolved at z_ref = 1, used at z = 0.3 -> (1.3 / 2)
    assert width_mismatch(rest, 0.3, 1.0, 2.5 * u.AA) == pytest.approx(1.3 / 2.0)
