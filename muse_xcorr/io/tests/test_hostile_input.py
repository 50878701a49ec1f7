"""Hostile input for read_muse_fits, MuseCube.read and MuseSpectrum.read: one test a case.

docs/bad_input.rst tabulates these cases and what the user sees. Every file is
written here with astropy directly, so the expected values are known
independently of the package.
"""
import gzip
import hashlib
import os
import shutil
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
import astropy.units as u
from astropy import constants
from astropy.io import fits
from astropy.wcs import WCS

from muse_xcorr import MuseCube, MuseSpectrum
from muse_xcorr.io import atomic_write, read_muse_fits

NW, NY, NX = 40, 3, 4
WAVE = 4750.0 + 1.25 * np.arange(NW)
RNG = np.random.default_rng(5)
FLUX = RNG.normal(10, 1, (NW, NY, NX)).astype(np.float32)
VAR = RNG.uniform(1, 2, (NW, NY, NX)).astype(np.float32)
BUNIT = "10**-20 erg/s/cm2/Angstrom"


def cube_header(**changes):
    """A MUSE-like cube header (CDELT convention); a value None deletes the keyword."""
    header = fits.Header({"CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CUNIT1": "deg",
                          "CUNIT2": "deg", "CRVAL1": 53.16, "CRVAL2": -27.78, "CRPIX1": 2.0,
                          "CRPIX2": 2.0, "CDELT1": -5.5555556e-5, "CDELT2": 5.5555556e-5,
                          "CTYPE3": "AWAV", "CUNIT3": "Angstrom", "CRVAL3": WAVE[0],
                          "CRPIX3": 1.0, "CDELT3": 1.25, "BUNIT": BUNIT})
    for key, value in changes.items():
        if value is None:
            header.remove(key, ignore_missing=True)
        else:
            header[key] = value
    return header


def write_cube(path, header=None, flux=FLUX, var=VAR, extra=(), stat_header=None):
    header = cube_header() if header is None else header
    if stat_header is None:
        stat_header = header.copy()
        stat_header["BUNIT"] = f"({BUNIT})**2"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(flux, header, name="DATA"),
                  fits.ImageHDU(var, stat_header, name="STAT"), *extra]).writeto(path)
    return path


def spectrum_header(**changes):
    header = fits.Header({"CTYPE1": "AWAV", "CUNIT1": "Angstrom", "CRVAL1": WAVE[0],
                          "CRPIX1": 1.0, "CDELT1": 1.25, "BUNIT": BUNIT})
    for key, value in changes.items():
        if value is None:
            header.remove(key, ignore_missing=True)
        else:
            header[key] = value
    return header


def write_spectrum(path, header):
    fits.HDUList([fits.PrimaryHDU(FLUX[:, 0, 0], header),
                  fits.ImageHDU(np.sqrt(VAR[:, 0, 0]), name="SIGMA")]).writeto(path)
    return path


