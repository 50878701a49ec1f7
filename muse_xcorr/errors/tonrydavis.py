"""The Tonry & Davis (1979) error, as reported by IRAF fxcor and RVSAO xcsao.

    r = h / (sqrt(2) sigma_a),   epsilon = (3/8) w / (1 + r)

h is the height of the correlation peak, sigma_a the rms of the
antisymmetric part of the correlation about the peak, w the FWHM of the
peak. TD79 work on continuum-subtracted spectra, whose correlation has no
pedestal; f of a spectrum with continuum sits on a broad pedestal, so here
h is measured above the window's median f, w is the full width at
pedestal + h/2, and sigma_a is the rms of (f(k+j) - f(k-j)) / 2 over the
lags j = 1..window around the best sample k. epsilon is in grid steps and
converted to z. The method is offered for comparison with IRAF; it is known
to depend on the line width and is not calibrated (see docs/errors.rst). ``r``
is kept as the ``tonrydavis_r`` map.
"""
import numpy as np

from ._window import Estimate, PeakWindow, to_sigma_z

__all__ = ["estimate", "tonry_davis", "DEFAULT_WINDOW"]

#: Default half-width (grid steps) of the window of lags.
DEFAULT_WINDOW = 50


def tonry_davis(f):
    """r, the FWHM (grid steps) and epsilon (grid steps) from f on a centred window.

    Parameters
    ----------
    f : ndarray (n, 2 K + 1)
        f at lags -K..K about the best sample.

    Returns
    -------
    r, fwhm, epsilon : ndarray (n,)
        fwhm (and epsilon) NaN where f does not fall to half height within the window.
    """
    half = f.shape[1] // 2
    peak = f[:, half]
    antisymmetric = 0.5 * (f[:, half + 1:] - f[:, half - 1::-1])
    sigma_a = np.sqrt(np.mean(antisymmetric ** 2, axis=1))
    pedestal = np.median(f, axis=1)
    height = peak - pedestal
    with np.errstate(divide="ignore", invalid="ignore"):
        r = height / (np.sqrt(2) * sigma_a)
    level = pedestal + 0.5 * height
    fwhm = _crossing(f[:, half:], level) + _crossing(f[:, half::-1], level)
    return r, fwhm, 0.375 * fwhm / (1 + r)


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


def estimate(result, *, window=DEFAULT_WINDOW, **_):
    """sigma_z = Tonry & Davis epsilon; ``tonrydavis_r`` map in ``extra``."""
    peak = PeakWindow(result, max(int(window), 2), full_covariance=False)
    r, _, epsilon = tonry_davis(peak.f)
    out = Estimate(result.n_spectra)
    out.set(peak.rows, to_sigma_z(result, epsilon, peak.h, peak.rows), peak.clipped)
    out.extra["tonrydavis_r"] = np.full(result.n_spectra, np.nan)
    out.extra["tonrydavis_r"][peak.rows] = r
    return out
