"""The profile likelihood of z in inverse-variance weighting (maths section 2).

chi2(z) = ||d||_w^2 (1 - max(f(z), 0)^2) with the model fitted at each z (a
composite refits its amplitudes; a negative amplitude is no fit), so L(z) =
exp(-chi2 / 2) is the profile likelihood and, with a flat prior on the
grid, p(z) is L normalised. The estimator integrates p over a window of
grid samples around the peak: chi2 is interpolated between the samples
through a cubic spline of f (at high S/N the likelihood is narrower than one
grid step and cannot be integrated on the grid itself), and sigma_z is half
the central 68 % interval (16th to 84th percentile). With correlated noise
the chi2 of diagonal weights is no likelihood: its differences are divided
by the noise inflation of the slope of f at the peak, ``kappa_z = Var f'
N f / (-f'')`` with Var f' from the correlated window covariance (1 for
white noise, where that is the Delta chi2 = 1 identity; maths section 7).
"""
import numpy as np
from scipy.interpolate import CubicSpline

from ..statistics import chi2_from_f
from ._window import Estimate, PeakWindow, to_sigma_z
from .analytic import FIRST_DERIVATIVE, SECOND_DERIVATIVE

__all__ = ["estimate", "DEFAULT_WINDOW", "OVERSAMPLING", "OPTIONS"]

#: Default half-width (grid steps) of the window where p(z) is integrated.
DEFAULT_WINDOW = 15
#: Spline evaluations per grid step (400 within 1.5 steps of the best sample).
OVERSAMPLING = 20
#: The options this estimator takes.
OPTIONS = ("window",)


def estimate(result, *, window=DEFAULT_WINDOW):
    """sigma_z as the half-width of the 68 % interval of p(z) around the peak.

    Raises
    ------
    ValueError
        For a uniform-weighting result (its chi2 is not a profile likelihood).
    """
    if result.correlator.weighting != "inverse_variance":
        raise ValueError("the chi2 estimator needs weighting='inverse_variance': the chi2 "
                         "of a uniformly weighted fit is not a profile likelihood")
    half = int(window)
    correlated = bool(result.noise_correlation.size)
    peak = PeakWindow(result, half, full_covariance=correlated)
    offsets = np.arange(-half, half + 1, dtype=float)
    fine = np.union1d(np.linspace(-half, half, 2 * half * OVERSAMPLING + 1),
                      np.linspace(-1.5, 1.5, 1201))
    f_fine = CubicSpline(offsets, np.nan_to_num(peak.f).T, axis=0)(fine).T
    norm2 = result.flat("norm2")[peak.rows]
    kappa = _slope_inflation(peak, norm2) if correlated else np.ones(peak.rows.size)
    chi2 = chi2_from_f(norm2[:, None], f_fine) / kappa[:, None]
    likelihood = np.exp(-0.5 * (chi2 - chi2.min(axis=1, keepdims=True)))
    cdf = np.cumsum(0.5 * (likelihood[:, 1:] + likelihood[:, :-1]), axis=1)
    cdf = np.concatenate([np.zeros((cdf.shape[0], 1)), cdf], axis=1) / cdf[:, -1:]
    low = _quantile(cdf, fine, 0.158655)
    high = _quantile(cdf, fine, 0.841345)
    # the likelihood must have fallen well below its peak at the window edges
    open_ended = np.maximum(likelihood[:, 0], likelihood[:, -1]) > 1e-3
    out = Estimate(result.n_spectra)
    out.set(peak.rows, to_sigma_z(result, 0.5 * (high - low), peak.h, peak.rows),
            peak.clipped | open_ended)
    return out


def _slope_inflation(peak, norm2):
    """Var f' under the correlated noise over its white-noise value -f'' / (N f), at the peak."""
    middle = peak.f.shape[1] // 2
    stencil = slice(middle - 2, middle + 3)
    f = peak.f[:, stencil]
    cov = peak.cov[:, stencil, stencil]
    slope = np.einsum("i,nij,j->n", FIRST_DERIVATIVE, cov, FIRST_DERIVATIVE)
    white = -(f @ SECOND_DERIVATIVE) / (norm2 * f[:, 2])  # the Delta chi2 = 1 identity
    with np.errstate(divide="ignore", invalid="ignore"):
        kappa = slope / white
    return np.where(np.isfinite(kappa) & (kappa > 0), kappa, 1.0)


def _quantile(cdf, x, q):
    """x where each row of a monotonic cdf crosses q (linear interpolation)."""
    above = np.argmax(cdf >= q, axis=1)
    above = np.clip(above, 1, x.size - 1)
    rows = np.arange(cdf.shape[0])
    c0, c1 = cdf[rows, above - 1], cdf[rows, above]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(c1 > c0, (q - c0) / (c1 - c0), 0.0)
    return x[above - 1] + t * (x[above] - x[above - 1])
