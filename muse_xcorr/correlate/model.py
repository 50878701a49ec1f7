"""The fitted model of a spectrum, in float64: the one place every number comes from.

A template entry of the correlator (a `~muse_xcorr.Template`, or a
`~muse_xcorr.templates.CompositeTemplate`) is prepared once per data grid as
a `PreparedTemplate`: the columns of each component, continuum-subtracted in
the rest frame and spread by the line spread on the observed grid, exactly
as they are correlated. At a redshift z_k its **model** of a spectrum d is

    m_k = sum_g A_g T_g(z_k),   A from :func:`~muse_xcorr.templates.composite.fit_amplitudes`

(one component: A = max(<d, T> / ||T||^2, 0), and m_k = T_k itself for a
single template, so that f keeps its sign), and every derived number is
that of this model (maths sections 1, 1b, 2 and 6):

- f_k = <d, m_k> / (||d|| ||m_k||) in the fit metric (q = 1 / v weighted,
  q = 1 uniform);
- chi2_k = sum_j (d_j - A m_kj)^2 / v_j with the fitted amplitude A, the
  **weighted** chi2 in both weightings (inverse-variance: ||d||_w^2 (1 -
  max(f, 0)^2));
- Cov(f_k, f_l) = sum_j v_j q_j^2 g_kj g_lj, g_k = m^_k / ||d|| - f_k d /
  ||d||^2 (the gradient of f for a fixed set of active amplitudes), minus
  the second-order term of section 1b.

`WorkingBatch` holds a batch of spectra in this metric (continuum already
subtracted), and `evaluate` computes all of the above at any grid indices.
"""
import numpy as np

from ..spectra.noise import as_correlation, banded_inner
from ..statistics import (chi2_from_f, correlation, first_order_variance, ml_amplitude,
                          second_order_term, weighted_chi2)
from ..templates.composite import as_components, fit_amplitudes
from ..templates.continuum import NothingLeftError
from ..templates.resample import ColumnGenerator, generator_for

__all__ = ["WorkingBatch", "PreparedTemplate", "Evaluation", "evaluate", "window_covariance",
           "noise_gram", "gather_columns", "numerator_moments", "copy_numerators",
           "copy_scores"]

#: Float64 elements of gathered columns held at a time by `evaluate` (bounds memory;
#: :mod:`muse_xcorr.correlate.memory` counts them).
GATHER_ELEMENTS = 8_000_000


