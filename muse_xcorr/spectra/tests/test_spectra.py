"""MuseSpectrum / MuseCube: specutils round trips, axes, media, validation."""
import warnings

import numpy as np
import pytest
import astropy.units as u
from astropy.nddata import InverseVariance, StdDevUncertainty, VarianceUncertainty
from astropy.wcs import WCS
from specutils import Spectrum

from muse_xcorr import Correlator, MuseCube, MuseSpectrum, datasets, zgrid

RNG = np.random.default_rng(42)
WAVE = np.linspace(5000.0, 6000.0, 80) * u.AA
FLUX = RNG.normal(10, 1, size=(3, 4, 80))
SIGMA = RNG.uniform(0.5, 2.0, size=(3, 4, 80))

UNCERTAINTIES = {
    "variance": lambda s: VarianceUncertainty(s ** 2),
    "stddev": lambda s: StdDevUncertainty(s),
    "inverse_variance": lambda s: InverseVariance(1 / s ** 2),
}


@pytest.mark.parametrize("kind", UNCERTAINTIES)
def test_spectrum_round_trip_each_uncertainty_type(kind):
    uncertainty = UNCERTAINTIES[kind](SIGMA[0, 0])
    spectrum = Spectrum(flux=FLUX[0, 0] * u.Jy, spectral_axis=WAVE, uncertainty=uncertainty,
                        meta={"medium": "air"})
    data = MuseSpectrum.from_spectrum(spectrum)
    assert data.medium == "air"
    batch = data.spectra()
    np.testing.assert_allclose(batch.flux[0], FLUX[0, 0], rtol=1e-14)
    np.testing.assert_allclose(batch.variance[0], SIGMA[0, 0] ** 2, rtol=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no Spectrum1D deprecation, nothing else
        back = data.to_spectrum()
    assert isinstance(back, Spectrum)
    assert type(back.uncertainty) is type(uncertainty)
    np.testing.assert_array_equal(back.flux, spectrum.flux)
    np.testing.assert_array_equal(back.uncertainty.array, uncertainty.array)
    np.testing.assert_allclose(back.spectral_axis.to_value(u.AA), WAVE.value)
    assert back.meta["medium"] == "air"


@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize("kind", UNCERTAINTIES)
def test_cube_spectral_axis_anywhere(axis, kind):
    """The same spectra come out whatever the position of the spectral axis."""
    flux = np.moveaxis(FLUX, -1, axis)
    sigma = np.moveaxis(SIGMA, -1, axis)
    spectrum = Spectrum(flux=flux * u.Jy, spectral_axis=WAVE, spectral_axis_index=axis,
                        uncertainty=UNCERTAINTIES[kind](sigma))
    cube = MuseCube.from_spectrum(spectrum, medium="vacuum")
    assert cube.spatial_shape == (3, 4) and cube.spectral_axis_index == axis
    for start, stop in [(0, 12), (5, 7), (11, 12)]:
        batch = cube.spectra(start, stop)
        np.testing.assert_allclose(batch.flux, FLUX.reshape(12, 80)[start:stop], rtol=1e-14)
        np.testing.assert_allclose(batch.variance, SIGMA.reshape(12, 80)[start:stop] ** 2,
                                   rtol=1e-12)
    back = cube.to_spectrum()
    assert back.spectral_axis_index == axis
    np.testing.assert_array_equal(back.flux, spectrum.flux)


def fits_wcs_cube(ctype):
    wcs = WCS(naxis=3)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN", ctype]
    wcs.wcs.cunit = ["deg", "deg", "Angstrom"]
    wcs.wcs.crval = [53.16, -27.78, 5000.0]
    wcs.wcs.cdelt = [-0.2 / 3600, 0.2 / 3600, 1.25]
    wcs.wcs.crpix = [1, 1, 1]
    flux = np.moveaxis(FLUX, -1, 0)
    return Spectrum(flux=flux * u.Jy, wcs=wcs,
                    uncertainty=VarianceUncertainty(np.moveaxis(SIGMA, -1, 0) ** 2))


def test_medium_and_celestial_wcs_from_fits_wcs():
    air = MuseCube.from_spectrum(fits_wcs_cube("AWAV"))
    assert air.medium == "air"
    assert air.wcs is not None and air.wcs.naxis == 2
    np.testing.assert_allclose(air.spectral_axis.value, 5000 + 1.25 * np.arange(80))
    assert MuseCube.from_spectrum(fits_wcs_cube("WAVE")).medium == "vacuum"
    with pytest.raises(ValueError, match="contradicts"):
        MuseCube.from_spectrum(fits_wcs_cube("AWAV"), medium="vacuum")


def test_unknown_medium_is_an_error_not_a_guess():
    spectrum = Spectrum(flux=FLUX[0, 0] * u.Jy, spectral_axis=WAVE,
                        uncertainty=StdDevUncertainty(SIGMA[0, 0]))
    with pytest.raises(ValueError, match="medium is unknown"):
        MuseSpectrum.from_spectrum(spectrum)
    with pytest.raises(ValueError, match="unknown wavelength medium"):
        MuseSpectrum.from_spectrum(spectrum, medium="water")
    assert MuseSpectrum.from_spectrum(spectrum, medium="vac").medium == "vacuum"


def test_descending_axis_is_stored_increasing_with_its_mask():
    mask = np.arange(80) == 3
    spectrum = MuseSpectrum(WAVE[::-1], FLUX[0, 0][::-1] * u.Jy,
                            StdDevUncertainty(SIGMA[0, 0][::-1]), mask=mask, medium="air")
    np.testing.assert_allclose(spectrum.spectral_axis.value, WAVE.value)
    batch = spectrum.spectra()
    np.testing.assert_allclose(batch.flux[0], FLUX[0, 0] * (np.arange(80) != 76))
    np.testing.assert_allclose(batch.variance[0], SIGMA[0, 0] ** 2 * (np.arange(80) != 76))
    assert not batch.valid[0, 76] and batch.valid[0].sum() == 79


def test_frequency_axis_is_converted_to_wavelength():
    frequency = WAVE.to(u.THz, equivalencies=u.spectral())  # decreasing frequency
    spectrum = MuseSpectrum(frequency, FLUX[0, 0] * u.Jy, StdDevUncertainty(SIGMA[0, 0]),
                            medium="air")
    np.testing.assert_allclose(spectrum.spectral_axis.value, WAVE.value, rtol=1e-12)
    np.testing.assert_allclose(spectrum.spectra().flux[0], FLUX[0, 0])


def test_validation_messages():
    with pytest.raises(TypeError, match="Quantity"):
        MuseSpectrum(WAVE.value, FLUX[0, 0] * u.Jy, medium="air")
    with pytest.raises(u.UnitConversionError, match="not a wavelength"):
        MuseSpectrum(WAVE.value * u.kg, FLUX[0, 0] * u.Jy, medium="air")
    with pytest.raises(ValueError, match="spectral axis has 80 values"):
        MuseSpectrum(WAVE, FLUX[0, 0, :70] * u.Jy, medium="air")
    with pytest.raises(ValueError, match="uncertainty shape"):
        MuseSpectrum(WAVE, FLUX[0, 0] * u.Jy, StdDevUncertainty(SIGMA[0, 0, :5]), medium="air")
    with pytest.raises(u.UnitConversionError, match="does not convert"):
        MuseSpectrum(WAVE, FLUX[0, 0] * u.Jy, StdDevUncertainty(SIGMA[0, 0], unit=u.m),
                     medium="air")
    with pytest.raises(ValueError, match="2 to 3 dimensions"):
        MuseCube(WAVE, FLUX[0, 0] * u.Jy, medium="air")
    with pytest.raises(ValueError, match="monotonic"):
        MuseSpectrum(np.r_[WAVE.value[:40], WAVE.value[:40]] * u.AA, FLUX[0, 0] * u.Jy,
                     medium="air")


def test_uncertainty_units_are_converted():
    """Uncertainties in mJy-based units for a flux in Jy enter as the right variance."""
    for uncertainty in (StdDevUncertainty(SIGMA[0, 0] * 1e3, unit=u.mJy),
                        VarianceUncertainty(SIGMA[0, 0] ** 2 * 1e6, unit=u.mJy ** 2),
                        InverseVariance(SIGMA[0, 0] ** -2 * 1e-6, unit=u.mJy ** -2)):
        spectrum = MuseSpectrum(WAVE, FLUX[0, 0] * u.Jy, uncertainty, medium="air")
        np.testing.assert_allclose(spectrum.spectra().variance[0], SIGMA[0, 0] ** 2,
                                   rtol=1e-12)


def test_correlate_accepts_specutils_spectrum_directly():
    data, truth = datasets.make_spectrum(z=0.5, snr=40, seed=4)
    z = zgrid(0.45, 0.55, 2e-4)
    template = datasets.make_template()
    from_wrapper = Correlator(template, z).correlate(data, progress=False)
    from_spectrum = Correlator(template, z).correlate(data.to_spectrum(), progress=False)
    assert from_spectrum.z_best == from_wrapper.z_best
    assert from_spectrum.sigma_f_best == from_wrapper.sigma_f_best
    assert np.ndim(from_spectrum.z_best) == 0


def test_from_spectral_cube_with_variance_cube():
    spectral_cube = pytest.importorskip("spectral_cube")
    spectrum = fits_wcs_cube("AWAV")
    flux = spectrum.flux.value
    cube = spectral_cube.SpectralCube(data=flux * u.Jy, wcs=spectrum.wcs)
    variance = spectral_cube.SpectralCube(data=np.moveaxis(SIGMA, -1, 0) ** 2 * u.Jy ** 2,
                                          wcs=spectrum.wcs)
    data = MuseCube.from_spectral_cube(cube, variance)
    assert data.medium == "air" and data.wcs.naxis == 2
    batch = data.spectra()
    np.testing.assert_allclose(batch.flux, FLUX.reshape(12, 80))
    np.testing.assert_allclose(batch.variance, SIGMA.reshape(12, 80) ** 2)


def test_scattered_rows_read_as_each_spectrum_on_its_own():
    # spectra_at of rows far apart (read one by one, masked in one pass) against each row
    # read alone: masks, NaN, a zero variance (BAD_VARIANCE) and an absurd flux (OUTLIERS)
    rng = np.random.default_rng(3)
    flux = rng.normal(5.0, 1.0, size=(6, 7, 80))
    sigma = rng.uniform(0.5, 1.5, size=flux.shape)
    flux[1, 2, 10] = np.nan
    sigma[4, 0, 33] = 0.0
    flux[5, 6, 40] = 3e38
    mask = np.zeros(flux.shape, bool)
    mask[3, 2, 50:60] = True
    cube = MuseCube(WAVE, flux * u.Jy, VarianceUncertainty(sigma ** 2), mask=mask,
                    medium="air", spectral_axis_index=2)
    rows = np.array([41, 0, 23, 9, 28])  # span 42 > 4 x 5 rows: one read per row
    batch = cube.spectra_at(rows)
    assert (batch.start, batch.stop) == (0, rows.size)
    for i, row in enumerate(rows):
        alone = cube.spectra(int(row), int(row) + 1)
        for name in ("flux", "variance", "valid", "bad_variance", "outliers"):
            np.testing.assert_array_equal(getattr(batch, name)[i], getattr(alone, name)[0])
    assert batch.bad_variance.tolist() == [False, False, False, False, True]
    assert batch.outliers.tolist() == [True, False, False, False, False]
    assert not batch.valid[2, 50:60].any() and batch.valid[2, :50].all()  # the mask
    assert not batch.valid[3, 10] and batch.valid[3, 11]  # the NaN
    for bad in ([0, 41, 42], [0, -1]):  # outside the cube: an error, not a shorter batch
        with pytest.raises(IndexError, match="spectrum indices must lie in 0-41"):
            cube.spectra_at(bad)
