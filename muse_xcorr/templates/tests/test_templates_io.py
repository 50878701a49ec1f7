"""Reading templates from FITS tables, 1D FITS images, ECSV and plain ASCII (real files)."""
import numpy as np
import pytest
import astropy.units as u
from astropy.io import fits
from astropy.table import Table

from muse_xcorr import Template


@pytest.fixture
def spectrum():
    wave = np.linspace(3000.0, 9000.0, 601)
    flux = 1 + np.exp(-0.5 * ((wave - 5008.24) / 3) ** 2)
    return wave, flux


def test_fits_table_with_units_and_medium(tmp_path, spectrum):
    wave, flux = spectrum
    table = Table({"WAVE": wave / 10 * u.nm, "FLUX": flux})
    hdu = fits.table_to_hdu(table)
    hdu.header["MEDIUM"] = "air"
    path = tmp_path / "t.fits"
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(path)
    t = Template.read(path)
    assert t.medium == "air" and t.name == "t"
    assert np.allclose(t.wavelength.to_value(u.AA), wave)
    assert np.array_equal(t.flux, flux)
    with pytest.raises(ValueError, match="contradicts"):
        Template.read(path, medium="vacuum")


def test_fits_image_with_linear_wcs(tmp_path, spectrum):
    wave, flux = spectrum
    hdu = fits.PrimaryHDU(flux)
    hdu.header.update(CTYPE1="AWAV", CRVAL1=wave[0], CDELT1=wave[1] - wave[0], CRPIX1=1,
                      CUNIT1="Angstrom")
    path = tmp_path / "image.fits"
    hdu.writeto(path)
    t = Template.read(path)
    assert t.medium == "air"
    assert np.allclose(t.wavelength.to_value(u.AA), wave)
    assert np.allclose(t.flux, flux)


def test_ecsv_and_plain_ascii(tmp_path, spectrum):
    wave, flux = spectrum
    table = Table({"wavelength": wave * u.AA, "flux": flux}, meta={"MEDIUM": "vacuum"})
    table.write(tmp_path / "t.ecsv")
    t = Template.read(tmp_path / "t.ecsv")
    assert t.medium == "vacuum" and np.array_equal(t.flux, flux)
    np.savetxt(tmp_path / "two.txt", np.column_stack([wave, flux]))
    t2 = Template.read(tmp_path / "two.txt", medium="air")
    assert t2.medium == "air" and np.allclose(t2.flux, flux)
    np.savetxt(tmp_path / "three.txt", np.column_stack([wave, flux, flux]))
    with pytest.raises(ValueError, match="cannot tell"):
        Template.read(tmp_path / "three.txt")


def test_shared_kinney_calzetti_templates(shared_data):
    t = Template.read(shared_data / "templates" / "kc96_starburst1.fits")
    assert t.medium == "air"
    assert 1200 < t.wavelength[0].value < 1300 and t.wavelength.size == 1743
