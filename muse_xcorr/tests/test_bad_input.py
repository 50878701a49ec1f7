"""The bad-input battery: options, data, templates and grids through the correlator and CLI.

docs/bad_input.rst tabulates every case and what the user sees; the cases of
the readers alone (FITS headers, damaged files, units, media, float64,
big-endian and compressed files) are in ``muse_xcorr/io/tests``. Here each
case goes through to a result: what the correlator and the command line do
with it.
"""
import gzip
import shutil

import numpy as np
import pytest
import astropy.units as u
from astropy.io import fits
from astropy.nddata import StdDevUncertainty, VarianceUncertainty
from astropy.table import Table

from muse_xcorr import Correlator, MuseCube, Redshift, Template, datasets, zgrid
from muse_xcorr.cli import main
from muse_xcorr.flags import Flag
from muse_xcorr.grid import as_zgrid
from muse_xcorr.io import write_muse_fits

WAVE = datasets.muse_wavelength(600, 6000.0)
TEMPLATE = datasets.make_template(wave_range=(4000, 5500))
Z = zgrid(0.3, 0.4, 1e-3)
GRID = ["--zmin", "0.3", "--zmax", "0.4", "--dlnz", "1e-3", "-q"]


@pytest.fixture(scope="module")
def small():
    """A 2 x 3 cube and its (uniformly weighted, so that chi2 is refused) result."""
    cube, _ = datasets.make_cube((2, 3), TEMPLATE, z=0.35, snr=30, seed=4, wavelength=WAVE)
    result = Correlator(TEMPLATE, Z).correlate(cube, progress=False)
    return cube, result


@pytest.fixture(scope="module")
def template_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("bad") / "template.fits"
    Table({"wavelength": TEMPLATE.wavelength, "flux": TEMPLATE.flux},
          meta={"MEDIUM": "vacuum"}).write(path)
    return path


def error_line(capsys):
    lines = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(lines) == 1, lines
    return lines[0]


# -- options --------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["montecarlo", "bootstrap"])
@pytest.mark.parametrize("n_samples", [9, np.int64(9), 0, -3])
def test_too_few_samples_for_a_resampling_estimate(small, method, n_samples):
    _, result = small
    with pytest.raises(ValueError, match="n_samples must be an integer >= 10"):
        result.z_error(method, n_samples=n_samples, seed=1)


def test_too_few_samples_on_the_command_line_is_refused_before_the_work(tmp_path, capsys,
                                                                        template_file):
    cube, _ = datasets.make_cube((1, 2), TEMPLATE, z=0.35, seed=1, wavelength=WAVE)
    write_muse_fits(cube, tmp_path / "c.fits")
    assert main([str(tmp_path / "c.fits"), "-t", str(template_file), *GRID,
                 "--error-method", "montecarlo", "--n-samples", "5",
                 "-o", str(tmp_path / "m.fits")]) == 1
    assert "--n-samples must be at least 10" in error_line(capsys)
    assert not (tmp_path / "m.fits.parts").exists()


@pytest.mark.parametrize("value", [2.5, "8", 8.0, np.float64(8), True, 0, -4, None])
def test_batch_size_must_be_a_positive_integer(value):
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        Correlator(TEMPLATE, Z, batch_size=value)


def test_batch_size_numpy_integer_is_fine_and_the_cli_refuses_a_float(capsys):
    assert Correlator(TEMPLATE, Z, batch_size=np.int64(8)).batch_size == 8
    with pytest.raises(SystemExit) as stop:
        main(["c.fits", "--batch-size", "2.5"])
    assert stop.value.code == 2 and "invalid int value" in capsys.readouterr().err


@pytest.mark.parametrize("value", [np.nan, np.inf, -0.1])
def test_min_coverage_must_be_a_finite_non_negative_number(value):
    with pytest.raises(ValueError, match="min_coverage"):
        Correlator(TEMPLATE, Z, min_coverage=value)


@pytest.mark.parametrize("value", [1.5, "half"])
def test_min_coverage_is_a_fraction_named_in_the_error(value):
    with pytest.raises(ValueError, match="min_coverage"):
        Correlator(TEMPLATE, Z, min_coverage=value)


def test_exclusion_must_be_a_non_negative_velocity():
    for bad in (-5 * u.km / u.s, np.nan * u.km / u.s, -1.0):
        with pytest.raises(ValueError, match="exclusion must be a non-negative velocity"):
            Correlator(TEMPLATE, Z, exclusion=bad)
    with pytest.raises(u.UnitConversionError):
        Correlator(TEMPLATE, Z, exclusion=5 * u.m)
    assert Correlator(TEMPLATE, Z, exclusion=300).exclusion == 300 * u.km / u.s  # bare: km/s
    assert Correlator(TEMPLATE, Z, exclusion=0).exclusion == 0 * u.km / u.s


