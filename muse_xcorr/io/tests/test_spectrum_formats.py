"""MuseSpectrum.read on synthetic files of every format variant, written here with astropy.

Each test writes known arrays with astropy (or numpy) directly, reads them back
through the package and compares; then the overrides, and the errors.
"""
import warnings

import numpy as np
import pytest
import astropy.units as u
from astropy.io import fits
from astropy.table import Table

from muse_xcorr import MuseSpectrum
from muse_xcorr.io import identify_format, read_spectrum_parts, zero_run_mask

N = 200
WAVE = 4750.0 + 1.25 * np.arange(N)
RNG = np.random.default_rng(11)
FLUX = 100 + RNG.normal(0, 5, N)
SIGMA = 2 + RNG.uniform(0, 1, N)
FLUX_UNIT = u.Unit("1e-20 erg / (s cm2 Angstrom)")


def _table_file(path, names, values, units=None, header=None, primary=None):
    units = units or (None,) * len(names)
    assert len(names) == len(values) == len(units)
    columns = [fits.Column(name, "D", unit=unit, array=array)
               for name, array, unit in zip(names, values, units)]
    table = fits.BinTableHDU.from_columns(columns, name="SPECTRUM")
    table.header.update(header or {})
    fits.HDUList([fits.PrimaryHDU(header=fits.Header(primary or {})), table]).writeto(path)
    return path


def _image_file(path, error_name="SIGMA", errors=SIGMA, header=None, primary_data=True):
    header = fits.Header({"CTYPE1": "AWAV", "CUNIT1": "Angstrom", "CRVAL1": WAVE[0],
                          "CDELT1": 1.25, "CRPIX1": 1.0, "BUNIT": "10**-20 erg/s/cm2/Angstrom",
                          **(header or {})})
    if primary_data:
        hdus = [fits.PrimaryHDU(FLUX, header)]
    else:
        hdus = [fits.PrimaryHDU(), fits.ImageHDU(FLUX, header, name="FLUX")]
    hdus.append(fits.ImageHDU(errors, name=error_name))
    fits.HDUList(hdus).writeto(path)
    return path


def _batch(spectrum):
    return spectrum.spectra()


# -- FITS tables ------------------------------------------------------------------------
@pytest.mark.parametrize("names, kind", [
    (("wave", "flux", "fluxerror"), "error"),
    (("WAVE", "FLUX", "ERR"), "error"),
    (("lambda", "data", "sigma"), "error"),
    (("wavelength", "flux", "flux_err"), "error"),
    (("lam", "spec", "ivar"), "ivar"),
    (("wavelength", "flux", "var"), "variance"),
    (("WAVE", "FLUX", "STAT"), "variance"),
    (("Wave", "Flux", "Variance"), "variance"),
    (("wave", "obj_spec", "obj_spec_var"), "variance"),   # pattern tier, pPXF-like
    (("wave", "flux", "flux_ivar"), "ivar"),
])
def test_fits_table_column_names(tmp_path, names, kind):
    uncertainty = {"error": SIGMA, "variance": SIGMA ** 2, "ivar": 1 / SIGMA ** 2}[kind]
    path = _table_file(tmp_path / "t.fits", names, (WAVE, FLUX, uncertainty),
                       units=("Angstrom", None, None), header={"MEDIUM": "air",
                                                               "BUNIT": "1e-20 erg/s/cm2/A"})
    assert identify_format(path) == "fits-table"
    with pytest.warns(UserWarning, match="'A' as the Angstrom"):
        spectrum = MuseSpectrum.read(path)
    assert spectrum.meta["columns"][kind] == names[2]
    assert spectrum.medium == "air"
    np.testing.assert_array_equal(spectrum.spectral_axis.value, WAVE)
    batch = _batch(spectrum)
    np.testing.assert_allclose(batch.variance[0], SIGMA ** 2, rtol=1e-12)
    np.testing.assert_array_equal(batch.flux[0], FLUX)
    # BUNIT's "A" in a flux unit is the Angstrom, not the ampere
    assert spectrum.flux.unit == FLUX_UNIT


