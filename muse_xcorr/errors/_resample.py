"""Recompute z_best for simulated copies of each spectrum (Monte Carlo, bootstrap).

For each spectrum, n_samples copies x* are simulated by the calling
estimator's sampler around the spectrum's fitted model, and z* of each copy
is found in two windows of grid samples: one around the best candidate
(with its template) and one around the second candidate (with its own
template; the best candidate again where there is none). In every window
the copy is scored like the data were -- its numerators <x*, T_g(z_k)> fitted
by the window's template (a composite refits its bounded amplitudes for
every copy) -- and z* is the argmax over both windows, refined by the
parabola through its neighbours like z_best itself
(:func:`~muse_xcorr.statistics.refine_on_grid`).

The sampler returns the numerators directly: the Monte Carlo draws them
from their exact joint Gaussian distribution, the bootstrap computes them
from rebuilt spectra. A copy whose argmax lies on the edge of a window may
have its true peak outside it: where more than `EDGE_FRACTION` of the copies
do, the window was too small for the noise and the spaxel is flagged
ZERR_UNRELIABLE.
"""
import numpy as np

from ..correlate.model import copy_scores, gather_columns
from ..statistics import refine_on_grid
from . import MIN_SAMPLES
from ._window import CHUNK_ELEMENTS, Estimate, chunks, window_index

__all__ = ["resampled_sigma", "EDGE_FRACTION", "DEFAULT_WINDOW", "RESAMPLING_PARAMETERS"]

#: The numpydoc parameters every resampling estimator shares (for ``format_doc``).
RESAMPLING_PARAMETERS = """result : `~muse_xcorr.Redshift`
    window : int
        Half-width in grid steps of the two search windows.
    n_samples : int
        Copies per spectrum (at least 10).
    seed : int or None
        The same seed gives the same result."""

#: Default half-width (grid steps) of the two search windows.
DEFAULT_WINDOW = 10
#: Fraction of copies peaking on a window edge above which sigma_z is flagged unreliable.
EDGE_FRACTION = 0.05


class WindowPlan:
    """The two windows of every spectrum, with each template's columns generated once.

    The windows of many spectra overlap (spectra at similar redshifts, and
    one second candidate shared by many), so the columns of a template are
    generated for the union of its grid indices over all ``rows`` when that
    union fits in the memory bound; templates whose union does not are
    generated chunk by chunk (see `columns`).

    Parameters
    ----------
    result : `~muse_xcorr.Redshift`
    rows : ndarray of int
        Flat indices of the spectra (with a peak).
    window : int
        Half-width in grid steps of each window.
    budget : int
        Float64 elements the shared columns may hold (default the bound of
        one chunk of spectra, :data:`~muse_xcorr.errors._window.CHUNK_ELEMENTS`:
        the estimators hold at most about twice that).

    Attributes
    ----------
    index : ndarray (n, 2, w)
        Grid indices of both windows.
    template : ndarray (n, 2)
        The template of each window.
    clipped : ndarray of bool (n,)
    """

    def __init__(self, result, rows, window, budget=CHUNK_ELEMENTS):
        correlator = result.correlator
        self.prepared = correlator.prepare(result.data)
        self.n_pixels = result.data.n_pixels
        best = result.flat("best_index")[rows]
        template = np.stack([result.flat("template_index")[rows],
                             result.flat_candidates("template")[rows, 1]
                             if result.n_candidates > 1 else
                             np.full(rows.size, -1)], axis=1).astype(np.int64)
        second = result.flat_candidates("index")[rows, 1] if result.n_candidates > 1 \
            else np.full(rows.size, -1)
        has_second = (second >= 0) & (template[:, 1] >= 0)
        template[:, 1] = np.where(has_second, template[:, 1], template[:, 0])
        second = np.where(has_second, second, best)
        index_best, self.clipped = window_index(best, window, result.z.size)
        index_second, _ = window_index(second, window, result.z.size)
        self.index = np.stack([index_best, index_second], axis=1)
        self.template = template
        self.shape = (2, index_best.shape[1], correlator.max_components)
        self._shared = {}
        for t in np.unique(template):
            unique = np.unique(self.index[template == t])
            size = unique.size * self.prepared[t].n_components * self.n_pixels
            if size <= budget:
                budget -= size
                self._shared[t] = (unique, self.prepared[t].columns(unique))

    def columns(self, template, index):
        """The columns of ``template`` at grid indices ``index`` (m, w): (K, m, w, n_pixel)."""
        if template in self._shared:
            unique, columns = self._shared[template]
            return columns[:, np.searchsorted(unique, index)]
        return gather_columns(self.prepared[template], index)