# -- data -----------------------------------------------------------------------------------
def hostile_fits(path, *, dq=True):
    """A cube with each kind of damage in its own spaxel, written with astropy."""
    cube, _ = datasets.make_cube((2, 4), TEMPLATE, z=0.35, snr=40, seed=6, wavelength=WAVE)
    batch = cube.spectra()                           # (8, n_pixel): into the FITS (n_pixel, 2, 4)
    flux = np.moveaxis(batch.flux.reshape(2, 4, -1), -1, 0).astype(np.float32)
    var = np.moveaxis(batch.variance.reshape(2, 4, -1), -1, 0).astype(np.float32)
    flux[10:20, 0, 0] = np.nan                       # NaN in DATA
    flux[30, 0, 0] = np.inf                          # inf in DATA
    var[40:45, 0, 1] = np.nan                        # NaN in STAT
    var[50, 0, 1] = np.inf                           # inf in STAT
    var[60:70, 0, 2] = 0.0                           # zero variance
    var[80, 0, 3] = -1.0                             # negative variance
    flux[:, 1, 0] = np.nan                           # fully masked spaxel
    flux[:, 1, 1] = np.nan
    flux[150, 1, 1] = 5.0                            # one valid pixel
    quality = np.zeros(flux.shape, np.int32)
    quality[100:200, 1, 2] = 1                       # DQ-masked pixels
    header = fits.Header({"CTYPE3": "AWAV", "CUNIT3": "Angstrom", "CRVAL3": WAVE[0].value,
                          "CRPIX3": 1.0, "CDELT3": 1.25, "BUNIT": "10**-20 erg/s/cm2/Angstrom"})
    stat_header = header.copy()
    stat_header["BUNIT"] = "(10**-20 erg/s/cm2/Angstrom)**2"
    hdus = [fits.PrimaryHDU(), fits.ImageHDU(flux, header, name="DATA"),
            fits.ImageHDU(var, stat_header, name="STAT")]
    if dq:
        hdus.append(fits.ImageHDU(quality, name="DQ"))
    else:  # the same pixels as NaN instead
        flux[100:200, 1, 2] = np.nan
    fits.HDUList(hdus).writeto(path)
    return path


def test_a_hostile_cube_through_the_command_line(tmp_path, template_file):
    path = hostile_fits(tmp_path / "hostile.fits")
    assert main([str(path), "-t", str(template_file), *GRID, "-o", str(tmp_path / "m.fits"),
                 "--error-method", "analytic"]) == 0
    result = Redshift.read(tmp_path / "m.fits")
    flags = result.flags
    assert flags[0, 0] == 0 and result.n_valid[0, 0] == 600 - 11      # NaN/inf flux: masked
    for x in (1, 2, 3):                                                # bad STAT: masked, flagged
        assert flags[0, x] & Flag.BAD_VARIANCE and abs(result.z_best[0, x] - 0.35) < 1e-3
    assert flags[1, 0] & Flag.NO_DATA and np.isnan(result.z_best[1, 0])
    assert flags[1, 1] & (Flag.NO_DATA | Flag.FEW_PIXELS) and np.isnan(result.z_best[1, 1])
    assert result.n_valid[1, 2] == 600 - 100 and abs(result.z_best[1, 2] - 0.35) < 1e-3
    assert np.isnan(result.map("zerr_analytic")[1, 0])


def test_a_dq_mask_is_the_same_as_nan_pixels(tmp_path):
    correlator = Correlator(TEMPLATE, Z)
    with_dq = correlator.correlate(MuseCube.read(hostile_fits(tmp_path / "dq.fits")),
                                   progress=False)
    with_nan = correlator.correlate(MuseCube.read(hostile_fits(tmp_path / "nan.fits", dq=False)),
                                    progress=False)
    for name in ("z_best", "f_best", "sigma_f_best", "flags", "n_valid"):
        np.testing.assert_array_equal(with_dq.map(name), with_nan.map(name), err_msg=name)


