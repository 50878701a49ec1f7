"""The formulas every part of the package shares, each written once.

Notation (docs/maths.rst): one spectrum d with variance v on its valid
pixels, fit weights q (``q = 1/v`` for inverse-variance weighting, ``q = 1``
on valid pixels for uniform weighting), a model column m (a template, or a
composite's fitted combination of components). Norms and inner products are
in the q metric: ``<x, y> = sum_j q_j x_j y_j``.

- :func:`correlation`: f = <d, m> / (||d|| ||m||), the normalised correlation.
- :func:`chi2_from_f`: the minimum chi2 over a non-negative amplitude,
  ``||d||^2 (1 - max(f, 0)^2)`` (maths section 2). It uses f itself: the
  second-order correction of sigma_f never enters it.
- :func:`ml_amplitude`: the amplitude that minimises ``||d - A m||^2``, A >= 0.
- :func:`first_order_variance` and :func:`second_order_term`: Var f
  (maths sections 1 and 1b).
- :func:`parabola_vertex` and :func:`refine_on_grid`: the vertex of the
  parabola through three samples, and the peak refined with it or left on
  the grid sample where the parabola does not apply (one rule for the
  correlator and every estimator).
"""
import numpy as np

__all__ = ["row_median", "correlation", "chi2_from_f", "ml_amplitude", "first_order_variance",
           "second_order_term", "parabola_vertex", "refine_on_grid", "weighted_chi2",
           "likelihood_pdf"]


def correlation(inner, norm2_data, norm2_model):
    """f = <d, m> / sqrt(||d||^2 ||m||^2); 0 where either norm is 0.

    Parameters
    ----------
    inner, norm2_data, norm2_model : array_like
        <d, m>, ||d||^2 and ||m||^2 in the fit metric (broadcast together).

    Returns
    -------
    f : ndarray
    """
    inner, norm2_data, norm2_model = np.broadcast_arrays(
        *(np.asarray(x, dtype=float) for x in (inner, norm2_data, norm2_model)))
    denominator = norm2_data * norm2_model
    out = np.zeros(inner.shape)
    np.divide(inner, np.sqrt(denominator, where=denominator > 0, out=np.ones(inner.shape)),
              out=out, where=denominator > 0)
    return out


def chi2_from_f(norm2, f):
    """The minimum chi2 over a non-negative amplitude: ``norm2 (1 - max(f, 0)^2)``.

    With inverse-variance weights, ``norm2 = sum_j d_j^2 / v_j`` and f the
    weighted correlation, this is ``min_{A >= 0} sum_j (d_j - A m_j)^2 / v_j``
    (maths section 2): a negative f is no fit (A = 0, chi2 = norm2).

    Parameters
    ----------
    norm2, f : array_like

    Returns
    -------
    chi2 : ndarray
        NaN where f is NaN.
    """
    f = np.asarray(f, dtype=float)
    positive = np.where(np.isnan(f), np.nan, np.clip(f, 0.0, None))
    return np.asarray(norm2, dtype=float) * (1.0 - positive ** 2)


def ml_amplitude(inner, norm2_model):
    """The amplitude A >= 0 minimising ``||d - A m||^2``: ``max(<d, m> / ||m||^2, 0)``.

    Parameters
    ----------
    inner, norm2_model : array_like
        <d, m> and ||m||^2 in the fit metric.

    Returns
    -------
    amplitude : ndarray
        0 where ||m|| = 0.
    """
    inner, norm2_model = np.broadcast_arrays(np.asarray(inner, float),
                                             np.asarray(norm2_model, float))
    out = np.zeros(inner.shape)
    np.divide(inner, norm2_model, out=out, where=norm2_model > 0)
    return np.clip(out, 0.0, None)


def weighted_chi2(norm2_w, inner_w, model2_w, amplitude):
    """chi2 = sum_j w_j (d_j - A m_j)^2 from its three sums (any amplitude A).

    Parameters
    ----------
    norm2_w, inner_w, model2_w : array_like
        ``sum w d^2``, ``sum w d m`` and ``sum w m^2`` with w = 1 / v.
    amplitude : array_like

    Returns
    -------
    chi2 : ndarray
    """
    a = np.asarray(amplitude, dtype=float)
    return np.asarray(norm2_w, float) - 2 * a * np.asarray(inner_w, float) + \
        a * a * np.asarray(model2_w, float)


def first_order_variance(f, p, q, t_norm2, r, norm2):
    """First-order variance of f from sums over pixels (maths section 1).

    ``Var f = [p / t - 2 f q / (||d|| sqrt(t)) + f^2 r / ||d||^2] / ||d||^2``,
    all sums in the fit metric: ``p = sum v q^2 m^2``, ``q = sum v q^2 d m``,
    ``t = ||m||^2``, ``r = sum v q^2 d^2``, ``norm2 = ||d||^2`` (uniform
    weighting: q = 1; inverse variance: v q = 1, so p = t and r = norm2).

    Parameters
    ----------
    f, p, q, t_norm2, r, norm2 : ndarray
        Broadcast together.

    Returns
    -------
    variance : ndarray
        0 where ``t_norm2`` is 0. It can round below zero when the data are
        exactly proportional to the model: :func:`second_order_term` callers
        must handle that.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        variance = (p / t_norm2 - 2 * f * q / np.sqrt(norm2 * t_norm2)
                    + f * f * r / norm2) / norm2
    return np.where(t_norm2 > 0, variance, 0.0)


def second_order_term(f_i, f_j, sum_v2, norm2):
    """The second-order correction to Cov(f_i, f_j): ``f_i f_j sum_j (v q)^2 / (2 ||d||^4)``.

    Subtracted from the first-order (co)variance (maths section 1b).

    Parameters
    ----------
    f_i, f_j : ndarray
    sum_v2 : ndarray
        ``sum_j (v_j q_j)^2`` over the valid pixels: the squared variances of
        the whitened pixels (their number in inverse-variance weighting).
    norm2 : ndarray
        ||d||^2 in the fit metric.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(norm2 > 0, f_i * f_j * sum_v2 / (2 * norm2 * norm2), 0.0)