class WindowVectors:
    """The template columns of some spectra's two windows, as one stack of vectors.

    Attributes
    ----------
    vectors : ndarray (n, 2 w K, n_pixel)
        Slot-major, then window sample, then component; zero for a
        component a template does not have.
    index : ndarray (n, 2, w)
        Grid indices of both windows.
    template : ndarray (n, 2)
        The template of each window.
    clipped : ndarray of bool (n,)
    """

    def __init__(self, plan, part):
        """The vectors of the spectra at positions ``part`` of ``plan``'s rows."""
        self.index = plan.index[part]
        self.template = plan.template[part]
        self.clipped = plan.clipped[part]
        self.shape = plan.shape
        self.prepared = plan.prepared
        n = part.size
        self.vectors = np.zeros((n,) + self.shape + (plan.n_pixels,))
        for slot in range(2):
            for t in np.unique(self.template[:, slot]):
                members = np.flatnonzero(self.template[:, slot] == t)
                columns = plan.columns(t, self.index[members, slot])      # (K, m, w, P)
                self.vectors[members, slot, :, :columns.shape[0]] = np.moveaxis(columns, 0, 2)
        self.vectors = self.vectors.reshape(n, -1, plan.n_pixels)

    def scores(self, numerators, work):
        """Scores (n, s, 2, w) of the copies from their numerators (n, s, 2 w K)."""
        n, s = numerators.shape[:2]
        numerators = numerators.reshape((n, s) + self.shape)
        norm2 = np.einsum("nvp,nvp,np->nv", self.vectors, self.vectors, work.q)
        norm2 = norm2.reshape((n,) + self.shape)
        out = np.full((n, s, 2, self.shape[1]), -np.inf)
        for slot in range(2):
            for t in np.unique(self.template[:, slot]):
                members = self.template[:, slot] == t
                k = self.prepared[t].n_components
                out[members, :, slot] = copy_scores(self.prepared[t],
                                                    numerators[members, :, slot, :, :k],
                                                    norm2[members, slot, :, :k])
        return out


def resampled_sigma(result, sample, *, window, n_samples, rng):
    """sigma_z from the scatter of z* over simulated copies of every spectrum.

    Parameters
    ----------
    result : `~muse_xcorr.Redshift`
    sample : callable
        ``sample(work, model, vectors, n_samples, rng)`` -> (n, n_samples, V):
        the numerators <x*, v> in the fit metric of the copies of the
        spectra of ``work`` with every vector of ``vectors`` (n, V, n_pixel);
        ``model`` is each spectrum's fitted model at z_best.
    window : int
        Half-width in grid steps of each search window.
    n_samples : int
    rng : `numpy.random.Generator`

    Returns
    -------
    estimate : `~muse_xcorr.errors._window.Estimate`
        sigma is the standard deviation of z*.
    robust : ndarray (n_spectra,)
        (p84 - p16) / 2 of z*.
    """
    window = _positive_int(window, "window", 1)
    n_samples = _positive_int(n_samples, "n_samples", MIN_SAMPLES)
    correlator, data = result.correlator, result.data
    rows_all = result.peak_rows()
    out = Estimate(result.n_spectra)
    robust = np.full(result.n_spectra, np.nan)
    width = 2 * window + 1
    per_row = data.n_pixels * max(2 * width * correlator.max_components, n_samples) * 2
    plan = WindowPlan(result, rows_all, window)
    for part in chunks(np.arange(rows_all.size), per_row):
        rows = rows_all[part]
        work = correlator.working(data, rows, rho=result.noise_correlation)
        template = result.flat("template_index")[rows]
        model, _, _ = correlator.fitted_model(data, rows, template,
                                              result.flat("z_best")[rows], work=work)
        vectors = WindowVectors(plan, part)
        numerators = sample(work, model, vectors.vectors, n_samples, rng)
        score = vectors.scores(numerators, work).reshape(rows.size, n_samples, -1)
        z_star, on_edge = _z_star(score, vectors.index.reshape(rows.size, -1), result.z, width)
        percentiles = np.nanpercentile(z_star, [16, 84], axis=1)
        robust[rows] = 0.5 * (percentiles[1] - percentiles[0])
        out.set(rows, np.nanstd(z_star, axis=1, ddof=1),
                vectors.clipped | (on_edge.mean(axis=1) > EDGE_FRACTION))
    return out, robust


def _positive_int(value, name, low):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _z_star(score, index, z, width):
    """z* of each copy: argmax of the score over the windows, refined by a parabola.

    Parameters
    ----------
    score : ndarray (n, s, 2 width)
    index : ndarray (n, 2 width)
        Grid index of each window sample.
    z : ndarray
        The grid.
    width : int
        Samples per window.

    Returns
    -------
    z_star : ndarray (n, s)
    on_edge : ndarray (n, s) of bool
        The argmax is the first or last sample of its window.
    """
    top = np.argmax(score, axis=2)
    position = top % width
    on_edge = (position == 0) | (position == width - 1)
    neighbours = np.clip(top[..., None] + np.array([-1, 0, 1]), 0, score.shape[2] - 1)
    values = np.take_along_axis(score, neighbours, axis=2)
    grid_index = np.take_along_axis(np.broadcast_to(index[:, None, :], score.shape),
                                    top[..., None], axis=2)[..., 0]
    refined, _ = refine_on_grid(z, grid_index, values)
    return np.where(on_edge, z[grid_index], refined), on_edge
