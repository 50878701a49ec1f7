"""The curvature (delta-method) estimator of the error on z_best (maths section 3).

A perturbation of the data moves the peak by du = -df'(u) / f''(u), so

    Var u = Var f'(u_best) / f''^2,

with f' and f'' from five-point central finite differences of f around the
best grid sample (their variance from the 5 x 5 window covariance of f),
f' evaluated at the refined peak u_best by a first-order step. In
inverse-variance weighting, chi2 = ||d||_w^2 (1 - f^2) and the estimator
is the Delta chi2 = 1 rule, sigma_u^2 = 2 / chi2'' = 1 / (-||d||_w^2 f f''); with
correlated noise (the result's ``noise_correlation``) the chi2 of diagonal
weights is no likelihood and the first form, with the correlated window
covariance of f, is used in both weightings.
"""
import numpy as np

from ._window import Estimate, PeakWindow, to_sigma_z

__all__ = ["estimate", "FIRST_DERIVATIVE", "SECOND_DERIVATIVE", "OPTIONS"]

#: Five-point central differences (grid step 1) of the first and second derivative.
FIRST_DERIVATIVE = np.array([1.0, -8.0, 0.0, 8.0, -1.0]) / 12.0
SECOND_DERIVATIVE = np.array([-1.0, 16.0, -30.0, 16.0, -1.0]) / 12.0
#: The options this estimator takes (none: the stencil is fixed at +-2 grid steps).
OPTIONS = ()


def estimate(result):
    """sigma_z by the curvature of f at its peak.

    Parameters
    ----------
    result : `~muse_xcorr.Redshift`

    Returns
    -------
    estimate : `~muse_xcorr.errors._window.Estimate`
        Unreliable where f'' >= 0 (no maximum) or the stencil leaves the grid.
    """
    peak = PeakWindow(result, 2, full_covariance=True)
    curvature = peak.f @ SECOND_DERIVATIVE
    if result.correlator.weighting == "inverse_variance" and not result.noise_correlation.size:
        f_peak = peak.f[:, 2] + peak.u * (peak.f @ FIRST_DERIVATIVE) \
            + 0.5 * peak.u ** 2 * curvature
        norm2 = result.flat("norm2")[peak.rows]
        with np.errstate(divide="ignore", invalid="ignore"):
            sigma_u = 1.0 / np.sqrt(-norm2 * f_peak * curvature)
    else:
        gradient = FIRST_DERIVATIVE[None, :] + peak.u[:, None] * SECOND_DERIVATIVE[None, :]
        var_slope = np.einsum("ni,nij,nj->n", gradient, peak.cov, gradient)
        with np.errstate(divide="ignore", invalid="ignore"):
            sigma_u = np.sqrt(var_slope) / np.abs(curvature)
    out = Estimate(result.n_spectra)
    out.set(peak.rows, to_sigma_z(result, sigma_u, peak.h, peak.rows),
            peak.clipped | ~(curvature < 0))
    return out