class WorkingBatch:
    """A batch of spectra in the fit metric, ready for the search and for `evaluate`.

    Parameters
    ----------
    batch : `~muse_xcorr.spectra.SpectraBatch`
    weighting : {"uniform", "inverse_variance"}
    continuum : `~muse_xcorr.templates.continuum.ContinuumSubtraction` or None
        Subtracted from the flux here (the variance is kept).
    wavelength : `~astropy.units.Quantity`
        The observed grid (for the continuum).
    min_pixels : int
        Spectra with fewer valid pixels are skipped.
    rho : array_like, optional
        Correlation of the whitened noise at lags 1, 2, ... pixels
        (:mod:`muse_xcorr.spectra.noise`); default white noise.

    Attributes
    ----------
    flux, variance, valid : ndarray (n, n_pixel)
        The (continuum-subtracted) data; 0 where invalid.
    q : ndarray (n, n_pixel)
        The fit weights (1 / v, or 1 on valid pixels).
    w : ndarray (n, n_pixel)
        1 / v on valid pixels (the chi2's weights).
    norm2 : ndarray (n,)
        ||d||^2 in the fit metric.
    norm2_w : ndarray (n,)
        sum w d^2 (the chi2 of no model).
    skipped : ndarray of bool (n,)
        Fewer than ``min_pixels`` valid pixels, or no flux at all.
    """

    #: Attributes that are not per spectrum (kept whole by :meth:`subset`).
    _shared = ("rho",)

    def __init__(self, batch, weighting, continuum, wavelength, min_pixels, rho=None):
        flux, variance, valid = batch.flux, batch.variance, batch.valid
        if continuum is not None:
            flux = continuum.subtract(flux, valid, wavelength)
        self.start, self.stop = batch.start, batch.stop
        self.weighting = weighting
        self.flux = np.ascontiguousarray(flux, dtype=float)
        self.variance = np.ascontiguousarray(variance, dtype=float)
        self.valid = np.ascontiguousarray(valid)
        self.bad_variance = batch.bad_variance
        self.outliers = batch.outliers
        self.n_valid = valid.sum(axis=1)
        self.w = batch.inverse_variance()
        self.q = self.w if weighting == "inverse_variance" else valid.astype(float)
        self.qd = self.q * self.flux
        self.norm2 = np.einsum("ij,ij->i", self.qd, self.flux)
        self.norm2_w = self.norm2 if weighting == "inverse_variance" else \
            np.einsum("ij,ij,ij->i", self.w, self.flux, self.flux)
        # sigma q: a pixel's term of a sum over the metric has the noise sigma q x; the
        # variances of sums are quadratic forms of sigma q x with the noise correlation R
        self.sigma_q = np.sqrt(self.variance) * self.q
        self.vq2 = self.sigma_q * self.sigma_q
        self._correlate_noise(rho)
        self.skipped = (self.n_valid < max(int(min_pixels), 1)) | ~(self.norm2 > 0)

    def _correlate_noise(self, rho):
        """Set the noise correlation and the sums that depend on it."""
        self.rho = as_correlation(rho)
        # Var(||n||^2) / 2 in the metric: sum (v q)^2, and the terms of the correlated pairs
        vq = self.variance * self.q
        self.sum_v2 = banded_inner(vq, vq, self.rho ** 2)
        self.r = banded_inner(self.sigma_q * self.flux, self.sigma_q * self.flux, self.rho)

    def with_correlation(self, rho):
        """The same batch for another noise correlation (the data are not read again)."""
        out = object.__new__(WorkingBatch)
        out.__dict__.update(self.__dict__)
        out._correlate_noise(rho)
        return out

    def __len__(self):
        return self.flux.shape[0]

    def search_arrays(self, dtype):
        """The scaled data, weights and validity patterns of the hot-path search.

        Returns
        -------
        data : ndarray (n, n_pixel)
            ``q d / ||d||`` (scaled so that f = data . T / sqrt(weights . T^2)).
        weights : ndarray (m, n_pixel)
            Uniform: the distinct validity patterns; weighted: ``w / max(w)``,
            per row or, where many spectra share their weights, per distinct row.
        pattern_of_row : ndarray (n,) of int or None
            The row of ``weights`` of each spectrum (None: one row each).
        """
        norm = np.sqrt(np.where(self.skipped, 1.0, self.norm2))
        keep = ~self.skipped[:, None]
        if self.weighting == "uniform":
            data = np.where(keep, self.qd / norm[:, None], 0.0).astype(dtype)
            patterns, pattern_of_row = _validity_patterns(self.valid & keep)
            return data, patterns.astype(dtype), pattern_of_row
        w_max = self.w.max(axis=1, initial=0.0)
        w_max = np.where(w_max > 0, w_max, 1.0)[:, None]
        # f = (w d) . T / sqrt(||d||^2 w . T^2) = (w d / sqrt(w_max ||d||^2)) . T /
        # sqrt((w / w_max) . T^2): both factors stay of order one in float32
        data = np.where(keep, self.qd / (np.sqrt(w_max) * norm[:, None]), 0.0).astype(dtype)
        weights = np.where(keep, self.w / w_max, 0.0).astype(dtype)
        return (data,) + _shared_rows(weights)

    def subset(self, rows):
        """The working batch of some of its rows (for the estimators and the refinement).

        ``rows``: a slice, or integer indices. Consecutive increasing indices
        (often all of a batch's rows) give views of the batch's arrays, like a
        slice; other indices give copies of every float64 array of the
        spectra's pixels. Nothing writes to a subset's arrays.
        """
        rows = _consecutive_as_slice(rows)
        out = object.__new__(WorkingBatch)
        for name, value in self.__dict__.items():
            per_row = isinstance(value, np.ndarray) and name not in self._shared
            out.__dict__[name] = value[rows] if per_row else value
        return out


def _consecutive_as_slice(rows):
    """``rows`` as a slice where they are consecutive increasing non-negative integers."""
    if isinstance(rows, slice):
        return rows
    rows = np.asarray(rows)
    if rows.ndim == 1 and rows.size and rows.dtype.kind in "iu" and rows[0] >= 0 and \
            np.all(np.diff(rows) == 1):
        return slice(int(rows[0]), int(rows[-1]) + 1)
    return rows


def _shared_rows(weights):
    """The weight rows, and the row of each spectrum where many spectra share theirs.

    Spectra with the same variance and valid pixels have the same weights
    (the noise-only spectra of a detection calibration of one spectrum: 128
    draws of its noise); their ``weights . T^2`` is then one product, not one
    per spectrum. Rows are matched by their bytes (exact).

    Returns
    -------
    weights : ndarray (m, n_pixel)
    row_of_spectrum : ndarray (n,) of int32 or None
        None (``weights`` unchanged) unless ``m`` is at most half the spectra.
    """
    n = weights.shape[0]
    if n < 2 or weights.shape[1] == 0:
        return weights, None
    first, inverse = _distinct_rows(weights)
    if first.size > n // 2:
        return weights, None
    return weights[first], inverse.astype(np.int32)


