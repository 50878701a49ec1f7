"""The search for candidate redshifts: seeds on the device, candidates in float64.

For one batch of spectra and one prepared template:

1. **Seeds** (:class:`SearchGrid`, on the device, hot-path dtype): the
   template's score over its search grid -- f for a single template, the
   non-negative composite sqrt(sum_g max(f_g, 0)^2) for a composite (an
   upper bound of its bounded fit) -- and its best local maxima. The search
   grid is the redshift grid itself (``search="full"``), or every
   ``factor``-th redshift with the template box-averaged over each coarse
   step (``"coarse-to-fine"``), so that a peak narrower than the step still
   shows.
2. **Windows** (:func:`window_best`): the score with the bounded fit on the
   fine grid, in windows around given centres (the coarse seeds, or the
   redshifts another line identification implies), and the best sample of
   each window, with an upper bound of the f^2 its refinement can reach
   (``explained``: the components' ``max(a, 0)^2 / b`` summed, exact where
   their columns share no pixel, plus :data:`BOUND_TOLERANCE`), so that
   candidates which cannot enter the list are never refined
   (:class:`~muse_xcorr.correlate.candidates.PendingPool`).
3. **Refinement** (:func:`refine`, float64, :func:`~muse_xcorr.correlate.model.evaluate`):
   the best sample confirmed as a local maximum of the exact f (moved to a
   better neighbour if the hot path picked a wrong one), the redshift
   refined by the parabola through it and its neighbours
   (:func:`~muse_xcorr.statistics.refine_on_grid`), with its chi2, amplitudes
   and sigma_f.
"""
import numpy as np

from ..backend import _tensorflow as backend
from ..statistics import refine_on_grid
from ..templates.composite import fit_amplitudes
from .model import evaluate

__all__ = ["SearchGrid", "window_best", "refine", "MAX_BLOCK_COLUMNS", "MAX_MOVES",
           "BOUND_TOLERANCE"]

#: Columns per device block of a search grid (bounds the (spectra x columns) products).
MAX_BLOCK_COLUMNS = 16384
#: Steps :func:`refine` moves a candidate, at most, to a better neighbour.
MAX_MOVES = 4
#: Added to the bound of f^2 from the hot-path sums of :func:`window_best`, by dtype:
#: far above their rounding (measured in ``correlate/tests/test_pending.py``). TF32
#: products (:func:`~muse_xcorr.backend._tensorflow.allow_tf32`) give no bound.
BOUND_TOLERANCE = {"float32": 1e-4, "float64": 1e-10}