def test_fits_table_units_from_tunit_are_converted(tmp_path):
    units = ("nm", "1e-20 erg/s/cm2/Angstrom", "1e-23 erg/s/cm2/Angstrom")
    path = _table_file(tmp_path / "nm.fits", ("wave", "flux", "err"),
                       (WAVE / 10, FLUX, SIGMA * 1e3), units=units, header={"AIRORVAC": "vac"})
    spectrum = MuseSpectrum.read(path)
    assert spectrum.medium == "vacuum"
    np.testing.assert_allclose(spectrum.spectral_axis.to_value(u.AA), WAVE, rtol=1e-14)
    np.testing.assert_allclose(_batch(spectrum).variance[0], SIGMA ** 2, rtol=1e-12)


def test_fits_table_medium_from_tctyp_and_primary(tmp_path):
    path = _table_file(tmp_path / "t.fits", ("wave", "flux", "err"), (WAVE, FLUX, SIGMA),
                       units=("Angstrom", "Jy", "Jy"), header={"TCTYP1": "WAVE"})
    assert MuseSpectrum.read(path).medium == "vacuum"
    path = _table_file(tmp_path / "p.fits", ("wave", "flux", "err"), (WAVE, FLUX, SIGMA),
                       units=("Angstrom", "Jy", "Jy"), primary={"MEDIUM": "AIR"})
    assert MuseSpectrum.read(path).medium == "air"


def test_fits_table_one_row_of_array_cells(tmp_path):
    """The ESO Phase 3 layout: one row, each cell a whole spectrum."""
    columns = [fits.Column("WAVE", f"{N}D", unit="angstrom", array=WAVE[None]),
               fits.Column("FLUX", f"{N}D", unit="erg/s/cm2/Angstrom", array=FLUX[None]),
               fits.Column("ERR", f"{N}D", unit="erg/s/cm2/Angstrom", array=SIGMA[None])]
    hdu = fits.BinTableHDU.from_columns(columns)
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(tmp_path / "sdp.fits")
    spectrum = MuseSpectrum.read(tmp_path / "sdp.fits", medium="air")
    np.testing.assert_array_equal(spectrum.spectral_axis.value, WAVE)
    np.testing.assert_allclose(_batch(spectrum).variance[0], SIGMA ** 2)


def test_fits_table_several_rows_of_arrays_is_2d(tmp_path):
    columns = [fits.Column("WAVE", f"{N}D", array=np.tile(WAVE, (3, 1))),
               fits.Column("FLUX", f"{N}D", array=np.tile(FLUX, (3, 1))),
               fits.Column("ERR", f"{N}D", array=np.tile(SIGMA, (3, 1)))]
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(columns)]).writeto(
        tmp_path / "many.fits")
    with pytest.raises(ValueError, match=r"shape \(3, 200\).*several spectra"):
        MuseSpectrum.read(tmp_path / "many.fits", medium="air", wavelength_unit="Angstrom")


def test_fits_table_mask_column(tmp_path):
    dq = np.zeros(N)
    dq[[5, 50]] = 1
    path = _table_file(tmp_path / "m.fits", ("wave", "flux", "err", "dq"),
                       (WAVE, FLUX, SIGMA, dq), units=("Angstrom", "Jy", "Jy", None))
    spectrum = MuseSpectrum.read(path, medium="air")
    np.testing.assert_array_equal(np.flatnonzero(spectrum.mask), [5, 50])


