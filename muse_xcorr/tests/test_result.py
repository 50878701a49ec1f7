"""zgrid, the Redshift result: a read-only container, its table, files and candidates; the CLI."""
import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from muse_xcorr import Correlator, Redshift, datasets, zgrid
from muse_xcorr.cli import main
from muse_xcorr.flags import Flag, describe, flag_table
from muse_xcorr.io import write_muse_fits

WAVE = datasets.muse_wavelength(800, start=6000.0)


def test_zgrid_is_uniform_in_log1pz():
    z = zgrid(0.1, 2.0, 1e-3)
    np.testing.assert_allclose(np.diff(np.log1p(z)), 1e-3, rtol=1e-9)
    assert z[0] == 0.1 and z[-1] <= 2.0 + 1e-12 and np.log1p(2.0) - np.log1p(z[-1]) < 1e-3
    with pytest.raises(ValueError, match="larger"):
        zgrid(1, 0.5, 1e-3)
    with pytest.raises(ValueError, match="positive"):
        zgrid(0, 1, 0)
    with pytest.raises(ValueError, match="> -1"):
        zgrid(-2, 1, 0.1)


@pytest.fixture(scope="module")
def result():
    cube, truth = datasets.make_cube((3, 4), z=(0.32, 0.38), snr=30, seed=5, wavelength=WAVE,
                                     empty_spaxels=1)
    return Correlator(datasets.make_template(), zgrid(0.3, 0.4, 2e-4),
                      weighting="inverse_variance").correlate(cube, progress=False), truth


def test_to_table_has_one_row_per_spaxel_with_coordinates(result):
    res, truth = result
    table = res.to_table()
    assert len(table) == 12
    np.testing.assert_array_equal(table["z_best"], res.z_best.ravel())
    np.testing.assert_array_equal(table["flags"], res.flags.ravel())
    row = 1 * 4 + 2
    assert (table["y"][row], table["x"][row]) == (1, 2)
    world = res.wcs.pixel_to_world(2, 1)
    assert table["ra"][row] == pytest.approx(world.ra.deg)
    assert table["dec"][row] == pytest.approx(world.dec.deg)
    assert table["snr"][row] == pytest.approx(res.f_best[1, 2] / res.sigma_f_best[1, 2])


def test_write_read_round_trip(result, tmp_path):
    res, _ = result
    path = tmp_path / "maps.fits"
    res.write(path)
    with fits.open(path) as hdul:
        assert hdul["Z_BEST"].data.shape == (3, 4)
        assert hdul["Z_BEST"].header["CTYPE1"] == "RA---TAN"
        assert "FLAGS" in hdul and "ZGRID" in hdul
    back = Redshift.read(path)
    for name in ("z_best", "f_best", "sigma_f_best", "snr", "flags", "chi2_best", "z_second",
                 "delta_chi2", "template_index", "f_second"):
        np.testing.assert_array_equal(getattr(back, name), getattr(res, name))
    for field in ("z", "f", "chi2", "score", "template", "index", "amplitudes"):
        np.testing.assert_array_equal(back.candidates(field), res.candidates(field))
    np.testing.assert_array_equal(back.z, res.z)
    assert back.meta["weighting"] == "inverse_variance"
    with fits.open(path) as hdul:
        table = Table.read(hdul["CANDIDATES"])
    assert len(table) == len(res.candidate_table())
    with pytest.raises(RuntimeError, match="read from a file"):
        back.ccf(0, 0)
    with pytest.raises(FileExistsError):
        res.write(path)
    res.write(path, overwrite=True)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_kept_curves_round_trip(tmp_path):
    spectrum, _ = datasets.make_spectrum(z=0.35, snr=20, seed=1, wavelength=WAVE,
                                         variance=np.ones(WAVE.size))
    res = Correlator(datasets.make_template(), zgrid(0.3, 0.4, 5e-4),
                     keep_ccf=True).correlate(spectrum, progress=False)
    res.write(tmp_path / "one.fits")
    back = Redshift.read(tmp_path / "one.fits")
    assert back.spatial_shape == () and np.ndim(back.z_best) == 0
    z, f, sigma = back.ccf()
    np.testing.assert_allclose(f, res.ccf()[1], rtol=1e-6, atol=1e-7)      # stored as float32
    np.testing.assert_allclose(sigma, res.ccf()[2], rtol=1e-6)


def test_ccf_index_errors(result):
    res, _ = result
    with pytest.raises(IndexError, match="2 spatial indices"):
        res.ccf(1)
    empty = np.argwhere(res.flags & Flag.NO_DATA)[0]
    z, f, sigma = res.ccf(*empty)
    assert np.all(np.isnan(f)) and np.all(np.isnan(sigma))


def test_result_is_read_only_and_derives_its_maps(result):
    res, _ = result
    with pytest.raises(ValueError, match="read-only"):
        res.z_best[0, 0] = 1.0
    with pytest.raises(ValueError, match="read-only"):
        res.candidates("z")[0, 0, 0] = 1.0
    with np.errstate(invalid="ignore"):
        np.testing.assert_array_equal(res.snr, res.f_best / res.sigma_f_best)
    kappa = np.maximum(res.candidates("kappa")[..., 1], res.candidates("kappa")[..., 0])
    second = (res.candidates("score")[..., 1] - res.candidates("score")[..., 0]) / kappa
    has = np.isfinite(second)
    np.testing.assert_allclose(res.delta_chi2[has], second[has], rtol=1e-12)
    assert np.all(np.isinf(res.delta_chi2[~has & (res.template_index >= 0)]))
    with pytest.raises(AttributeError, match="no attribute or map"):
        res.nonsense
    assert set(("snr", "delta_chi2", "z_second")) <= set(res.map_names)


def test_flag_helpers():
    assert describe(Flag.NO_DATA | Flag.LOW_COVERAGE) == ["NO_DATA", "LOW_COVERAGE"]
    table = flag_table()
    assert list(table["bit"]) == [int(f) for f in Flag]
    assert all(len(m) > 20 for m in table["meaning"])


def test_cli_on_a_cube_file(tmp_path, capsys):
    cube, truth = datasets.make_cube((2, 3), z=0.35, snr=40, seed=2, wavelength=WAVE)
    write_muse_fits(cube, tmp_path / "cube.fits")
    out = tmp_path / "z.fits"
    template = tmp_path / "template.ecsv"
    t = datasets.make_template()
    Table({"wavelength": t.wavelength, "flux": t.flux}, meta={"MEDIUM": "vacuum"}).write(template)
    status = main([str(tmp_path / "cube.fits"), "-t", str(template), "--zmin", "0.3", "--zmax",
                   "0.4", "--dlnz", "2e-4", "-o", str(out), "--table", str(tmp_path / "z.ecsv"),
                   "--no-progress"])
    assert status == 0
    maps = Redshift.read(out)
    assert np.all(np.abs(maps.z_best - 0.35) < 5e-4)
    assert len(Table.read(tmp_path / "z.ecsv")) == 6
    assert "6 of 6 spectra unflagged" in capsys.readouterr().out


def test_cli_needs_input():
    with pytest.raises(SystemExit):
        main([])