def test_float64_and_big_endian_give_the_native_answer(small):
    cube, expected = small
    flux32 = np.asarray(cube.flux.value, np.float32)
    var32 = np.asarray(cube.uncertainty.array, np.float32)
    correlator = Correlator(TEMPLATE, Z)
    results = []
    for dtype in ("<f4", ">f4", "<f8", ">f8"):
        data = MuseCube(WAVE, flux32.astype(dtype) * cube.flux.unit,
                        VarianceUncertainty(var32.astype(dtype)), medium="air",
                        spectral_axis_index=cube.spectral_axis_index)
        results.append(correlator.correlate(data, progress=False))
    for other in results[1:]:
        for name in ("z_best", "f_best", "sigma_f_best", "flags", "chi2_best"):
            np.testing.assert_array_equal(other.map(name), results[0].map(name), err_msg=name)


def test_compressed_cube_in_and_compressed_maps_out(tmp_path, template_file):
    cube, _ = datasets.make_cube((2, 2), TEMPLATE, z=0.36, snr=30, seed=9, wavelength=WAVE)
    write_muse_fits(cube, tmp_path / "c.fits")
    with open(tmp_path / "c.fits", "rb") as raw, gzip.open(tmp_path / "c.fits.gz", "wb") as gz:
        shutil.copyfileobj(raw, gz)
    for name in ("c.fits", "c.fits.gz"):
        assert main([str(tmp_path / name), "-t", str(template_file), *GRID, "-o",
                     str(tmp_path / f"m_{name}")]) == 0
    with open(tmp_path / "m_c.fits.gz", "rb") as handle:
        assert handle.read(2) == b"\x1f\x8b"                        # written compressed
    plain, packed = Redshift.read(tmp_path / "m_c.fits"), Redshift.read(tmp_path / "m_c.fits.gz")
    for name in ("z_best", "f_best", "flags"):
        np.testing.assert_array_equal(plain.map(name), packed.map(name))


def test_units_that_do_not_convert_and_an_unknown_medium(small):
    cube, _ = small
    with pytest.raises(u.UnitConversionError, match="does not convert"):
        MuseCube(WAVE, cube.flux, VarianceUncertainty(cube.uncertainty.array, unit=u.Jy ** 2),
                 medium="air", spectral_axis_index=cube.spectral_axis_index)
    with pytest.raises(u.UnitConversionError, match="does not convert"):
        MuseCube(WAVE, cube.flux, StdDevUncertainty(np.ones(cube.flux.shape), unit=u.s),
                 medium="air", spectral_axis_index=cube.spectral_axis_index)
    for medium in ("water", None, "vacuo"):
        with pytest.raises(ValueError, match="medium"):
            MuseCube(WAVE, cube.flux, cube.uncertainty, medium=medium,
                     spectral_axis_index=cube.spectral_axis_index)


def test_an_unknown_medium_on_the_command_line(tmp_path, capsys, template_file):
    cube, _ = datasets.make_cube((1, 2), TEMPLATE, z=0.35, seed=1, wavelength=WAVE)
    write_muse_fits(cube, tmp_path / "c.fits")
    with fits.open(tmp_path / "c.fits", mode="update") as hdul:
        for name in ("DATA", "STAT"):
            hdul[name].header["CTYPE3"] = "LINEAR"
    assert main([str(tmp_path / "c.fits"), "-t", str(template_file), *GRID]) == 1
    assert "medium" in error_line(capsys)
    assert main([str(tmp_path / "c.fits"), "-t", str(template_file), *GRID,
                 "--medium", "air"]) == 0


# -- templates and grids --------------------------------------------------------------------
def test_templates_with_nan_zero_or_unsorted_wavelengths():
    wave = np.linspace(4000, 5500, 400)
    flux = np.exp(-0.5 * ((wave - 4800) / 3) ** 2) + 0.1   # seen at 6000-6750 A for z 0.3-0.4
    for bad, match in [(np.where(wave > 5000, np.nan, flux), "non-finite"),
                       (np.where(wave > 5000, np.inf, flux), "non-finite"),
                       (np.zeros_like(flux), "zero everywhere")]:
        with pytest.raises(ValueError, match=match):
            Template(wave * u.AA, bad)
    shuffled = np.r_[wave[200:], wave[:200]]
    for bad_wave in (shuffled, np.r_[wave[:10], wave[9:-1]]):
        with pytest.raises(ValueError, match="strictly monotonic"):
            Template(bad_wave * u.AA, flux)
    spectrum, _ = datasets.make_spectrum(Template(wave * u.AA, flux), z=0.33, snr=30, seed=2,
                                         wavelength=WAVE)
    up = Correlator(Template(wave * u.AA, flux), Z).correlate(spectrum, progress=False)
    down = Correlator(Template(wave[::-1] * u.AA, flux[::-1]), Z).correlate(spectrum,
                                                                            progress=False)
    assert up.z_best == down.z_best and up.flags == down.flags   # descending: sorted


