"""Template columns: a rest-frame template redshifted and averaged over observed pixels.

The correlator never resamples the data; it evaluates the template, for
each redshift z_k, as its mean over every observed pixel's rest-frame
interval [e_j, e_{j+1}] / (1 + z_k) (e: the pixel edges in vacuum; maths
section 1). That mean is a difference of the template's running integral,

    T_jk = (1 + z_k) [C(e_{j+1} / (1 + z_k)) - C(e_j / (1 + z_k))] / (e_{j+1} - e_j).

:class:`LogTable` holds a template as a piecewise-linear function on nodes
uniform in ln(lambda), with its exact running integral C at the nodes, so
that the node below any wavelength is found by arithmetic instead of a
search, and C between nodes is the exact integral of the linear segment.
Everything the correlator does to a template in its rest frame happens on
this table, once: continuum subtraction with a window in velocity
(:mod:`.continuum`), and the box smoothing of the coarse search grid
(:meth:`LogTable.box_smoothed`: averaging the columns of a coarse step over
its fine redshifts is exactly the template smoothed by a box in ln(lambda)).
:class:`ColumnGenerator` then evaluates columns at any redshifts on one
observed grid, and applies the line spread of the instrument there
(:mod:`.lsf`), where it is defined.

The table approximates the user's template by linear interpolation between
nodes :data:`TABLE_STEP_KMS` apart: finer than any template feature that an
observed pixel (55--80 km/s on MUSE) resolves; ``tests/test_resample.py``
measures the difference to the exact bin average of the original template.
"""
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import astropy.units as u

from ..units import C_KMS, convert_medium
from .continuum import NothingLeftError

__all__ = ["TABLE_STEP_KMS", "LogTable", "ColumnGenerator", "observed_vacuum_edges",
           "generator_for", "log_step_for", "NEGLIGIBLE"]

#: Node spacing of a `LogTable`, km/s (at most; it divides the redshift step exactly).
TABLE_STEP_KMS = 4.0

#: Redshifts evaluated at a time by a `ColumnGenerator`: small enough that a chunk's
#: temporaries (16 x ~3700 float64, 0.5 MB) stay in the cache; measured on 2 cores,
#: 56 us a column against 117 us with chunks of 256 (docs/performance.rst).
_CHUNK = 16
#: Fraction of a table's largest absolute value below which `LogTable.trimmed` sets its
#: cells to zero (far below the float32 precision of the search).
NEGLIGIBLE = 1e-12
#: Threads that generate columns (NumPy releases the GIL in the work of a chunk).
THREADS = min(os.cpu_count() or 1, 8)
#: Values of a narrow component's pieces computed per thread by
#: `ColumnGenerator.compact_at_indices` (a call of a few hundred columns runs as one).
_PIECE_VALUES = 65536


def _pixel_edges(centres):
    centres = np.asarray(centres, dtype=float)
    mid = 0.5 * (centres[1:] + centres[:-1])
    return np.concatenate([[2 * centres[0] - mid[0]], mid, [2 * centres[-1] - mid[-1]]])


def observed_vacuum_edges(wavelength, medium, pad=0):
    """Pixel edges of an observed grid in vacuum Angstrom, extended by ``pad`` pixels each side.

    Parameters
    ----------
    wavelength : `~astropy.units.Quantity`, shape (n_pixel,)
        Pixel centres, increasing.
    medium : {"air", "vacuum"}
        Medium of ``wavelength``.
    pad : int
        Extra pixels on each side (same step as the end pixels), for the
        line-spread convolution at the grid's ends.

    Returns
    -------
    edges : ndarray, shape (n_pixel + 2 pad + 1,)
    """
    edges = _pixel_edges(u.Quantity(wavelength).to_value(u.AA))
    if pad:
        low = edges[0] - (edges[1] - edges[0]) * np.arange(pad, 0, -1)
        high = edges[-1] + (edges[-1] - edges[-2]) * np.arange(1, pad + 1)
        edges = np.concatenate([low, edges, high])
    return convert_medium(edges * u.AA, medium, "vacuum").to_value(u.AA)


