"""Recompute z_best for simulated copies of each spectrum (Monte Carlo, bootstrap).

For each spectrum, n_samples copies d* are simulated by the calling
estimator's sampler, which returns f (or anything proportional to it per
copy) in float64 on two windows of grid samples, one around the best peak
and one around the best secondary peak (outside the exclusion zone): the
bootstrap rebuilds whole spectra and correlates them in one batched matrix
product (:meth:`TemplateOperator.window_samples`); the Monte Carlo draws the
numerators of f directly from their exact Gaussian distribution
(:meth:`TemplateOperator.numerator_moments`). The copy's z* is the
argmax over both windows, refined by the parabola through its neighbours like
z_best itself. A copy whose argmax lies on the edge of a window may have its
true peak outside it: where more than `EDGE_FRACTION` of the copies do, the
window was too small for the noise and the spaxel is flagged ZERR_UNRELIABLE.
"""
import numpy as np

from ..correlate import _Working, parabola_vertex
from ._model import best_fit_model
from ._window import Estimate, gather_batch, skipped, window_index

__all__ = ["resampled_sigma", "EDGE_FRACTION", "DEFAULT_WINDOW", "RESAMPLING_PARAMETERS"]

#: The numpydoc parameters every resampling estimator shares (for ``format_doc``).
RESAMPLING_PARAMETERS = """result : `~muse_xcorr.Redshift`
    window : int
        Half-width in grid steps of the two search windows.
    n_samples : int
        Copies per spectrum.
    seed : int or None
        The same seed gives the same result."""

#: Default half-width (grid steps) of the two search windows.
DEFAULT_WINDOW = 10

#: Fraction of copies peaking on a window edge above which sigma_z is flagged unreliable.
EDGE_FRACTION = 0.05
#: Float64 elements of simulated spectra held at a time (bounds memory, ~200 MB).
_SAMPLE_ELEMENTS = 25_000_000


def resampled_sigma(result, sample, *, window, n_samples, rng):
    """sigma_z from the scatter of z* over simulated copies of every spectrum.

    Parameters
    ----------
    result : `~muse_xcorr.Redshift`
    sample : callable
        ``sample(operator, batch, model, index, scale, n_samples, rng)`` ->
        (n, n_samples, w): f of the copies of the spectra of ``batch`` at the
        grid ``index`` (n, w), or a positive multiple of it per copy (z*
        depends only on where f peaks and on its shape there). ``model`` is
        the best-fit A T(z_best), ``scale`` the window's per-pixel factor.
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
    window, n_samples = int(window), int(n_samples)
    if window < 1 or n_samples < 2:
        raise ValueError(f"need window >= 1 and n_samples >= 2, got {window}, {n_samples}")
    correlator, data = result.correlator, result.data
    operator = correlator._operator(data)[0]
    rows = np.flatnonzero(~skipped(result))
    best = result._maps["best_index"][rows]
    second = result._maps["second_index"][rows]
    n_z = result.z.size
    best_index, clipped = window_index(best, window, n_z)
    second_index, _ = window_index(np.where(second >= 0, second, best), window, n_z)
    index = np.concatenate([best_index, second_index], axis=1)
    out = Estimate(result.n_spectra)
    robust = np.full(result.n_spectra, np.nan)
    chunk = max(1, _SAMPLE_ELEMENTS // (n_samples * data.n_pixels))
    for first in range(0, rows.size, chunk):
        part = slice(first, first + chunk)
        batch = gather_batch(data, rows[part])
        model, _ = best_fit_model(result, batch, rows[part])
        scale = _Working(batch, correlator.weighting, correlator.min_pixels, False).window_scale
        f = sample(operator, batch, model, index[part], scale, n_samples, rng)
        z_star, on_edge = _peaks(f, result.z[index[part]], 2 * window + 1)
        percentiles = np.nanpercentile(z_star, [16, 84], axis=1)
        robust[rows[part]] = 0.5 * (percentiles[1] - percentiles[0])
        out.set(rows[part], np.nanstd(z_star, axis=1, ddof=1),
                clipped[part] | (on_edge.mean(axis=1) > EDGE_FRACTION))
    return out, robust


def _peaks(f, z_window, width):
    """z* of each copy: argmax of f over the windows, refined by a parabola.

    Parameters
    ----------
    f : ndarray (n, s, 2 width)
    z_window : ndarray (n, 2 width)
    width : int
        Samples per window.

    Returns
    -------
    z_star : ndarray (n, s)
    on_edge : ndarray (n, s) of bool
        The argmax is the first or last sample of its window.
    """
    n, s, _ = f.shape
    top = np.argmax(f, axis=2)
    position = top % width
    on_edge = (position == 0) | (position == width - 1)
    neighbours = np.clip(top[..., None] + np.array([-1, 0, 1]), 0, f.shape[2] - 1)
    y = np.take_along_axis(f, neighbours, axis=2)
    x = np.take_along_axis(np.broadcast_to(z_window[:, None, :], f.shape), neighbours, axis=2)
    vertex = parabola_vertex(x, y)
    z_grid = np.take_along_axis(np.broadcast_to(z_window[:, None, :], f.shape),
                                top[..., None], axis=2)[..., 0]
    return np.where(on_edge | ~np.isfinite(vertex), z_grid, vertex), on_edge
