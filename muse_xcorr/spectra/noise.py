"""The noise correlation along wavelength, measured from the data, and its quadratic forms.

MUSE's STAT is the variance of each pixel, but the pipeline's resampling
correlates neighbouring pixels and STAT ignores that covariance (maths
section 7). With the whitened noise ``n_j / sigma_j`` stationary along
wavelength, its correlation matrix R is a band of coefficients rho_1,
rho_2, ... (lags in pixels), and every first-order variance of the package
becomes a quadratic form ``x^T R y`` (:func:`banded_inner`).

:func:`residual_autocorrelation` measures rho from whitened residuals
``(d - model) / sigma`` of many spectra (the best fits of a cube's spaxels,
or one long spectrum's own residuals), over pairs of valid pixels, leaving
out outliers (sky-line residuals, emission lines the model misses).
"""
import numpy as np

__all__ = ["banded_inner", "ResidualCorrelation", "residual_autocorrelation", "as_correlation",
           "MAX_LAG", "OUTLIER"]

#: Longest lag (pixels) measured.
MAX_LAG = 5
#: Whitened residuals beyond this are left out of the measurement (with their neighbours).
OUTLIER = 5.0
#: Spectra per pass of `ResidualCorrelation.add` (bounds its temporaries: ~8 MB each).
_ROWS_PER_PASS = 256
#: Mean square of the whitened residuals below which there is no noise to measure.
MIN_SCATTER = 0.1


def as_correlation(rho):
    """Correlation coefficients at lags 1, 2, ... as a float array (empty: white noise)."""
    if rho is None:
        return np.zeros(0)
    rho = np.atleast_1d(np.asarray(rho, dtype=float))
    if rho.ndim != 1 or not np.all(np.isfinite(rho)) or np.any(np.abs(rho) >= 1):
        raise ValueError(f"the noise correlation must be coefficients at lags 1, 2, ... with "
                         f"|rho| < 1, got {rho!r}")
    return rho


def banded_inner(x, y, rho):
    """``sum_jk x_j R_jk y_k`` along the last axis, R the band ``1, rho_1, rho_2, ...``.

    Parameters
    ----------
    x, y : ndarray (..., n_pixel)
        Broadcast together (e.g. sigma q m for a model, sigma q d for the data;
        zero at invalid pixels, which then drop out of every pair).
    rho : ndarray (L,)

    Returns
    -------
    inner : ndarray (...)
    """
    x, y = np.asarray(x), np.asarray(y)
    n_pixel = x.shape[-1]
    lags = [(lag, c) for lag, c in enumerate(rho, start=1) if c != 0 and lag < n_pixel]
    if lags and x.size != y.size:
        # R applied once to the smaller operand (broadcast against the larger), then one
        # inner product: no temporary of the broadcast shape
        small, large = (x, y) if x.size < y.size else (y, x)
        banded = small.astype(np.result_type(small, float), copy=True)
        for lag, coefficient in lags:
            banded[..., :-lag] += coefficient * small[..., lag:]
            banded[..., lag:] += coefficient * small[..., :-lag]
        return np.einsum("...p,...p->...", *np.broadcast_arrays(large, banded))
    x, y = np.broadcast_arrays(x, y)
    out = np.einsum("...p,...p->...", x, y)
    for lag, coefficient in lags:
        out = out + coefficient * (np.einsum("...p,...p->...", x[..., :-lag], y[..., lag:]) +
                                   np.einsum("...p,...p->...", x[..., lag:], y[..., :-lag]))
    return out