# -- ASCII and ECSV ---------------------------------------------------------------------
def test_ascii_whitespace_with_variance_column(tmp_path):
    path = tmp_path / "spec.dat"
    np.savetxt(path, np.c_[WAVE, FLUX, SIGMA ** 2], header="wave OBJ_spec OBJ_spec_var",
               comments="")
    assert identify_format(path) == "ascii"
    with pytest.warns(UserWarning, match="plausible only as Angstrom"):
        spectrum = MuseSpectrum.read(path, medium="air", flux_unit="Jy")
    np.testing.assert_allclose(spectrum.spectral_axis.value, WAVE, rtol=1e-15)
    np.testing.assert_allclose(_batch(spectrum).variance[0], SIGMA ** 2, rtol=1e-15)
    assert spectrum.flux.unit == u.Jy
    # wavelength_unit= states the unit: no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        MuseSpectrum.read(path, medium="air", flux_unit="Jy", wavelength_unit="Angstrom")


def test_ascii_csv_and_medium_comment(tmp_path):
    path = tmp_path / "spec.csv"
    with open(path, "w") as handle:
        handle.write("# MEDIUM = vacuum\nwavelength,flux,error\n")
        for row in zip(WAVE, FLUX, SIGMA):
            handle.write(",".join(repr(float(v)) for v in row) + "\n")
    spectrum = MuseSpectrum.read(path, wavelength_unit="AA", flux_unit="Jy")
    assert spectrum.medium == "vacuum"
    np.testing.assert_allclose(_batch(spectrum).variance[0], SIGMA ** 2, rtol=1e-14)


def test_ecsv_units_and_meta_medium(tmp_path):
    table = Table({"wave": WAVE / 1e4 * u.um, "flux": FLUX * FLUX_UNIT,
                   "ivar": 1 / SIGMA ** 2 * FLUX_UNIT ** -2}, meta={"medium": "air"})
    table.write(tmp_path / "t.ecsv")
    spectrum = MuseSpectrum.read(tmp_path / "t.ecsv")
    assert spectrum.medium == "air" and spectrum.flux.unit == FLUX_UNIT
    np.testing.assert_allclose(spectrum.spectral_axis.value, WAVE, rtol=1e-14)
    np.testing.assert_allclose(_batch(spectrum).variance[0], SIGMA ** 2, rtol=1e-12)
    column_meta = Table({"wave": WAVE * u.AA, "flux": FLUX * u.Jy, "err": SIGMA * u.Jy})
    column_meta["wave"].meta["medium"] = "vacuum"
    column_meta.write(tmp_path / "c.ecsv")
    assert MuseSpectrum.read(tmp_path / "c.ecsv").medium == "vacuum"


# -- FITS images ------------------------------------------------------------------------
@pytest.mark.parametrize("error_name, values, squared", [
    ("SIGMA", SIGMA, True), ("ERR", SIGMA, True), ("ERROR", SIGMA, True),
    ("STAT", SIGMA ** 2, False), ("VAR", SIGMA ** 2, False), ("VARIANCE", SIGMA ** 2, False),
    ("IVAR", 1 / SIGMA ** 2, False)])
def test_fits_image_error_extensions(tmp_path, error_name, values, squared):
    path = _image_file(tmp_path / "i.fits", error_name, values)
    assert identify_format(path) == "fits-image"
    spectrum = MuseSpectrum.read(path)
    assert spectrum.medium == "air" and spectrum.flux.unit == FLUX_UNIT
    np.testing.assert_allclose(spectrum.spectral_axis.value, WAVE, rtol=0, atol=1e-9)
    np.testing.assert_allclose(_batch(spectrum).variance[0], SIGMA ** 2, rtol=1e-12)


def test_fits_image_in_an_extension_with_cd_and_vacuum(tmp_path):
    path = _image_file(tmp_path / "x.fits", header={"CTYPE1": "WAVE", "CDELT1": None},
                       primary_data=False)
    with fits.open(path, mode="update") as hdul:
        del hdul["FLUX"].header["CDELT1"]
        hdul["FLUX"].header["CD1_1"] = 1.25
    spectrum = MuseSpectrum.read(path)
    assert spectrum.medium == "vacuum"
    np.testing.assert_allclose(spectrum.spectral_axis.value, WAVE, rtol=0, atol=1e-9)


