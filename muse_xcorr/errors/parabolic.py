"""The parabolic-peak estimator: variance of the vertex through (f-, f0, f+).

With spacing 1 (grid steps) the vertex is u = (f- - f+) / (2 D),
D = f- - 2 f0 + f+ (< 0 at a maximum). Its variance follows by the delta
method with the **full** 3 x 3 covariance of the three samples
(maths section 3): the samples are strongly correlated, and ignoring
that misstates the error.
"""
import numpy as np

from ._window import Estimate, PeakWindow, to_sigma_z

__all__ = ["estimate", "vertex_gradient", "OPTIONS"]

#: The options this estimator takes (none: the stencil is the three top samples).
OPTIONS = ()


def vertex_gradient(f):
    """Gradient of the vertex u = (f- - f+) / (2 D) with respect to (f-, f0, f+).

    Parameters
    ----------
    f : ndarray (n, 3)

    Returns
    -------
    gradient : ndarray (n, 3)
        NaN where D = 0.
    """
    numerator = f[:, 0] - f[:, 2]
    second = f[:, 0] - 2 * f[:, 1] + f[:, 2]
    d_numerator = np.array([1.0, 0.0, -1.0])
    d_second = np.array([1.0, -2.0, 1.0])
    with np.errstate(divide="ignore", invalid="ignore"):
        return (d_numerator[None, :] * second[:, None]
                - numerator[:, None] * d_second[None, :]) / (2 * second[:, None] ** 2)


def estimate(result):
    """sigma_z of the parabolic vertex by the delta method with the full 3 x 3 covariance.

    Returns
    -------
    estimate : `~muse_xcorr.errors._window.Estimate`
        Unreliable where the three samples are not concave or the peak is at the grid edge.
    """
    peak = PeakWindow(result, 1, full_covariance=True)
    gradient = vertex_gradient(peak.f)
    var_u = np.einsum("ni,nij,nj->n", gradient, peak.cov, gradient)
    concave = (peak.f[:, 0] - 2 * peak.f[:, 1] + peak.f[:, 2]) < 0
    out = Estimate(result.n_spectra)
    out.set(peak.rows, to_sigma_z(result, np.sqrt(var_u), peak.h, peak.rows),
            peak.clipped | ~concave)
    return out
