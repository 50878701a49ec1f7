"""Dask: cubes backed by dask arrays, cutouts, and runs on a real LocalCluster.

The cluster has two worker processes (``processes=True``), one thread each;
it is started once for the module. Results must equal the local run: to the
bit when the chunks are whole batches (the default), and with only the
float32 search scores ``f_max``/``f_min`` within 1e-6 otherwise.
"""
import numpy as np
import pytest
import astropy.units as u
from astropy.nddata import VarianceUncertainty
from astropy.table import Table

from muse_xcorr import Correlator, MuseCube, Redshift, datasets, zgrid
from muse_xcorr.cli import main
from muse_xcorr.correlate.correlator import Correlator as CoreCorrelator
from muse_xcorr.io import write_muse_fits
from muse_xcorr.spectra.data import DaskQuantity

distributed = pytest.importorskip("distributed")
da = pytest.importorskip("dask.array")

WAVE = datasets.muse_wavelength(600, 6000.0)
TEMPLATE = datasets.make_template(wave_range=(4000, 5500))
Z = zgrid(0.3, 0.4, 5e-4)
GRID = ["--zmin", "0.3", "--zmax", "0.4", "--dlnz", "5e-4"]


@pytest.fixture(scope="module")
def cube_file(tmp_path_factory):
    root = tmp_path_factory.mktemp("dask")
    cube, _ = datasets.make_cube((4, 5), z=(0.32, 0.38), snr=25, seed=11, wavelength=WAVE,
                                 empty_spaxels=2)
    write_muse_fits(cube, root / "cube.fits")
    Table({"wavelength": TEMPLATE.wavelength, "flux": TEMPLATE.flux},
          meta={"MEDIUM": "vacuum"}).write(root / "template.fits")
    return root / "cube.fits"


@pytest.fixture(scope="module")
def local(cube_file):
    correlator = Correlator(TEMPLATE, Z, batch_size=3)
    return correlator, correlator.correlate(MuseCube.read(cube_file), progress=False)


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            yield client


def assert_same(a, b, *, loose=()):
    assert a.map_names == b.map_names
    for name in a.map_names:
        if name in loose:
            np.testing.assert_allclose(a.map(name), b.map(name), atol=1e-6, rtol=0)
        else:
            np.testing.assert_array_equal(a.map(name), b.map(name), err_msg=name)
    for field in ("z", "f", "sigma_f", "chi2", "template", "index", "amplitudes"):
        np.testing.assert_array_equal(a.candidates(field), b.candidates(field), err_msg=field)


# -- dask-backed cubes and cutouts ----------------------------------------------------------
class Recording:
    """An array that records which rows (first spatial axis) dask reads from it."""

    def __init__(self, array):
        self.array, self.rows = array, set()
        self.shape, self.dtype, self.ndim = array.shape, array.dtype, array.ndim

    def __getitem__(self, key):
        rows = range(*key[1].indices(self.shape[1]))
        self.rows.update(rows)
        return self.array[key]


def test_a_dask_backed_batch_reads_only_its_spaxels(cube_file):
    plain = MuseCube.read(cube_file)
    flux, var = Recording(np.asarray(plain.flux.value)), Recording(plain.uncertainty.array)
    lazy = MuseCube(plain.spectral_axis,
                    DaskQuantity(da.from_array(flux, chunks=(-1, 1, -1)), plain.flux.unit),
                    VarianceUncertainty(da.from_array(var, chunks=(-1, 1, -1)),
                                        unit=plain.uncertainty.unit),
                    medium="air")
    batch = lazy.spectra(6, 9)                  # spaxels (1, 1)-(1, 3): the second row only
    assert flux.rows == {1} and var.rows == {1}
    np.testing.assert_array_equal(batch.flux, plain.spectra(6, 9).flux)


def test_read_with_chunks_gives_the_same_result_lazily(cube_file, local):
    correlator, expected = local
    cube = MuseCube.read(cube_file, chunks=(-1, 2, 2))
    assert isinstance(cube.flux, DaskQuantity) and hasattr(cube.flux.value, "dask")
    assert cube.flux.value.chunks[1] == (2, 2)
    assert float(cube.flux.value[:, 0, 0].sum().compute()) == pytest.approx(
        float(np.nansum(MuseCube.read(cube_file).flux.value[:, 0, 0])), rel=1e-6, nan_ok=True)
    assert_same(correlator.correlate(cube, progress=False), expected)
    assert isinstance(cube.to_spectrum().flux, u.Quantity)