def test_fits_image_error_on_another_grid_is_an_error(tmp_path):
    path = _image_file(tmp_path / "g.fits")
    with fits.open(path, mode="update") as hdul:
        hdul["SIGMA"].header.update(CRVAL1=WAVE[0] + 10, CDELT1=1.25)
    with pytest.raises(ValueError, match="CRVAL1.*another wavelength grid"):
        MuseSpectrum.read(path)


def test_fits_image_mask_extension(tmp_path):
    path = _image_file(tmp_path / "dq.fits")
    dq = np.zeros(N, np.int16)
    dq[7] = 2
    fits.append(path, dq, fits.Header({"EXTNAME": "DQ"}))
    assert np.flatnonzero(MuseSpectrum.read(path).mask).tolist() == [7]


# -- the MUSE layout ----------------------------------------------------------------------
def test_muse_1d_data_stat_dq(tmp_path):
    header = fits.Header({"CTYPE1": "AWAV", "CUNIT1": "Angstrom", "CRVAL1": WAVE[0],
                          "CDELT1": 1.25, "CRPIX1": 1.0, "BUNIT": "10**-20 erg/s/cm2/Angstrom"})
    dq = np.zeros(N, np.int32)
    dq[3] = 1
    stat_header = header.copy()
    stat_header["BUNIT"] = "(10**-20 erg/s/cm2/Angstrom)**2"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(FLUX, header, name="DATA"),
                  fits.ImageHDU(SIGMA ** 2, stat_header, name="STAT"),
                  fits.ImageHDU(dq, name="DQ")]).writeto(tmp_path / "m.fits")
    assert identify_format(tmp_path / "m.fits") == "muse"
    spectrum = MuseSpectrum.read(tmp_path / "m.fits")
    assert spectrum.meta["format"] == "muse" and spectrum.medium == "air"
    np.testing.assert_array_equal(np.flatnonzero(spectrum.mask), [3])
    np.testing.assert_allclose(_batch(spectrum).variance[0][4:], SIGMA[4:] ** 2)


# -- overrides ----------------------------------------------------------------------------
def test_explicit_column_names_and_hdu(tmp_path):
    first = fits.BinTableHDU.from_columns([fits.Column("x", "D", array=np.arange(3.0))],
                                          name="OTHER")
    columns = [fits.Column(n, "D", array=a) for n, a in
               (("col_a", WAVE), ("col_b", FLUX), ("col_c", SIGMA), ("col_d", SIGMA ** 2))]
    second = fits.BinTableHDU.from_columns(columns, name="SPEC")
    fits.HDUList([fits.PrimaryHDU(), first, second]).writeto(tmp_path / "two.fits")
    kwargs = dict(hdu="SPEC", wavelength="col_a", flux="col_b", medium="air",
                  wavelength_unit="Angstrom", flux_unit="Jy")
    by_error = MuseSpectrum.read(tmp_path / "two.fits", error="col_c", **kwargs)
    by_variance = MuseSpectrum.read(tmp_path / "two.fits", variance="col_d", **kwargs)
    for spectrum in (by_error, by_variance):
        np.testing.assert_allclose(_batch(spectrum).variance[0], SIGMA ** 2, rtol=1e-12)
        np.testing.assert_array_equal(spectrum.spectral_axis.value, WAVE)
    by_ivar = MuseSpectrum.read(tmp_path / "two.fits", ivar="col_d", **kwargs)
    np.testing.assert_allclose(_batch(by_ivar).variance[0], 1 / SIGMA ** 2, rtol=1e-12)
    # hdu=2 (by index) and a case-insensitive column name
    again = MuseSpectrum.read(tmp_path / "two.fits", hdu=2, wavelength="COL_A", flux="col_b",
                              error="col_c", medium="air", wavelength_unit="Angstrom",
                              flux_unit="Jy")
    np.testing.assert_array_equal(again.flux.value, FLUX)
    with pytest.raises(ValueError, match="no column 'nope'.*col_a"):
        MuseSpectrum.read(tmp_path / "two.fits", error="nope", **kwargs)
    with pytest.raises(ValueError, match="one of error=, variance= and ivar="):
        MuseSpectrum.read(tmp_path / "two.fits", error="col_c", variance="col_d", **kwargs)
    with pytest.raises(ValueError, match="no HDU 'NOPE'"):
        MuseSpectrum.read(tmp_path / "two.fits", **dict(kwargs, hdu="NOPE"), error="col_c")


