"""The air/vacuum convention below 2000 Angstrom, in muse_xcorr.units.convert_medium only."""
import numpy as np
import pytest
import astropy.units as u
from astropy.io import fits
from specutils.utils.wcs_utils import air_to_vac, vac_to_air

from muse_xcorr import Template
from muse_xcorr.units import AIR_MIN_WAVELENGTH, convert_medium


def test_constant_is_2000_angstrom():
    assert AIR_MIN_WAVELENGTH == 2000.0


def test_identity_below_2000_in_both_directions():
    wave = np.array([912.0, 1215.67, 1549.0, 1908.7, 1999.999]) * u.AA
    np.testing.assert_array_equal(convert_medium(wave, "air", "vacuum").value, wave.value)
    np.testing.assert_array_equal(convert_medium(wave, "vacuum", "air").value, wave.value)


def test_above_2000_is_specutils_morton2000():
    """Independent reference: specutils' own functions on the same values."""
    air = np.linspace(2000.0, 9350.0, 777) * u.AA
    np.testing.assert_allclose(convert_medium(air, "air", "vacuum").value,
                               air_to_vac(air, scheme="iteration").value, rtol=0, atol=1e-9)
    vac = np.linspace(2001.0, 9350.0, 777) * u.AA
    np.testing.assert_allclose(convert_medium(vac, "vacuum", "air").value,
                               vac_to_air(vac).value, rtol=0, atol=1e-9)


def test_step_at_2000_and_monotonic_across_it():
    air = np.arange(1990.0, 2010.0, 0.05) * u.AA
    vac = convert_medium(air, "air", "vacuum").value
    assert np.all(np.diff(vac) > 0)
    # the documented jump: 2000 A air is 2000.648 A vacuum (97 km/s)
    assert convert_medium(2000.0 * u.AA, "air", "vacuum").value == pytest.approx(2000.648, abs=1e-3)
    # round trip is exact for every air wavelength, either side of 2000 A
    np.testing.assert_allclose(convert_medium(vac * u.AA, "vacuum", "air").value, air.value,
                               rtol=0, atol=1e-9)
    # vacuum grid across the gap: never decreasing; the gap goes to 2000 A exactly
    vac_grid = np.arange(1995.0, 2005.0, 0.1) * u.AA
    back = convert_medium(vac_grid, "vacuum", "air").value
    assert np.all(np.diff(back) >= 0)
    gap = (vac_grid.value >= 2000.0) & (vac_grid.value < 2000.648)
    assert gap.any() and np.all(back[gap] == 2000.0)
    # a coarse grid (5 A, like the KC96 templates) stays strictly increasing
    coarse = convert_medium(np.arange(1235.0, 3000.0, 5.0) * u.AA, "vacuum", "air").value
    assert np.all(np.diff(coarse) > 0)


def test_scalar_and_units_kept():
    out = convert_medium(0.5 * u.um, "air", "vacuum")
    assert out.unit == u.um and out.shape == ()
    assert out.value == pytest.approx(air_to_vac(5000 * u.AA, scheme="iteration").to_value(u.um))
    assert convert_medium(150 * u.nm, "vacuum", "air").value == 150.0


def test_air_template_below_2000_converts(tmp_path):
    """A template labelled air reaching 1200 A: its vacuum wavelengths are increasing."""
    wave = np.arange(1200.0, 3000.0, 5.0)
    table = fits.BinTableHDU.from_columns([fits.Column("wavelength", "D", "Angstrom",
                                                       array=wave),
                                           fits.Column("flux", "D", array=np.ones(wave.size))])
    table.header["MEDIUM"] = "air"
    fits.HDUList([fits.PrimaryHDU(), table]).writeto(tmp_path / "t.fits")
    template = Template.read(tmp_path / "t.fits")
    vacuum = template.vacuum_wavelength()
    assert np.all(np.diff(vacuum) > 0)
    below = wave < 2000
    np.testing.assert_array_equal(vacuum[below], wave[below])
    np.testing.assert_allclose(vacuum[~below],
                               air_to_vac(wave[~below] * u.AA, scheme="iteration").value)


@pytest.mark.parametrize("name", ["kc96_starburst1.fits", "kc96_elliptical.fits"])
def test_shared_kc96_templates_convert(shared_data, name):
    path = shared_data / "templates" / name
    template = Template.read(path)
    assert template.medium == "air"
    with fits.open(path) as hdul:
        wave = np.asarray(hdul["TEMPLATE"].data["wavelength"], dtype=float)
    assert wave[0] < 2000
    vacuum = template.vacuum_wavelength()
    assert np.all(np.diff(vacuum) > 0)
    np.testing.assert_array_equal(vacuum[wave < 2000], wave[wave < 2000])
    observed = np.arange(4750.0, 9350.0, 1.25) * u.AA
    matrix = template.matrix(observed, np.array([0.0, 2.5]), medium="air")
    assert np.all(np.isfinite(matrix)) and np.any(matrix[:, 1] != 0)
