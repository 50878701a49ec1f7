"""What every error estimator shares: the spaxels it can work on, the grid
indices around the peak, and f with its covariance there from
:meth:`Correlator.window <muse_xcorr.Correlator.window>` (the one place the
covariance of f is computed), each spaxel with its own fitted model.

The estimators work in u = (ln(1 + z) - ln(1 + z_k)) / h, the offset from the
best grid sample z_k in grid steps h = d ln(1 + z) (uniform for a grid from
:func:`~muse_xcorr.zgrid`; the local step is used otherwise), and convert the
result with sigma_z = (1 + z_best) h sigma_u.
"""
import numpy as np

__all__ = ["Estimate", "PeakWindow", "window_index", "local_step", "to_sigma_z", "CHUNK_ELEMENTS",
           "chunks"]

#: Float64 elements held at a time per chunk of spectra (bounds memory, ~200 MB).
CHUNK_ELEMENTS = 25_000_000


def window_index(centre, half_width, n_z):
    """Grid indices centre-half_width .. centre+half_width, clipped to the grid.

    Returns
    -------
    index : ndarray (n, 2 half_width + 1) of int64
    clipped : ndarray (n,) of bool
        True where the window ran off the grid (the estimators then flag the spaxel).
    """
    centre = np.maximum(np.asarray(centre, dtype=np.int64), 0)
    raw = centre[:, None] + np.arange(-half_width, half_width + 1)
    clipped = np.any((raw < 0) | (raw >= n_z), axis=1)
    return np.clip(raw, 0, n_z - 1), clipped


def local_step(z, best):
    """Grid step h in ln(1 + z) at each best index (mean of the two neighbouring steps)."""
    x = np.log1p(np.asarray(z))
    k = np.clip(best, 1, x.size - 2)
    return 0.5 * (x[k + 1] - x[k - 1])


def to_sigma_z(result, sigma_u, h, rows):
    """sigma_z = (1 + z_best) h sigma_u for ``rows``."""
    return (1.0 + result.flat("z_best")[rows]) * h * sigma_u


def chunks(rows, per_row):
    """Chunks of ``rows`` holding at most the memory bound, ``per_row`` float64s per row."""
    size = max(1, CHUNK_ELEMENTS // max(int(per_row), 1))
    return [rows[i:i + size] for i in range(0, rows.size, size)]


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

    def extra_map(self, name, rows, values):
        """Store a further per-spaxel map (NaN elsewhere)."""
        if name not in self.extra:
            self.extra[name] = np.full(self.sigma.size, np.nan)
        self.extra[name][rows] = values


class PeakWindow:
    """f (and its covariance) at the 2 half_width + 1 grid samples around each peak.

    Attributes
    ----------
    rows : ndarray of int
        Flat indices of the spaxels with a peak.
    best : ndarray of int
        Their best grid index.
    template : ndarray of int
        Their best template.
    h : ndarray
        Local grid step in ln(1 + z).
    u : ndarray
        Offset of z_best from the best sample, in grid steps.
    f : ndarray (len(rows), w)
    cov : ndarray (len(rows), w, w) or (len(rows), w)
    failed : ndarray of bool
        The second-order correction did not apply somewhere in the window.
    clipped : ndarray of bool
        The window ran off the grid.
    """

    def __init__(self, result, half_width, *, full_covariance=True):
        half_width = int(half_width)
        if half_width < 1:
            raise ValueError(f"window must be a positive number of grid steps, got {half_width}")
        self.rows = result.peak_rows()
        self.best = result.flat("best_index")[self.rows].astype(np.int64)
        self.template = result.flat("template_index")[self.rows].astype(np.int64)
        self.h = local_step(result.z, self.best)
        z_best = result.flat("z_best")[self.rows]
        self.u = (np.log1p(z_best) - np.log1p(result.z[np.maximum(self.best, 0)])) / self.h
        self.index, self.clipped = window_index(self.best, half_width, result.z.size)
        w = self.index.shape[1]
        self.f = np.empty(self.index.shape)
        self.cov = np.empty(self.index.shape + ((w,) if full_covariance else ()))
        self.failed = np.zeros(self.rows.size, bool)
        position = np.arange(self.rows.size)
        per_row = 2 * w * result.correlator.max_components * result.data.n_pixels
        for part in chunks(position, per_row):
            f, cov, failed = result.correlator.window(
                result.data, self.rows[part], self.template[part], self.index[part],
                full_covariance=full_covariance, rho=result.noise_correlation)
            self.f[part], self.cov[part], self.failed[part] = f, cov, failed