def test_explicit_format_and_extension_names(tmp_path):
    path = _image_file(tmp_path / "i.fits", "NOISE_EXT")
    with pytest.raises(ValueError, match="no error extension"):
        MuseSpectrum.read(path)
    spectrum = MuseSpectrum.read(path, format="fits-image", error="NOISE_EXT")
    np.testing.assert_allclose(_batch(spectrum).variance[0], SIGMA ** 2, rtol=1e-12)
    with pytest.raises(ValueError, match="unknown format 'votable'"):
        MuseSpectrum.read(path, format="votable")
    with pytest.raises(ValueError, match="is not a table"):
        MuseSpectrum.read(path, format="fits-table", hdu=0)
    with pytest.raises(ValueError, match="wavelength= names a table column"):
        MuseSpectrum.read(path, wavelength="wave", error="NOISE_EXT")


def test_flux_unit_fills_in_and_must_not_contradict(tmp_path):
    path = _table_file(tmp_path / "u.fits", ("wave", "flux", "err"), (WAVE, FLUX, SIGMA),
                       units=("Angstrom", None, None))
    with pytest.warns(UserWarning, match="dimensionless"):
        assert MuseSpectrum.read(path, medium="air").flux.unit == u.dimensionless_unscaled
    assert MuseSpectrum.read(path, medium="air", flux_unit=FLUX_UNIT).flux.unit == FLUX_UNIT
    path = _table_file(tmp_path / "j.fits", ("wave", "flux", "err"), (WAVE, FLUX, SIGMA),
                       units=("Angstrom", "Jy", "Jy"))
    with pytest.raises(ValueError, match="flux_unit='mJy' contradicts the unit 'Jy'"):
        MuseSpectrum.read(path, medium="air", flux_unit="mJy")
    bad = _table_file(tmp_path / "b.fits", ("wave", "flux", "err"), (WAVE, FLUX, SIGMA),
                      units=("Angstrom", "counts per banana", None))
    with pytest.raises(ValueError, match="cannot parse the unit 'counts per banana'.*flux_unit"):
        MuseSpectrum.read(bad, medium="air")
    assert MuseSpectrum.read(bad, medium="air", flux_unit="adu").flux.unit == u.adu


def test_error_unit_must_fit_the_flux(tmp_path):
    path = _table_file(tmp_path / "e.fits", ("wave", "flux", "var"), (WAVE, FLUX, SIGMA),
                       units=("Angstrom", "Jy", "Jy"))          # a variance in Jy, not Jy2
    with pytest.raises(u.UnitConversionError, match="column 'var'.*variance"):
        MuseSpectrum.read(path, medium="air")


# -- the AO notch ---------------------------------------------------------------------------
def test_zero_runs_shorter_than_three_are_kept(tmp_path):
    flux = FLUX.copy()
    flux[10] = 0.0                        # a single zero: kept
    flux[20:22] = 0.0                     # two: kept
    flux[30:33] = 0.0                     # three: masked
    flux[100:150] = 0.0                   # a notch: masked
    sigma = SIGMA.copy()
    sigma[100:150] = np.nan
    path = _table_file(tmp_path / "z.fits", ("wave", "flux", "err"), (WAVE, flux, sigma),
                       units=("Angstrom", "Jy", "Jy"), header={"MEDIUM": "air"})
    spectrum = MuseSpectrum.read(path)
    expected = np.zeros(N, bool)
    expected[30:33] = expected[100:150] = True
    np.testing.assert_array_equal(spectrum.mask, expected)
    assert spectrum.meta["zero_runs"] == [(WAVE[30], WAVE[32]), (WAVE[100], WAVE[149])]
    batch = _batch(spectrum)
    assert batch.valid[0][[10, 20, 21]].all() and not batch.bad_variance[0]
    longer = MuseSpectrum.read(path, min_zero_run=4)
    np.testing.assert_array_equal(np.flatnonzero(longer.mask), np.arange(100, 150))
    assert not MuseSpectrum.read(path, min_zero_run=None).mask.any()


