"""Template columns from the log table against the exact bin average of the template."""
import os

import numpy as np
import pytest
import astropy.units as u

from muse_xcorr import Template, datasets, zgrid
from muse_xcorr.templates import pixel_edges
from muse_xcorr.templates.resample import (NEGLIGIBLE, ColumnGenerator, LogTable, generator_for,
                                           log_step_for, observed_vacuum_edges)
from muse_xcorr.tests.reference import reference_bin_average
from muse_xcorr.units import C_KMS, convert_medium


@pytest.mark.parametrize("step", [0.3, 5.0])   # finer and coarser than the 1.25 A data
def test_columns_are_the_bin_average_of_the_template(step):
    """Within 3e-4 of the column's peak (2e-5 for a template smooth on the table's scale)."""
    rng = np.random.default_rng(7)
    rest = np.arange(3000.0, 4200.0, step)
    flux = 1 + np.sin(rest / 7.0) + rng.normal(0, 0.1, rest.size)
    template = Template(rest * u.AA, flux)
    wave = np.arange(5000.0, 5200.0, 1.25) * u.AA
    z = np.array([0.3, 0.4123, 0.7])
    columns = generator_for(template, wave, "air", z).at_redshifts(z)
    edges = convert_medium(pixel_edges(wave.value) * u.AA, "air", "vacuum").value
    for k, zk in enumerate(z):
        expected = reference_bin_average(rest, flux, edges / (1 + zk))
        tolerance = 3e-4 if step < 1 else 2e-5
        assert np.max(np.abs(columns[k] - expected)) < tolerance * np.abs(expected).max()


def test_the_table_integral_is_exact_at_its_nodes():
    rest = np.array([4000.0, 4100.0, 4105.0, 4300.0])
    flux = np.array([1.0, 3.0, -2.0, 0.5])
    template = Template(rest * u.AA, flux)
    table = LogTable.from_template(template, (np.log(3990.0), np.log(4310.0)), 2e-5)
    nodes = table.wavelength
    expected = [reference_bin_average(rest, flux, np.array([rest[0], lam]))[0] * (lam - rest[0])
                if lam > rest[0] else 0.0 for lam in nodes]
    np.testing.assert_allclose(table.cumulative, expected, rtol=1e-10, atol=1e-10)


def test_fast_grid_path_equals_the_general_path():
    template = datasets.make_template()
    wave = datasets.muse_wavelength()
    z = zgrid(0.0, 3.0, 1e-4)
    generator = generator_for(template, wave, "air", z, lsf="muse")
    assert generator.stride is not None
    index = np.array([0, 17, 5000, 13862])
    np.testing.assert_allclose(generator.at_indices(index), generator.at_redshifts(z[index]),
                               rtol=1e-8, atol=1e-12 * np.abs(template.flux).max())


@pytest.mark.parametrize("lsf", [None, "muse"])
def test_narrow_component_columns_equal_the_general_path_and_are_zero_elsewhere(lsf):
    # a lone line (a composite's component): its columns are computed over the pixels it
    # reaches; against the general path (every pixel, the band as a sparse product)
    # steep ends (a line of flat top), so that a pixel too few at either end would show
    template = _flat_topped_line()
    wave = datasets.muse_wavelength()
    z = zgrid(-0.06, 0.9, 1e-4)
    generator = generator_for(template, wave, "air", z, lsf=lsf)
    # in the middle, at both ends of the grid (partly outside) and beyond it
    index = np.concatenate([np.arange(0, 40), np.arange(3000, 3100), [6000, 6001],
                            np.arange(z.size - 60, z.size)])
    fast = generator.at_indices(index)
    general = generator.at_redshifts(z[index])
    np.testing.assert_allclose(fast, general, rtol=0, atol=1e-8 * np.abs(general).max())
    observed = 5007.0 * (1 + z[index])
    for row, centre in zip(fast, observed):
        far = np.abs(wave.value - centre) > 60.0
        assert np.all(row[far] == 0.0)
        if wave.value[0] + 20 < centre < wave.value[-1] - 20:
            assert row.max() > 0.1


