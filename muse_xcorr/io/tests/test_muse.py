"""MUSE FITS reading and writing: the real UDF excerpt and generated files."""
import mmap

import numpy as np
import pytest
import astropy.units as u
from astropy.io import fits
from astropy.nddata import VarianceUncertainty

from muse_xcorr import Correlator, MuseCube, MuseSpectrum, datasets, zgrid
from muse_xcorr.flags import Flag
from muse_xcorr.io import parse_fits_unit, read_muse_fits, write_muse_fits


def test_udf_subcube_reads_with_air_medium_units_and_wcs(shared_data):
    path = shared_data / "udf_mosaic_subcube.fits"
    cube = MuseCube.read(path)
    assert cube.medium == "air"
    assert cube.flux.shape == (500, 30, 30) and cube.spatial_shape == (30, 30)
    assert cube.spectral_axis.unit == u.AA
    np.testing.assert_allclose(cube.spectral_axis.value, 4750.0 + 1.25 * np.arange(500))
    assert cube.flux.unit == u.Unit("1e-20 erg / (s cm2 Angstrom)")
    assert cube.uncertainty.unit.is_equivalent(cube.flux.unit ** 2)
    assert cube._variance_scale == pytest.approx(1.0)
    assert cube.wcs.celestial.naxis == 2
    with fits.open(path) as hdul:
        raw = hdul["DATA"].data[:, 3, 7].astype(float)
        raw_var = hdul["STAT"].data[:, 3, 7].astype(float)
    batch = cube.spectra(3 * 30 + 7, 3 * 30 + 8)
    np.testing.assert_array_equal(batch.flux[0], raw)
    np.testing.assert_array_equal(batch.variance[0], raw_var)
    centre = cube.wcs.pixel_to_world(14.5, 14.5)
    assert centre.ra.deg == pytest.approx(53.17525, abs=2e-4)
    assert centre.dec.deg == pytest.approx(-27.80788, abs=2e-4)


def test_udf_subcube_full_correlate_runs(shared_data, tmp_path):
    """A full run on real noise: every spaxel processed, nothing silently NaN."""
    cube = MuseCube.read(shared_data / "udf_mosaic_subcube.fits")
    result = Correlator(datasets.make_template(), zgrid(0.0, 1.0, 5e-4),
                        weighting="inverse_variance").correlate(cube, progress=False)
    assert result.z_best.shape == (30, 30)
    unflagged = (result.flags & (Flag.NO_DATA | Flag.FEW_PIXELS)) == 0
    assert unflagged.all()
    for name in ("z_best", "f_best", "sigma_f_best", "snr", "chi2_best"):
        assert np.all(np.isfinite(getattr(result, name)))
    assert np.all(result.sigma_f_best > 0)
    result.write(tmp_path / "udf_z.fits")
    back = type(result).read(tmp_path / "udf_z.fits")
    np.testing.assert_array_equal(back.z_best, result.z_best)
    assert back.wcs.wcs.ctype[0].startswith("RA")


def test_round_trip_with_nans_and_dq(tmp_path):
    cube, _ = datasets.make_cube((3, 4), seed=3, wavelength=datasets.muse_wavelength(300),
                                 nan_fraction=0.05)
    path = tmp_path / "cube.fits"
    write_muse_fits(cube, path)
    with fits.open(path, mode="update") as hdul:  # add a DQ extension flagging one pixel
        dq = np.zeros(hdul["DATA"].data.shape, np.int32)
        dq[10, 1, 2] = 4
        hdul.append(fits.ImageHDU(dq, name="DQ"))
    back = MuseCube.read(path)
    assert back.medium == "air" and back.flux.unit == cube.flux.unit
    original, read = cube.spectra(), back.spectra()
    expected_valid = original.valid.copy()
    expected_valid[1 * 4 + 2, 10] = False
    np.testing.assert_array_equal(read.valid, expected_valid)
    np.testing.assert_allclose(read.flux[expected_valid], original.flux[expected_valid],
                               rtol=1e-6)
    np.testing.assert_allclose(read.variance[expected_valid],
                               original.variance[expected_valid], rtol=1e-6)
    assert back.wcs.wcs.ctype[0] == "RA---TAN"
    np.testing.assert_allclose(back.wcs.pixel_scale_matrix, cube.wcs.pixel_scale_matrix,
                               rtol=1e-12)
    np.testing.assert_allclose(back.spectral_axis.value, cube.spectral_axis.value, rtol=1e-12)