def parabola_vertex(x, y):
    """Vertex abscissa of the parabola through three points, per row.

    Parameters
    ----------
    x, y : ndarray, shape (..., 3)
        Abscissae (any spacing) and ordinates.

    Returns
    -------
    vertex : ndarray, shape (...)
        NaN where the three points are collinear, the parabola opens
        upwards, or two abscissae coincide (a window clipped at the grid's
        edge repeats its end point); no warning is raised for those.
    """
    x0, x1, x2 = x[..., 0], x[..., 1], x[..., 2]
    y0, y1, y2 = y[..., 0], y[..., 1], y[..., 2]
    a, b = x1 - x0, x1 - x2
    distinct = (a != 0) & (b != 0)
    numerator = a * a * (y1 - y2) - b * b * (y1 - y0)
    denominator = a * (y1 - y2) - b * (y1 - y0)
    span = np.where(distinct, x2 - x0, 1.0)
    chord = y0 + (y2 - y0) * (x1 - x0) / span
    ok = distinct & (denominator != 0) & (y1 > chord)
    return np.where(ok, x1 - 0.5 * numerator / np.where(ok, denominator, 1.0), np.nan)


def refine_on_grid(grid, index, values):
    """A peak refined below the grid step by the parabola through its neighbours.

    The one rule used for z_best and for every resampled copy of it: the
    vertex of the parabola through (index - 1, index, index + 1); the grid
    value itself at the grid's edges, or where the three samples are not
    concave.

    Parameters
    ----------
    grid : ndarray (n_grid,)
        Increasing abscissae (e.g. the redshift grid).
    index : ndarray of int, shape (...)
        The best sample.
    values : ndarray, shape (..., 3)
        The function at index - 1, index, index + 1 (anything at the edges).

    Returns
    -------
    refined : ndarray, shape (...)
    at_edge : ndarray of bool, shape (...)
        The best sample is the first or last of the grid.
    """
    index = np.asarray(index, dtype=np.int64)
    last = grid.size - 1
    at_edge = (index <= 0) | (index >= last)
    around = np.clip(index[..., None] + np.array([-1, 0, 1]), 0, last)
    vertex = parabola_vertex(grid[around], values)
    on_grid = grid[np.clip(index, 0, last)]
    inside = np.isfinite(vertex) & (vertex > grid[around[..., 0]]) & \
        (vertex < grid[around[..., 2]])
    return np.where(at_edge | ~inside, on_grid, vertex), at_edge


def likelihood_pdf(z, chi2):
    """p(z) proportional to exp(-chi2 / 2) on a grid, normalised to unit integral.

    Parameters
    ----------
    z : ndarray (n_z,)
    chi2 : ndarray (n_z,)
        The chi2 of the fitted model at each z (NaN where undefined).

    Returns
    -------
    p : ndarray (n_z,)
        Per unit redshift; NaN if chi2 is all NaN.
    """
    chi2 = np.asarray(chi2, dtype=float)
    if not np.any(np.isfinite(chi2)):
        return np.full(np.shape(z), np.nan)
    likelihood = np.exp(-0.5 * (chi2 - np.nanmin(chi2)))
    likelihood = np.where(np.isfinite(likelihood), likelihood, 0.0)
    return likelihood / np.trapezoid(likelihood, z)


def row_median(values, keep=None):
    """The median of each row's kept values (NaN for a row with none).

    By one sort of the rows (the values left out placed last) and the middle
    of the kept ones: ``np.nanmedian`` loops over rows in Python when they
    hold NaN, and goes through masked arrays for small ones, 10 to 100
    times slower.

    Parameters
    ----------
    values : ndarray (n, m)
    keep : ndarray of bool (n, m), optional
        Default: the non-NaN values.

    Returns
    -------
    median : ndarray (n,)
    """
    values = np.asarray(values, dtype=float)
    keep = ~np.isnan(values) if keep is None else np.asarray(keep, bool)
    ordered = np.sort(np.where(keep, values, np.inf), axis=1)
    count = keep.sum(axis=1)
    low = np.maximum((count - 1) // 2, 0)[:, None]
    high = np.minimum(count // 2, values.shape[1] - 1)[:, None]
    median = 0.5 * (np.take_along_axis(ordered, low, axis=1) +
                    np.take_along_axis(ordered, high, axis=1))[:, 0]
    return np.where(count > 0, median, np.nan)
