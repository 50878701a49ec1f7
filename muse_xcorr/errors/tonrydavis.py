"""The Tonry & Davis (1979) error, as reported by IRAF fxcor and RVSAO xcsao.

    r = h / (sqrt(2) sigma_a),   epsilon = (3/8) w / (1 + r)

h is the height of the correlation peak, sigma_a the rms of the
antisymmetric part of the correlation about the peak, w the FWHM of the
peak. TD79 work on continuum-subtracted spectra, whose correlation has no
pedestal; a correlation that sits on a pedestal has h measured above the
window's median f and w the full width at pedestal + h/2. The
antisymmetric part is taken about the **refined peak** u_best (a cubic
spline through the window's f evaluated at u_best +- j, j = 1..window): taken
about the best grid sample, a noiseless peak a quarter step off the grid
would get a spurious sigma_a. epsilon is in grid steps and converted to z.
The method is offered for comparison with IRAF; it is known to depend on
the line width and is not calibrated. ``r`` is kept as the ``tonrydavis_r`` map.
"""
import numpy as np
from scipy.interpolate import CubicSpline

from ._window import Estimate, PeakWindow, to_sigma_z

__all__ = ["estimate", "tonry_davis", "DEFAULT_WINDOW", "OPTIONS"]

#: Default half-width (grid steps) of the window of lags.
DEFAULT_WINDOW = 50
#: The options this estimator takes.
OPTIONS = ("window",)


def tonry_davis(f, centre=None):
    """r, the FWHM (grid steps) and epsilon (grid steps) from f on a centred window.

    Parameters
    ----------
    f : ndarray (n, 2 K + 1)
        f at lags -K..K about the best sample.
    centre : ndarray (n,), optional
        The refined peak in lags (default 0): the antisymmetric part is
        taken about it, lags beyond the window dropped.

    Returns
    -------
    r, fwhm, epsilon : ndarray (n,)
        fwhm (and epsilon) NaN where f does not fall to half height within the window.
    """
    n, width = f.shape
    half = width // 2
    lags = np.arange(-half, half + 1, dtype=float)
    centre = np.zeros(n) if centre is None else np.nan_to_num(np.asarray(centre, float))
    j = np.arange(1, half)  # inside the window for |centre| < 1
    coefficients = CubicSpline(lags, f.T, axis=0).c     # (4, width - 1, n)
    plus = _evaluate(coefficients, lags, centre[:, None] + j)
    minus = _evaluate(coefficients, lags, centre[:, None] - j)
    sigma_a = np.sqrt(np.mean((0.5 * (plus - minus)) ** 2, axis=1))
    peak = _evaluate(coefficients, lags, centre[:, None])[:, 0]
    pedestal = np.median(f, axis=1)
    height = peak - pedestal
    with np.errstate(divide="ignore", invalid="ignore"):
        r = height / (np.sqrt(2) * sigma_a)
    level = pedestal + 0.5 * height
    fwhm = _crossing(f[:, half:], level) + _crossing(f[:, half::-1], level)
    return r, fwhm, 0.375 * fwhm / (1 + r)


def _evaluate(coefficients, lags, x):
    """Row r of a multi-curve cubic spline at the points x[r] (n, m), clipped to its range."""
    x = np.clip(x, lags[0], lags[-1])
    interval = np.clip(np.floor(x - lags[0]).astype(int), 0, lags.size - 2)
    dx = x - lags[interval]
    rows = np.arange(x.shape[0])[:, None]
    c = coefficients[:, interval, rows]                 # (4, n, m)
    return ((c[0] * dx + c[1]) * dx + c[2]) * dx + c[3]


def _crossing(side, level):
    """Lag (grid steps, interpolated) where f first falls below ``level`` going outwards."""
    below = side < level[:, None]
    found = np.any(below, axis=1)
    first = np.argmax(below, axis=1)
    rows = np.arange(side.shape[0])
    j = np.maximum(first, 1)
    y0, y1 = side[rows, j - 1], side[rows, j]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(y0 != y1, (y0 - level) / (y0 - y1), 0.0)
    return np.where(found & (first > 0), j - 1 + t, np.nan)


def estimate(result, *, window=DEFAULT_WINDOW):
    """sigma_z = Tonry & Davis epsilon; ``tonrydavis_r`` map in ``extra``."""
    peak = PeakWindow(result, max(int(window), 2), full_covariance=False)
    r, _, epsilon = tonry_davis(np.nan_to_num(peak.f), peak.u)
    out = Estimate(result.n_spectra)
    out.set(peak.rows, to_sigma_z(result, epsilon, peak.h, peak.rows), peak.clipped)
    out.extra_map("tonrydavis_r", peak.rows, r)
    return out