def sha256(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


# -- the spectral step ---------------------------------------------------------------------
def test_missing_cdelt3_is_an_error(tmp_path):
    path = write_cube(tmp_path / "c.fits", cube_header(CDELT3=None))
    with pytest.raises(ValueError, match="no CDELT3 or CD3_3.*c.fits|c.fits.*no CDELT3 or CD3_3"):
        MuseCube.read(path)


def test_non_numeric_cdelt3_is_an_error(tmp_path):
    path = write_cube(tmp_path / "c.fits", cube_header(CDELT3="1.25A"))
    with pytest.raises(ValueError, match="CDELT3 = '1.25A' is not a number"):
        MuseCube.read(path)


def test_nan_cdelt3_written_as_text_is_an_error(tmp_path):
    path = write_cube(tmp_path / "c.fits", cube_header(CDELT3="NAN"))
    with pytest.raises(ValueError, match="CDELT3 = 'NAN' is not a number"):
        MuseCube.read(path)


def test_zero_cdelt3_is_an_error(tmp_path):
    path = write_cube(tmp_path / "c.fits", cube_header(CDELT3=0.0))
    with pytest.raises(ValueError, match="step of the spectral axis is 0"):
        MuseCube.read(path)


def test_missing_crval3_is_an_error(tmp_path):
    path = write_cube(tmp_path / "c.fits", cube_header(CRVAL3=None))
    with pytest.raises(ValueError, match="no CRVAL3"):
        MuseCube.read(path)


def test_missing_crpix3_warns_and_uses_the_fits_default(tmp_path):
    path = write_cube(tmp_path / "c.fits", cube_header(CRPIX3=None))
    with pytest.warns(UserWarning, match="no CRPIX3; the FITS default 0"):
        cube = MuseCube.read(path)
    np.testing.assert_allclose(cube.spectral_axis.value, WAVE + 1.25, atol=1e-9)


@pytest.mark.parametrize("missing", ["CDELT1", "CRVAL1"])
def test_1d_spectrum_without_cdelt1_or_crval1(tmp_path, missing):
    path = write_spectrum(tmp_path / "s.fits", spectrum_header(**{missing: None}))
    with pytest.raises(ValueError, match=f"no {missing}"):
        MuseSpectrum.read(path)


def test_1d_spectrum_with_cd1_1_is_read(tmp_path):
    path = write_spectrum(tmp_path / "s.fits", spectrum_header(CDELT1=None, CD1_1=1.25))
    np.testing.assert_allclose(MuseSpectrum.read(path).spectral_axis.value, WAVE, atol=1e-9)


# -- CD / CDELT mixes ------------------------------------------------------------------------
def test_cdelt12_with_cd3_3_reads_both_axes_right(tmp_path):
    header = cube_header(CDELT3=None, CD3_3=1.25)
    path = write_cube(tmp_path / "mix.fits", header)
    with pytest.warns(UserWarning, match="mixes CDi_j.*CDELTi"):
        cube = MuseCube.read(path)
    np.testing.assert_allclose(cube.spectral_axis.value, WAVE, rtol=0, atol=1e-9)
    # reference: the same celestial WCS written consistently, built by astropy alone
    reference = WCS(cube_header()).celestial
    for x, y in [(0, 0), (3, 2), (1.5, 0.5)]:
        got, want = cube.wcs.pixel_to_world(x, y), reference.pixel_to_world(x, y)
        assert got.separation(want).arcsec < 1e-6
    np.testing.assert_allclose(np.abs(cube.wcs.proj_plane_pixel_scales()[0].to_value(u.deg)),
                               5.5555556e-5, rtol=1e-9)


def test_cd12_with_cdelt3_reads_the_spectral_step(tmp_path):
    header = cube_header(CDELT1=None, CDELT2=None, CD1_1=-5.5555556e-5, CD2_2=5.5555556e-5)
    path = write_cube(tmp_path / "mix2.fits", header)
    with pytest.warns(UserWarning, match="mixes CDi_j"):
        cube = MuseCube.read(path)
    np.testing.assert_allclose(cube.spectral_axis.value, WAVE, rtol=0, atol=1e-9)
    reference = WCS(cube_header()).celestial
    assert cube.wcs.pixel_to_world(3, 2).separation(
        reference.pixel_to_world(3, 2)).arcsec < 1e-6


def test_cd_with_crota_is_an_error(tmp_path):
    header = cube_header(CDELT3=None, CD3_3=1.25, CROTA2=10.0)
    path = write_cube(tmp_path / "rot.fits", header)
    with pytest.raises(ValueError, match="both CDi_j and CROTAi"):
        MuseCube.read(path)


def test_real_cd_matrix_header_gives_no_warning(shared_data):
    """The UDF excerpt has a full CD matrix: nothing to warn about."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        MuseCube.read(shared_data / "udf_mosaic_subcube.fits")


def test_fits_fixed_warnings_are_shown_but_date_fixes(tmp_path):
    header = cube_header(CUNIT1="DEG", CUNIT2="DEG",
                         **{"DATE-OBS": "2018-01-25T08:35:14", "MJD-OBS": 58000.0})
    path = write_cube(tmp_path / "d.fits", header)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cube = MuseCube.read(path)
    messages = [str(w.message) for w in caught]
    assert any("'unitfix'" in m and "DEG" in m for m in messages)   # WCSLIB's fix reaches us
    # the datfix of an inconsistent DATE-OBS/MJD-OBS (no effect on the axes) stays quiet
    assert not any("datfix" in m for m in messages)
    assert cube.wcs.pixel_to_world(0, 0).separation(
        WCS(cube_header()).celestial.pixel_to_world(0, 0)).arcsec < 1e-6


@pytest.mark.parametrize("spelling", ["ANGSTROM", "Angstroms", "angstroem", "nm"])
def test_cunit3_spellings(tmp_path, spelling):
    scale = 0.1 if spelling == "nm" else 1.0
    path = write_cube(tmp_path / "s.fits", cube_header(CUNIT3=spelling, CRVAL3=WAVE[0] * scale,
                                                       CDELT3=1.25 * scale))
    np.testing.assert_allclose(MuseCube.read(path).spectral_axis.value, WAVE, rtol=1e-12)


# -- the spectral unit -------------------------------------------------------------------------
def test_awav_without_cunit3_in_angstrom_values_warns_and_reads_angstrom(tmp_path):
    path = write_cube(tmp_path / "a.fits", cube_header(CUNIT3=None))
    with pytest.warns(UserWarning, match="plausible only as Angstrom.*CUNIT3"):
        cube = MuseCube.read(path)
    np.testing.assert_allclose(cube.spectral_axis.value, WAVE, rtol=0, atol=1e-9)


def test_wave_without_cunit3_in_metre_values_is_metres(tmp_path):
    path = write_cube(tmp_path / "m.fits", cube_header(CUNIT3=None, CTYPE3="WAVE",
                                                       CRVAL3=WAVE[0] * 1e-10, CDELT3=1.25e-10))
    with warnings.catch_warnings():
        warnings.simplefilter("error")     # the FITS default: no warning
        cube = MuseCube.read(path)
    assert cube.medium == "vacuum"
    np.testing.assert_allclose(cube.spectral_axis.value, WAVE, rtol=1e-12)


def test_wavelength_without_unit_and_implausible_values_is_an_error(tmp_path):
    path = write_cube(tmp_path / "x.fits", cube_header(CUNIT3=None, CRVAL3=0.475,
                                                       CDELT3=1.25e-4))
    with pytest.raises(ValueError, match="no unit.*plausible neither.*CUNIT3"):
        MuseCube.read(path)


def test_linear_ctype_with_angstrom_unit_needs_medium(tmp_path):
    path = write_cube(tmp_path / "l.fits", cube_header(CTYPE3="LINEAR"))
    with pytest.raises(ValueError, match="medium is unknown"):
        MuseCube.read(path)
    cube = MuseCube.read(path, medium="air")
    np.testing.assert_allclose(cube.spectral_axis.value, WAVE, atol=1e-9)


# -- frequency and velocity axes -----------------------------------------------------------------
def _frequency_header():
    nu = (constants.c / (WAVE * u.AA)).to_value(u.Hz)
    # a linear frequency axis through the first and last MUSE pixels is not the same grid:
    # write the exact frequencies of a linear-in-frequency grid instead
    step = (nu[-1] - nu[0]) / (NW - 1)
    return cube_header(CTYPE3="FREQ", CUNIT3="Hz", CRVAL3=nu[0], CDELT3=step), nu[0], step


def test_frequency_axis_is_vacuum_wavelengths(tmp_path):
    header, nu0, step = _frequency_header()
    cube = MuseCube.read(write_cube(tmp_path / "f.fits", header))
    assert cube.medium == "vacuum"
    expected = (constants.c / ((nu0 + step * np.arange(NW)) * u.Hz)).to_value(u.AA)
    np.testing.assert_allclose(cube.spectral_axis.value, np.sort(expected), rtol=1e-12)


def test_frequency_axis_with_medium_air_is_an_error(tmp_path):
    header, _, _ = _frequency_header()
    with pytest.raises(ValueError, match="medium='air' contradicts CTYPE3 = 'FREQ'.*vacuum"):
        MuseCube.read(write_cube(tmp_path / "f.fits", header), medium="air")


def test_energy_axis_with_medium_air_is_an_error(tmp_path):
    energy = (constants.h * constants.c / (WAVE[0] * u.AA)).to_value(u.eV)
    header = cube_header(CTYPE3="ENER", CUNIT3="eV", CRVAL3=energy, CDELT3=-1e-4)
    with pytest.raises(ValueError, match="contradicts CTYPE3 = 'ENER'"):
        MuseCube.read(write_cube(tmp_path / "e.fits", header), medium="air")


def test_velocity_axis_is_an_error(tmp_path):
    header = cube_header(CTYPE3="VRAD", CUNIT3="km/s", CRVAL3=0.0, CDELT3=60.0)
    with pytest.raises(ValueError, match="velocity axis"):
        MuseCube.read(write_cube(tmp_path / "v.fits", header))


# -- scaled integers -----------------------------------------------------------------------------
def _scaled_cube(path):
    raw = RNG.integers(-3000, 3000, (NW, NY, NX)).astype(np.int16)
    raw[5, 1, 2] = -32768                      # BLANK
    raw_var = RNG.integers(1, 3000, (NW, NY, NX)).astype(np.int16)
    raw_var[7, 0, 3] = -32768
    header = cube_header(BSCALE=0.01, BZERO=3.0, BLANK=-32768)
    stat_header = header.copy()
    stat_header.update(BUNIT=f"({BUNIT})**2", BSCALE=0.001, BZERO=0.0)
    hdus = [fits.PrimaryHDU()]
    for data, head, name in ((raw, header, "DATA"), (raw_var, stat_header, "STAT")):
        hdu = fits.ImageHDU(name=name)
        hdu.header.update(head)      # keep the raw integers: astropy writes them as given
        hdu.data = data
        hdu.header.update(BSCALE=head["BSCALE"], BZERO=head["BZERO"], BLANK=-32768)
        hdus.append(hdu)
    fits.HDUList(hdus).writeto(path, output_verify="silentfix")
    with fits.open(path, do_not_scale_image_data=True) as hdul:  # what is really on disk
        on_disk = [hdul[n].data.copy() for n in ("DATA", "STAT")]
        scales = [(hdul[n].header["BSCALE"], hdul[n].header["BZERO"])
                  for n in ("DATA", "STAT")]
    return on_disk, scales


def test_scaled_integer_cube_is_read_scaled_with_blank_masked(tmp_path):
    (raw, raw_var), ((bs, bz), (bs_var, bz_var)) = _scaled_cube(tmp_path / "int.fits")
    assert raw.dtype.kind == "i"
    with pytest.warns(UserWarning, match="scaled integers.*cannot be memory-mapped"):
        cube = MuseCube.read(tmp_path / "int.fits")
    blank = (raw == -32768) | (raw_var == -32768)
    assert blank.sum() == 2
    expected = raw.astype(float) * bs + bz
    expected_var = raw_var.astype(float) * bs_var + bz_var
    batch = cube.spectra(0, NY * NX)
    flat = np.moveaxis(expected, 0, -1).reshape(-1, NW)
    flat_var = np.moveaxis(expected_var, 0, -1).reshape(-1, NW)
    flat_blank = np.moveaxis(blank, 0, -1).reshape(-1, NW)
    np.testing.assert_array_equal(batch.valid, ~flat_blank)
    # astropy scales 16-bit integers to float32
    np.testing.assert_allclose(batch.flux[~flat_blank], flat[~flat_blank], rtol=1e-6,
                               atol=1e-6 * np.abs(flat).max())
    np.testing.assert_allclose(batch.variance[~flat_blank], flat_var[~flat_blank], rtol=1e-6,
                               atol=1e-6 * np.abs(flat_var).max())
    assert not batch.bad_variance.any()       # BLANK is masked, not a bad variance
    with warnings.catch_warnings():
        warnings.simplefilter("error")        # memmap=False: nothing to warn about
        MuseCube.read(tmp_path / "int.fits", memmap=False)


# -- values the batches take care of ------------------------------------------------------
def test_nan_and_inf_in_data_or_stat_are_masked(tmp_path):
    flux, var = FLUX.copy(), VAR.copy()
    flux[3, 0, 0], flux[4, 0, 1] = np.nan, np.inf
    var[5, 1, 1], var[6, 1, 2] = np.nan, np.inf
    batch = MuseCube.read(write_cube(tmp_path / "n.fits", flux=flux, var=var)).spectra()
    assert not batch.valid[0, 3] and not batch.valid[1, 4]
    assert not batch.valid[NX + 1, 5] and not batch.valid[NX + 2, 6]
    assert batch.valid.sum() == NW * NY * NX - 4
    assert np.all(np.isfinite(batch.flux)) and np.all(np.isfinite(batch.variance))
    np.testing.assert_array_equal(batch.bad_variance, np.isin(np.arange(NY * NX),
                                                              [NX + 1, NX + 2]))


def test_zero_and_negative_variance_are_masked_and_flagged(tmp_path):
    var = VAR.copy()
    var[2, 2, 3], var[9, 0, 2] = 0.0, -1.0
    batch = MuseCube.read(write_cube(tmp_path / "z.fits", var=var)).spectra()
    assert not batch.valid[2 * NX + 3, 2] and not batch.valid[2, 9]
    assert batch.bad_variance[2 * NX + 3] and batch.bad_variance[2]
    assert batch.bad_variance.sum() == 2


def test_fully_masked_spaxel(tmp_path):
    flux = FLUX.copy()
    flux[:, 1, 1] = np.nan
    batch = MuseCube.read(write_cube(tmp_path / "e.fits", flux=flux)).spectra()
    assert not batch.valid[NX + 1].any() and batch.valid.sum() == NW * (NY * NX - 1)
    assert np.all(batch.flux[NX + 1] == 0)


def test_dq_extension_masks(tmp_path):
    dq = np.zeros((NW, NY, NX), np.int32)
    dq[0, 2, 1], dq[11, 0, 0] = 1, 1 << 20
    path = write_cube(tmp_path / "dq.fits", extra=[fits.ImageHDU(dq, name="DQ")])
    batch = MuseCube.read(path).spectra()
    assert not batch.valid[2 * NX + 1, 0] and not batch.valid[0, 11]
    assert batch.valid.sum() == NW * NY * NX - 2


def test_units_that_do_not_convert(tmp_path):
    stat_header = cube_header(BUNIT="km/s")
    path = write_cube(tmp_path / "u.fits", stat_header=stat_header)
    with pytest.raises(u.UnitConversionError, match="STAT unit.*not the square.*u.fits"):
        MuseCube.read(path)
    bad = write_cube(tmp_path / "b.fits", cube_header(BUNIT="flux per furlong"))
    with pytest.raises(ValueError, match="cannot parse.*'flux per furlong'"):
        MuseCube.read(bad)


def test_unknown_medium_is_an_error(tmp_path):
    path = write_cube(tmp_path / "m.fits", cube_header(CTYPE3="WAVELENGTH"))
    with pytest.raises(ValueError, match="medium is unknown.*m.fits.*medium='air'"):
        MuseCube.read(path)


def test_medium_keyword_is_read_and_checked(tmp_path):
    path = write_cube(tmp_path / "k.fits", cube_header(CTYPE3="LINEAR", MEDIUM="AIR"))
    assert MuseCube.read(path).medium == "air"
    path = write_cube(tmp_path / "c.fits", cube_header(MEDIUM="vacuum"))  # CTYPE3 AWAV
    with pytest.raises(ValueError, match="contradicts itself"):
        MuseCube.read(path)


# -- damaged files -------------------------------------------------------------------------------
def test_truncated_fits_is_an_error_naming_the_file(tmp_path):
    """Cut anywhere but at an HDU boundary (where what is left is a valid, shorter file)."""
    path = write_cube(tmp_path / "full.fits")
    data = open(path, "rb").read()
    # in STAT's data, in STAT's header, just after STAT's header, in DATA's data
    for cut in (len(data) - 100, len(data) - 2880 - 100, len(data) - 2880, 2880 * 2 + 100):
        short = tmp_path / f"short{cut}.fits"
        short.write_bytes(data[:cut])
        with pytest.raises(OSError, match=f"short{cut}.fits is truncated"):
            MuseCube.read(short)
        with pytest.raises(OSError, match="truncated"):
            MuseSpectrum.read(short)


def test_corrupt_and_empty_files(tmp_path):
    garbage = tmp_path / "garbage.fits"
    garbage.write_bytes(b"SIMPLE  =  nonsense" + os.urandom(5000))
    with pytest.raises(OSError, match="garbage.fits"):
        MuseCube.read(garbage)
    empty = tmp_path / "empty.fits"
    empty.write_bytes(b"")
    with pytest.raises(OSError, match="empty.fits is not a readable FITS file"):
        MuseCube.read(empty)
    with pytest.raises(FileNotFoundError, match="nope.fits"):
        MuseSpectrum.read(tmp_path / "nope.fits")
    with pytest.raises(IsADirectoryError, match=str(tmp_path)):
        MuseCube.read(tmp_path)


def test_float64_and_big_endian_data(tmp_path):
    flux = FLUX.astype(">f8")
    var = VAR.astype("<f8")         # astropy writes it big-endian, as FITS requires
    cube = MuseCube.read(write_cube(tmp_path / "f8.fits", flux=flux, var=var))
    assert cube.flux.dtype.itemsize == 8 and cube.flux.dtype.byteorder == ">"
    batch = cube.spectra(0, NY * NX)
    assert batch.flux.dtype == np.float64 and batch.flux.dtype.isnative
    np.testing.assert_array_equal(batch.flux, np.moveaxis(FLUX.astype(float), 0, -1)
                                  .reshape(-1, NW))
    np.testing.assert_array_equal(batch.variance, np.moveaxis(VAR.astype(float), 0, -1)
                                  .reshape(-1, NW))


def test_gzip_compressed_cube(tmp_path):
    path = write_cube(tmp_path / "c.fits")
    with open(path, "rb") as source, gzip.open(tmp_path / "c.fits.gz", "wb") as target:
        shutil.copyfileobj(source, target)
    cube = MuseCube.read(tmp_path / "c.fits.gz")
    np.testing.assert_array_equal(cube.spectra().flux, MuseCube.read(path).spectra().flux)
    data = (tmp_path / "c.fits.gz").read_bytes()
    (tmp_path / "cut.fits.gz").write_bytes(data[:len(data) // 2])
    with pytest.raises(OSError, match="cut.fits.gz is truncated"):
        MuseCube.read(tmp_path / "cut.fits.gz")


def test_tile_compressed_extensions(tmp_path):
    header = cube_header()
    stat_header = header.copy()
    stat_header["BUNIT"] = f"({BUNIT})**2"
    fits.HDUList([fits.PrimaryHDU(),
                  fits.CompImageHDU(FLUX, header, name="DATA", compression_type="GZIP_2",
                                    quantize_level=0.0),
                  fits.CompImageHDU(VAR, stat_header, name="STAT",
                                    compression_type="RICE_1")]).writeto(tmp_path / "t.fits")
    reference = fits.getdata(tmp_path / "t.fits", "STAT")   # astropy's own decompression
    cube = MuseCube.read(tmp_path / "t.fits")
    batch = cube.spectra()
    np.testing.assert_array_equal(batch.flux, np.moveaxis(FLUX, 0, -1).reshape(-1, NW))
    np.testing.assert_array_equal(batch.variance,
                                  np.moveaxis(reference, 0, -1).reshape(-1, NW))
    np.testing.assert_allclose(cube.spectral_axis.value, WAVE, atol=1e-9)


# -- inputs are never modified ------------------------------------------------------------------
def test_inputs_are_opened_read_only_and_never_modified(tmp_path):
    cube_path = write_cube(tmp_path / "c.fits")
    spectrum_path = write_spectrum(tmp_path / "s.fits", spectrum_header())
    table_path = tmp_path / "t.fits"
    fits.BinTableHDU.from_columns([fits.Column("wave", "D", "Angstrom", array=WAVE),
                                   fits.Column("flux", "D", array=FLUX[:, 0, 0]),
                                   fits.Column("err", "D", array=VAR[:, 0, 0])]).writeto(
        table_path)
    paths = [cube_path, spectrum_path, table_path]
    before = {p: (sha256(p), os.stat(p).st_mtime_ns) for p in paths}
    for p in paths:
        os.chmod(p, 0o444)                      # reading must not need write access
    cube = MuseCube.read(cube_path)
    cube.spectra(0, NY * NX)
    cube.spectra(2, 5)
    MuseCube.read(cube_path, memmap=False).spectra(0, NY * NX)
    MuseSpectrum.read(spectrum_path).spectra()
    MuseSpectrum.read(table_path, medium="air", flux_unit="Jy").spectra()
    del cube
    for p in paths:
        assert (sha256(p), os.stat(p).st_mtime_ns) == before[p], p


def test_a_file_shrinking_under_a_memory_map_raises_not_sigbus(tmp_path):
    """Run in a child process: if the guard failed, SIGBUS would kill it, not pytest."""
    big = RNG.normal(size=(600, 8, 8)).astype(np.float32)   # DATA and STAT span many pages
    path = write_cube(tmp_path / "big.fits", flux=big, var=np.abs(big) + 1)
    script = textwrap.dedent(f"""
        import os
        from muse_xcorr import MuseCube
        cube = MuseCube.read({str(path)!r})
        cube.spectra(0, 4)
        os.truncate({str(path)!r}, 2880 * 4)
        try:
            cube.spectra(0, 64)
        except OSError as err:
            print("OSError:", err)
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "OSError:" in done.stdout and "big.fits shrank" in done.stdout


def test_a_truncated_file_is_refused_before_mapping(tmp_path):
    path = write_cube(tmp_path / "t.fits", flux=np.ones((600, 8, 8), np.float32),
                      var=np.ones((600, 8, 8), np.float32))
    os.truncate(path, os.path.getsize(path) - 5000)
    with pytest.raises(OSError, match="t.fits is truncated: it has"):
        read_muse_fits(path, ndim=3)


# -- atomic_write ----------------------------------------------------------------------------------
@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_atomic_write_gives_the_umask_permissions(tmp_path, umask):
    old = os.umask(umask)
    try:
        with atomic_write(tmp_path / "out.txt") as tmp:
            with open(tmp, "w") as handle:
                handle.write("x")
        reference = tmp_path / "plain.txt"
        reference.write_text("x")               # what any new file gets
    finally:
        os.umask(old)
    mode = os.stat(tmp_path / "out.txt").st_mode & 0o777
    assert mode == 0o666 & ~umask == os.stat(reference).st_mode & 0o777


def test_atomic_write_leaves_nothing_after_a_failure(tmp_path):
    class Boom(RuntimeError):
        pass

    with pytest.raises(Boom):
        with atomic_write(tmp_path / "out.fits") as tmp:
            with open(tmp, "wb") as handle:
                handle.write(b"half")
                raise Boom("the writer fails midway")
    assert os.listdir(tmp_path) == []
    (tmp_path / "keep.fits").write_bytes(b"old")
    with pytest.raises(Boom):
        with atomic_write(tmp_path / "keep.fits", overwrite=True) as tmp:
            fits.PrimaryHDU(np.ones(3)).writeto(tmp)
            raise Boom("after writing, before the rename")
    assert sorted(os.listdir(tmp_path)) == ["keep.fits"]
    assert (tmp_path / "keep.fits").read_bytes() == b"old"


def test_atomic_write_does_not_replace_a_file_that_appears(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(FileExistsError, match="appeared while it was being written"):
        with atomic_write(target) as tmp:
            open(tmp, "w").write("new")
            target.write_text("someone else's")
    assert target.read_text() == "someone else's" and os.listdir(tmp_path) == ["out.txt"]
    with atomic_write(target, overwrite=True) as tmp:
        open(tmp, "w").write("new")
    assert target.read_text() == "new" and os.listdir(tmp_path) == ["out.txt"]
    with pytest.raises(FileExistsError, match="overwrite=True"):
        with atomic_write(target):
            pass