def test_a_template_file_with_nan_on_the_command_line(tmp_path, capsys, small):
    cube, _ = small
    write_muse_fits(cube, tmp_path / "c.fits")
    flux = np.array(TEMPLATE.flux, dtype=float)
    flux[100] = np.nan
    Table({"wavelength": TEMPLATE.wavelength, "flux": flux},
          meta={"MEDIUM": "vacuum"}).write(tmp_path / "t.fits")
    assert main([str(tmp_path / "c.fits"), "-t", str(tmp_path / "t.fits"), *GRID]) == 1
    assert "non-finite" in error_line(capsys)


def test_the_default_set_on_a_restricted_grid():
    cube, _ = datasets.make_cube((1, 2), z=0.35, snr=30, seed=5, wavelength=WAVE)
    result = Correlator(None, Z).correlate(cube, progress=False)
    assert np.all(np.abs(result.z_best - 0.35) < 2e-3)


@pytest.mark.parametrize("z, match", [([], "at least 3"), ([0.1, 0.2], "at least 3"),
                                      ([0.3, 0.2, 0.1], "strictly increasing"),
                                      ([0.1, 0.1, 0.2], "strictly increasing"),
                                      ([0.0, np.nan, 0.2], "non-finite"),
                                      ([-1.0, 0.0, 0.1], "> -1"), ([-2.0, 0.0, 0.1], "> -1"),
                                      ([[0.1, 0.2, 0.3]], "one-dimensional")])
def test_bad_redshift_grids(z, match):
    with pytest.raises(ValueError, match=match):
        as_zgrid(z)
    with pytest.raises(ValueError, match=match):
        Correlator(TEMPLATE, z)


def test_bad_grid_limits_in_zgrid_and_on_the_command_line(capsys):
    for args, match in [((-1.0, 1.0, 1e-3), "zmin must be > -1"),
                        ((0.5, 0.1, 1e-3), "must be larger"),
                        ((0.1, 0.5, 0.0), "dlnz must be positive"),
                        ((0.1, 0.5, np.nan), "dlnz must be positive")]:
        with pytest.raises(ValueError, match=match):
            zgrid(*args)
    assert main(["c.fits", "--zmin", "0.5", "--zmax", "0.1"]) == 1
    assert "must be larger" in error_line(capsys)


@pytest.mark.parametrize("spike", [3e38, -3e38, "sigma"])
def test_a_single_absurd_pixel_is_masked_and_flagged(small, spike):
    """One pixel at FLT_MAX (or 1e6 sigma) would otherwise give a confident wrong z."""
    cube, result = small
    flux = cube.flux.value.copy()
    sigma = np.sqrt(cube.uncertainty.represent_as(VarianceUncertainty).array)
    y, x, pixel = 0, 1, 300
    flux[pixel, y, x] = 1e6 * sigma[pixel, y, x] if spike == "sigma" else spike
    spiked = MuseCube(cube.spectral_axis, flux * cube.flux.unit, cube.uncertainty,
                      medium=cube.medium)
    got = Correlator(TEMPLATE, Z).correlate(spiked, progress=False)
    assert got.flags[y, x] & Flag.OUTLIER_PIXELS
    assert not np.any(np.delete(got.flags.ravel(), y * 3 + x) & Flag.OUTLIER_PIXELS)
    # the spaxel's answer is that of the spectrum without the pixel, to float precision
    masked = flux.copy()
    masked[pixel, y, x] = np.nan
    reference = Correlator(TEMPLATE, Z).correlate(
        MuseCube(cube.spectral_axis, masked * cube.flux.unit, cube.uncertainty,
                 medium=cube.medium), progress=False)
    assert abs(got.z_best[y, x] - reference.z_best[y, x]) < 1e-9
    assert abs(got.z_best[y, x] - result.z_best[y, x]) < 2e-3


def test_a_bright_line_pixel_is_not_an_outlier():
    """Real MUSE spectra reach ~335 sigma at their brightest line (measured on the shared
    spectra); a 3000-sigma pixel is kept."""
    from muse_xcorr.spectra import SpectraBatch
    rng = np.random.default_rng(0)
    flux = rng.normal(size=(1, 500))
    flux[0, 250] = 3000.0
    batch = SpectraBatch.from_arrays(0, 1, flux, np.ones_like(flux))
    assert batch.valid.all() and not batch.outliers.any()
    flux[0, 250] = 2e5
    batch = SpectraBatch.from_arrays(0, 1, flux, np.ones_like(flux))
    assert not batch.valid[0, 250] and batch.valid.sum() == 499 and batch.outliers[0]