def test_zero_run_mask_function():
    flux = np.array([0, 0, 0, 1, 0, np.nan, 0, 0, 0, 0, -0.0, 2, 0])
    np.testing.assert_array_equal(
        zero_run_mask(flux), [1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 1, 0, 0])
    assert not zero_run_mask(flux, None).any()


# -- errors -------------------------------------------------------------------------------
def test_no_recognisable_columns_lists_them(tmp_path):
    path = tmp_path / "plain.txt"
    np.savetxt(path, np.c_[WAVE, FLUX, SIGMA])
    with pytest.raises(ValueError, match=r"no recognisable wavelength column among "
                                         r"\['col1', 'col2', 'col3'\]"):
        MuseSpectrum.read(path, medium="air")
    spectrum = MuseSpectrum.read(path, medium="air", wavelength="col1", flux="col2",
                                 error="col3", wavelength_unit="Angstrom", flux_unit="Jy")
    np.testing.assert_allclose(_batch(spectrum).variance[0], SIGMA ** 2, rtol=1e-14)


def test_ambiguous_columns(tmp_path):
    path = _table_file(tmp_path / "a.fits", ("wave", "obj_flux", "sky_flux", "err"),
                       (WAVE, FLUX, FLUX, SIGMA), units=("Angstrom",) * 4)
    with pytest.raises(ValueError, match=r"flux column is ambiguous: \['obj_flux', 'sky_flux'\]"):
        MuseSpectrum.read(path, medium="air")
    path = _table_file(tmp_path / "b.fits", ("wave", "flux", "err", "var"),
                       (WAVE, FLUX, SIGMA, SIGMA ** 2))
    with pytest.raises(ValueError, match="uncertainty column is ambiguous: 'err'.*'var'"):
        MuseSpectrum.read(path, medium="air")


def test_missing_uncertainty(tmp_path):
    path = _table_file(tmp_path / "n.fits", ("wave", "flux", "s2n"), (WAVE, FLUX, FLUX / 2))
    with pytest.raises(ValueError, match="no error, variance or inverse-variance column"):
        MuseSpectrum.read(path, medium="air")
    image = tmp_path / "i.fits"
    fits.PrimaryHDU(FLUX, fits.Header({"CTYPE1": "AWAV", "CRVAL1": WAVE[0], "CDELT1": 1.25,
                                       "CUNIT1": "Angstrom", "CRPIX1": 1})).writeto(image)
    with pytest.raises(ValueError, match="no error extension"):
        MuseSpectrum.read(image)


def test_medium_unknown_and_contradicted(tmp_path):
    path = _table_file(tmp_path / "m.fits", ("wave", "flux", "err"), (WAVE, FLUX, SIGMA),
                       units=("Angstrom", "Jy", "Jy"))
    with pytest.raises(ValueError, match="m.fits does not say.*medium='air'"):
        MuseSpectrum.read(path)
    path = _table_file(tmp_path / "c.fits", ("wave", "flux", "err"), (WAVE, FLUX, SIGMA),
                       units=("Angstrom", "Jy", "Jy"), header={"MEDIUM": "vacuum"})
    with pytest.raises(ValueError, match="medium='air' contradicts MEDIUM = 'vacuum'"):
        MuseSpectrum.read(path, medium="air")
    path = _table_file(tmp_path / "s.fits", ("wave", "flux", "err"), (WAVE, FLUX, SIGMA),
                       units=("Angstrom", "Jy", "Jy"), header={"MEDIUM": "vacuum",
                                                               "TCTYP1": "AWAV"})
    with pytest.raises(ValueError, match="contradicts itself"):
        MuseSpectrum.read(path)
    path = _table_file(tmp_path / "w.fits", ("wave", "flux", "err"), (WAVE, FLUX, SIGMA),
                       units=("Angstrom", "Jy", "Jy"), header={"MEDIUM": "water"})
    with pytest.raises(ValueError, match="MEDIUM = 'water' is not a wavelength medium"):
        MuseSpectrum.read(path)