def _distinct_rows(array):
    """The first row of each distinct row of a 2-d array (by its bytes), and each row's one.

    Returns
    -------
    first : ndarray of int (m,)
    inverse : ndarray of int (n,)
        ``array[first][inverse]`` is ``array``.
    """
    array = np.ascontiguousarray(array)
    keys = array.view(np.dtype((np.void, max(array.shape[1] * array.itemsize, 1)))).ravel()
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    return first, inverse.ravel()


def _validity_patterns(usable, direct_rounds=4):
    """The distinct rows of a boolean (n, n_pixel) array and the pattern of each row."""
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
        first, inverse = _distinct_rows(np.packbits(usable[left], axis=1))
        pattern_of_row[left] = len(representatives) + inverse
        representatives.extend(left[first])
    return usable[representatives], pattern_of_row


class PreparedTemplate:
    """One template entry (single or composite) prepared on one data grid and z grid.

    Parameters
    ----------
    template : `~muse_xcorr.Template` or `~muse_xcorr.templates.CompositeTemplate`
    wavelength : `~astropy.units.Quantity`
        The observed pixel centres.
    medium : {"air", "vacuum"}
        Their medium.
    z : ndarray
        The redshift grid.
    continuum : `~muse_xcorr.templates.continuum.ContinuumSubtraction` or None
    lsf : resolution specification or None
        See :func:`muse_xcorr.templates.lsf.lsf_fwhm`; None: no line spread.
    """

    def __init__(self, template, wavelength, medium, z, continuum=None, lsf=None):
        components, self.lower, self.upper = as_components(template)
        self.template = template
        self.name = template.name
        self.n_components = len(components)
        self.z = np.asarray(z, dtype=float)
        # the grid indices the template is searched at (its z_range, a prior)
        low, high = getattr(template, "z_range", None) or (-np.inf, np.inf)
        inside = np.flatnonzero((self.z >= low) & (self.z <= high))
        self.index_range = (int(inside[0]), int(inside[-1])) if inside.size else (0, -1)
        # a composite's component with nothing left in the rest range is a zero column
        # (amplitude 0, its bounds void); a template with nothing left at all is an error
        featureless = "zero" if len(components) > 1 else "raise"
        self.fine = [generator_for(c, wavelength, medium, self.z, continuum=continuum, lsf=lsf,
                                   featureless=featureless) for c in components]
        if all(g.support[0] > g.support[1] for g in self.fine) and continuum is not None:
            raise NothingLeftError(f"nothing of {self.name!r} is left after continuum "
                                   f"subtraction at the wavelengths the grid reaches")
        self.tables = [g.table for g in self.fine]
        self.kernel = self.fine[0].kernel
        self.edges = self.fine[0].edges
        pad = self.fine[0].half
        rest = [c.vacuum_wavelength() for c in components]
        self.rest_range = (min(r[0] for r in rest), max(r[-1] for r in rest))
        self._centres_vacuum = 0.5 * (self.edges[pad + 1:self.edges.size - pad] +
                                      self.edges[pad:self.edges.size - pad - 1])

    def __repr__(self):
        return f"<PreparedTemplate {self.name!r}: {self.n_components} component(s)>"

    def clip(self, index):
        """Grid indices clipped to the template's range; -1 stays -1."""
        index = np.asarray(index)
        low, high = self.index_range
        return np.where(index >= 0, np.clip(index, low, high), -1)

    def in_range(self, index):
        """Whether grid indices lie inside the template's range."""
        low, high = self.index_range
        return (np.asarray(index) >= low) & (np.asarray(index) <= high)

    def coarse(self, factor):
        """Generators of the coarse grid (every ``factor``-th z, columns box-averaged).

        The coarse column at fine index ``j factor`` is the mean of the fine
        columns ``j factor + o`` for the ``factor`` offsets o centred on it
        (exactly: :meth:`~muse_xcorr.templates.resample.LogTable.shift_average`),
        so that a peak narrower than the coarse step still shows. The coarse
        grid only proposes seeds: the line spread is folded into the same
        smoothing of the rest-frame table, as a Gaussian of the velocity width
        it has mid-band, instead of a band product on every coarse column.

        Returns
        -------
        generators : list of `~muse_xcorr.templates.resample.ColumnGenerator`
        centres : ndarray of int
            The fine grid index of each coarse redshift.
        """
        low, high = self.index_range
        centres = np.arange(low, high + 1, factor)
        offsets = np.arange(-(factor // 2), factor - factor // 2)
        step = self.tables[0].step
        stride = self.fine[0].stride
        if stride is None:  # a non-uniform grid: the box of the mean step
            stride = np.mean(np.diff(np.log1p(self.z))) / step
        box = np.round(offsets * stride).astype(np.int64)
        shifts, weights = box, np.full(box.size, 1.0 / box.size)
        pad = self.fine[0].half
        edges = self.edges[pad:self.edges.size - pad]
        if self.kernel is not None:
            gaussian, g_weights = _lsf_shifts(self.kernel, edges, step)
            shifts = (box[:, None] + gaussian[None, :]).ravel()
            weights = (weights[:, None] * g_weights[None, :]).ravel()
        generators = [ColumnGenerator(table.smoothed(shifts, weights), edges, self.z[centres])
                      for table in self.tables]
        return generators, centres

    def columns(self, index, dtype=np.float64):
        """The components' columns at fine grid indices: (n_components, len(index), n_pixel)."""
        return np.stack([g.at_indices(index, dtype) for g in self.fine])

    def compact_columns(self, index):
        """Each component's float64 columns at fine grid indices, over the pixels they reach.

        Returns
        -------
        pieces : list of list of (start, values)
            Per component, the pieces of
            :meth:`~muse_xcorr.templates.resample.ColumnGenerator.compact_at_indices`
            (together exactly the rows of :meth:`columns`).
        """
        return [g.compact_at_indices(index) for g in self.fine]

    def columns_at(self, z):
        """The components' columns at any redshifts: (n_components, len(z), n_pixel)."""
        return np.stack([g.at_redshifts(z) for g in self.fine])

    def disjoint_components(self, index):
        """Whether the components' columns at each grid index have no pixel in common.

        Where they have none, their Gram matrix is diagonal in any weights, and
        the fit's explained share of ``||d||^2`` is at most the sum of the
        components' own (:func:`~muse_xcorr.correlate.search.window_best`).

        Parameters
        ----------
        index : ndarray of int
            Fine grid indices.

        Returns
        -------
        disjoint : ndarray of bool, the shape of ``index``
            Always True for a single template; False where a component's
            extent is not known exactly
            (:meth:`~muse_xcorr.templates.resample.ColumnGenerator.pixel_ranges`).
        """
        index = np.asarray(index, dtype=np.int64)
        disjoint = np.ones(index.shape, bool)
        if self.n_components == 1:
            return disjoint
        ranges = [g.pixel_ranges(index) for g in self.fine]
        if any(r is None for r in ranges):
            return ~disjoint
        for g in range(self.n_components):
            for h in range(g + 1, self.n_components):
                for start_g, stop_g in ranges[g]:
                    for start_h, stop_h in ranges[h]:
                        disjoint &= (stop_g <= start_h) | (stop_h <= start_g) | \
                            (stop_g == start_g) | (stop_h == start_h)
        return disjoint

    def covers_data(self):
        """Whether some component is non-zero on the observed grid at some redshift of its range."""
        low, high = self.index_range
        return high >= low and any(np.any(g.covers(self.z[low:high + 1])) for g in self.fine)

    def coverage(self, z, valid):
        """Fraction of each spectrum's valid pixels inside the template's rest range at z.

        Parameters
        ----------
        z : ndarray (n,)
        valid : ndarray of bool (n, n_pixel)
        """
        low, high = self.rest_range
        z = np.asarray(z, dtype=float)
        first = np.searchsorted(self._centres_vacuum, low * (1 + z), side="left")
        stop = np.searchsorted(self._centres_vacuum, high * (1 + z), side="right")
        cumulative = np.concatenate([np.zeros((valid.shape[0], 1), np.int64),
                                     np.cumsum(valid, axis=1)], axis=1)
        rows = np.arange(valid.shape[0])
        inside = cumulative[rows, np.maximum(stop, first)] - cumulative[rows, first]
        n_valid = cumulative[:, -1]
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(n_valid > 0, inside / np.maximum(n_valid, 1), 0.0)

    def has_emission_line(self, wavelengths, tolerance=1.0):
        """Whether a component lists an emission line at any of ``wavelengths``.

        Parameters
        ----------
        wavelengths : sequence of float
            Rest vacuum wavelengths, Angstrom.
        tolerance : float
            Angstrom.
        """
        components, _, _ = as_components(self.template)
        wavelengths = np.asarray(wavelengths, dtype=float)
        for component in components:
            lines = component.meta.get("line_wavelengths")
            if not lines:
                continue
            strengths = component.meta.get("line_strengths")
            strengths = np.ones(len(lines)) if strengths is None else np.asarray(strengths)
            emission = np.asarray(lines, dtype=float)[strengths > 0]
            if np.any(np.abs(emission[:, None] - wavelengths[None, :]) <= tolerance):
                return True
        return False

    def main_line_wavelength(self, amplitudes, z):
        """Vacuum observed wavelength of the strongest line of the fitted model.

        From the components' ``meta['line_wavelengths']`` and
        ``meta['line_strengths']`` (templates of the library and
        `~muse_xcorr.Template.from_lines`), weighted by the fitted amplitudes;
        NaN where the template lists no lines.
        """
        components, _, _ = as_components(self.template)
        best = np.full(np.shape(z), np.nan)
        strongest = np.zeros(np.shape(z))
        for g, component in enumerate(components):
            lines = component.meta.get("line_wavelengths")
            strengths = component.meta.get("line_strengths")
            if not lines:
                continue
            strengths = np.ones(len(lines)) if strengths is None else np.asarray(strengths)
            i = int(np.argmax(np.abs(strengths)))
            power = np.abs(amplitudes[..., g] * strengths[i])
            better = power > strongest
            best = np.where(better, lines[i] * (1 + np.asarray(z)), best)
            strongest = np.where(better, power, strongest)
        return best


def _lsf_shifts(kernel, edges, step):
    """Node shifts and weights of a Gaussian of the band kernel's mid-band velocity width."""
    middle = kernel.shape[0] // 2
    half = (kernel.shape[1] - 1) // 2
    offsets = np.arange(-half, half + 1)
    variance = kernel[middle] @ offsets ** 2 - (kernel[middle] @ offsets) ** 2
    width = edges[middle + 1] - edges[middle]
    sigma = np.sqrt(max(variance, 0.0)) * width / (0.5 * (edges[middle + 1] + edges[middle]))
    sigma_nodes = sigma / step
    reach = int(np.ceil(4 * sigma_nodes))
    shifts = np.arange(-reach, reach + 1)
    weights = np.exp(-0.5 * (shifts / max(sigma_nodes, 1e-9)) ** 2)
    return shifts, weights / weights.sum()


class Evaluation:
    """What `evaluate` computes at each requested (spectrum, grid index).

    Attributes
    ----------
    f : ndarray (n, w)
        The correlation with the fitted model (signed for a single template).
    amplitudes : ndarray (n, w, K)
        The fitted amplitudes, in the data's flux unit per template unit.
    chi2 : ndarray (n, w)
        The weighted chi2 of the fitted model.
    variance : ndarray (n, w)
        Var f, first order minus the second-order term where that stays
        positive (else first order, and ``failed``).
    failed : ndarray of bool (n, w)
        The second-order correction did not apply (maths section 1b).
    n_active : ndarray of int (n, w)
        Components inside the data (the free amplitudes of the fit).
    kappa : ndarray (n, w)
        The variance inflation of the model's amplitude by the noise
        correlation (1 for white noise): chi2 differences of the model are
        divided by it (maths section 7).
    models : ndarray (n, w, n_pixel) or None
        The unit-norm model columns (q metric), when asked for.
    """


def evaluate(work, prepared, index, *, keep_models=False, correction=True, columns=None):
    """The fitted model at grid indices ``index`` for every spectrum of ``work``.

    Parameters
    ----------
    work : `WorkingBatch`
    prepared : `PreparedTemplate`
    index : ndarray (n, w) of int
        Fine grid indices per spectrum.
    keep_models : bool
        Also return the unit-norm model columns (for covariances).
    correction : bool
        Apply the second-order correction to the variance.
    columns : callable, optional
        ``columns(unique_index) -> (K, U, n_pixel)``; default the
        template's exact columns (for simulated data on another grid).

    Returns
    -------
    evaluation : `Evaluation`
    """
    index = np.asarray(index, dtype=np.int64)
    n, w = index.shape
    K = prepared.n_components
    given, columns = columns, prepared.columns if columns is None else columns
    out = Evaluation()
    out.f = np.zeros((n, w))
    out.amplitudes = np.zeros((n, w, K))
    out.chi2 = np.full((n, w), np.nan)
    out.variance = np.zeros((n, w))
    out.failed = np.zeros((n, w), bool)
    out.n_active = np.zeros((n, w), np.int64)
    out.kappa = np.ones((n, w))
    out.models = np.zeros((n, w, work.flux.shape[1])) if keep_models else None
    n_pixel = work.flux.shape[1]
    rows_per_chunk = max(1, GATHER_ELEMENTS // max(w * K * n_pixel, 1))
    # a composite's components over the pixels they reach (an emission line's few
    # hundred, not all): the same sums without the products of exact zeros
    compact = K > 1 and given is None
    for start in range(0, n, rows_per_chunk):
        rows = slice(start, min(start + rows_per_chunk, n))
        unique, position = np.unique(index[rows], return_inverse=True)
        position = position.reshape(index[rows].shape)
        chunk = work.subset(rows)
        if compact:
            parts = [[(begin[position], values[position]) for begin, values in pieces]
                     for pieces in prepared.compact_columns(unique)]
            a, b = _component_sums(parts, chunk)
        else:
            gathered = columns(unique)[:, position]                  # (K, r, w, P)
            a = np.einsum("grwp,rp->rwg", gathered, chunk.qd)         # <d, T_g>
            b = np.einsum("grwp,grwp,rp->rwg", gathered, gathered, chunk.q)
        if K == 1:  # a single template: the model is the column itself, f keeps its sign
            amplitude, model = ml_amplitude(a, b), gathered[0]
        else:
            amplitude = fit_amplitudes(a, b, prepared.lower, prepared.upper)
            model = _component_model(parts, amplitude, n_pixel) if compact else \
                np.einsum("grwp,rwg->rwp", gathered, amplitude)
        _evaluate_chunk(chunk, (b, amplitude, model), out, rows, correction)
    return out


def _component_windows(x, start, width):
    """``x[r, start[r, w]:start[r, w] + width]`` for every (r, w): (r, w, width), a copy."""
    if width == x.shape[1]:
        return x[:, None, :]
    view = np.lib.stride_tricks.sliding_window_view(x, width, axis=1)
    return view[np.arange(x.shape[0])[:, None], start]


def _component_sums(parts, work):
    """``<d, T_g>`` and ``<T_g, T_g>`` in the fit metric from compact columns: (r, w, K) each.

    ``parts``: per component its pieces ``(start (r, w), values (r, w,
    width))``, the column of spectrum r at slot w being ``values`` on pixels
    ``start:start + width`` of each piece and 0 elsewhere
    (:meth:`PreparedTemplate.compact_columns`).
    """
    a = np.zeros(parts[0][0][0].shape + (len(parts),))
    b = np.zeros_like(a)
    for g, pieces in enumerate(parts):
        for start, values in pieces:
            width = values.shape[-1]
            a[..., g] += np.einsum("rwp,rwp->rw", values,
                                   _component_windows(work.qd, start, width))
            b[..., g] += np.einsum("rwp,rwp,rwp->rw", values, values,
                                   _component_windows(work.q, start, width))
    return a, b


def _component_model(parts, amplitude, n_pixel):
    """``sum_g A_g T_g`` on all pixels from compact columns: (r, w, n_pixel)."""
    model = np.zeros(parts[0][0][0].shape + (n_pixel,))
    r, w = np.indices(parts[0][0][0].shape, sparse=True)
    for g, pieces in enumerate(parts):
        for start, values in pieces:
            term = amplitude[..., g, None] * values
            if values.shape[-1] == n_pixel:
                model += term
                continue
            # each (r, w) writes its own row, and the pieces of a column do not overlap
            view = np.lib.stride_tricks.sliding_window_view(model, values.shape[-1], axis=-1,
                                                            writeable=True)
            view[r, w, start] += term
    return model


def _evaluate_chunk(work, fit, out, rows, correction):
    """Every number of `evaluate` from the components' sums ``b = <T_g, T_g>``, their
    fitted ``amplitude`` (r, w, K) and the ``model`` (r, w, n_pixel) of a chunk of rows."""
    b, amplitude, model = fit
    K = b.shape[-1]
    inside = b > 0
    inner = np.einsum("rwp,rp->rw", model, work.qd)
    model2 = np.einsum("rwp,rwp,rp->rw", model, model, work.q)
    norm2 = np.where(work.skipped, 1.0, work.norm2)[:, None]
    f = correlation(inner, norm2, model2)
    if K > 1:  # the bounded fit may leave the overall scale short of its optimum (overlaps)
        with np.errstate(divide="ignore", invalid="ignore"):
            rescale = np.where(model2 > 0, inner / model2, 0.0)
        rescale = np.where(np.sum(amplitude, axis=-1) > 0, rescale, 0.0)
        amplitude = amplitude * np.clip(rescale, 0.0, None)[..., None]
        amplitude_of_model = np.ones(f.shape)
    else:
        amplitude_of_model = amplitude[..., 0]
    # chi2 (weighted) of the fitted model: A m with m the model column
    if work.weighting == "inverse_variance":
        chi2 = chi2_from_f(work.norm2_w[:, None], f)
    else:
        wd = work.w * work.flux
        inner_w = np.einsum("rwp,rp->rw", model, wd)
        model2_w = np.einsum("rwp,rwp,rp->rw", model, model, work.w)
        chi2 = weighted_chi2(work.norm2_w[:, None], inner_w, model2_w,
                             ml_amplitude(inner, model2))
    # first-order variance from the four sums (quadratic forms with the noise
    # correlation), then the second-order term
    sq_model = model * work.sigma_q[:, None, :]
    sq_data = (work.sigma_q * work.flux)[:, None, :]
    p = banded_inner(sq_model, sq_model, work.rho)
    qq = banded_inner(sq_model, sq_data, work.rho)
    first = first_order_variance(f, p, qq, model2, work.r[:, None], norm2)
    # the variance inflation of the model's amplitude by the correlation (1 for white noise)
    if work.rho.size:
        white = np.einsum("rwp,rwp->rw", sq_model, sq_model)
        kappa = np.where(white > 0, p / np.where(white > 0, white, 1.0), 1.0)
    else:
        kappa = np.ones(p.shape)
    variance, failed = _floored(first, second_order_term(f, f, work.sum_v2[:, None], norm2),
                                correction)
    failed &= model2 > 0
    skipped = work.skipped[:, None]
    out.f[rows] = np.where(skipped, np.nan, f)
    out.amplitudes[rows] = amplitude if K > 1 else amplitude_of_model[..., None]
    out.chi2[rows] = np.where(skipped, np.nan, chi2)
    out.variance[rows] = np.where(skipped, np.nan, variance)
    out.failed[rows] = failed & ~skipped
    out.n_active[rows] = np.sum(inside, axis=-1)
    out.kappa[rows] = np.where(skipped, np.nan, kappa)
    if out.models is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            unit = model / np.sqrt(np.where(model2 > 0, model2, np.inf))[..., None]
        out.models[rows] = unit


def window_covariance(work, evaluation, *, correction=True):
    """The covariance of f over each spectrum's window, from `evaluate`'s unit models.

    ``Cov(f_k, f_l) = [M_kl - f_l D_k - f_k D_l + f_k f_l r / ||d||^2] / ||d||^2``
    with ``M_kl = sum v q^2 m_k m_l``, ``D_k = sum v q^2 d m_k / ||d||`` (unit
    models m), minus ``f_k f_l sum (v q)^2 / (2 ||d||^4)`` (maths 1, 1b).

    Parameters
    ----------
    work : `WorkingBatch`
    evaluation : `Evaluation`
        With ``models`` (``keep_models=True``).

    Returns
    -------
    cov : ndarray (n, w, w)
    failed : ndarray of bool (n,)
        Rows where the corrected diagonal was not positive (first order kept).
    """
    m, f = evaluation.models, np.nan_to_num(evaluation.f)
    norm2 = np.where(work.skipped, 1.0, work.norm2)
    u = m * work.sigma_q[:, None, :]
    gram = noise_gram(u, work.rho)
    d = banded_inner(u, (work.sigma_q * work.flux)[:, None, :], work.rho) / \
        np.sqrt(norm2)[:, None]
    first = (gram - f[:, None, :] * d[:, :, None] - f[:, :, None] * d[:, None, :]
             + f[:, :, None] * f[:, None, :] * (work.r / norm2)[:, None, None]) / \
        norm2[:, None, None]
    term = second_order_term(f[:, :, None], f[:, None, :], work.sum_v2[:, None, None],
                             norm2[:, None, None])
    diagonal = np.diagonal(first, axis1=1, axis2=2)
    floor = np.diagonal(term, axis1=1, axis2=2)
    _, failed = _floored(diagonal, floor, correction)
    cov = first - term if correction else first
    # where the floor applies, the diagonal takes it (the off-diagonal terms keep theirs)
    index = np.arange(cov.shape[1])
    cov[:, index, index] = _floored(diagonal, floor, correction)[0]
    return cov, np.any(failed, axis=1)


def _floored(first, term, correction):
    """The corrected variance ``first - term``, floored at ``term``; where the floor applies.

    The second-order correction (maths section 1b) is an expectation over
    noisy data: at a spectrum that fits its model better than its variance
    allows (e.g. noiseless data exactly proportional to the template), the
    first-order variance is ~0 and ``first - term`` negative, while the
    scatter of f for noisy copies of that spectrum is the chi2 fluctuation
    ``term`` itself. So Var f = max(first - term, term), and the spectra
    where the floor applies are reported (ZERR_UNRELIABLE).
    """
    first = np.maximum(np.asarray(first, dtype=float), 0.0)
    if not correction:
        return first, ~(first > 0)
    corrected = first - term
    floor = corrected < term
    return np.where(floor, term, corrected), floor & (term > 0) | ~(first > 0) & ~(term > 0)


def noise_gram(u, rho):
    """``U R U^T`` for a stack of vectors u (n, V, n_pixel): covariances of sums ``u . n``.

    ``u`` are the vectors times sigma q (zero at invalid pixels), so that
    ``Cov(<n, v_a>, <n, v_b>)`` for noise of the data's variance and
    correlation R is the returned matrix.
    """
    # batched BLAS products (np.einsum does not use BLAS here: 6x slower)
    gram = np.matmul(u, np.swapaxes(u, -1, -2))
    for lag, coefficient in enumerate(rho, start=1):
        if coefficient == 0 or lag >= u.shape[-1]:
            continue
        shifted = np.matmul(u[..., :-lag], np.swapaxes(u[..., lag:], -1, -2))
        gram = gram + coefficient * (shifted + np.swapaxes(shifted, -1, -2))
    return gram


def gather_columns(prepared, index, columns=None):
    """The components' columns at per-spectrum grid indices: (K, n, w, n_pixel)."""
    index = np.asarray(index, dtype=np.int64)
    unique, position = np.unique(index, return_inverse=True)
    cols = (prepared.columns if columns is None else columns)(unique)
    return cols[:, position.reshape(index.shape)]


def numerator_moments(work, prepared, index, base):
    """Mean and covariance of the numerators <x*, T_g(z_k)> for copies x* = base + noise.

    With Gaussian noise of the data's variance the numerators of every
    component at every window redshift are jointly Gaussian: mean
    <base, T_gk>, covariance sum_j v_j q_j^2 T_gkj T_hlj (fit metric). Drawing
    them directly is a Monte Carlo exact in distribution (the norm of a copy
    is common to all k and leaves its argmax unchanged).

    Parameters
    ----------
    work : `WorkingBatch`
    prepared : `PreparedTemplate`
    index : ndarray (n, w) of int
    base : ndarray (n, n_pixel)
        The noiseless copies (the fitted model, or the data).

    Returns
    -------
    mean : ndarray (n, w, K)
    cov : ndarray (n, w K, w K)
        Ordered window-major (k, g).
    norm2 : ndarray (n, w, K)
        ||T_gk||^2 in the fit metric.
    """
    cols = gather_columns(prepared, index)                      # (K, n, w, P)
    mean = np.einsum("gnwp,np->nwg", cols, work.q * base)
    norm2 = np.einsum("gnwp,gnwp,np->nwg", cols, cols, work.q)
    n, w = index.shape
    K = cols.shape[0]
    flat = np.moveaxis(cols, 0, 2).reshape(n, w * K, -1)        # (n, wK, P)
    cov = noise_gram(flat * work.sigma_q[:, None, :], work.rho)
    return mean, cov, norm2


def copy_numerators(work, prepared, index, copies):
    """<x*, T_g(z_k)> in the fit metric for simulated copies of each spectrum.

    Parameters
    ----------
    work : `WorkingBatch`
        The spectra the copies share their weights with.
    prepared : `PreparedTemplate`
    index : ndarray (n, w) of int
    copies : ndarray (n, s, n_pixel)

    Returns
    -------
    numerators : ndarray (n, s, w, K)
    norm2 : ndarray (n, w, K)
    """
    cols = gather_columns(prepared, index)
    numerators = np.einsum("gnwp,nsp->nswg", cols, copies * work.q[:, None, :])
    norm2 = np.einsum("gnwp,gnwp,np->nwg", cols, cols, work.q)
    return numerators, norm2


def copy_scores(prepared, numerators, norm2):
    """A multiple of f for each copy and window redshift (its argmax is the copy's z*).

    Parameters
    ----------
    prepared : `PreparedTemplate`
    numerators : ndarray (n, s, w, K)
    norm2 : ndarray (n, w, K)

    Returns
    -------
    score : ndarray (n, s, w)
        ``<x*, m_k> / ||m_k||`` with the model fitted to each copy (f times ||x*||).
    """
    b = np.broadcast_to(norm2[:, None], numerators.shape)
    if prepared.n_components == 1:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(b[..., 0] > 0, numerators[..., 0] / np.sqrt(b[..., 0]), -np.inf)
    amplitude = fit_amplitudes(numerators, b, prepared.lower, prepared.upper)
    inner = np.sum(amplitude * numerators, axis=-1)
    model2 = np.sum(amplitude * amplitude * b, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(model2 > 0, inner / np.sqrt(model2), 0.0)