def test_cutout(cube_file):
    cube = MuseCube.read(cube_file)
    box = cube.cutout(slice(1, 3), (2, 5))
    assert box.spatial_shape == (2, 3) and box.meta["region"] == "1:3,2:5"
    np.testing.assert_array_equal(box.spectra().flux.reshape(2, 3, -1),
                                  cube.spectra().flux.reshape(4, 5, -1)[1:3, 2:5])
    assert box.wcs.pixel_to_world(0, 0).separation(cube.wcs.pixel_to_world(2, 1)).arcsec < 1e-6
    assert box.cutout((1, 2), (0, 2)).meta["region"] == "2:3,2:4"
    lazy = MuseCube.read(cube_file, chunks=(-1, 1, 5)).cutout((0, 2), (0, 5))
    assert isinstance(lazy.flux, DaskQuantity)
    for y, x in [((0, 9), (0, 2)), ((2, 2), (0, 2)), (slice(0, 4, 2), (0, 2)), ((-1, 2), (0, 1))]:
        with pytest.raises(ValueError, match="cutout"):
            cube.cutout(y, x)


# -- a real LocalCluster --------------------------------------------------------------------
def test_the_cluster_gives_the_local_result(cube_file, local, client, monkeypatch):
    from muse_xcorr.distributed import correlate_distributed

    correlator, expected = local
    scattered = []
    scatter = client.scatter

    def spy(data, **kwargs):
        scattered.append((type(data).__name__, kwargs.get("broadcast")))
        return scatter(data, **kwargs)

    monkeypatch.setattr(client, "scatter", spy)
    result = correlate_distributed(correlator, str(cube_file), client, chunk_spectra=6)
    assert scattered == [("Correlator", True)]  # the cube is opened by the workers
    assert_same(result, expected)
    assert result.data is not None and np.isfinite(result.z_error("analytic")[
        result.flags == 0]).all()
    # chunks that are not whole batches: only the float32 search scores may move
    assert_same(correlate_distributed(correlator, str(cube_file), client, chunk_spectra=4),
                expected, loose=("f_max", "f_min"))


def test_back_to_back_runs_on_one_client(cube_file, local, client):
    """The same correlator scattered again at once: under a hashed key the next call's
    copy could be released with the last call's ("lost dependencies", about one call
    in four before the keys were random; dask/distributed#3703)."""
    from muse_xcorr.distributed import correlate_distributed

    correlator, expected = local
    for _ in range(6):
        result = correlate_distributed(correlator, str(cube_file), client, chunk_spectra=6)
        np.testing.assert_array_equal(result.z_best, expected.z_best)


def test_a_list_of_cubes_and_data_in_memory(cube_file, local, client):
    from muse_xcorr.distributed import correlate_distributed

    correlator, expected = local
    cube = MuseCube.read(cube_file)
    in_memory = MuseCube(cube.spectral_axis, u.Quantity(np.array(cube.flux)),
                         VarianceUncertainty(np.array(cube.uncertainty.array)), medium="air")
    results = correlate_distributed(correlator, [cube, cube.cutout((1, 3), (0, 5)), in_memory],
                                    client, chunk_spectra=3)
    assert [r.spatial_shape for r in results] == [(4, 5), (2, 5), (4, 5)]
    assert_same(results[0], expected)
    np.testing.assert_array_equal(results[1].z_best, expected.z_best[1:3])
    np.testing.assert_array_equal(results[2].flags, expected.flags)


def test_the_command_line_on_a_scheduler_resumes_a_local_run(cube_file, client, tmp_path,
                                                             monkeypatch):
    template = str(cube_file.parent / "template.fits")
    common = [str(cube_file), "-t", template, *GRID, "--batch-size", "3",
              "--chunk-spectra", "6", "-q"]
    assert main(common + ["-o", str(tmp_path / "local.fits")]) == 0
    original, calls = CoreCorrelator.correlate_rows, []

    def dies(self, data, start, stop, **options):
        calls.append(start)
        if len(calls) > 2:
            raise RuntimeError("the laptop was closed")
        return original(self, data, start, stop, **options)

    with monkeypatch.context() as patch:
        patch.setattr(CoreCorrelator, "correlate_rows", dies)
        assert main(common + ["-o", str(tmp_path / "maps.fits")]) == 1
    assert len(list((tmp_path / "maps.fits.parts").glob("part-*.npz"))) == 2
    assert main(common + ["-o", str(tmp_path / "maps.fits"), "--resume",
                          "--scheduler", client.scheduler.address]) == 0
    assert_same(Redshift.read(tmp_path / "maps.fits"), Redshift.read(tmp_path / "local.fits"))
