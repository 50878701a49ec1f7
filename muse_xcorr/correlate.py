"""The Correlator: cross-correlate spectra with a template over a redshift grid.

How a batch of spectra is processed (science.md sections 1, 1b, 2):

1. **Working space.** Masked and non-finite pixels are set to zero and drop
   out of every sum. In ``"uniform"`` weighting each spectrum d is divided by
   its norm ||d|| (over its valid pixels), so the hot-path matrix product
   never sees the data's physical scale (a float32 product of fluxes in cgs
   units would underflow). In ``"inverse_variance"`` weighting the weights
   w = 1/variance are rescaled to a maximum of 1 per spectrum (f is invariant
   under that scale) and the spectrum is whitened the same way.
2. **Search.** f over the whole grid: one matrix product for the numerator,
   and the template norms ``sum_j m_j T_jk^2``: exact per-spectrum masks, with
   spectra grouped by their validity pattern so that a cube whose spaxels
   share a mask pays one row of that product (uniform); inverse-variance
   weighting needs the full ``w @ T^2`` product anyway. The peak and the best
   secondary peak are found on the device.
3. **Window.** f and its (co)variance are recomputed in float64 at the peak
   and its two neighbours from gathered template columns, the argmax is
   confirmed in float64 (moving the window if float32 had picked a
   neighbour), and z_best is refined by the parabola through the three
   samples. So the reported numbers do not depend on the hot-path dtype.
"""
import numpy as np
import astropy.units as u
from astropy.constants import c as speed_of_light

from .backend import _tensorflow as _tf_backend
from .templates.continuum import continuum_subtraction, subtracted_view
from .flags import Flag
from .grid import as_zgrid
from .spectra import MuseCube, MuseSpectrum, _SpectralData
from .templates import Template

__all__ = ["Correlator", "WEIGHTINGS", "SEARCHES"]

#: The weightings the correlator knows.
WEIGHTINGS = ("uniform", "inverse_variance")
#: The searches over the redshift grid.
SEARCHES = ("full", "coarse-to-fine")


def as_spectral_data(data):
    """A `MuseSpectrum` or `MuseCube` from what users pass to :meth:`Correlator.correlate`."""
    if isinstance(data, _SpectralData):
        return data
    try:
        from specutils import Spectrum
    except ImportError:  # pragma: no cover - specutils is a dependency
        Spectrum = ()
    if isinstance(data, Spectrum):
        cls = MuseSpectrum if data.flux.ndim == 1 else MuseCube
        return cls.from_spectrum(data)
    raise TypeError(f"cannot correlate a {type(data).__name__}: pass a MuseCube, a "
                    "MuseSpectrum or a specutils Spectrum")


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
    # concave (a maximum) when the middle point lies above the chord
    span = np.where(distinct, x2 - x0, 1.0)
    chord = y0 + (y2 - y0) * (x1 - x0) / span
    ok = distinct & (denominator != 0) & (y1 > chord)
    return np.where(ok, x1 - 0.5 * numerator / np.where(ok, denominator, 1.0), np.nan)