def test_trimmed_table_drops_only_the_negligible_wings():
    """A Gaussian line's wings below NEGLIGIBLE of its peak become exactly zero, with a
    flat running integral there; the columns move by < 1e-12 of their peak."""
    template = Template.from_lines(["Hbeta"], width=100 * u.km / u.s, wave_range=(4000, 6000))
    wave = datasets.muse_wavelength()
    z = zgrid(0.0, 0.8, 1e-4)
    step = log_step_for(float(np.diff(np.log1p(z)).min()))  # as generator_for takes it
    edges = observed_vacuum_edges(wave, "air")
    table = LogTable.from_template(template, (np.log(edges[0]) - np.log1p(z[-1]),
                                              np.log(edges[-1])), step)
    trimmed = table.trimmed()
    peak = np.abs(table.values).max()
    wing = np.abs(table.values) <= 0.1 * NEGLIGIBLE * peak
    core = np.abs(table.values) > NEGLIGIBLE * peak
    assert np.any(table.values[wing] != 0) and np.all(trimmed.values[wing] == 0)
    np.testing.assert_array_equal(trimmed.values[core], table.values[core])
    # flat where the table is zero: the running integral does not move across it
    zero = np.flatnonzero(trimmed.values == 0)
    flat = zero[np.isin(zero + 1, zero)]
    assert np.all(trimmed.cumulative[flat + 1] == trimmed.cumulative[flat])
    np.testing.assert_allclose(trimmed.cumulative[-1], table.cumulative[-1],
                               rtol=1e-12)
    index = np.arange(0, z.size, 13)
    columns = generator_for(template, wave, "air", z).at_indices(index)  # trims its table
    # the same fast path on the untrimmed table isolates what trimming does
    untrimmed = ColumnGenerator(table, edges, z).at_indices(index)
    np.testing.assert_allclose(columns, untrimmed, rtol=0,
                               atol=1e-12 * np.abs(untrimmed).max())
    # trimming twice changes nothing
    np.testing.assert_array_equal(trimmed.trimmed().values, trimmed.values)


def _three_lines(lsf):
    """The generator of three lines far apart on 0 < z < 1.4, and grid indices in the
    middle and at both ends of the grid (partly beyond the data)."""
    template = Template.from_lines(["[OII]3726", "Hbeta", "Halpha"], width=80 * u.km / u.s,
                                   wave_range=(3000, 7500))
    z = zgrid(-0.06, 1.4, 1e-4)
    generator = generator_for(template, datasets.muse_wavelength(), "air", z, lsf=lsf)
    index = np.concatenate([np.arange(0, 30), np.arange(2000, 9000, 37),
                            z.size - 1 - np.arange(30)])
    return generator, z, index


@pytest.mark.parametrize("lsf", [None, "muse"])
def test_pixel_ranges_hold_every_non_negligible_pixel(lsf):
    """Outside the ranges of its runs a column is below NEGLIGIBLE x the table's peak
    x (1 + z); three lines far apart are three runs, each range holds its line's peak."""
    generator, z, index = _three_lines(lsf)
    ranges = generator.pixel_ranges(index)
    assert len(ranges) == 3
    columns = generator.at_indices(index)
    inside = np.zeros(columns.shape, bool)
    pixel = np.arange(columns.shape[1])
    for start, stop in ranges:
        assert np.all(stop >= start)
        inside |= (pixel >= start[:, None]) & (pixel < stop[:, None])
    peak = np.abs(generator.table.values).max()
    limit = NEGLIGIBLE * peak * (1 + z[index])[:, None]
    assert np.all(np.abs(columns[~inside]) <= np.broadcast_to(limit, columns.shape)[~inside])
    # not the whole grid: each line's range is a few hundred pixels at most
    for start, stop in ranges:
        assert np.max(stop - start) < 400
    # and each range does hold its line wherever the line is on the grid
    for (start, stop), line in zip(ranges, (3728.5, 4862.7, 6564.6)):
        centre = np.searchsorted(generator.edges[generator.half:], line * (1 + z[index])) - 1
        on = (centre > 0) & (centre < columns.shape[1] - 1)
        assert np.all((start[on] <= centre[on]) & (centre[on] < stop[on]))


@pytest.mark.parametrize("lsf", [None, "muse"])
def test_compact_columns_are_the_columns_in_pieces_that_do_not_overlap(lsf):
    """`compact_at_indices`: the columns of `at_indices`, exactly, over a piece per run of
    lines (three lines far apart: three pieces of a few dozen pixels), 0 elsewhere; also
    at the ends of the grid and beyond it, where a run's window may overlap another's."""
    generator, z, index = _three_lines(lsf)
    index = np.concatenate([index, [4000, 4000]])
    pieces = generator.compact_at_indices(index)
    assert len(pieces) == 3
    rebuilt = np.zeros((index.size, generator.n_pixel))
    covered = np.zeros(rebuilt.shape, int)
    for start, values in pieces:
        assert values.shape[0] == index.size and values.shape[1] < 200
        for row in range(index.size):
            window = slice(start[row], start[row] + values.shape[1])
            # where two windows overlap, all but one hold zeros (a run off the grid)
            assert np.all((rebuilt[row, window] == 0) | (values[row] == 0))
            rebuilt[row, window] += values[row]
            covered[row, window] += 1
    np.testing.assert_array_equal(rebuilt, generator.at_indices(index))
    # against the general path (its own arithmetic): the pieces hold the whole column
    general = generator.at_redshifts(z[index])
    np.testing.assert_allclose(rebuilt, general, rtol=0, atol=1e-8 * np.abs(general).max())
    assert np.all(general[covered == 0] == 0.0)


def _galaxy_at_three_redshifts():
    """The generator of a galaxy template (it reaches the whole grid) with the MUSE line
    spread on 0 < z < 3, and three grid indices."""
    z = zgrid(0.0, 3.0, 1e-4)
    generator = generator_for(datasets.make_template(), datasets.muse_wavelength(), "air", z,
                              lsf="muse")
    return generator, z, np.array([3, 400, 9000])


