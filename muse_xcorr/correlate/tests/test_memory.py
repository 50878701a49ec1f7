"""The memory estimate against the arrays actually built, and the clear MemoryError."""
import numpy as np
import pytest

from muse_xcorr import Correlator, datasets, zgrid
from muse_xcorr.correlate import memory, search
from muse_xcorr.correlate.search import SearchGrid


def _case(**options):
    template = datasets.make_template()
    cube, _ = datasets.make_cube(shape=(2, 3), template=template, z=(0.31, 0.39), snr=20.0,
                                 seed=5)
    correlator = Correlator(template, zgrid(0.3, 0.4, 1e-4), noise_correlation=None, **options)
    return correlator, cube


@pytest.mark.parametrize("search_mode", ["full", "coarse-to-fine"])
def test_operator_estimate_is_the_size_of_the_search_grids(monkeypatch, search_mode):
    # blocks of 40 columns, so that the block halos are counted too (~950 redshifts, ~95 coarse)
    monkeypatch.setattr(search, "MAX_BLOCK_COLUMNS", 40)
    correlator, cube = _case(search=search_mode, batch_size=4)
    prepared = correlator.prepare(cube)
    parts = memory.estimate_parts(correlator, prepared, cube.n_pixels, cube.n_spectra)
    grids = [SearchGrid(p, correlator.factor, correlator.dtype) for p in prepared]
    built = sum(grid.nbytes for grid in grids)
    # an independent count: the columns handed to the backend, block by block
    held = sum(block.rows.numpy().nbytes for grid in grids for *_, block in grid.blocks)
    assert built == held > 0
    assert parts["operators"] == pytest.approx(held, rel=1e-3)  # stated tolerance: 0.1 %
    largest = max(block.rows.numpy().nbytes for grid in grids for *_, block in grid.blocks)
    assert parts["operator transient"] == pytest.approx(2 * largest, rel=1e-3)


@pytest.mark.parametrize("weighting", ["inverse_variance", "uniform"])
def test_batch_estimate_is_the_size_of_the_working_arrays(weighting):
    correlator, cube = _case(batch_size=4, weighting=weighting)
    prepared = correlator.prepare(cube)
    n = correlator.batch_size
    work = correlator.working(cube, np.arange(n))
    arrays = {id(value): value for value in vars(work).values()
              if isinstance(value, np.ndarray) and value.shape == (n, cube.n_pixels)}
    built = sum(array.nbytes for array in arrays.values())
    data, weights, _ = work.search_arrays(correlator.dtype)
    parts = memory.estimate_parts(correlator, prepared, cube.n_pixels, n_spectra=n)
    assert parts["working batch"] == pytest.approx(built, rel=0.05)  # stated tolerance: 5 %
    # NumPy arrays and their device copies; the patterns of uniform weighting are fewer rows
    assert data.nbytes + weights.nbytes <= parts["search arrays"] <= 2 * (2 * data.nbytes)
    assert memory.estimate_bytes(correlator, prepared, cube.n_pixels, n) == \
        sum(parts.values())


def test_estimate_grows_with_grid_batch_and_curves():
    correlator, cube = _case(batch_size=4)
    prepared = correlator.prepare(cube)
    base = memory.estimate_parts(correlator, prepared, cube.n_pixels, 1000)
    bigger, _ = _case(batch_size=64)
    more = memory.estimate_parts(bigger, bigger.prepare(cube), cube.n_pixels, 1000)
    assert more["working batch"] == 16 * base["working batch"]
    assert more["operators"] == base["operators"]
    curves, _ = _case(batch_size=4, keep_ccf=True)
    with_curves = memory.estimate_parts(curves, curves.prepare(cube), cube.n_pixels, 1000)
    assert with_curves["curves"] == 2 * 2 * 1000 * curves.z.size * 8
    assert base["curves"] == 0


def test_too_little_memory_is_a_clear_memory_error(monkeypatch):
    correlator, cube = _case(batch_size=4)
    monkeypatch.setattr(memory, "available_bytes", lambda: 1000)
    with pytest.raises(MemoryError) as raised:
        correlator.correlate(cube, progress=False)
    message = str(raised.value)
    assert "needs about" in message and "0.00 GiB of memory is available" in message
    assert "coarser redshift grid" in message and "fewer templates" in message
    assert "smaller batch_size (4 now)" in message
    assert "MUSE_XCORR_MEMORY_CHECK=0" in message
    # the escape hatch, and enough memory: the same correlator runs
    monkeypatch.setenv("MUSE_XCORR_MEMORY_CHECK", "0")
    assert correlator.correlate(cube, progress=False).z_best.shape == (2, 3)


def test_available_bytes_is_positive_or_unknown():
    available = memory.available_bytes()
    assert available is None or available > 0