class ResidualCorrelation:
    """Pools the autocorrelation of whitened residuals over batches of spectra.

    ``add`` the residuals ``(d - model) / sigma`` of every batch, then read
    :meth:`rho`. Pixels with ``|residual| > outlier`` and their neighbours up
    to ``max_lag`` are left out (sky-line residuals, emission lines a model
    misses).

    Parameters
    ----------
    max_lag : int
    outlier : float
    """

    def __init__(self, max_lag=MAX_LAG, outlier=OUTLIER):
        self.max_lag = int(max_lag)
        self.outlier = float(outlier)
        self.products = np.zeros(self.max_lag)
        self.norms = np.zeros(self.max_lag)
        self.pairs = np.zeros(self.max_lag, dtype=np.int64)
        self.squares = 0.0
        self.count = 0

    def add(self, residuals, valid):
        """Add a batch: residuals (n, n_pixel), valid (n, n_pixel) of bool."""
        r = np.asarray(residuals, dtype=float)
        use = np.asarray(valid, bool) & np.isfinite(r)
        with np.errstate(invalid="ignore"):
            rows, columns = np.nonzero(use & (np.abs(r) > self.outlier))
        for lag in range(-self.max_lag, self.max_lag + 1):  # outliers and their neighbours
            column = columns + lag
            inside = (column >= 0) & (column < r.shape[1])
            use[rows[inside], column[inside]] = False
        for first in range(0, r.shape[0], _ROWS_PER_PASS):
            rows = slice(first, first + _ROWS_PER_PASS)
            self._add_pairs(r[rows], use[rows])
        return self

    def _add_pairs(self, r, use):
        """The sums of :meth:`add` for rows whose left-out pixels are already known.

        The rows are laid end to end with ``max_lag`` zeros between them, so
        that the pairs at lag ``o`` are one dot product of the flat array with
        itself shifted by ``o`` (no pair crosses a row). A residual is 0 where
        it is not used, so ``r_j r_{j+o}`` and ``r_j^2 u_{j+o}`` count only
        the pairs of used pixels.
        """
        n, n_pixel = r.shape
        flat = np.zeros((n, n_pixel + self.max_lag))
        np.copyto(flat[:, :n_pixel], r, where=use)
        used = np.zeros(flat.shape)
        used[:, :n_pixel] = use
        flat, used = flat.ravel(), used.ravel()
        square = flat * flat
        self.squares += float(square.sum())
        self.count += int(use.sum())
        for lag in range(1, self.max_lag + 1):
            self.pairs[lag - 1] += int(round(np.dot(used[:-lag], used[lag:])))
            self.products[lag - 1] += np.dot(flat[:-lag], flat[lag:])
            self.norms[lag - 1] += 0.5 * (np.dot(square[:-lag], used[lag:]) +
                                          np.dot(square[lag:], used[:-lag]))

    def merge(self, other):
        """Pool another accumulator into this one."""
        self.products += other.products
        self.norms += other.norms
        self.pairs += other.pairs
        self.squares += other.squares
        self.count += other.count
        return self

    def coefficients(self):
        """``sum r_j r_{j+o} / sum r_j^2`` at lags 1..max_lag over the pooled pairs.

        Not truncated (:meth:`rho` truncates); 0 at a lag without pairs.
        """
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.norms > 0, self.products / self.norms, 0.0)

    def rho(self, significance=3.0, baseline=None):
        """The measured coefficients, truncated after the last significant lag.

        A lag whose coefficient is within ``significance`` of its own
        sampling error (about 1 / sqrt(pairs)) ends the band: measured noise
        beyond the correlation length would only add noise to every variance.
        Residuals whose mean square is below :data:`MIN_SCATTER` (data that
        fit their model far better than their variance allows, e.g. noiseless
        simulations) are no noise to measure: no correlation is returned.

        ``baseline`` (lags 1..max_lag) is subtracted first: the correlation
        that the processing of the residuals alone puts into white noise
        (the continuum subtraction: `~muse_xcorr.Correlator.subtraction_baseline`).
        """
        if self.count == 0 or self.squares / self.count < MIN_SCATTER:
            return np.zeros(0)
        rho = self.coefficients()
        if baseline is not None:
            rho = rho - np.asarray(baseline, dtype=float)[:rho.size]
        with np.errstate(divide="ignore", invalid="ignore"):
            error = 1.0 / np.sqrt(np.maximum(self.pairs, 1))
        significant = np.abs(rho) > significance * error
        length = 0
        while length < rho.size and significant[length]:
            length += 1
        return np.clip(rho[:length], -0.95, 0.95)


def residual_autocorrelation(residuals, valid, max_lag=MAX_LAG, outlier=OUTLIER):
    """The autocorrelation of whitened residuals at lags 1..max_lag, pooled over spectra.

    Parameters
    ----------
    residuals : ndarray (n, n_pixel)
        ``(d - model) / sigma`` on the valid pixels (anything elsewhere).
    valid : ndarray of bool (n, n_pixel)
    max_lag : int
    outlier : float
        See `ResidualCorrelation`.

    Returns
    -------
    rho : ndarray (max_lag,)
        ``sum r_j r_{j+o} / sum r_j^2`` over the pairs where both are used
        (not truncated; :meth:`ResidualCorrelation.rho` truncates).
    n_pairs : int
        Pairs at lag 1 (the precision of rho_1 is about 1 / sqrt(n_pairs)).
    """
    pooled = ResidualCorrelation(max_lag, outlier).add(residuals, valid)
    return pooled.coefficients(), int(pooled.pairs[0])