def test_compact_columns_of_a_template_reaching_the_whole_grid_are_one_full_piece():
    generator, z, index = _galaxy_at_three_redshifts()
    (start, values), = generator.compact_at_indices(index)
    np.testing.assert_array_equal(start, 0)
    np.testing.assert_array_equal(values, generator.at_indices(index))


def test_columns_written_into_a_given_array_are_those_returned():
    generator, z, index = _galaxy_at_three_redshifts()
    out = np.full((index.size, generator.n_pixel), np.nan, dtype=np.float32)
    assert generator.at_indices(index, np.float32, out=out) is out
    np.testing.assert_array_equal(out, generator.at_indices(index, np.float32))
    out64 = np.full((index.size, generator.n_pixel), np.nan)
    assert generator.at_redshifts(z[index], out=out64) is out64
    np.testing.assert_array_equal(out64, generator.at_redshifts(z[index]))
    with pytest.raises(ValueError, match="out must be"):
        generator.at_indices(index, np.float32, out=np.empty((2, generator.n_pixel), np.float32))
    with pytest.raises(ValueError, match="out must be"):
        generator.at_indices(index, np.float32, out=out64)


def _flat_topped_line():
    """A lone line with steep ends (a composite's component)."""
    rest = np.array([4999.0, 5000.0, 5007.0, 5014.0, 5015.0])
    return Template(rest * u.AA, np.array([0.0, 1.0, 1.5, 1.0, 0.0]))


@pytest.mark.parametrize("kind", ["galaxy", "line"])
def test_shift_average_is_the_mean_of_the_fine_columns(kind):
    """The coarse grid's box smoothing is exact: the mean of the fine columns of a step
    (for a lone line also at the redshifts where it leaves the grid, and exactly zero
    where no shifted copy reaches)."""
    template = datasets.make_template() if kind == "galaxy" else _flat_topped_line()
    wave = datasets.muse_wavelength()
    z = zgrid(-0.06, 1.2, 1e-4)
    generator = generator_for(template, wave, "air", z)
    stride = generator.stride
    offsets = np.arange(-5, 5)
    smoothed = generator.table.shift_average(offsets * stride)
    from muse_xcorr.templates.resample import ColumnGenerator

    coarse = ColumnGenerator(smoothed, generator.edges, z)
    k = np.array([5, 100, 4000, 7000, 8490])
    mean = np.mean([generator.at_indices(k + o) for o in offsets], axis=0)
    got = coarse.at_indices(k)
    np.testing.assert_allclose(got, mean, rtol=1e-10, atol=1e-12 * np.abs(mean).max())
    if kind == "line":
        assert np.all(got[mean == 0] == 0.0) and np.count_nonzero(mean[1:4]) > 0


def test_log_step_divides_the_redshift_step():
    for dlnz in (1e-4, 3.3e-5, 2e-3):
        step = log_step_for(dlnz)
        assert step * C_KMS <= 4.0 + 1e-9
        assert dlnz / step == pytest.approx(round(dlnz / step), abs=1e-9)


def test_padded_edges_extend_the_grid():
    wave = datasets.muse_wavelength(10)
    edges = observed_vacuum_edges(wave, "vacuum", pad=3)
    assert edges.size == 10 + 1 + 6
    np.testing.assert_allclose(np.diff(edges), 1.25, rtol=1e-12)


def _columns_into(queue, generator, index):
    queue.put(generator.at_indices(index))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_process_generates_columns_after_its_parent_did():
    """The column threads are one pool per process: a child forked after the parent used
    its pool (dask's process workers, multiprocessing) gets its own, not the parent's
    dead threads (which would hang it)."""
    import multiprocessing

    generator, _, _ = _galaxy_at_three_redshifts()
    index = np.arange(0, 400)
    expected = generator.at_indices(index)    # the parent's pool, THREADS > 1 on 2 cores
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_columns_into, args=(queue, generator, index))
    child.start()
    try:
        got = queue.get(timeout=120)
    finally:
        child.join(timeout=30)
        if child.is_alive():
            child.terminate()
    np.testing.assert_array_equal(got, expected)


def test_a_run_per_group_of_lines_apart_and_one_for_lines_that_touch():
    """`pixel_ranges` has one run per group of non-zero table nodes that two or more zero
    nodes separate (counted here on the trimmed table's values): the [OII] doublet and
    [OIII]4959,5007 at 300 km/s touch, Hbeta stands alone."""
    names = ["[OII]3726", "[OII]3729", "Hbeta", "[OIII]4959", "[OIII]5007", "Halpha"]
    for width in (60, 300):
        template = Template.from_lines(names, width=width * u.km / u.s,
                                       wave_range=(3000, 7500))
        z = zgrid(0.0, 0.4, 1e-4)
        generator = generator_for(template, datasets.muse_wavelength(), "air", z)
        nonzero = np.flatnonzero(generator.table.values != 0)
        groups = 1 + int(np.count_nonzero(np.diff(nonzero) > 2))
        ranges = generator.pixel_ranges(np.array([0, 2000]))
        assert len(ranges) == groups
        assert groups == (5 if width == 60 else 4)
