"""Template.read: hdu=, wavelength=/flux= column names, wave_range=, medium rules."""
import numpy as np
import pytest
import astropy.units as u
from astropy.io import fits
from astropy.table import Table

from muse_xcorr import Template

WAVE = np.arange(1200.0, 9000.0, 5.0)
FLUX = 1 + np.sin(WAVE / 300.0)


def _two_tables(path, medium=None):
    junk = fits.BinTableHDU.from_columns([fits.Column("a", "D", array=np.arange(3.0))],
                                         name="JUNK")
    columns = [fits.Column("lam_rest", "D", unit="ANGSTROMS", array=WAVE),
               fits.Column("model", "D", array=FLUX),
               fits.Column("continuum", "D", array=np.ones(WAVE.size))]
    table = fits.BinTableHDU.from_columns(columns, name="TEMPLATE")
    if medium:
        table.header["AIRORVAC"] = medium
    fits.HDUList([fits.PrimaryHDU(), junk, table]).writeto(path)
    return path


def test_hdu_and_column_names(tmp_path):
    path = _two_tables(tmp_path / "t.fits", medium="vac")
    with pytest.raises(ValueError, match="cannot tell the wavelength and flux columns"):
        Template.read(path)
    template = Template.read(path, hdu="TEMPLATE", wavelength="lam_rest", flux="model")
    assert template.medium == "vacuum" and template.name == "t"
    np.testing.assert_array_equal(template.wavelength.value, WAVE)   # 'ANGSTROMS' understood
    np.testing.assert_array_equal(template.flux, FLUX)
    by_index = Template.read(path, hdu=2, wavelength="lam_rest", flux="continuum")
    np.testing.assert_array_equal(by_index.flux, np.ones(WAVE.size))
    with pytest.raises(ValueError, match="no column 'nope'"):
        Template.read(path, hdu=2, wavelength="lam_rest", flux="nope")
    with pytest.raises(ValueError, match="no HDU 'MISSING'"):
        Template.read(path, hdu="MISSING")


@pytest.mark.parametrize("wave_range", [(3000.0, 7000.0), (300 * u.nm, 700 * u.nm)])
def test_wave_range_cuts(tmp_path, wave_range):
    Table({"wavelength": WAVE * u.AA, "flux": FLUX}).write(tmp_path / "t.ecsv")
    template = Template.read(tmp_path / "t.ecsv", wave_range=wave_range)
    keep = (WAVE >= 3000) & (WAVE <= 7000)
    np.testing.assert_array_equal(template.wavelength.value, WAVE[keep])
    np.testing.assert_array_equal(template.flux, FLUX[keep])


def test_wave_range_errors(tmp_path):
    Table({"wavelength": WAVE * u.AA, "flux": FLUX}).write(tmp_path / "t.ecsv")
    with pytest.raises(ValueError, match="keeps 1 of the template's samples"):
        Template.read(tmp_path / "t.ecsv", wave_range=(3000.0, 3002.0))
    with pytest.raises(ValueError, match="min < max"):
        Template.read(tmp_path / "t.ecsv", wave_range=(7000.0, 3000.0))


def test_medium_sources(tmp_path):
    path = _two_tables(tmp_path / "air.fits", medium="AIR")
    kwargs = dict(hdu=2, wavelength="lam_rest", flux="model")
    assert Template.read(path, **kwargs).medium == "air"
    with pytest.raises(ValueError, match="contradicts AIRORVAC = 'AIR'"):
        Template.read(path, medium="vacuum", **kwargs)
    silent = _two_tables(tmp_path / "silent.fits")
    assert Template.read(silent, **kwargs).medium == "vacuum"   # the template convention
    assert Template.read(silent, medium="air", **kwargs).medium == "air"
    image = tmp_path / "image.fits"
    fits.PrimaryHDU(FLUX, fits.Header({"CTYPE1": "AWAV", "CRVAL1": WAVE[0], "CDELT1": 5.0,
                                       "CRPIX1": 1.0, "CUNIT1": "Angstrom",
                                       "MEDIUM": "vacuum"})).writeto(image)
    with pytest.raises(ValueError, match="contradicts itself"):
        Template.read(image)


def test_image_template_errors(tmp_path):
    image = tmp_path / "noscale.fits"
    fits.PrimaryHDU(FLUX, fits.Header({"CTYPE1": "WAVE", "CRVAL1": WAVE[0],
                                       "CUNIT1": "Angstrom"})).writeto(image)
    with pytest.raises(ValueError, match="no CDELT1 or CD1_1"):
        Template.read(image)
    with pytest.raises(ValueError, match="is an image"):
        Template.read(image, flux="flux")


@pytest.mark.parametrize("name", ["kc96_starburst1.fits", "kc96_elliptical.fits"])
def test_shared_kc96_with_wave_range(shared_data, name):
    path = shared_data / "templates" / name
    with fits.open(path) as hdul:
        wave = np.asarray(hdul["TEMPLATE"].data["wavelength"], dtype=float)
        flux = np.asarray(hdul["TEMPLATE"].data["flux"], dtype=float)
    template = Template.read(path, wave_range=(3500, 7500))
    keep = (wave >= 3500) & (wave <= 7500)
    np.testing.assert_array_equal(template.wavelength.value, wave[keep])
    np.testing.assert_array_equal(template.flux, flux[keep])
    assert template.medium == "air" and template.meta["TMPL_Z"] == 0
    full = Template.read(path)
    assert full.wavelength.size == wave.size and np.all(np.diff(full.vacuum_wavelength()) > 0)