class SearchGrid:
    """A template's columns on its search grid, held by the backend in blocks.

    Parameters
    ----------
    prepared : `~muse_xcorr.correlate.model.PreparedTemplate`
    factor : int
        1 for the full grid; else the coarse step in fine steps.
    dtype : str
        Hot-path dtype.
    """

    def __init__(self, prepared, factor, dtype):
        self.factor = int(factor)
        self.n_components = prepared.n_components
        if self.factor == 1:
            low, high = prepared.index_range
            generators, self.centres = prepared.fine, np.arange(low, high + 1)
        else:
            generators, self.centres = prepared.coarse(self.factor)
        n = self.centres.size
        per_block = max(MAX_BLOCK_COLUMNS // self.n_components, 3)
        self.blocks = []
        # the coarse generators are on the coarse grid itself; the fine ones on the fine grid
        offset = self.centres[0] if self.factor == 1 else 0
        for low in range(0, n, per_block):
            # one column of halo on each side, so that local maxima at block edges are right
            first, stop = max(low - 1, 0), min(low + per_block + 1, n)
            index = np.arange(first, stop) + offset
            self.blocks.append((first, low, min(low + per_block, n),
                                backend.Columns(_aligned_columns(generators, index, dtype),
                                                dtype, share=True)))

    @property
    def nbytes(self):
        return sum(block[3].nbytes for block in self.blocks)

    def seeds(self, data, weights, pattern_of_row, n_seeds):
        """The best ``n_seeds`` local maxima of the score per spectrum, on the fine grid.

        Returns
        -------
        index : ndarray (n, n_seeds) of int
            Fine grid indices (-1: none).
        score : ndarray (n, n_seeds)
        extrema : ndarray (n, 2)
            The largest and the smallest score over the grid.
        """
        found_index, found_score, extrema = [], [], None
        for first, low, stop, columns in self.blocks:
            index, score, ext = backend.entry_seeds(data, weights, pattern_of_row, columns,
                                                    self.n_components, n_seeds)
            position = index + first
            inside = (index >= 0) & (position >= low) & (position < stop)
            found_index.append(np.where(inside, position, -1))
            found_score.append(np.where(inside, score, -np.inf))
            extrema = ext if extrema is None else np.stack(
                [np.maximum(extrema[:, 0], ext[:, 0]), np.minimum(extrema[:, 1], ext[:, 1])], 1)
        index = np.concatenate(found_index, axis=1)
        score = np.concatenate(found_score, axis=1)
        order = np.argsort(-score, axis=1, kind="stable")[:, :n_seeds]
        index = np.take_along_axis(index, order, axis=1)
        score = np.take_along_axis(score, order, axis=1)
        index = np.where(index >= 0, self.centres[np.maximum(index, 0)], -1)
        return index, score, extrema


def _aligned_columns(generators, index, dtype):
    """The generators' columns at grid indices ``index``, generator-major, in one array
    that TensorFlow can take without a copy (`~muse_xcorr.backend._tensorflow.constant`)."""
    rows = backend.empty_aligned((len(generators) * index.size, generators[0].n_pixel), dtype)
    for g, generator in enumerate(generators):
        generator.at_indices(index, np.dtype(dtype),
                             out=rows[g * index.size:(g + 1) * index.size])
    return rows


def window_best(search_arrays, prepared, centres, half, dtype, *, reach=MAX_MOVES):
    """The best fine-grid sample of the bounded score in windows around ``centres``.

    Parameters
    ----------
    search_arrays : tuple
        ``(data, weights, pattern_of_row)`` of the batch in the hot-path
        dtype (:meth:`~muse_xcorr.correlate.model.WorkingBatch.search_arrays`),
        data and weights as backend tensors.
    prepared : `~muse_xcorr.correlate.model.PreparedTemplate`
    centres : ndarray (n, s) of int
        Fine grid indices (-1: no window).
    half : int
        Half-width of each window in fine steps.
    dtype : str
    reach : int
        The steps :func:`refine` may move from the best sample (for ``explained``).

    Returns
    -------
    index : ndarray (n, s) of int
        The best sample of each window (-1 where there is no window).
    score : ndarray (n, s)
        Its score (-inf where none).
    explained : ndarray (n, s)
        An upper bound of f^2 of the fit that :func:`refine` will find from
        ``index`` (+inf where there is none). With inverse-variance weights
        the candidate's chi2 is then at least ``norm2_w (1 - explained)``
        (:meth:`~muse_xcorr.correlate.candidates.PendingPool.add`).
    """
    data, weights, pattern_of_row = search_arrays
    low, high = prepared.index_range
    offsets = np.arange(-half, half + 1)
    has = (centres >= 0) & prepared.in_range(centres)
    window = np.clip(np.where(has, centres, low)[..., None] + offsets, low, high)
    unique = np.unique(window[has])
    if unique.size == 0:
        return (np.full(centres.shape, -1), np.full(centres.shape, -np.inf),
                np.full(centres.shape, np.inf))
    position = np.where(has[..., None], np.searchsorted(unique, window), -1)
    a = np.zeros(window.shape + (prepared.n_components,))
    b = np.zeros_like(a)
    for g, generator in enumerate(prepared.fine):
        rows = backend.constant(_aligned_columns([generator], unique, dtype), dtype, share=True)
        a[..., g], b[..., g] = backend.window_sums(data, weights, pattern_of_row, rows,
                                                   position, extent=generator.pixel_extent(unique))
    share = _explained_share(a, b, dtype)
    tiny = backend.norm_floor(dtype)
    b = np.where(np.isfinite(b) & (b > tiny), b, 0.0)
    a = np.where(np.isfinite(a), a, 0.0)
    if prepared.n_components == 1:
        with np.errstate(divide="ignore", invalid="ignore"):
            score = np.where(b[..., 0] > 0, a[..., 0] / np.sqrt(b[..., 0]), -np.inf)
    else:
        score = _composite_scores(a, b, prepared, has)
    score = np.where(has[..., None], score, -np.inf)
    best = np.argmax(score, axis=-1)
    index = np.take_along_axis(window, best[..., None], axis=-1)[..., 0]
    value = np.take_along_axis(score, best[..., None], axis=-1)[..., 0]
    found = has & np.isfinite(value)
    # disjointness once per grid index, not per window sample (absent windows: masked)
    disjoint = prepared.disjoint_components(unique)[np.maximum(position, 0)]
    explained = _window_bound(np.where(disjoint, share, np.inf), prepared, centres, index,
                              half, reach)
    return (np.where(found, index, -1), np.where(has, value, -np.inf),
            np.where(found, explained, np.inf))


def _composite_scores(a, b, prepared, has):
    """The bounded fit's score of each window sample that can be its window's best.

    The score ``sum_g A_g a_g / sqrt(sum_g A_g^2 b_g)`` of non-negative
    amplitudes is at most ``sqrt(sum_g max(a_g, 0)^2 / b_g)`` (Cauchy-Schwarz),
    so a sample whose bound is below the score of another of its window
    cannot be the window's best. The sample of largest bound is fitted first;
    then only the samples whose bound reaches its score (less a relative
    1e-9, far above the rounding of either) are fitted, typically a third.
    Where the others are -inf, the window's best sample and its score are
    exactly those of fitting every sample.

    Parameters
    ----------
    a, b : ndarray (n, s, w, K)
        The components' sums at the window samples (finite; ``b = 0`` where
        a component has none).
    prepared : `~muse_xcorr.correlate.model.PreparedTemplate`
    has : ndarray of bool (n, s)
        The windows that exist (the others are not fitted).

    Returns
    -------
    score : ndarray (n, s, w)
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(b > 0, np.maximum(a, 0.0) ** 2 / np.where(b > 0, b, 1.0), 0.0)
    bound = np.sqrt(np.sum(terms, axis=-1))
    first = np.argmax(bound, axis=-1)[..., None, None]
    leading = _fitted_score(np.take_along_axis(a, first, axis=-2)[..., 0, :],
                            np.take_along_axis(b, first, axis=-2)[..., 0, :], prepared)
    reach = leading - 1e-9 * np.abs(leading)
    fit = has[..., None] & (bound >= reach[..., None])
    score = np.full(bound.shape, -np.inf)
    score[fit] = _fitted_score(a[fit], b[fit], prepared)
    return score


def _fitted_score(a, b, prepared):
    """``<d, m> / |m|`` of the bounded fit of sums ``a``, ``b`` (..., K); -inf where no
    component has a sum, 0 where the fit is empty."""
    amplitude = fit_amplitudes(a, b, prepared.lower, prepared.upper)
    inner = np.sum(amplitude * a, axis=-1)
    model2 = np.sum(amplitude * amplitude * b, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        score = np.where(model2 > 0, inner / np.sqrt(model2), 0.0)
    return np.where(np.any(b > 0, axis=-1), score, -np.inf)


def _explained_share(a, b, dtype):
    """Each window sample's bound of f^2: the components' ``max(a, 0)^2 / b`` summed (+inf
    where a sum is not finite, or ``b`` too small for the hot-path dtype to tell).

    With the components' columns disjoint, the amplitudes >= 0 that fit the
    data best explain exactly ``sum_g max(a_g, 0)^2 / b_g`` of ``||d||^2``
    (``a``, ``b`` in the scaled search metric); the bounded fit of a
    composite (non-negative amplitudes in given ratios) and the chi2 of a
    single template (:func:`~muse_xcorr.statistics.chi2_from_f`, max(f, 0))
    no more. :data:`BOUND_TOLERANCE` is added for the rounding of the
    hot-path sums.
    """
    tiny = backend.norm_floor(dtype)
    usable = np.isfinite(a) & np.isfinite(b) & ((b > tiny) | ((a == 0) & (b == 0)))
    positive = np.maximum(a, 0.0)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        terms = np.where(b > tiny, positive * positive / np.where(b > tiny, b, 1.0), 0.0)
    tolerance = np.inf if backend.tf32_enabled() else BOUND_TOLERANCE[np.dtype(dtype).name]
    return np.where(np.all(usable, axis=-1), np.sum(terms, axis=-1) + tolerance, np.inf)


def _window_bound(share, prepared, centres, index, half, reach):
    """The largest share over each window, where it bounds every sample that `refine`
    can reach from ``index`` (``reach`` steps; +inf elsewhere: bounding those too
    would cost more sums than the refinements it saves)."""
    low, high = prepared.index_range
    # refine moves at most `reach` steps; the window (clipped to the template's
    # range, beyond which it cannot move) must hold all of them
    below = (index - reach >= centres - half) | (centres - half <= low)
    above = (index + reach <= centres + half) | (centres + half >= high)
    return np.where(below & above, np.max(share, axis=-1), np.inf)


def refine(work, prepared, index, *, correction=True, max_moves=MAX_MOVES):
    """Candidates in float64 at fine grid indices: confirmed, refined, with their fit.

    Parameters
    ----------
    work : `~muse_xcorr.correlate.model.WorkingBatch`
    prepared : `~muse_xcorr.correlate.model.PreparedTemplate`
    index : ndarray (n, s) of int
        Starting grid indices (-1: no candidate).
    correction : bool
        Second-order correction of sigma_f.
    max_moves : int
        Steps the index may move to a better neighbour.

    Returns
    -------
    found : dict of ndarray (n, s)
        ``index``, ``z`` (refined), ``f``, ``chi2``, ``variance``,
        ``failed``, ``at_edge``, ``n_active``, ``kappa`` and ``amplitudes`` (n, s, K);
        NaN / -1 where there is no candidate.
    """
    n, s = index.shape
    low, high = prepared.index_range
    has = (index >= 0) & prepared.in_range(index)
    k = np.where(has, index, low).astype(np.int64)
    stencil = np.array([-1, 0, 1])
    ev = _stencil(work, prepared, k, correction)
    for _ in range(max_moves):
        around = np.clip(k[..., None] + stencil, low, high)
        f = np.where(around == k[..., None], -np.inf, ev.f)  # a clipped copy of the centre
        f[..., 1] = ev.f[..., 1]
        step = np.argmax(np.nan_to_num(f, nan=-np.inf), axis=-1) - 1
        moved = (step != 0) & has
        if not moved.any():
            break
        rows, slots = np.nonzero(moved)
        k[rows, slots] += step[rows, slots]
        again = _stencil(work.subset(rows), prepared, k[rows, slots][:, None], correction)
        for name in ("f", "chi2", "variance", "failed", "n_active", "amplitudes", "kappa"):
            getattr(ev, name)[rows, slots] = getattr(again, name)[:, 0]
    z, at_edge = refine_on_grid(prepared.z, k, np.nan_to_num(ev.f, nan=0.0))
    at_edge |= (k == low) | (k == high)  # the edge of the template's range
    centre = 1
    found = {"index": np.where(has, k, -1), "z": np.where(has, z, np.nan),
             "f": np.where(has, ev.f[..., centre], np.nan),
             "chi2": np.where(has, ev.chi2[..., centre], np.nan),
             "variance": np.where(has, ev.variance[..., centre], np.nan),
             "failed": has & ev.failed[..., centre], "at_edge": has & at_edge,
             "n_active": np.where(has, ev.n_active[..., centre], 0),
             "kappa": np.where(has, ev.kappa[..., centre], np.nan),
             "amplitudes": np.where(has[..., None], ev.amplitudes[..., centre, :], np.nan)}
    return found


class _Stencil:
    """`evaluate` results reshaped to (n, s, 3)."""


def _stencil(work, prepared, k, correction):
    """`evaluate` at k - 1, k, k + 1 for every (spectrum, slot): arrays (n, s, 3)."""
    n, s = k.shape
    low, high = prepared.index_range
    around = np.clip(k[..., None] + np.array([-1, 0, 1]), low, high)
    ev = evaluate(work, prepared, around.reshape(n, s * 3), correction=correction)
    out = _Stencil()
    out.f = ev.f.reshape(n, s, 3)
    out.chi2 = ev.chi2.reshape(n, s, 3)
    out.variance = ev.variance.reshape(n, s, 3)
    out.failed = ev.failed.reshape(n, s, 3)
    out.n_active = ev.n_active.reshape(n, s, 3)
    out.kappa = ev.kappa.reshape(n, s, 3)
    out.amplitudes = ev.amplitudes.reshape(n, s, 3, -1)
    return out