class _Working:
    """One batch in the working spaces of the search (scaled) and the window (float64).

    The search needs the spectra scaled to unit norm in the hot-path dtype
    and the template-norm weights; the reported float64 numbers need only
    per-spectrum sums (:meth:`peak_sums`). The float64 arrays of
    :meth:`Correlator.window` are formed only when asked for.
    """

    def __init__(self, batch, weighting, min_pixels, full_sigma, dtype="float32"):
        # spectra of a cube stored wavelength-first arrive as a transposed view
        # (n, n_pixel): every operation here keeps the memory order ('K') rather
        # than paying for a transposing copy, and the backend multiplies either order
        d, v, valid = batch.flux, batch.variance, batch.valid
        self.weighting = weighting
        self.n_valid = valid.sum(axis=1)
        self.bad_variance = batch.bad_variance
        self.valid = valid
        self._flux, self._variance = d, v
        self.full_sigma_terms = None
        if weighting == "uniform":
            self.inverse_variance = None
            norm2 = np.einsum("ij,ij->i", d, d)
            self.n_variance_terms = np.einsum("ij,ij->i", v, v)
            self.variance_norm2 = np.einsum("ij,ij,ij->i", v, d, d)
        else:
            w = batch.inverse_variance()
            self.inverse_variance = w
            norm2 = np.einsum("ij,ij,ij->i", w, d, d)
            self.n_variance_terms = self.n_valid.astype(float)
            self.variance_norm2 = norm2
        self.norm2 = norm2
        self.skipped = (self.n_valid < max(min_pixels, 1)) | ~(norm2 > 0)
        safe_norm = np.sqrt(np.where(self.skipped, 1.0, norm2))
        # validity patterns: most spaxels of a cube share one (none, or the AO gap)
        self.patterns, self.pattern_of_row = _validity_patterns(valid & ~self.skipped[:, None])
        self.patterns_float = self.patterns.astype(float)
        if weighting == "uniform":
            scale = np.where(self.skipped, 0.0, 1.0 / safe_norm)[:, None]
            self.search_data = np.multiply(d, scale, dtype=dtype)
            self.search_weights = self.patterns.astype(dtype)
            self.search_inverse = self.pattern_of_row
            if full_sigma:
                v_hat = v * scale ** 2
                self.full_sigma_terms = {
                    "variance": v_hat.astype(dtype),
                    "data_variance": np.multiply(v_hat, self.search_data, dtype=dtype),
                    "r": self.variance_norm2 / safe_norm ** 4,
                    "s2": self.n_variance_terms / safe_norm ** 4}
        else:
            w_max = w.max(axis=1, initial=0.0)
            w_tilde = w / np.where(w_max > 0, w_max, 1.0)[:, None]
            tilde_norm = np.sqrt(np.einsum("ij,ij,ij->i", w_tilde, d, d))
            tilde_norm = np.where(self.skipped | ~(tilde_norm > 0), np.inf, tilde_norm)
            self.search_data = (w_tilde * d / tilde_norm[:, None]).astype(dtype)
            self.search_weights = np.where(self.skipped[:, None], 0.0, w_tilde).astype(dtype)
            self.search_inverse = None

    # -- the float64 window of Correlator.window (whitened data when weighted)
    @property
    def window_data(self):
        if self.weighting == "uniform":
            return self._flux
        return self._flux * np.sqrt(self.inverse_variance)

    @property
    def window_variance(self):
        return self._variance if self.weighting == "uniform" else self.valid.astype(float)

    @property
    def window_scale(self):
        if self.weighting == "uniform":
            return self.valid.astype(float)
        return np.sqrt(self.inverse_variance)

    def peak_sums(self, operator, index, rows=slice(None)):
        """Exact float64 f at grid indices ``index`` (n, 3) and first-order Var f at the centre.

        From four sums over pixels per redshift (science.md section 1):
        ``a = sum d T``, ``t = sum m T^2`` (from the validity patterns),
        ``p = sum v T^2``, ``q = sum v d T`` (weighted: w d, w, w, w d on the
        raw data), without forming the gradient.

        Returns
        -------
        f : ndarray (n, 3)
        variance : ndarray (n,)
        """
        d = self._flux[rows]
        if self.weighting == "uniform":
            v = self._variance[rows]
            patterns = ("take", self.patterns_float, self.pattern_of_row[rows])
            (a,), (t,), (q,), (p,) = operator.column_sums(index, [d], [patterns], [(v, d)], [v])
        else:
            w = self.inverse_variance[rows]
            (a,), (t,), _, _ = operator.column_sums(index, [(w, d)], [w])
            q, p = a[:, 1], t[:, 1]
        norm2 = np.where(self.skipped[rows], 1.0, self.norm2[rows])[:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            f = np.where(t > 0, a / np.sqrt(norm2 * t), 0.0)
        variance = first_order_variance(f[:, 1], p, q, t[:, 1], self.variance_norm2[rows],
                                        norm2[:, 0])
        return f, variance


def _validity_patterns(usable, direct_rounds=4):
    """The distinct rows of a boolean (n, n_pixel) array and the pattern of each row.

    Most spaxels of a cube share a pattern, so a few rounds compare every
    remaining row with one representative (fast in any memory order); the
    rows still ungrouped after ``direct_rounds`` are grouped by their packed bits.

    Returns
    -------
    patterns : ndarray (m, n_pixel) of bool
    pattern_of_row : ndarray (n,) of int32
    """
    n = usable.shape[0]
    pattern_of_row = np.full(n, -1, dtype=np.int32)
    representatives = []
    left = np.arange(n)
    while left.size and len(representatives) < direct_rounds:
        rows = usable if left.size == n else usable[left]
        same = np.all(rows == usable[left[0]], axis=1)
        pattern_of_row[left[same]] = len(representatives)
        representatives.append(left[0])
        left = left[~same]
    if left.size:
        keys = np.ascontiguousarray(np.packbits(usable[left], axis=1))
        keys = keys.view(np.dtype((np.void, max(keys.shape[1], 1)))).ravel()
        _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        pattern_of_row[left] = len(representatives) + inverse.ravel()
        representatives.extend(left[first])
    return usable[representatives], pattern_of_row


def first_order_variance(f, p, q, t_norm2, r, norm2):
    """First-order variance of f from sums over pixels (science.md section 1).

    ``Var f = [p / t - 2 f q / (||d|| sqrt(t)) + f^2 r / ||d||^2] / ||d||^2``

    Parameters
    ----------
    f : ndarray
        The correlation.
    p, q : ndarray
        ``sum_j v_j T_j^2`` and ``sum_j v_j d_j T_j`` (valid pixels).
    t_norm2 : ndarray
        ``sum_j m_j T_j^2``; where it is 0 the variance is 0.
    r, norm2 : ndarray
        ``sum_j v_j d_j^2`` and ``||d||^2`` (broadcast against f).

    Returns
    -------
    variance : ndarray
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        variance = (p / t_norm2 - 2 * f * q / np.sqrt(norm2 * t_norm2)
                    + f * f * r / norm2) / norm2
    return np.where(t_norm2 > 0, variance, 0.0)


class Correlator:
    """Normalised cross-correlation of spectra with a template over a redshift grid.

    Configure it once, then call :meth:`correlate` on a cube or a spectrum.

    Parameters
    ----------
    template : `~muse_xcorr.Template` or list of them
        The noiseless rest-frame template. A list (e.g.
        :func:`muse_xcorr.templates.default_set`) gives a
        `~muse_xcorr.template_set.TemplateSetCorrelator`: the best template per
        spaxel, with ``template_index`` and every template's answer.
    z : array_like
        The redshift grid, e.g. from :func:`~muse_xcorr.zgrid`: increasing,
        at least three values.
    weighting : {"uniform", "inverse_variance"}
        ``"uniform"``: the plain normalised correlation
        f = sum(S T) / sqrt(sum S^2 sum T^2). ``"inverse_variance"``: the
        same on spectra whitened by their error, whose maximum is the
        maximum-likelihood redshift (chi2_min = ||d||_w^2 (1 - f^2)); it
        down-weights sky-line residuals. Default ``"uniform"``.
    batch_size : int
        Spectra per matrix product; memory grows as batch_size x n_z (and
        batch_size x n_pixel), never with the size of the cube.
    dtype : {"float32", "float64"}
        Precision of the full-grid search. The reported f_best, sigma_f_best
        and z_best are always recomputed in float64 (see the module notes).
    sigma_correction : bool
        Apply the second-order correction to sigma_f (science.md section 1b).
        Without it sigma_f is up to sqrt(2) too large when f is near 1.
    keep_ccf : bool
        Keep f(z) and sigma_f(z) over the whole grid for every spectrum
        (n_spectra x n_z each, float64 from the hot-path dtype). Otherwise
        :meth:`Redshift.ccf` recomputes one spectrum's curve on demand.
    exclusion : `~astropy.units.Quantity`
        Velocity half-width around the best peak inside which no secondary
        peak is sought. Default 1000 km/s.
    min_pixels : int
        Spectra with fewer valid pixels are skipped and flagged FEW_PIXELS.
    min_coverage : float
        Flag LOW_COVERAGE when, at z_best, the template covers less than this
        fraction of the valid pixels. Default 0.5.
    search : {"full", "coarse-to-fine"}
        ``"full"`` (default): f over every redshift of ``z``, the exact
        argmax. ``"coarse-to-fine"``: f over every ``coarse_factor``-th
        redshift with the template averaged over each coarse step, then ``z``
        itself in windows of +-1.5 coarse steps around the ``n_candidates``
        best coarse local maxima (and the coarse minimum); several times
        faster on long grids (e.g. 0 < z < 6.7 at 30 km/s), but it can miss
        a global maximum narrower than the coarse step that the averaging
        pushes below n_candidates other maxima (pure noise, very low S/N).
        Its windows pack densest in large batches (``batch_size`` 4096).
        See the performance page of the docs.
    coarse_factor : int
        Fine steps per coarse step (coarse-to-fine only). Default 10.
    n_candidates : int
        Coarse maxima refined on the fine grid (coarse-to-fine only). Default 8.
    continuum : {None, "median", "spline", "polynomial"}
        Subtract a continuum, estimated the same way on the observed grid,
        from every spectrum and every redshifted template column before
        correlating (see :mod:`muse_xcorr.templates.continuum`). Default None.
    continuum_window : `~astropy.units.Quantity`
        The continuum's smoothing length in observed wavelength. Default 150 A.

    Examples
    --------
    >>> from muse_xcorr import Correlator, zgrid, datasets
    >>> cube, truth = datasets.make_cube(shape=(3, 4), seed=1)
    >>> result = Correlator(datasets.make_template(), zgrid(0.2, 0.8, 2e-4)).correlate(
    ...     cube, progress=False)
    >>> bool(abs(result.z_best - truth["z"]).max() < 1e-3)
    True
    """

    def __new__(cls, template, *args, **kwargs):
        if isinstance(template, (list, tuple)):  # a template set: see muse_xcorr.template_set
            from .template_set import TemplateSetCorrelator
            return TemplateSetCorrelator(template, *args, **kwargs)
        return super().__new__(cls)

    def __init__(self, template, z, *, weighting="uniform", batch_size=1024, dtype="float32",
                 sigma_correction=True, keep_ccf=False, exclusion=1000 * u.km / u.s,
                 min_pixels=10, min_coverage=0.5, search="full", coarse_factor=10,
                 n_candidates=8, continuum=None, continuum_window=150 * u.AA):
        if not isinstance(template, Template):
            raise TypeError(f"template must be a muse_xcorr.Template, got "
                            f"{type(template).__name__} (see Template.read / from_spectrum)")
        if weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
        if str(dtype) not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
        if int(batch_size) < 1:
            raise ValueError("batch_size must be a positive integer")
        if search not in SEARCHES:
            raise ValueError(f"search must be one of {SEARCHES}, got {search!r}")
        if search == "coarse-to-fine" and keep_ccf:
            raise ValueError("keep_ccf=True needs f over the whole grid: use search='full'")
        if int(coarse_factor) < 2 or int(n_candidates) < 1:
            raise ValueError(f"coarse_factor must be >= 2 and n_candidates >= 1, got "
                             f"{coarse_factor} and {n_candidates}")
        self.template = template
        self.z = as_zgrid(z)
        self.weighting = weighting
        self.batch_size = int(batch_size)
        self.dtype = str(dtype)
        self.sigma_correction = bool(sigma_correction)
        self.keep_ccf = bool(keep_ccf)
        self.exclusion = u.Quantity(exclusion, u.km / u.s)
        self.min_pixels = int(min_pixels)
        self.min_coverage = float(min_coverage)
        self.search = search
        self.coarse_factor = int(coarse_factor)
        self.n_candidates = int(n_candidates)
        self.continuum = continuum_subtraction(continuum, continuum_window)
        self._operators = {}
        self._coarse = {}

    def __repr__(self):
        return (f"<Correlator {self.template!r}, {self.z.size} redshifts "
                f"{self.z[0]:.4f}-{self.z[-1]:.4f}, weighting={self.weighting!r}, "
                f"dtype={self.dtype}, search={self.search!r}>")

    # ------------------------------------------------------------------ set-up
    def _operator(self, data):
        """The template matrix on the data's grid (cached per grid and medium)."""
        wave = data.spectral_axis
        key = (wave.value.tobytes(), data.medium)
        if key not in self._operators:
            matrix = self.template.matrix(wave, self.z, medium=data.medium)
            first, stop = self.template.coverage(wave, self.z, medium=data.medium)
            if not np.any(stop > first) or not np.any(matrix):
                rest = self.template.wavelength
                raise ValueError(
                    f"the template ({rest[0].value:.0f}-{rest[-1].value:.0f} A rest) covers "
                    f"no observed wavelength ({wave[0].value:.0f}-{wave[-1].value:.0f} A) at "
                    f"any redshift of the grid ({self.z[0]:.4f}-{self.z[-1]:.4f})")
            if self.continuum is not None:
                matrix = self.continuum.subtract_from_template(matrix, wave)
            matrix = matrix / np.abs(matrix).max()
            operator = _tf_backend.TemplateOperator(matrix, np.log1p(self.z), self.dtype)
            self._operators = {key: (operator, first, stop)}
        return self._operators[key]

    def _coarse_operator(self, operator):
        """The coarse grid's operator: every coarse_factor-th redshift, template box-averaged.

        Column j averages the fine columns within half a coarse step of fine
        index j * coarse_factor, so that a peak narrower than the coarse step
        still shows in the coarse f.
        """
        if id(operator) not in self._coarse:
            factor = min(self.coarse_factor, max(self.z.size // 3, 1))
            centres = np.arange(0, self.z.size, factor)
            fine = operator.columns64.numpy()  # (n_z, n_pixel)
            offsets = np.arange(-(factor // 2), factor - factor // 2)
            coarse = np.zeros((centres.size, fine.shape[1]))
            for offset in offsets:
                coarse += fine[np.clip(centres + offset, 0, self.z.size - 1)]
            coarse = _tf_backend.TemplateOperator(coarse.T / offsets.size,
                                                  np.log1p(self.z[centres]), self.dtype)
            self._coarse = {id(operator): (coarse, factor)}
        return self._coarse[id(operator)]

    # ------------------------------------------------------------------ public
    def correlate(self, data, *, progress=True):
        """Correlate every spectrum of ``data`` with the template.

        Parameters
        ----------
        data : `~muse_xcorr.MuseCube`, `~muse_xcorr.MuseSpectrum` or `~specutils.Spectrum`
            A specutils spectrum must state its medium (WCS CTYPE or
            ``meta['medium']``) and carry an uncertainty.
        progress : bool
            Show a progress bar (tqdm) over the spectra.

        Returns
        -------
        result : `~muse_xcorr.Redshift`
        """
        from .result import Redshift

        data = subtracted_view(as_spectral_data(data), self.continuum)
        operator, first, stop = self._operator(data)
        n = data.n_spectra
        maps = {}
        exclusion = float((self.exclusion / speed_of_light).decompose())
        bar = _progress_bar(n, progress)
        try:
            for start in range(0, n, self.batch_size):
                batch = data.spectra(start, start + self.batch_size)
                self._process(batch, operator, (first, stop), exclusion, maps, n)
                bar.update(len(batch))
        finally:
            bar.close()
        return Redshift(maps, z=self.z, spatial_shape=data.spatial_shape,
                        correlator=self, data=data)

    def window(self, data, start, stop, index, *, full_covariance=True):
        """Exact float64 f and its covariance at given grid indices, for spectra start:stop.

        The one place where the covariance of f is computed; the error
        estimators call it.

        Parameters
        ----------
        data : `~muse_xcorr.MuseCube` or `~muse_xcorr.MuseSpectrum`
        start, stop : int
            Flat spaxel range.
        index : ndarray of int, shape (stop - start, w)
            Grid indices for each spectrum.
        full_covariance : bool
            Covariance matrices (n, w, w), or only variances (n, w).

        Returns
        -------
        f, cov : ndarray
            With the second-order correction when ``sigma_correction`` is set.
        """
        data = subtracted_view(data, self.continuum)
        return self.window_batch(data, data.spectra(start, stop), index,
                                 full_covariance=full_covariance)

    def window_batch(self, data, batch, index, *, full_covariance=True):
        """:meth:`window` for spectra given as arrays (e.g. simulated from the data).

        Parameters
        ----------
        data : `~muse_xcorr.MuseCube` or `~muse_xcorr.MuseSpectrum`
            Supplies the wavelength grid and medium only.
        batch : `~muse_xcorr.spectra.SpectraBatch`
            The spectra, on the grid of ``data``.
        index : ndarray of int, shape (len(batch), w)
        full_covariance : bool

        Returns
        -------
        f, cov : ndarray
        """
        operator, _, _ = self._operator(data)
        work = _Working(batch, self.weighting, self.min_pixels, False)
        f, cov, _ = self._window(operator, work, np.asarray(index, dtype=np.int32),
                                 full_covariance)
        return f, cov

    # ------------------------------------------------------------------ internals
    def _window(self, operator, work, index, full_covariance):
        f, first_order = operator.window(index, work.window_data, work.window_variance,
                                         work.window_scale, work.n_variance_terms,
                                         full_covariance=full_covariance, correction=False)
        return self._corrected(f, first_order, work.norm2, work.n_variance_terms,
                               full_covariance)

    def _corrected(self, f, first_order, norm2, n_variance_terms, full_covariance):
        """The second-order correction of section 1b, where it applies; the failed rows."""
        if not self.sigma_correction:
            return f, first_order, np.zeros(f.shape[0], bool)
        norm2 = np.where(norm2 > 0, norm2, np.inf)
        rank_one = n_variance_terms / (2 * norm2 ** 2)
        if full_covariance:
            cov = first_order - f[:, :, None] * f[:, None, :] * rank_one[:, None, None]
            diagonal, first_diagonal = (np.diagonal(cov, axis1=1, axis2=2),
                                        np.diagonal(first_order, axis1=1, axis2=2))
        else:
            cov = first_order - f * f * rank_one[:, None]
            diagonal, first_diagonal = cov, first_order
        # the corrected variance is positive in every regime of section 1b;
        # where it is not, the first-order value is kept and the spaxel flagged
        failed = np.any((diagonal <= 0) & (first_diagonal > 0), axis=1)
        if np.any(failed):
            cov = np.where(failed.reshape((-1,) + (1,) * (cov.ndim - 1)), first_order, cov)
        return f, cov, failed

    def _process(self, batch, operator, coverage_range, exclusion, maps, n_total):
        work = _Working(batch, self.weighting, self.min_pixels, self.keep_ccf, self.dtype)
        found = self._search(operator, work, exclusion)
        k_max = self.z.size - 1
        best = found["best"].astype(np.int64)
        index = np.clip(best[:, None] + np.array([-1, 0, 1]), 0, k_max)
        f, var, failed = self._peak_window(operator, work, index)
        rows = np.arange(len(batch))
        for attempt in range(4):  # confirm the hot-path argmax in float64
            # at the grid edges the clipped index repeats the centre: ignore the copy
            centre_and_distinct = (np.arange(3) == 1) | (index[rows] != best[rows, None])
            step = np.argmax(np.where(centre_and_distinct, f[rows], -np.inf), axis=1) - 1
            moved = (step != 0) & ~work.skipped[rows]
            if not np.any(moved):
                break
            rows = rows[moved]
            best[rows] += step[moved]
            index[rows] = np.clip(best[rows, None] + np.array([-1, 0, 1]), 0, k_max)
            f[rows], var[rows], failed[rows] = self._peak_window(operator, work, index[rows],
                                                                 rows)
        rows = slice(batch.start, batch.stop)
        at_edge = (best == 0) | (best == k_max)
        vertex = parabola_vertex(self.z[index], f)
        z_best = np.where(at_edge | ~np.isfinite(vertex), self.z[best], vertex)
        f_best, var_best = f[:, 1], var
        no_data = (work.n_valid == 0) | ~(work.norm2 > 0)
        few_pixels = work.skipped & ~no_data
        flags = np.zeros(len(batch), dtype=np.int32)
        flags[no_data] |= Flag.NO_DATA
        flags[few_pixels] |= Flag.FEW_PIXELS
        flags[at_edge & ~work.skipped] |= Flag.EDGE
        flags[(-found["f_min"] > found["f_max"]) & ~work.skipped] |= Flag.NEGATIVE_PEAK
        flags[work.bad_variance] |= Flag.BAD_VARIANCE
        flags[failed & ~work.skipped] |= Flag.ZERR_UNRELIABLE
        first, stop = coverage_range
        covered = _coverage_fraction(work.patterns, work.pattern_of_row, first[best],
                                     stop[best], work.n_valid)
        flags[(covered < self.min_coverage) & ~work.skipped] |= Flag.LOW_COVERAGE
        best = np.where(work.skipped, -1, best)
        second = found["second"]
        has_second = second >= 0
        values = {
            "z_best": z_best, "f_best": f_best, "sigma_f_best": np.sqrt(var_best),
            "best_index": best, "f_min": found["f_min"], "coverage": covered,
            "z_second": np.where(has_second, self.z[np.maximum(second, 0)], np.nan),
            "f_second": np.where(has_second, found["f_second"], np.nan),
            "second_index": second, "n_valid": work.n_valid, "norm2": work.norm2,
            "flags": flags}
        if self.weighting == "inverse_variance":
            values["chi2_best"] = work.norm2 * (1 - f_best ** 2)
            values["chi2_second"] = work.norm2 * (1 - values["f_second"] ** 2)
        if self.keep_ccf:
            values["ccf_f"], values["ccf_sigma"] = found["f"], found["sigma"]
        for name, value in values.items():
            value = np.asarray(value)
            if value.dtype.kind == "f" and work.skipped.any():
                value = np.where(work.skipped.reshape((-1,) + (1,) * (value.ndim - 1)),
                                 np.nan, value)
            if name not in maps:
                maps[name] = _blank(n_total, value)
            maps[name][rows] = value

    def _search(self, operator, work, exclusion):
        """The hot-path search: best and secondary peaks of f on the grid."""
        if self.search == "full":
            return operator.search(work.search_data, work.search_weights, work.search_inverse,
                                   exclusion, keep=self._curve_terms(work))
        coarse, factor = self._coarse_operator(operator)
        seeds = coarse.candidates(work.search_data, work.search_weights, work.search_inverse,
                                  min(self.n_candidates, coarse.n_z))
        centres = np.where(seeds >= 0, seeds * factor, -1)
        return operator.search_windows(work.search_data, work.search_weights,
                                       work.search_inverse, centres, (3 * factor) // 2,
                                       exclusion)

    def _peak_window(self, operator, work, index, rows=slice(None)):
        """Float64 f (n, 3), corrected Var f at the centre and failed rows at ``index``."""
        f, first_order = work.peak_sums(operator, index, rows)
        _, variance, failed = self._corrected(f[:, 1:2], first_order[:, None], work.norm2[rows],
                                              work.n_variance_terms[rows], False)
        return f, variance[:, 0], failed

    def _curve_terms(self, work):
        """Per-spectrum terms of sigma_f over the whole grid (None unless keep_ccf)."""
        if not self.keep_ccf:
            return None
        if self.weighting == "uniform":
            terms = work.full_sigma_terms
            return dict(terms, correction=self.sigma_correction * terms["s2"] / 2)
        norm2 = np.where(work.norm2 > 0, work.norm2, np.inf)
        correction = self.sigma_correction * work.n_variance_terms / (2 * norm2 ** 2)
        return {"a": 1 / norm2, "correction": correction}


def _coverage_fraction(patterns, pattern_of_row, first, stop, n_valid):
    """Fraction of each spectrum's valid pixels inside [first, stop).

    ``patterns`` are the distinct validity patterns, ``pattern_of_row`` the
    pattern of each spectrum (so the cumulative counts are formed once per pattern).
    """
    cumulative = np.concatenate([np.zeros((patterns.shape[0], 1), np.int32),
                                 np.cumsum(patterns, axis=1, dtype=np.int32)], axis=1)
    inside = cumulative[pattern_of_row, stop] - cumulative[pattern_of_row, first]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(n_valid > 0, inside / np.maximum(n_valid, 1), 0.0)


def _blank(n, value):
    """A flat output array for n spectra: NaN-filled for floats, zeros otherwise."""
    shape = (n,) + value.shape[1:]
    if value.dtype.kind == "f":
        return np.full(shape, np.nan)
    if value.dtype.kind == "b":
        return np.zeros(shape, bool)
    return np.zeros(shape, value.dtype)


def _progress_bar(total, enabled):
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="spec", desc="muse-xcorr", disable=not enabled,
                leave=False, dynamic_ncols=True)
