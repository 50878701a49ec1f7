"""A Gaussian plus offset fitted to f around the peak by generalised least squares.

    f(u) = scale (c + a exp(-(u - mu)^2 / (2 s^2)))

in a window of grid samples around the best one; u in grid steps relative to
the best sample and (a, c) in units of the window's largest |f| (``scale``),
so the four parameters are of order unity and the Jacobian well conditioned.
The residuals are whitened by the window covariance of f (eigen-decomposed;
the samples are strongly correlated), the fit is a vectorised
Levenberg-Marquardt, and sigma_u = sqrt((J^T C^-1 J)^-1)_mu.

Where the covariance is singular, the fit does not converge, the width or
centre leave the window, or the parameter covariance is not positive, sigma_z
is NaN, the spaxel is flagged ZERR_UNRELIABLE, and one warning says how many.
"""
import warnings

import numpy as np
from astropy.utils.exceptions import AstropyUserWarning

from ._window import Estimate, PeakWindow, to_sigma_z

__all__ = ["estimate", "DEFAULT_WINDOW", "OPTIONS"]

#: Default half-width (grid steps) of the fitted window.
DEFAULT_WINDOW = 3
#: Eigenvalues of the window covariance below this fraction of the largest: singular.
SINGULAR = 1e-12
_ITERATIONS = 200
#: Relative decrease of the cost below which an accepted step ends the fit.
_TOLERANCE = 1e-10
#: The options this estimator takes.
OPTIONS = ("window",)


def _model(params, u):
    """Model and Jacobian (n, w) and (n, w, 4) for params (a, mu, s, c)."""
    a, mu, s, c = (params[:, i, None] for i in range(4))
    t = (u[None, :] - mu) / s
    g = np.exp(-0.5 * t * t)
    model = c + a * g
    jac = np.stack([g, a * g * t / s, a * g * t * t / s, np.ones_like(g)], axis=2)
    return model, jac


def estimate(result, *, window=DEFAULT_WINDOW):
    """sigma_z from the GLS fit of a Gaussian plus offset to f.

    Parameters
    ----------
    result : `~muse_xcorr.Redshift`
    window : int
        Half-width in grid steps of the fitted window (at least 2).

    Returns
    -------
    estimate : `~muse_xcorr.errors._window.Estimate`
    """
    half = max(int(window), 2)
    peak = PeakWindow(result, half, full_covariance=True)
    u = np.arange(-half, half + 1, dtype=float)
    scale = np.max(np.abs(peak.f), axis=1)
    scale = np.where(scale > 0, scale, 1.0)
    y = peak.f / scale[:, None]
    cov = peak.cov / (scale ** 2)[:, None, None]
    values, vectors = np.linalg.eigh(cov)
    singular = ~(values[:, 0] > SINGULAR * values[:, -1]) | ~np.all(np.isfinite(values), axis=1)
    values = np.where(singular[:, None], 1.0, values)
    whiten = np.swapaxes(vectors, 1, 2) / np.sqrt(values)[:, :, None]
    params, converged = _fit(y, u, whiten, peak.u)
    _, jac = _model(params, u)
    wj = whiten @ jac
    with np.errstate(invalid="ignore"):
        var_mu = _solve(np.swapaxes(wj, 1, 2) @ wj, np.eye(4)[None, :, 1:2].repeat(
            y.shape[0], axis=0))[:, 1, 0]
    a, mu, s = params[:, 0], params[:, 1], params[:, 2]
    failed = singular | ~converged | ~(a > 0) | ~(np.abs(mu) < half) | \
        ~((s > 0.2) & (s < 4 * half)) | ~(var_mu > 0)
    if np.any(failed):
        warnings.warn(f"peakfit: the peak-model covariance could not be estimated for "
                      f"{int(failed.sum())} of {failed.size} spaxels (singular window "
                      "covariance, no convergence, or a fit outside the window); their "
                      "sigma_z is NaN and flagged ZERR_UNRELIABLE", AstropyUserWarning)
    sigma_u = np.where(failed, np.nan, np.sqrt(np.abs(var_mu)))
    out = Estimate(result.n_spectra)
    out.set(peak.rows, to_sigma_z(result, sigma_u, peak.h, peak.rows), failed | peak.clipped)
    out.extra_map("peakfit_z", peak.rows,
                  np.where(failed, np.nan,
                           np.expm1(np.log1p(result.z[peak.best]) + np.where(failed, 0.0, mu)
                                    * peak.h)))
    return out


def _fit(y, u, whiten, u_start):
    """Vectorised Levenberg-Marquardt of the whitened residuals; params (n, 4), converged."""
    n = y.shape[0]
    floor = np.min(y, axis=1)
    height = y[:, y.shape[1] // 2] - floor
    second = y[:, y.shape[1] // 2 - 1] - 2 * y[:, y.shape[1] // 2] + y[:, y.shape[1] // 2 + 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        width = np.sqrt(np.where(second < 0, height / -second, 1.0))
    params = np.stack([np.maximum(height, 1e-3), np.clip(np.nan_to_num(u_start), -0.5, 0.5),
                       np.clip(np.nan_to_num(width, nan=1.0), 0.5, u.size), floor], axis=1)
    damping = np.full(n, 1e-3)
    converged = np.zeros(n, bool)
    cost = _cost(params, y, u, whiten)
    for _ in range(_ITERATIONS):
        model, jac = _model(params, u)
        r = np.einsum("nij,nj->ni", whiten, y - model)
        wj = whiten @ jac
        normal = np.swapaxes(wj, 1, 2) @ wj
        rhs = np.einsum("nji,nj->ni", wj, r)
        damped = normal + damping[:, None, None] * np.eye(4) * \
            np.diagonal(normal, axis1=1, axis2=2)[:, :, None]
        step = _solve(damped, rhs[:, :, None])[:, :, 0]
        trial = params + step
        trial_cost = _cost(trial, y, u, whiten)
        better = trial_cost < cost
        small = np.all(np.abs(step) < 1e-9 * (1 + np.abs(params)), axis=1)
        converged |= small | (better & (cost - trial_cost < _TOLERANCE * (1 + cost))) | \
            (~better & (damping >= 1e12))   # no step improves any more: at the minimum
        params = np.where(better[:, None], trial, params)
        cost = np.where(better, trial_cost, cost)
        damping = np.clip(np.where(better, damping / 10, damping * 10), 1e-12, 1e12)
        if np.all(converged):
            break
    return params, converged & np.all(np.isfinite(params), axis=1)


def _cost(params, y, u, whiten):
    model, _ = _model(params, u)
    r = np.einsum("nij,nj->ni", whiten, y - model)
    cost = np.sum(r * r, axis=1)
    return np.where(np.isfinite(cost), cost, np.inf)


def _solve(matrices, rhs):
    """Batched solve; rows whose matrix is singular get NaN instead of failing the batch."""
    try:
        return np.linalg.solve(matrices, rhs)
    except np.linalg.LinAlgError:
        out = np.full(rhs.shape, np.nan)
        for row, (matrix, b) in enumerate(zip(matrices, rhs)):
            try:
                out[row] = np.linalg.solve(matrix, b)
            except np.linalg.LinAlgError:
                pass
        return out