class LogTable:
    """A rest-frame template on nodes uniform in ln(lambda), with its exact running integral.

    Parameters
    ----------
    x0 : float
        ln of the first node's vacuum wavelength (Angstrom).
    step : float
        Node spacing in ln(lambda).
    values : ndarray (n_nodes,)
        The template at the nodes.
    cumulative : ndarray (n_nodes,)
        Its integral from the first node to each node (Angstrom x flux).

    Notes
    -----
    Between two nodes the template is linear, starting from the left node's
    value, with the slope that makes its integral over the cell the exact
    one (``cumulative``): the running integral is then exact at every node
    and quadratic in between, whatever the sampling of the template the
    table came from. Build one with :meth:`from_template`.
    """

    def __init__(self, x0, step, values, cumulative, support=None):
        self.x0 = float(x0)
        self.step = float(step)
        self.values = np.ascontiguousarray(values, dtype=float)
        self.cumulative = np.ascontiguousarray(cumulative, dtype=float)
        if self.values.ndim != 1 or self.values.size < 2 or \
                self.cumulative.shape != self.values.shape:
            raise ValueError("a LogTable needs at least two nodes and one integral per node")
        self.wavelength = np.exp(self.x0 + self.step * np.arange(self.values.size))
        widths = np.diff(self.wavelength)
        mean = np.diff(self.cumulative) / widths
        slope = np.append(2.0 * (mean - self.values[:-1]) / widths, 0.0)
        # C(lambda_i + delta) = C_i + delta (T_i + slope_i delta / 2), delta = lambda_i c:
        # the three per-node terms of C in powers of c (ColumnGenerator's fast path)
        self._terms = np.stack([self.cumulative, self.wavelength * self.values,
                                0.5 * slope * self.wavelength ** 2])
        self._slope = slope
        #: The rest wavelength range where the template is defined (zero outside).
        self.support = (self.wavelength[0], self.wavelength[-1]) if support is None else \
            (float(support[0]), float(support[1]))

    @classmethod
    def from_template(cls, template, x_range, step):
        """Tabulate a template (linear between its own nodes, zero outside) on a log grid.

        Parameters
        ----------
        template : `~muse_xcorr.Template`
        x_range : (float, float)
            ln(lambda / Angstrom) range to cover (vacuum, rest frame); the
            table extends two nodes beyond it on each side.
        step : float
            Node spacing in ln(lambda).
        """
        rest = template.vacuum_wavelength()
        flux = template.flux
        low, high = float(x_range[0]) - 2 * step, float(x_range[1]) + 2 * step
        n = int(np.ceil((high - low) / step)) + 1
        nodes = np.exp(low + step * np.arange(n))
        values = np.interp(nodes, rest, flux, left=0.0, right=0.0)
        # the exact integral of the piecewise-linear template up to each node
        segment = np.concatenate([[0.0], np.cumsum(np.diff(rest) * 0.5 * (flux[1:] + flux[:-1]))])
        index = np.clip(np.searchsorted(rest, nodes, side="right") - 1, 0, rest.size - 2)
        offset = np.clip(nodes - rest[index], 0.0, rest[index + 1] - rest[index])
        slope = (flux[index + 1] - flux[index]) / (rest[index + 1] - rest[index])
        cumulative = segment[index] + flux[index] * offset + 0.5 * slope * offset ** 2
        cumulative = np.where(nodes < rest[0], 0.0, cumulative)
        return cls(low, step, values, cumulative, support=(rest[0], rest[-1]))

    def __len__(self):
        return self.values.size

    def minus(self, smooth):
        """The table minus a smooth function (e.g. a continuum) sampled at its nodes.

        ``smooth`` is linear between nodes and zero outside the template's
        support, where it is integrated exactly (so that the ends of the
        template leave no step).
        """
        smooth = np.asarray(smooth, dtype=float)
        low, high = self.support
        lam = self.wavelength
        a, b = np.clip(lam[:-1], low, high), np.clip(lam[1:], low, high)
        width = lam[1:] - lam[:-1]
        slope = (smooth[1:] - smooth[:-1]) / width

        def value(x):  # the linear interpolant of the cell at x
            return smooth[:-1] + slope * (x - lam[:-1])

        cell = np.where(b > a, 0.5 * (b - a) * (value(a) + value(b)), 0.0)
        integral = np.concatenate([[0.0], np.cumsum(cell)])
        inside = (lam >= low) & (lam <= high)
        return LogTable(self.x0, self.step, self.values - np.where(inside, smooth, 0.0),
                        self.cumulative - integral, support=self.support)

    def trimmed(self, fraction=None):
        """The table with the cells where the template stays below ``fraction`` of its
        largest absolute value set to exactly zero.

        Such cells (the far wings of a Gaussian line, ~1e-150 of its peak) carry
        nothing float32 or float64 can tell apart from zero in a fit, but a
        least-squares amplitude of ~1e150 would fit a pixel with them, and the
        columns of such a line would reach far beyond the line. Their integral
        is removed and the running integral is exactly flat across them.

        Parameters
        ----------
        fraction : float, optional
            Default `NEGLIGIBLE`.

        Returns
        -------
        table : `LogTable`
            ``self`` where no cell is that small.
        """
        fraction = NEGLIGIBLE if fraction is None else float(fraction)
        integral = np.diff(self.cumulative)
        # the linear piece of cell i starts at T_i with mean m_i: |T| <= |T_i| + 2 |m_i|
        size = np.abs(self.values[:-1]) + 2.0 * np.abs(integral / np.diff(self.wavelength))
        small = size <= fraction * size.max(initial=0.0)
        if not small.any() or small.all():
            return self
        cumulative = self.cumulative[0] + np.concatenate(
            [[0.0], np.cumsum(np.where(small, 0.0, integral))])
        # a node is zero where no cell beside it is kept
        left = np.concatenate([[True], small])
        right = np.concatenate([small, [True]])
        values = np.where(left & right, 0.0, self.values)
        return LogTable(self.x0, self.step, values, cumulative, support=self.support)

    def shift_average(self, shifts):
        """The mean of the template shifted by ``shifts`` nodes in ln(lambda): a box smoothing.

        The mean of a column over the redshifts ``z_k e^(o h)`` of a coarse
        step is the column of this table with shifts ``o h / step``
        (module notes); the running integral of a shifted copy is
        ``e^(o s) C(lambda e^(-o s))``, exact at the nodes.
        """
        shifts = np.asarray(shifts, dtype=np.int64)
        return self.smoothed(shifts, np.full(shifts.size, 1.0 / shifts.size))

    def smoothed(self, shifts, weights):
        """The weighted mean of copies shifted by ``shifts`` nodes in ln(lambda).

        ``T_s(lambda) = sum_o w_o T(lambda e^(-o s))``, whose running integral
        at node i is ``sum_o w_o e^(o s) C[i - o]`` (exact at the nodes); both
        are convolutions along the table, done by FFT. The ends of the table
        are extended with their end values.

        Parameters
        ----------
        shifts : ndarray of int
        weights : ndarray
            Summing to 1 for a smoothing.
        """
        from scipy.signal import fftconvolve

        shifts = np.asarray(shifts, dtype=np.int64)
        weights = np.asarray(weights, dtype=float)
        low, high = int(shifts.min()), int(shifts.max())
        kernel = np.zeros(high - low + 1)
        np.add.at(kernel, shifts - low, weights)
        lags = np.arange(low, high + 1)

        def convolve(values, factor):
            padded = np.concatenate([np.full(max(high, 0), values[0]), values,
                                     np.full(max(-low, 0), values[-1])])
            full = fftconvolve(padded, kernel * factor)
            start = max(high, 0) - low
            return full[start:start + values.size]

        values = convolve(self.values, 1.0)
        cumulative = convolve(self.cumulative, np.exp(lags * self.step))
        # where every shifted copy is zero (a line component away from its lines), the
        # smoothed table is exactly zero and its integral exactly constant, not FFT noise
        # (so that its columns are computed only where they can be non-zero)
        steps = np.diff(self.cumulative, append=self.cumulative[-1])
        changing = np.flatnonzero((self.values != 0) | (steps != 0))
        if changing.size and self.values[0] == 0 and self.values[-1] == 0:
            below, above = int(changing[0]) + low - 1, int(changing[-1]) + high + 1
            if 0 < below and above < values.size - 1:
                factor = np.sum(kernel * np.exp(lags * self.step))
                values[:below + 1] = 0.0
                values[above:] = 0.0
                cumulative[:below + 1] = self.cumulative[0] * factor
                cumulative[above:] = self.cumulative[-1] * factor
        return LogTable(self.x0, self.step, values, cumulative, support=self.support)

    def integral(self, wavelength):
        """The running integral C at vacuum rest wavelengths (Angstrom), any shape."""
        lam = np.asarray(wavelength, dtype=float)
        position = (np.log(lam) - self.x0) / self.step
        last = self.values.size - 1
        i = np.clip(np.floor(position).astype(np.int64), 0, last)
        delta = np.where(position < last, np.clip(lam - self.wavelength[i], 0.0, None), 0.0)
        out = self.cumulative[i] + delta * (self.values[i] + 0.5 * self._slope[i] * delta)
        return np.where(position < 0, 0.0, out)


