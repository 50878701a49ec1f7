"""Template resampling against brute-force quadrature, coverage, reading, media."""
import numpy as np
import pytest
import astropy.units as u
from astropy.io import fits
from astropy.table import Table
from specutils import Spectrum

from muse_xcorr import Template
from muse_xcorr.units import convert_medium
from muse_xcorr.templates import pixel_edges
from muse_xcorr.tests.reference import reference_bin_average

RNG = np.random.default_rng(7)


@pytest.mark.parametrize("step", [0.3, 5.0])   # finer and coarser than the 1.25 A data
@pytest.mark.parametrize("medium", ["air", "vacuum"])
def test_matrix_is_the_bin_average_of_the_linear_template(step, medium):
    rest = np.arange(3000.0, 4200.0, step)
    flux = 1 + np.sin(rest / 7.0) + RNG.normal(0, 0.1, rest.size)
    template = Template(rest * u.AA, flux, medium="vacuum")
    observed = np.arange(5000.0, 5200.0, 1.25)
    z = np.array([0.3, 0.4123, 0.7])
    matrix = template.matrix(observed * u.AA, z, medium=medium)
    edges = pixel_edges(observed)
    edges_vac = convert_medium(edges * u.AA, medium, "vacuum").value
    for k, zk in enumerate(z):
        expected = reference_bin_average(rest, flux, edges_vac / (1 + zk))
        np.testing.assert_allclose(matrix[:, k], expected, rtol=1e-10, atol=1e-12)


def test_zero_outside_range_and_coverage():
    template = Template([4000, 4100, 4200] * u.AA, [1.0, 2.0, 1.0])
    observed = np.arange(4800.0, 5400.0, 1.25) * u.AA
    z = np.array([0.0, 0.2, 0.25])
    matrix = template.matrix(observed, z, medium="vacuum")
    assert np.all(matrix[:, 0] == 0)            # 4000-4200 A is below the data at z = 0
    first, stop = template.coverage(observed, z, medium="vacuum")
    assert first[0] == stop[0]
    inside = (observed.value >= 4000 * 1.2) & (observed.value <= 4200 * 1.2)
    assert first[1] == np.argmax(inside) and stop[1] == inside.nonzero()[0][-1] + 1
    assert np.all(matrix[:first[1], 1] == 0) and np.all(matrix[stop[1] + 1:, 1] == 0)


def test_air_template_equals_converted_vacuum_template():
    rest_vac = np.arange(3000.0, 7000.0, 0.5)
    flux = np.exp(-0.5 * ((rest_vac - 5008.24) / 1.5) ** 2) + 0.1
    rest_air = convert_medium(rest_vac * u.AA, "vacuum", "air")
    observed = np.arange(6000.0, 7000.0, 1.25) * u.AA
    z = np.array([0.3])
    vacuum = Template(rest_vac * u.AA, flux, medium="vacuum").matrix(observed, z, medium="air")
    air = Template(rest_air, flux, medium="air").matrix(observed, z, medium="air")
    # the two directions of the conversion are exact inverses
    round_trip = convert_medium(rest_air, "air", "vacuum").value - rest_vac
    assert np.max(np.abs(round_trip)) < 1e-9
    np.testing.assert_allclose(air, vacuum, atol=1e-9)


def test_template_readers_fits_table_image_ecsv_ascii(tmp_path):
    wave = np.arange(3000.0, 3100.0, 2.0)
    flux = np.linspace(1, 2, wave.size)
    table = Table({"wavelength": wave * u.AA, "flux": flux})
    hdu = fits.BinTableHDU(table, name="TEMPLATE")
    hdu.header["MEDIUM"] = "air"
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(tmp_path / "t.fits")
    from_table = Template.read(tmp_path / "t.fits")
    assert from_table.medium == "air" and from_table.name == "t"
    np.testing.assert_array_equal(from_table.flux, flux)

    header = fits.Header({"CTYPE1": "WAVE", "CRVAL1": 3000.0, "CDELT1": 2.0, "CRPIX1": 1.0,
                          "CUNIT1": "Angstrom"})
    fits.PrimaryHDU(flux, header).writeto(tmp_path / "image.fits")
    image = Template.read(tmp_path / "image.fits")
    assert image.medium == "vacuum"
    np.testing.assert_allclose(image.wavelength.value, wave)

    table.meta["MEDIUM"] = "vacuum"
    table.write(tmp_path / "t.ecsv")
    np.testing.assert_array_equal(Template.read(tmp_path / "t.ecsv").flux, flux)
    np.savetxt(tmp_path / "t.dat", np.c_[wave, flux])
    plain = Template.read(tmp_path / "t.dat", medium="air")
    assert plain.medium == "air"
    np.testing.assert_allclose(plain.wavelength.value, wave)
    with pytest.raises(ValueError, match="contradicts"):
        Template.read(tmp_path / "t.fits", medium="vacuum")


def test_shared_kc96_templates_read(shared_data):
    template = Template.read(shared_data / "templates" / "kc96_starburst1.fits")
    assert template.medium == "air"
    assert template.wavelength.size == 1743
    assert template.wavelength[0].value == pytest.approx(1235, abs=5)


def test_from_spectrum_and_validation():
    spectrum = Spectrum(flux=np.ones(10) * u.Jy, spectral_axis=np.arange(1, 11) * u.um,
                        meta={"medium": "vacuum"})
    template = Template.from_spectrum(spectrum)
    np.testing.assert_allclose(template.wavelength.value, np.arange(1, 11) * 1e4)
    with pytest.raises(ValueError, match="medium is unknown"):
        Template.from_spectrum(Spectrum(flux=np.ones(10) * u.Jy,
                                        spectral_axis=np.arange(1, 11) * u.um))
    with pytest.raises(ValueError, match="zero everywhere"):
        Template([1, 2, 3] * u.AA, [0, 0, 0])
    with pytest.raises(ValueError, match="non-finite"):
        Template([1, 2, 3] * u.AA, [0, np.nan, 0])
    with pytest.raises(TypeError, match="Quantity"):
        Template([1, 2, 3], [1, 2, 3])
    with pytest.raises(ValueError, match="monotonic"):
        Template([1, 3, 2] * u.AA, [1, 2, 3])
