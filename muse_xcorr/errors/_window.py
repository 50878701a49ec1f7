"""What every error estimator shares: the spaxels it can work on, the grid
indices around the peak, and f with its covariance there from
:meth:`Correlator.window` (the one place the covariance of f is computed).

The estimators work in u = (ln(1 + z) - ln(1 + z_k)) / h, the offset from the
best grid sample z_k in grid steps h = d ln(1 + z) (uniform for a grid from
:func:`~muse_xcorr.zgrid`; the local step is used otherwise), and convert the
result with sigma_z = (1 + z_best) h sigma_u.
"""
import numpy as np

from ..flags import Flag

#: Pixels x window samples gathered at a time by :func:`window_f` (bounds memory).
_GATHER_ELEMENTS = 2_000_000


def need_data(result, method):
    """Raise a clear error when ``result`` has no data or correlator to recompute from."""
    if result.correlator is None or result.data is None:
        raise RuntimeError(f"z_error({method!r}) needs the data and the correlator; this "
                           "Redshift was read from a file. Correlate the data again.")


def skipped(result):
    """Spaxels without a peak (NO_DATA, FEW_PIXELS): their sigma_z is NaN, flagged already."""
    flags = result._maps["flags"]
    best = result._maps["best_index"]
    return ((flags & (Flag.NO_DATA | Flag.FEW_PIXELS)) != 0) | (best < 0)


def window_index(centre, half_width, n_z):
    """Grid indices centre-half_width .. centre+half_width, clipped to the grid.

    Returns
    -------
    index : ndarray (n, 2 half_width + 1) of int32
    clipped : ndarray (n,) of bool
        True where the window ran off the grid (the estimators then flag the spaxel).
    """
    centre = np.maximum(np.asarray(centre, dtype=np.int64), 0)
    raw = centre[:, None] + np.arange(-half_width, half_width + 1)
    clipped = np.any((raw < 0) | (raw >= n_z), axis=1)
    return np.clip(raw, 0, n_z - 1).astype(np.int32), clipped


def local_step(result, best):
    """Grid step h in ln(1 + z) at each best index (mean of the two neighbouring steps)."""
    x = np.log1p(result.z)
    k = np.clip(best, 1, x.size - 2)
    return 0.5 * (x[k + 1] - x[k - 1])


def vertex_offset(result, rows, best, h):
    """u of z_best (the refined peak) relative to the best grid sample, in grid steps."""
    z_best = result._maps["z_best"][rows]
    return (np.log1p(z_best) - np.log1p(result.z[np.maximum(best, 0)])) / h


def window_f(result, index, rows, *, full_covariance=True):
    """f (and its covariance) at ``index`` for the spaxels ``rows``, in memory-bounded chunks.

    Parameters
    ----------
    result : `~muse_xcorr.Redshift`
    index : ndarray (len(rows), w) of int
    rows : ndarray of int
        Flat spaxel indices.
    full_covariance : bool

    Returns
    -------
    f : ndarray (len(rows), w)
    cov : ndarray (len(rows), w, w), or (len(rows), w) without ``full_covariance``
    """
    data, correlator = result.data, result.correlator
    w = index.shape[1]
    f = np.empty(index.shape)
    cov = np.empty(index.shape + ((w,) if full_covariance else ()))
    chunk = max(1, _GATHER_ELEMENTS // (w * data.n_pixels))
    for first in range(0, rows.size, chunk):
        part = rows[first:first + chunk]
        batch = gather_batch(data, part)
        f[first:first + chunk], cov[first:first + chunk] = correlator.window_batch(
            data, batch, index[first:first + chunk], full_covariance=full_covariance)
    return f, cov


def gather_batch(data, rows):
    """A `SpectraBatch` of the spaxels ``rows`` (any flat indices, in order)."""
    from ..spectra import SpectraBatch

    rows = np.asarray(rows, dtype=np.int64)
    if rows.size and np.all(np.diff(rows) == 1):
        return data.spectra(int(rows[0]), int(rows[-1]) + 1)
    parts = [data.spectra(int(r), int(r) + 1) for r in rows]
    cat = [np.concatenate([getattr(p, name) for p in parts]) if parts else
           np.zeros((0, data.n_pixels)) for name in ("flux", "variance", "valid")]
    bad = np.concatenate([p.bad_variance for p in parts]) if parts else np.zeros(0, bool)
    return SpectraBatch(0, rows.size, cat[0], cat[1], cat[2].astype(bool), bad)


def to_sigma_z(result, sigma_u, h, rows):
    """sigma_z = (1 + z_best) h sigma_u for ``rows``."""
    return (1.0 + result._maps["z_best"][rows]) * h * sigma_u


class Estimate:
    """What an estimator returns: sigma_z per spaxel, where it is unreliable, and extra maps.

    Attributes
    ----------
    sigma : ndarray (n_spectra,)
        Standard error of z_best (dimensionless redshift); NaN where no peak.
    unreliable : ndarray (n_spectra,) of bool
        Spaxels to flag ZERR_UNRELIABLE.
    extra : dict of ndarray
        Further per-spaxel maps the method computed (e.g. Tonry-Davis r).
    """

    def __init__(self, n):
        self.sigma = np.full(n, np.nan)
        self.unreliable = np.zeros(n, bool)
        self.extra = {}

    def set(self, rows, sigma, unreliable):
        """Store sigma_z for ``rows``.

        Non-finite or non-positive values become NaN and count as unreliable;
        a finite value flagged ``unreliable`` is kept (and flagged).
        """
        sigma = np.asarray(sigma, dtype=float)
        failed = ~(sigma > 0) | ~np.isfinite(sigma)
        self.sigma[rows] = np.where(failed, np.nan, sigma)
        self.unreliable[rows] = np.asarray(unreliable, bool) | failed


class PeakWindow:
    """f (and its covariance) at the 2 half_width + 1 grid samples around each peak.

    Attributes
    ----------
    rows : ndarray of int
        Flat indices of the spaxels with a peak.
    best : ndarray of int
        Their best grid index.
    h : ndarray
        Local grid step in ln(1 + z).
    u : ndarray
        Offset of z_best from the best sample, in grid steps.
    f : ndarray (len(rows), w)
    cov : ndarray (len(rows), w, w) or (len(rows), w)
    clipped : ndarray of bool
        The window ran off the grid.
    """

    def __init__(self, result, half_width, *, full_covariance=True, centre=None):
        half_width = int(half_width)
        if half_width < 1:
            raise ValueError(f"window must be a positive number of grid steps, got {half_width}")
        self.rows = np.flatnonzero(~skipped(result))
        self.best = result._maps["best_index"][self.rows].astype(np.int64)
        self.h = local_step(result, self.best)
        self.u = vertex_offset(result, self.rows, self.best, self.h)
        centre = self.best if centre is None else centre[self.rows]
        self.index, self.clipped = window_index(centre, half_width, result.z.size)
        self.f, self.cov = window_f(result, self.index, self.rows,
                                    full_covariance=full_covariance)