class ColumnGenerator:
    """Columns of one rest-frame table on one observed grid and redshift grid, with the LSF.

    Parameters
    ----------
    table : `LogTable`
    edges : ndarray
        Vacuum pixel edges of the observed grid, padded by ``kernel``'s
        half-width on each side (:func:`observed_vacuum_edges`).
    z : ndarray
        The redshift grid. When it is uniform in ln(1 + z) with a step that
        is a whole number of table steps, the columns at grid indices
        (:meth:`at_indices`) are gathered at fixed offsets (fast path).
    kernel : ndarray (n_pixel, 2 h + 1) or None
        Line-spread weights of each observed pixel over its neighbours
        (:func:`muse_xcorr.templates.lsf.band_kernel`), or None.
    """

    def __init__(self, table, edges, z, kernel=None):
        self.table = table
        self.edges = np.asarray(edges, dtype=float)
        self.z = np.asarray(z, dtype=float)
        self.kernel = kernel
        self.half = 0 if kernel is None else (kernel.shape[1] - 1) // 2
        self.n_pixel = self.edges.size - 1 - 2 * self.half
        self._band = None if kernel is None else _band_matrix(kernel)
        self._widths = np.diff(self.edges)
        nonzero = np.flatnonzero(table.values)
        self.support = (table.wavelength[nonzero[0]], table.wavelength[nonzero[-1]]) \
            if nonzero.size else (np.inf, -np.inf)
        y = np.log1p(self.z)
        steps = np.diff(y) / table.step
        self._fast = None
        if steps.size and np.allclose(steps, np.round(steps[0]), rtol=0, atol=1e-6) and \
                round(steps[0]) >= 1:
            position = (np.log(self.edges) - y[0] - table.x0) / table.step
            first = np.floor(position).astype(np.int64)
            fraction = position - first
            self._fast = (first, int(round(steps[0])), np.expm1(fraction * table.step))
        self._active = None if self._fast is None else self._active_segments()
        self._runs = None if self._active is None else self._flat_separated_runs()

    def _active_segments(self):
        """The table segments where the running integral is not constant, or None.

        Outside the first and last of them, C is one constant below and one
        above, so a pixel whose both edges fall there gets exactly 0: the
        columns of a narrow component (an emission line of a composite) are
        computed over the few hundred pixels it reaches at each redshift, and
        are exactly zero elsewhere (:meth:`at_indices`). None where that does
        not hold exactly (the table's ends are not flat, or C is not exactly
        constant there).
        """
        terms = self.table._terms
        steep = np.flatnonzero((terms[1] != 0) | (terms[2] != 0))
        if steep.size == 0 or steep[0] == 0 or steep[-1] >= terms.shape[1] - 1:
            return None
        low, high = int(steep[0]), int(steep[-1])
        if not (np.all(terms[0][:low + 1] == terms[0][0]) and
                np.all(terms[0][high + 1:] == terms[0][-1])):
            return None
        return low, high

    def _flat_separated_runs(self):
        """The table cells ``(low, high)`` of each run of cells where the running integral
        is not constant, separated from the next by cells of one constant C."""
        terms = self.table._terms
        low, high = self._active
        steep = low + np.flatnonzero((terms[1][low:high + 1] != 0) |
                                     (terms[2][low:high + 1] != 0))
        # changes[j]: how many of the neighbouring pairs (i, i + 1), i < j, differ in C
        level = terms[0]
        changes = np.concatenate([[0], np.cumsum(level[1:] != level[:-1])])
        end, following = steep[:-1], steep[1:]
        # a split where the cells end + 1 .. following (up to the next steep one's start)
        # all share one C
        split = np.flatnonzero((following > end + 1) &
                               (changes[following] == changes[np.minimum(end + 1, following)]))
        starts = np.concatenate([steep[:1], following[split]])
        stops = np.concatenate([end[split], steep[-1:]])
        return [(int(a), int(b)) for a, b in zip(starts, stops)]

    def pixel_ranges(self, index):
        """The output pixels outside which each column is exactly zero, run by run.

        A run is a stretch of the rest-frame table that is not zero; a
        component with several lines far apart has several.

        Parameters
        ----------
        index : array_like of int
            Grid indices.

        Returns
        -------
        ranges : list of (start, stop), or None
            For each run, arrays (the shape of ``index``) of the first output
            pixel it reaches and one past the last (start = stop: none).
            None where that is not known exactly: the columns are not
            generated at fixed offsets (a non-uniform grid) or the table's
            ends are not flat (see `_active_segments`).
        """
        if self._runs is None:
            return None
        k = np.asarray(index, dtype=np.int64)
        ranges = []
        for run in self._runs:
            start, stop = self._pixel_bounds(k, run)
            ranges.append((start, np.maximum(stop, start)))
        return ranges

    def pixel_extent(self, index):
        """:meth:`pixel_ranges` of all runs together: for each column at grid indices
        ``index``, the first output pixel any run reaches and one past the last, as
        arrays (start, stop) of the shape of ``index`` (start = stop = 0 where the
        column is zero), or None where :meth:`pixel_ranges` is None."""
        ranges = self.pixel_ranges(index)
        if ranges is None:
            return None
        shape = np.shape(index)
        start = np.full(shape, self.n_pixel, dtype=np.int64)
        stop = np.zeros(shape, dtype=np.int64)
        for run_start, run_stop in ranges:
            reached = run_stop > run_start
            start = np.where(reached, np.minimum(start, run_start), start)
            stop = np.where(reached, np.maximum(stop, run_stop), stop)
        none = stop <= start
        return np.where(none, 0, start), np.where(none, 0, stop)

    def _pixel_bounds(self, k, cells):
        """First output pixel and one past the last that table cells ``(low, high)`` reach
        in the columns at indices ``k`` (the stop may fall below the start where they are
        off the grid)."""
        first, stride, _ = self._fast
        low, high = cells
        n_raw = first.size - 1
        # raw pixel j has edges j, j + 1, at table node first[e] - k stride
        j_low = np.maximum(np.searchsorted(first, low + k * stride, side="left") - 1, 0)
        j_high = np.minimum(np.searchsorted(first, high + k * stride, side="right") - 1,
                            n_raw - 1)
        # an output pixel o spreads raw pixels o .. o + 2 half
        return np.maximum(j_low - 2 * self.half, 0), np.minimum(j_high, self.n_pixel - 1) + 1

    @property
    def stride(self):
        """Table steps per grid step on the fast path (a uniform grid), else None."""
        return None if self._fast is None else self._fast[1]

    def at_indices(self, index, dtype=np.float64, out=None):
        """The columns at grid indices ``index``, one row per index: (len(index), n_pixel).

        ``out``: an array of that shape and ``dtype`` to write them into.
        """
        index = np.atleast_1d(np.asarray(index, dtype=np.int64))
        if self._fast is None:
            return self.at_redshifts(self.z[index], dtype, out=out)
        out = self._output(out, index.size, dtype)
        step = self._chunk_step()

        def chunk(start):
            # a narrow component: its columns computed over the pixels it reaches, in
            # larger chunks (their temporaries are small); else _CHUNK columns at a time
            k = index[start:start + step]
            reached = self._narrow_pixels(k)
            if reached is not None:
                out[start:start + k.size] = 0.0
                for low, high in reached:
                    out[start:start + k.size, low:high] = self._columns_over(k, low, high)
                return
            for first_row in range(start, start + k.size, _CHUNK):
                rows = slice(first_row, min(first_row + _CHUNK, start + k.size))
                out[rows] = self._columns_over(index[rows], 0, self.n_pixel)

        _in_threads(chunk, range(0, index.size, step))
        return out

    def compact_at_indices(self, index):
        """The float64 columns at grid indices ``index``, over the pixels they reach only.

        The columns of :meth:`at_indices`, exactly, in pieces that leave out
        the pixels where they are exactly zero. Each piece ``(start, values)``
        holds column ``i`` on the output pixels ``start[i]:start[i] + width``
        (``values`` of shape (len(index), width)); the pieces of a column do
        not overlap and it is 0 outside them. A narrow component (the
        emission lines of a composite) gets a piece per run of lines far apart
        (:meth:`pixel_ranges`), each a few dozen pixels wide instead of the
        thousands of the grid; a template that reaches most of the grid, or a
        non-uniform grid, one piece of all pixels (``start`` 0).

        Parameters
        ----------
        index : array_like of int
            The grid indices of the columns, in any order.

        Returns
        -------
        pieces : list of (start, values)
            ``start`` (len(index),) of int64, ``values`` (len(index), width) of
            float64.
        """
        index = np.atleast_1d(np.asarray(index, dtype=np.int64))
        windows = None if self._runs is None or index.size == 0 else self._piece_windows(index)
        if windows is None:
            return [(np.zeros(index.size, np.int64), self.at_indices(index))]
        pieces = [(start, np.empty((index.size, width))) for start, width, _ in windows]
        # columns per thread: ~_PIECE_VALUES values of the pieces (small calls in one)
        step = max(4 * _CHUNK, _PIECE_VALUES // sum(width for _, width, _ in windows))

        def chunk(first):
            rows = slice(first, first + step)
            for (start, width, reached), (_, values) in zip(windows, pieces):
                values[rows] = self._windowed_columns(index[rows], start[rows], width)
                # a run that misses the grid at a redshift: its window may overlap
                # another's, and holds nothing of its own
                values[rows][~reached[rows]] = 0.0

        _in_threads(chunk, range(0, index.size, step))
        return pieces

    def _piece_windows(self, index):
        """The windows ``(start, width, reached)`` of :meth:`compact_at_indices`: one per
        run where those that reach the grid do not overlap, else one of all runs, or None
        where that is over half the grid (``reached``: the run reaches the grid)."""
        def windows(bounds):
            out = []
            for low, high in bounds:
                width = max(1, int(np.max(high - low)))
                out.append((np.clip(low, 0, self.n_pixel - width), width, high > low))
            return out

        per_run = windows(self._pixel_bounds(index, run) for run in self._runs)
        apart = all(np.all(~(reached & reached_next) | (start + width <= start_next))
                    for number, (start, width, reached) in enumerate(per_run)
                    for start_next, _, reached_next in per_run[number + 1:])
        if apart and sum(width for _, width, _ in per_run) <= self.n_pixel // 2:
            return per_run
        whole = windows([self._pixel_bounds(index, self._active)])
        return whole if whole[0][1] <= self.n_pixel // 2 else None

    def _chunk_step(self):
        """Columns per chunk of :meth:`at_indices`: a narrow component's as many
        redshifts as move it by ~0.0064 in ln(lambda) (~36 MUSE pixels; 64 fine steps
        of 1e-4), at least _CHUNK; else _CHUNK."""
        if self._active is None:
            return _CHUNK
        return int(np.clip(0.0064 / (self._fast[1] * self.table.step), _CHUNK, 4 * _CHUNK))

    def _narrow_pixels(self, k):
        """The output pixels outside which the columns at grid indices ``k`` are exactly
        zero, as intervals ``(low, high)`` (a run's, or those of runs that meet, merged),
        where they are at most half of the grid together; else None.

        Outside its runs (`_flat_separated_runs`) the running integral C is
        constant, so a pixel whose both edges fall there gets exactly 0: the
        columns of a narrow component (the emission lines of a composite) are
        computed over the few dozen pixels of each line, and are exactly zero
        elsewhere. None also where that does not hold exactly (see
        `_active_segments`).
        """
        if self._runs is None:
            return None
        ends = np.array([k.min(), k.max()])
        reached = []
        for run in self._runs:
            start, stop = self._pixel_bounds(ends, run)
            low, high = int(start[0]), int(stop[1])
            if high <= low:
                continue
            if reached and low <= reached[-1][1]:
                reached[-1] = (reached[-1][0], max(reached[-1][1], high))
            else:
                reached.append((low, high))
        if sum(high - low for low, high in reached) > self.n_pixel // 2:
            return None
        return reached

    def _windowed_columns(self, k, start, width):
        """Output pixels ``start[i]:start[i] + width`` of the float64 column at grid index
        ``k[i]``, for each i: the arithmetic of `_columns_over` on each one's pixels."""
        first, stride, c = self._fast
        terms = self.table._terms
        edges = start[:, None] + np.arange(width + 2 * self.half + 1)
        node = first[edges] - (k * stride)[:, None]
        np.clip(node, 0, terms.shape[1] - 1, out=node)
        fraction = c[edges]
        integral = np.take(terms[2], node)
        integral *= fraction
        integral += np.take(terms[1], node)
        integral *= fraction
        integral += np.take(terms[0], node)
        part = np.diff(integral, axis=1)
        part *= 1.0 / self._widths[edges[:, :-1]]
        part *= (1.0 + self.z[k])[:, None]
        if self.kernel is None:
            return part
        kernel = self.kernel[start[:, None] + np.arange(width)]    # (len(k), width, taps)
        out = np.zeros((k.size, width))
        for tap in range(2 * self.half + 1):
            out += kernel[..., tap] * part[:, tap:tap + width]
        return out

    def _columns_over(self, k, low, high):
        """Output pixels ``low:high`` of the float64 columns at grid indices ``k`` (the
        fast path): all pixels through the band product, a part through its taps."""
        first, stride, c = self._fast
        terms = self.table._terms
        # edges of the raw (padded) pixels that the output pixels low:high spread
        edges = slice(low, high + 2 * self.half + 1)
        node = first[None, edges] - (k * stride)[:, None]
        np.clip(node, 0, terms.shape[1] - 1, out=node)
        integral = np.take(terms[2], node)
        integral *= c[edges]
        integral += np.take(terms[1], node)
        integral *= c[edges]
        integral += np.take(terms[0], node)
        part = np.diff(integral, axis=1)
        part *= 1.0 / self._widths[low:high + 2 * self.half]
        part *= (1.0 + self.z[k])[:, None]
        if (low, high) == (0, self.n_pixel):
            return self._spread(part)
        return self._spread_part(part, low, high)

    def at_redshifts(self, z, dtype=np.float64, out=None):
        """The columns at any redshifts ``z``, one row per redshift: (len(z), n_pixel).

        ``out``: an array of that shape and ``dtype`` to write them into.
        """
        z = np.atleast_1d(np.asarray(z, dtype=float))
        out = self._output(out, z.size, dtype)

        def chunk(start):
            scale = 1.0 + z[start:start + _CHUNK, None]
            integral = self.table.integral(self.edges[None, :] / scale)
            out[start:start + _CHUNK] = self._spread(np.diff(integral, axis=1) *
                                                     (scale / self._widths))

        _in_threads(chunk, range(0, z.size, _CHUNK))
        return out

    def _output(self, out, n, dtype):
        """``out`` checked to be (n, n_pixel) of ``dtype``, or a new such array."""
        if out is None:
            return np.empty((n, self.n_pixel), dtype=dtype)
        if out.shape != (n, self.n_pixel) or out.dtype != np.dtype(dtype):
            raise ValueError(f"out must be {(n, self.n_pixel)} of {np.dtype(dtype)}, got "
                             f"{out.shape} of {out.dtype}")
        return out

    def _spread_part(self, rows, low, high):
        """Output pixels low:high of the line spread of raw pixels low:high + 2 half."""
        if self.kernel is None:
            return rows
        out = np.zeros((rows.shape[0], high - low))
        for tap in range(2 * self.half + 1):
            out += self.kernel[low:high, tap] * rows[:, tap:tap + high - low]
        return out

    def _spread(self, rows):
        # (rows @ B^T): the sparse product is 1.5x the sliding-window einsum on 2 cores
        return rows if self._band is None else np.asarray((self._band @ rows.T).T)

    def covers(self, z):
        """Whether the template's support reaches into the observed grid at each z."""
        z = np.asarray(z, dtype=float)
        low, high = self.support
        return (low * (1 + z) < self.edges[-1 - self.half]) & \
            (high * (1 + z) > self.edges[self.half])


def _in_threads(function, starts):
    """``function(start)`` for every start, on up to :data:`THREADS` threads.

    NumPy releases the GIL in the gathers and arithmetic of a chunk, so the
    chunks run in parallel; each writes its own rows of the output. The
    threads are those of one pool kept for the process (:func:`_pool`):
    starting threads for every call was most of the time of the small calls
    of the search (a composite's few hundred narrow columns).
    """
    starts = list(starts)
    if THREADS > 1 and len(starts) > 1:
        list(_pool().map(function, starts))
    else:
        for start in starts:
            function(start)


_POOL = {}


def _pool():
    """The process's pool of :data:`THREADS` threads (a new one after a fork: a child
    process does not inherit its parent's threads)."""
    pid = os.getpid()
    if _POOL.get("pid") != pid:
        _POOL.update(pid=pid, pool=ThreadPoolExecutor(THREADS, thread_name_prefix="muse_xcorr"))
    return _POOL["pool"]


def _band_matrix(kernel):
    """The band kernel as a sparse matrix B: padded rows r (n_pixel + 2 h) -> B r (n_pixel).

    ``(B r)_j = sum_o kernel[j, h + o] r_{j + h + o}``: pixel ``j`` of the
    output is pixel ``j + h`` of the padded row, spread over its neighbours.
    """
    from scipy import sparse

    n_pixel, width = kernel.shape
    rows = np.repeat(np.arange(n_pixel), width)
    columns = (np.arange(n_pixel)[:, None] + np.arange(width)[None, :]).ravel()
    return sparse.csr_matrix((np.asarray(kernel, dtype=float).ravel(), (rows, columns)),
                             shape=(n_pixel, n_pixel + width - 1))


def log_step_for(dlnz):
    """The node spacing of a `LogTable` for a redshift step: dlnz / m, at most TABLE_STEP_KMS."""
    limit = TABLE_STEP_KMS / C_KMS
    if not dlnz > 0:
        return limit
    return dlnz / max(int(np.ceil(dlnz / limit - 1e-9)), 1)


def generator_for(template, wavelength, medium, z, *, continuum=None, lsf=None,
                  featureless="raise"):
    """The `ColumnGenerator` of one template on an observed grid for redshifts ``z``.

    The rest-frame table covers every redshift of ``z``; the continuum (a
    `~muse_xcorr.templates.continuum.ContinuumSubtraction`) is subtracted
    from it, and the line spread (a resolution specification,
    :func:`~muse_xcorr.templates.lsf.lsf_fwhm`) applied to the columns.

    Parameters
    ----------
    template : `~muse_xcorr.Template`
    wavelength : `~astropy.units.Quantity`
        Observed pixel centres.
    medium : {"air", "vacuum"}
        Their medium.
    z : array_like
        The redshifts (a grid uniform in ln(1 + z) gets the fast path).
    continuum, lsf : optional
    featureless : {"raise", "zero"}
        When nothing of the template is left after continuum subtraction over
        the rest range the redshifts reach: raise
        `~muse_xcorr.templates.continuum.NothingLeftError`, or give a
        generator of zero columns (a composite's component that the data
        never see).

    Returns
    -------
    generator : `ColumnGenerator`
    """
    from .lsf import band_kernel

    z = np.atleast_1d(np.asarray(z, dtype=float))
    kernel = None if lsf is None else band_kernel(wavelength, lsf)
    pad = 0 if kernel is None else (kernel.shape[1] - 1) // 2
    edges = observed_vacuum_edges(wavelength, medium, pad=pad)
    y = np.log1p(z)
    steps = np.diff(y)
    step = log_step_for(float(np.min(steps)) if steps.size else 0.0)
    x_range = (np.log(edges[0]) - y.max(), np.log(edges[-1]) - y.min())
    table = LogTable.from_template(template, x_range, step)
    if continuum is not None:
        try:
            table = continuum.subtract_from_table(table)
        except NothingLeftError:
            if featureless != "zero":
                raise
            table = table.minus(table.values)
    return ColumnGenerator(table.trimmed(), edges, z, kernel)