def test_rotated_udf_wcs_survives_a_write(shared_data, tmp_path):
    cube = MuseCube.read(shared_data / "udf_mosaic_subcube.fits")
    write_muse_fits(cube, tmp_path / "copy.fits")
    back = MuseCube.read(tmp_path / "copy.fits")
    np.testing.assert_allclose(back.wcs.pixel_scale_matrix, cube.wcs.pixel_scale_matrix,
                               rtol=1e-10)
    np.testing.assert_allclose(back.spectral_axis.value, cube.spectral_axis.value)


def test_vacuum_cube_and_spectrum_round_trip(tmp_path):
    wave = datasets.muse_wavelength(200)
    spectrum = MuseSpectrum(wave, np.arange(200.0) * u.Jy,
                            VarianceUncertainty(np.full(200, 4.0) * u.Jy ** 2), medium="vacuum")
    write_muse_fits(spectrum, tmp_path / "spec.fits")
    assert fits.getheader(tmp_path / "spec.fits", "DATA")["CTYPE1"] == "WAVE"
    back = MuseSpectrum.read(tmp_path / "spec.fits")
    assert back.medium == "vacuum" and back.flux.unit == u.Jy
    np.testing.assert_allclose(back.spectral_axis.value, wave.value)
    np.testing.assert_allclose(back.spectra().flux[0], np.arange(200.0))
    with pytest.raises(FileExistsError):
        write_muse_fits(spectrum, tmp_path / "spec.fits")


def test_reader_errors_are_specific(tmp_path):
    with pytest.raises(FileNotFoundError):
        MuseCube.read(tmp_path / "nope.fits")
    data = np.ones((5, 2, 2), np.float32)
    header = fits.Header({"CTYPE3": "AWAV", "CRVAL3": 5000.0, "CDELT3": 1.25, "CRPIX3": 1,
                          "CUNIT3": "Angstrom", "CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN",
                          "BUNIT": "10**-20 erg/s/cm2/Angstrom"})
    only_data = tmp_path / "nostat.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(data, header, name="DATA")]).writeto(only_data)
    with pytest.raises(ValueError, match="STAT"):
        MuseCube.read(only_data)
    bad_unit = tmp_path / "badunit.fits"
    stat_header = header.copy()
    stat_header["BUNIT"] = "km/s"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(data, header, name="DATA"),
                  fits.ImageHDU(data, stat_header, name="STAT")]).writeto(bad_unit)
    with pytest.raises(u.UnitConversionError, match="not the square"):
        MuseCube.read(bad_unit)
    with pytest.raises(ValueError, match="contradicts"):
        read_muse_fits(bad_unit, ndim=3, medium="vacuum")
    unknown = tmp_path / "unknown_medium.fits"
    header["CTYPE3"] = "LINEAR"
    stat_header = header.copy()
    stat_header["BUNIT"] = "(10**-20 erg/s/cm2/Angstrom)**2"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(data, header, name="DATA"),
                  fits.ImageHDU(data, stat_header, name="STAT")]).writeto(unknown)
    with pytest.raises(ValueError, match="medium is unknown"):
        MuseCube.read(unknown)
    assert MuseCube.read(unknown, medium="air").medium == "air"


@pytest.mark.parametrize("text, expected", [
    ("10**-20 erg/s/cm2/Angstrom", u.Unit("1e-20 erg / (s cm2 Angstrom)")),
    ("10**-20 Angstrom-1 cm-2 erg s-1", u.Unit("1e-20 erg / (s cm2 Angstrom)")),
    ("(10**-20 erg/s/cm2/Angstrom)**2", u.Unit("1e-20 erg / (s cm2 Angstrom)") ** 2),
    ("", u.dimensionless_unscaled)])
def test_parse_fits_unit(text, expected):
    assert parse_fits_unit(text).is_equivalent(expected)
    assert (1 * parse_fits_unit(text)).to_value(expected) == pytest.approx(1.0)


def test_parse_fits_unit_rejects_garbage():
    with pytest.raises(ValueError, match="cannot parse"):
        parse_fits_unit("furlongs per fortnight squared")


def test_memmap_cube_is_not_loaded_whole(tmp_path):
    cube, _ = datasets.make_cube((4, 4), seed=1, wavelength=datasets.muse_wavelength(100))
    write_muse_fits(cube, tmp_path / "c.fits")
    back = MuseCube.read(tmp_path / "c.fits")
    bases, array = [], back.flux.value
    while array is not None:
        bases.append(array)
        array = getattr(array, "base", None)
    assert any(isinstance(b, (np.memmap, mmap.mmap)) for b in bases)