def test_2d_data_given_to_the_1d_reader(tmp_path):
    cube = np.ones((N, 3, 4))
    header = fits.Header({"CTYPE3": "AWAV", "CUNIT3": "Angstrom", "CRVAL3": WAVE[0],
                          "CDELT3": 1.25, "CRPIX3": 1.0})
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(cube, header, name="DATA"),
                  fits.ImageHDU(cube, header, name="STAT")]).writeto(tmp_path / "cube.fits")
    with pytest.raises(ValueError, match=r"shape \(200, 3, 4\).*use MuseCube.read"):
        MuseSpectrum.read(tmp_path / "cube.fits")
    fits.HDUList([fits.PrimaryHDU(np.ones((5, N))),
                  fits.ImageHDU(np.ones((5, N)), name="SIGMA")]).writeto(tmp_path / "2d.fits")
    with pytest.raises(ValueError, match=r"shape \(5, 200\).*one spectrum"):
        MuseSpectrum.read(tmp_path / "2d.fits")


def test_read_spectrum_parts_stays_below_spectra(tmp_path):
    """io returns parts (no MuseSpectrum): it must not need muse_xcorr.spectra."""
    path = _image_file(tmp_path / "i.fits")
    parts = read_spectrum_parts(path)
    assert set(parts) == {"spectral_axis", "flux", "uncertainty", "mask", "medium", "meta"}
    assert type(parts["uncertainty"]).__name__ == "StdDevUncertainty"


def test_io_imports_nothing_above_it():
    """io sits below spectra/ and templates/: no import of them, even inside functions."""
    import ast
    import pathlib

    import muse_xcorr.io

    above = ("spectra", "templates", "correlate", "result", "template_set", "errors")
    for source in pathlib.Path(muse_xcorr.io.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
                if node.level >= 2 or (node.module or "").startswith("muse_xcorr"):
                    names += [alias.name for alias in node.names]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                parts = name.replace("muse_xcorr.", "").split(".")
                if node.__class__ is ast.ImportFrom and node.level == 1:
                    continue                   # from .wcs import ...: inside io
                assert parts[0] not in above, f"{source.name} imports {name}"


@pytest.mark.parametrize("text, expected", [
    ("ANGSTROMS", u.AA), ("Angstrom", u.AA), ("A", u.AA), ("AA", u.AA), ("angstroem", u.AA),
    ("nm", u.nm), ("microns", u.um), ("m", u.m), ("Hz", u.Hz), (None, None), ("  ", None)])
def test_wavelength_unit_spellings(text, expected):
    from muse_xcorr.units import parse_wavelength_unit

    assert parse_wavelength_unit(text) == expected


def test_wavelength_unit_that_is_no_wavelength():
    from muse_xcorr.units import parse_wavelength_unit

    with pytest.raises(ValueError, match="not a length, frequency or energy"):
        parse_wavelength_unit("erg/s")
    with pytest.raises(ValueError, match="cannot parse"):
        parse_wavelength_unit("furlongs per fortnight")


def test_default_zero_run_is_the_documented_constant():
    import inspect

    from muse_xcorr.io import DEFAULT_MIN_ZERO_RUN

    assert DEFAULT_MIN_ZERO_RUN == 3
    assert inspect.signature(MuseSpectrum.read).parameters["min_zero_run"].default == 3
