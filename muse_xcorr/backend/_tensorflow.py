"""The only module that imports TensorFlow. NumPy in, NumPy out.

Two kinds of work happen here:

* the **search** over the full redshift grid: matrix products of a batch of
  (normalised) spectra with the template matrix, in the hot-path dtype
  (float32 by default), followed by the peak finding, all on the device, so
  that only a few numbers per spectrum come back;
* the **window** statistics: f, and the covariance of f, at a few redshifts
  around each peak, in float64, from template columns gathered per spectrum.
  These are the numbers the package reports, so they do not depend on the
  hot-path precision.

The formulas are those of science.md sections 1, 1b and 2; the module-level
docstrings of :mod:`muse_xcorr.correlate` explain how the inputs are scaled.
"""
import os
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

import numpy as np

_tf = None
#: Thread-pool sizes applied when TensorFlow starts (None: TensorFlow's default).
_THREADS = {"intra_op": None, "inter_op": None}

#: Threads for the float64 peak sums (NumPy); see docs/performance.rst.
SUM_THREADS = min(os.cpu_count() or 1, 4)


def tensorflow():
    """Import and start TensorFlow on first use, quietly, and return the module.

    TensorFlow's C++ start-up messages ("Could not find cuda drivers",
    oneDNN notes, a failed cuInit on machines without a GPU) are written
    before its logging can be configured; they are captured while TensorFlow
    is imported and its devices initialised, and shown only if that fails.
    Set ``MUSE_XCORR_TF_VERBOSE=1`` to see them anyway.
    """
    global _tf
    if _tf is None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        if os.environ.get("MUSE_XCORR_TF_VERBOSE"):
            _tf = _start()
        else:
            _tf = _with_captured_stderr(_start)
    return _tf


def _start():
    import tensorflow as tf

    if _THREADS["intra_op"] is not None:
        tf.config.threading.set_intra_op_parallelism_threads(_THREADS["intra_op"])
    if _THREADS["inter_op"] is not None:
        tf.config.threading.set_inter_op_parallelism_threads(_THREADS["inter_op"])
    tf.config.list_logical_devices()  # initialises the devices (and their messages)
    return tf


def _with_captured_stderr(function):
    """Call ``function`` with file descriptor 2 sent to a temporary file."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as capture:
        os.dup2(capture.fileno(), 2)
        try:
            return function()
        except Exception:
            os.dup2(saved, 2)
            capture.seek(0)
            sys.stderr.write(capture.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def configure_threads(intra_op=None, inter_op=None):
    """Set TensorFlow's CPU thread pools.

    Takes effect only before TensorFlow starts (the first correlation in
    the process); returns False, and changes nothing, when it has already started.
    """
    if _tf is not None:
        return False
    _THREADS["intra_op"] = None if intra_op is None else int(intra_op)
    _THREADS["inter_op"] = None if inter_op is None else int(inter_op)
    return True


def devices():
    """Names of the devices TensorFlow sees (CPU and any GPU)."""
    tf = tensorflow()
    return [d.name for d in tf.config.list_logical_devices()]


class TemplateOperator:
    """A template matrix held by TensorFlow, with its square and a float64 copy.

    Parameters
    ----------
    matrix : ndarray, shape (n_pixel, n_z)
        The resampled template (any scale; float64).
    log1pz : ndarray, shape (n_z,)
        ln(1 + z) of the grid, for the velocity exclusion zone of secondary peaks.
    dtype : str
        Hot-path dtype of the search ("float32" or "float64").
    """

    def __init__(self, matrix, log1pz, dtype="float32"):
        tf = tensorflow()
        self.dtype = tf.as_dtype(dtype)
        self.n_pixel, self.n_z = matrix.shape
        # stored by redshift (n_z, n_pixel): a slice of the grid is a block of rows
        self.rows = tf.constant(matrix.T, dtype=self.dtype)
        self.rows2 = tf.constant((matrix * matrix).T, dtype=self.dtype)
        self._tiny = tf.constant(np.finfo(self.dtype.as_numpy_dtype).tiny * 1e6, self.dtype)
        self.columns64 = tf.constant(np.ascontiguousarray(matrix.T), dtype=tf.float64)
        self.log1pz = tf.constant(log1pz, dtype=tf.float64)
        self._columns = None

    @property
    def T(self):
        """The template matrix (n_pixel, n_z) in the hot-path dtype."""
        return tensorflow().transpose(self.rows)

    @property
    def T2(self):
        """Its elementwise square (n_pixel, n_z)."""
        return tensorflow().transpose(self.rows2)

    # ------------------------------------------------------------------ search
    def norm_factors(self, weights, start=0, stop=None):
        """Template norms over the weighted pixels of each row of ``weights``.

        Parameters
        ----------
        weights : ndarray (m, n_pixel)
            Validity patterns (uniform) or per-spectrum weights (weighted).
        start, stop : int
            The slice of the redshift grid to compute them for.

        Returns
        -------
        inverse_norm : Tensor (m, stop - start)
            1 / sqrt(sum_j w_j T_jk^2); 0 where the template has no flux there.
        penalty : Tensor (m, stop - start)
            0 where covered, -inf elsewhere (added to f before taking maxima).
        """
        tf = tensorflow()
        t_norm2 = tf.matmul(tf.constant(weights, self.dtype), self.rows2[start:stop],
                            transpose_b=True)
        covered = t_norm2 > self._tiny
        zeros = tf.zeros_like(t_norm2)
        inverse_norm = tf.where(covered, tf.math.rsqrt(tf.maximum(t_norm2, self._tiny)), zeros)
        return inverse_norm, tf.where(covered, zeros, zeros - np.inf)

    def _correlation(self, data, weights, inverse, start=0, stop=None):
        """f over grid indices start:stop, its coverage penalty and 1 / ||T_k||.

        The penalty and inverse norm have one row when every spectrum shares it.
        """
        tf = tensorflow()
        numerator = self._product(data, self.rows[start:stop])
        if inverse is None:  # one weight row per spectrum
            inverse_norm, penalty = self.norm_factors(weights, start, stop)
        else:
            patterns, pattern_of_row = np.unique(inverse, return_inverse=True)
            inverse_norm, penalty = self.norm_factors(weights[patterns], start, stop)
            if patterns.size > 1:
                inverse_norm = tf.gather(inverse_norm, pattern_of_row.ravel())
                penalty = tf.gather(penalty, pattern_of_row.ravel())
        return numerator * inverse_norm, penalty, inverse_norm

    def _product(self, data, rows):
        """``data @ rows.T`` in the hot-path dtype; a transposed view is not copied first."""
        tf = tensorflow()
        if not data.flags.c_contiguous and data.T.flags.c_contiguous:
            return tf.matmul(tf.constant(data.T, self.dtype), rows, transpose_a=True,
                             transpose_b=True)
        return tf.matmul(tf.constant(data, self.dtype), rows, transpose_b=True)

    def search(self, data, weights, inverse=None, exclusion=0.0, keep=None):
        """f over the whole grid for a batch, and its peaks.

        Parameters
        ----------
        data : ndarray (n, n_pixel), hot-path dtype
            Spectra scaled so that f = (data @ T) / sqrt(weights @ T^2).
        weights : ndarray (m, n_pixel)
            Validity patterns (with ``inverse``: the pattern of each
            spectrum), or one weight row per spectrum (``inverse=None``).
        inverse : ndarray (n,) of int, optional
        exclusion : float
            Half-width in ln(1 + z) around the best peak inside which no
            secondary peak is sought.
        keep : dict, optional
            Also return f and sigma_f over the whole grid (``f``, ``sigma``,
            NaN where the template has no flux), from per-spectrum terms:
            uniform weighting ``variance`` and ``data_variance`` (n, n_pixel,
            the scaled v and v d), ``r`` = sum v d^2 and ``correction`` =
            sum v^2 / 2 (n,), for Var f = p/t - 2 f q/sqrt(t) + f^2 (r - correction)
            (science.md sections 1, 1b on unit-norm data); inverse-variance
            weighting ``a`` = 1 / ||d||_w^2 and ``correction``, for
            Var f = a - f^2 (a + correction).

        Returns
        -------
        out : dict of ndarray
            ``best`` (index of max f), ``f_max``, ``f_min``, ``second`` (index
            of the best local maximum outside the exclusion zone, -1 if none)
            and ``f_second``.
        """
        tf = tensorflow()
        f, penalty, inverse_norm = self._correlation(data, weights, inverse)
        found = _compiled("peaks")(f, penalty, self.log1pz, tf.constant(exclusion, tf.float64))
        out = {name: value.numpy() for name, value in found.items()}
        if keep is not None:
            rows = {name: tf.constant(keep[name][:, None], self.dtype)
                    for name in ("r", "a", "correction") if name in keep}
            if "variance" in keep:
                p = self._product(keep["variance"], self.rows2)
                q = self._product(keep["data_variance"], self.rows)
                curves = _compiled("curves")(f, penalty, inverse_norm, p, q, rows["r"],
                                             rows["correction"])
            else:
                curves = _compiled("weighted_curves")(f, penalty, rows["a"],
                                                      rows["correction"])
            out["f"], out["sigma"] = (curve.numpy() for curve in curves)
        return out

    def candidates(self, data, weights, inverse, n_candidates):
        """The best local maxima of f (and its minimum) over the grid: coarse-search seeds.

        Parameters
        ----------
        data, weights, inverse
            As for :meth:`search`.
        n_candidates : int

        Returns
        -------
        index : ndarray (n, n_candidates + 1) of int
            The n_candidates highest local maxima of f (-1 where there are
            fewer), then the index of the minimum of f.
        """
        f, penalty, _ = self._correlation(data, weights, inverse)
        return _compiled("candidates", int(n_candidates))(f, penalty).numpy()

    def search_windows(self, data, weights, inverse, centres, half_width, exclusion,
                       pairs_per_product=64):
        """f in windows of the grid around given centre indices, and its peaks there.

        The fine stage of the coarse-to-fine search. The windows (``centres``
        +- ``half_width``) of all spectra are sorted by position and taken in
        groups of ``pairs_per_product``; each group is one dense matrix
        product over the part of the grid its windows span, so the work stays
        in matrix products while the grid outside the windows is never touched.

        Parameters
        ----------
        data, weights, inverse
            As for :meth:`search`.
        centres : ndarray (n, c) of int
            Window centres per spectrum (-1: no window).
        half_width : int
        exclusion : float
            As for :meth:`search`.
        pairs_per_product : int
            Windows per matrix product.

        Returns
        -------
        out : dict of ndarray
            As :meth:`search`, from the windows only (``f_min`` too).
        """
        tf = tensorflow()
        data = _row_major(data, self.dtype)
        n, n_windows = centres.shape
        width = min(2 * half_width + 1, self.n_z)
        row, slot = np.nonzero(centres >= 0)
        low = np.clip(centres[row, slot] - half_width, 0, self.n_z - width)
        order = np.argsort(low, kind="stable")
        row, slot, low = row[order], slot[order], low[order]
        highest = np.full((n, n_windows, width), -np.inf)
        lowest = np.full((n, n_windows, width), np.inf)
        offsets = np.arange(width)
        window_group = self._window_group()
        for first in range(0, row.size, pairs_per_product):
            part = slice(first, first + pairs_per_product)
            rows, start = row[part], int(low[part][0])
            if inverse is None:  # one weight row per spectrum
                group_weights, pattern = weights[rows], np.arange(rows.size)
            else:
                patterns, pattern = np.unique(inverse[rows], return_inverse=True)
                group_weights = weights[patterns]
            high, low_values = window_group(
                data, tf.constant(rows, tf.int32), tf.constant(start, tf.int32),
                tf.constant(int(low[part][-1]) + width, tf.int32),
                tf.constant(group_weights, self.dtype),
                tf.constant(pattern.ravel(), tf.int32),
                tf.constant((low[part] - start)[:, None] + offsets, tf.int32))
            highest[rows, slot[part]] = high.numpy()
            lowest[rows, slot[part]] = low_values.numpy()
        index = np.full((n, n_windows, width), -1, dtype=np.int64)
        index[row, slot] = low[:, None] + offsets
        return _window_peaks(highest, lowest, index, self.log1pz.numpy(), exclusion)

    def _window_group(self):
        """The traced step of :meth:`search_windows`: f of a group of windows (one graph)."""
        if getattr(self, "_window_step", None) is None:
            tf = tensorflow()
            spec = [tf.TensorSpec([None, self.n_pixel], self.dtype),
                    tf.TensorSpec([None], tf.int32), tf.TensorSpec([], tf.int32),
                    tf.TensorSpec([], tf.int32), tf.TensorSpec([None, self.n_pixel], self.dtype),
                    tf.TensorSpec([None], tf.int32), tf.TensorSpec([None, None], tf.int32)]

            def step(data, rows, start, stop, weights, pattern, columns):
                numerator = tf.matmul(tf.gather(data, rows), self.rows[start:stop],
                                      transpose_b=True)
                t_norm2 = tf.matmul(weights, self.rows2[start:stop], transpose_b=True)
                covered = t_norm2 > self._tiny
                zeros = tf.zeros_like(t_norm2)
                inverse_norm = tf.where(covered, tf.math.rsqrt(tf.maximum(t_norm2, self._tiny)),
                                        zeros)
                penalty = tf.gather(tf.where(covered, zeros, zeros - np.inf), pattern)
                f = numerator * tf.gather(inverse_norm, pattern)
                f = tf.gather(f, columns, batch_dims=1)
                penalty = tf.gather(penalty, columns, batch_dims=1)
                return f + penalty, f - penalty

            self._window_step = tf.function(step, input_signature=spec).get_concrete_function()
        return self._window_step

    def column_sums(self, index, linear, quadratic, centre_linear=(), centre_quadratic=(),
                    chunk=64):
        """Exact float64 sums over pixels of rows against gathered template columns.

        For each spectrum i and window position k, ``sum_j a_ij T_j,index[i,k]``
        for every row array ``a`` of ``linear`` and ``sum_j b_ij T_j,index[i,k]^2``
        for every ``b`` of ``quadratic``; the ``centre_`` ones only at the
        middle position of the window. NumPy, ``chunk`` spectra at a time so
        that the gathered columns stay in cache (measured faster than a
        batched TensorFlow product for these thin shapes).

        Parameters
        ----------
        index : ndarray (n, w) of int
        linear, quadratic, centre_linear, centre_quadratic : list
            Items: an ndarray (n, n_pixel); a pair of them (their elementwise
            product, formed chunk by chunk); or ``(rows, which)``-style
            ``("take", table, row_index)``: rows ``table[row_index]`` of a
            small table (e.g. the validity patterns).

        Returns
        -------
        sums : tuple of ndarray
            (len(items), n, w) for the first two lists, (len(items), n) for the others.
        """
        if self._columns is None:
            self._columns = self.columns64.numpy()  # a view of the tensor's buffer
        n, w = index.shape
        middle = w // 2
        outs = (np.empty((len(linear), n, w)), np.empty((len(quadratic), n, w)),
                np.empty((len(centre_linear), n)), np.empty((len(centre_quadratic), n)))

        def sums(start):
            part = slice(start, start + chunk)
            rows = _ChunkRows(part)
            columns = self._columns[index[part]]
            for out, item in zip(outs[0], linear):
                out[part] = np.einsum("cwl,cl->cw", columns, rows(item))
            for out, item in zip(outs[2], centre_linear):
                out[part] = np.einsum("cl,cl->c", columns[:, middle], rows(item))
            columns *= columns
            for out, item in zip(outs[1], quadratic):
                out[part] = np.einsum("cwl,cl->cw", columns, rows(item))
            for out, item in zip(outs[3], centre_quadratic):
                out[part] = np.einsum("cl,cl->c", columns[:, middle], rows(item))

        starts = range(0, n, chunk)
        if SUM_THREADS > 1 and len(starts) > 1:  # NumPy releases the GIL in these loops
            with ThreadPoolExecutor(SUM_THREADS) as pool:
                list(pool.map(sums, starts))
        else:
            for start in starts:
                sums(start)
        return outs

    # ------------------------------------------------------------------ window
    def window(self, index, data, variance, scale, n_variance_terms, full_covariance=False,
               correction=True):
        """Exact float64 f and (co)variance of f at given redshift indices.

        Parameters
        ----------
        index : ndarray (n, w) of int
            Grid indices per spectrum.
        data : ndarray (n, n_pixel)
            Spectra with masked pixels at 0, in the working space (uniform:
            the data; weighted: data / sigma).
        variance : ndarray (n, n_pixel)
            Pixel variances in that space (weighted: 1 on valid pixels), 0 where masked.
        scale : ndarray (n, n_pixel)
            Per-pixel factor applied to the template columns (uniform: the
            validity mask; weighted: 1 / sigma on valid pixels, else 0).
        n_variance_terms : ndarray (n,)
            sum_j v_j^2 in that space, for the second-order correction.
        full_covariance : bool
            Return the (n, w, w) covariance, else only its diagonal (n, w).
        correction : bool
            Apply the second-order correction of science.md section 1b.

        Returns
        -------
        f : ndarray (n, w)
        cov : ndarray (n, w) or (n, w, w)
        """
        tf = tensorflow()
        d = tf.constant(data, tf.float64)
        v = tf.constant(variance, tf.float64)
        t_hat = self._unit_columns(index, tf.constant(scale, tf.float64))
        d_norm2 = tf.reduce_sum(d * d, axis=1)
        d_norm = tf.sqrt(d_norm2)
        d_hat = d / tf.maximum(d_norm, 1e-300)[:, None]
        # a column with no template flux on the valid pixels stays 0 in t_hat: f = 0 there
        f = tf.reduce_sum(t_hat * d_hat[:, None, :], axis=2)
        gradient = (t_hat - f[:, :, None] * d_hat[:, None, :]) / \
            tf.maximum(d_norm, 1e-300)[:, None, None]
        weighted = gradient * v[:, None, :]
        rank_one = tf.constant(n_variance_terms, tf.float64) / \
            (2.0 * tf.maximum(d_norm2, 1e-300) ** 2)
        if full_covariance:
            cov = tf.matmul(weighted, gradient, transpose_b=True)
            if correction:
                cov -= f[:, :, None] * f[:, None, :] * rank_one[:, None, None]
        else:
            cov = tf.reduce_sum(weighted * gradient, axis=2)
            if correction:
                cov -= f * f * rank_one[:, None]
        return f.numpy(), cov.numpy()

    # ------------------------------------------------------------------ resampled spectra
    def _unit_columns(self, index, scale):
        """Template columns at ``index`` (n, w), scaled per pixel and normalised (float64).

        A column that is zero on every pixel where ``scale`` is non-zero stays zero.
        """
        tf = tensorflow()
        columns = tf.gather(self.columns64, tf.constant(index, tf.int32)) * scale[:, None, :]
        t_norm = tf.sqrt(tf.reduce_sum(columns * columns, axis=2))
        return columns / tf.maximum(t_norm, 1e-300)[:, :, None]

    def window_samples(self, index, scale, samples):
        """f at given redshift indices for many simulated copies of each spectrum.

        The copies share their spectrum's valid pixels and weights, so the
        template columns are gathered and normalised once per spectrum and
        f is one batched matrix product (the bootstrap, which rebuilds
        spectra from resampled residuals).

        Parameters
        ----------
        index : ndarray (n, w) of int
            Grid indices per spectrum.
        scale : ndarray (n, n_pixel)
            Per-pixel factor taking a spectrum to the working space of the
            window (uniform: the validity mask; weighted: 1 / sigma on valid
            pixels, else 0); applied to the copies and to the template columns.
        samples : ndarray (n, s, n_pixel)
            The simulated spectra (flux units).

        Returns
        -------
        f : ndarray (n, s, w)
            0 where a template column or a copy has zero norm.
        """
        tf = tensorflow()
        scale = tf.constant(scale, tf.float64)
        t_hat = self._unit_columns(index, scale)
        x = tf.constant(samples, tf.float64) * scale[:, None, :]
        x_norm = tf.sqrt(tf.reduce_sum(x * x, axis=2))
        f = tf.matmul(x, t_hat, transpose_b=True) / tf.maximum(x_norm, 1e-300)[:, :, None]
        return f.numpy()

    def numerator_moments(self, index, scale, variance, base):
        """Mean and covariance of <x*, t_k> for copies x* = scale (base + noise).

        With Gaussian noise of variance ``variance`` the numerators of f at
        the window's redshifts are jointly Gaussian: mean <scale base, t_k>,
        covariance sum_j scale_j^2 variance_j t_jk t_jl (t: the scaled,
        normalised template columns). Drawing them directly is a Monte Carlo
        exact in distribution at w numbers per copy instead of n_pixel.

        Parameters
        ----------
        index : ndarray (n, w) of int
        scale, variance, base : ndarray (n, n_pixel)

        Returns
        -------
        mean : ndarray (n, w)
        cov : ndarray (n, w, w)
        """
        tf = tensorflow()
        scale = tf.constant(scale, tf.float64)
        t_hat = self._unit_columns(index, scale)
        mean = tf.reduce_sum(t_hat * (scale * tf.constant(base, tf.float64))[:, None, :], axis=2)
        noise = scale * scale * tf.constant(variance, tf.float64)
        cov = tf.matmul(t_hat * noise[:, None, :], t_hat, transpose_b=True)
        return mean.numpy(), cov.numpy()


def _row_major(data, dtype):
    """A (n, n_pixel) array as a row-major tensor (a transposed view is transposed by TF)."""
    tf = tensorflow()
    if not data.flags.c_contiguous and data.T.flags.c_contiguous:
        return tf.transpose(tf.constant(data.T, dtype))
    return tf.constant(data, dtype)


class _ChunkRows:
    """Rows ``part`` of the arrays of :meth:`TemplateOperator.column_sums`, made contiguous once.

    Batches of a cube stored wavelength first are transposed views, whose
    rows are slow to read; each array's chunk is copied once and reused.
    """

    def __init__(self, part):
        self.part = part
        self.cache = {}

    def __call__(self, item):
        if isinstance(item, tuple) and isinstance(item[0], str):  # ("take", table, rows)
            _, table, row_index = item
            return table[row_index[self.part]]
        if isinstance(item, tuple):
            return self(item[0]) * self(item[1])
        if id(item) not in self.cache:
            self.cache[id(item)] = _contiguous(item[self.part])
        return self.cache[id(item)]


def _contiguous(rows, tile=256):
    """A float64 C-ordered copy of ``rows`` (or the array itself when it already is one).

    A transposed view is copied tile by tile along the pixels: 4 x faster
    than NumPy's row-by-row copy, which reads one element per cache line.
    """
    if rows.flags.c_contiguous and rows.dtype == np.float64:
        return rows
    out = np.empty(rows.shape)
    for start in range(0, rows.shape[1], tile):
        out[:, start:start + tile] = rows[:, start:start + tile]
    return out


# ---------------------------------------------------------------------- peak finding
#: Compile the peak finding with XLA (fuses its elementwise passes over the (n, n_z) f).
JIT_COMPILE = True
_COMPILED = {}


def _compiled(name, *arguments):
    """The TensorFlow function for a peak-finding step (built once per name and arguments)."""
    key = (name,) + arguments
    if key not in _COMPILED:
        tf = tensorflow()
        if name in ("peaks", "curves", "weighted_curves"):
            function = {"peaks": _peaks, "curves": _curves,
                        "weighted_curves": _weighted_curves}[name]
        else:
            def function(f, penalty):
                return _candidates(f, penalty, *arguments)
        _COMPILED[key] = tf.function(function, jit_compile=JIT_COMPILE)
    return _COMPILED[key]


def _local_maxima(masked):
    """Local maxima along the grid (ties to the left count), where f is defined."""
    tf = tensorflow()
    left = tf.pad(masked[:, :-1], [[0, 0], [1, 0]], constant_values=-np.inf)
    right = tf.pad(masked[:, 1:], [[0, 0], [0, 1]], constant_values=-np.inf)
    return (masked >= left) & (masked > right) & (masked > -np.inf)


def _peaks(f, penalty, log1pz, exclusion):
    """Best peak, minimum, and best secondary local maximum outside the exclusion zone."""
    tf = tensorflow()
    masked = f + penalty
    best = tf.argmax(masked, axis=1, output_type=tf.int32)
    distance = tf.abs(log1pz[None, :] - tf.gather(log1pz, best)[:, None])
    candidate = _local_maxima(masked) & (distance > exclusion)
    second_values = tf.where(candidate, masked, tf.constant(-np.inf, masked.dtype))
    has_second = tf.reduce_any(candidate, axis=1)
    return {"best": best,
            "f_max": tf.cast(tf.reduce_max(masked, axis=1), tf.float64),
            "f_min": tf.cast(tf.reduce_min(f - penalty, axis=1), tf.float64),
            "second": tf.where(has_second, tf.argmax(second_values, axis=1,
                                                     output_type=tf.int32), -1),
            "f_second": tf.cast(tf.reduce_max(second_values, axis=1), tf.float64)}


def _curves(f, penalty, inverse_norm, p, q, r, correction):
    """f and sigma_f over the grid, NaN where not covered (uniform weighting, unit-norm data).

    ``Var f = p / t - 2 f q / sqrt(t) + f^2 (r - correction)`` with
    ``1 / sqrt(t) = inverse_norm`` (science.md sections 1 and 1b).
    """
    variance = p * inverse_norm ** 2 - 2 * f * q * inverse_norm + f * f * (r - correction)
    return _undefined_where_uncovered(f, variance, penalty)


def _weighted_curves(f, penalty, a, correction):
    """The same for inverse-variance weighting: ``Var f = a - f^2 (a + correction)``."""
    return _undefined_where_uncovered(f, a - f * f * (a + correction), penalty)


def _undefined_where_uncovered(f, variance, penalty):
    tf = tensorflow()
    undefined = penalty * 0  # NaN where not covered (-inf * 0), else 0
    return f + undefined, tf.sqrt(tf.maximum(variance, 0)) + undefined


def _candidates(f, penalty, n_candidates):
    """Indices of the n_candidates highest local maxima (-1 if fewer) and of the minimum."""
    tf = tensorflow()
    masked = f + penalty
    values = tf.where(_local_maxima(masked), masked, tf.constant(-np.inf, masked.dtype))
    top = tf.math.top_k(values, k=n_candidates)
    index = tf.where(top.values > -np.inf, top.indices, -1)
    lowest = tf.argmin(f - penalty, axis=1, output_type=tf.int32)
    return tf.concat([index, lowest[:, None]], axis=1)


def _window_peaks(highest, lowest, index, log1pz, exclusion):
    """:func:`_peaks` on windows of the grid (NumPy; the windows are small).

    Parameters
    ----------
    highest, lowest : ndarray (n, c, w)
        f + penalty and f - penalty in each spectrum's c windows (-inf and
        +inf where not covered or where there is no window).
    index : ndarray (n, c, w) of int
        Grid index of each value (-1: no window).
    log1pz : ndarray (n_z,)
    exclusion : float
    """
    n = highest.shape[0]
    rows = np.arange(n)
    flat_index = index.reshape(n, -1)
    position = np.argmax(highest.reshape(n, -1), axis=1)
    best = flat_index[rows, position]
    # a window's first and last values are local maxima only at the grid's edges
    unknown = np.full(highest.shape[:2] + (1,), np.inf)
    left = np.concatenate([np.where(index[..., :1] == 0, -np.inf, unknown),
                           highest[..., :-1]], axis=2)
    right = np.concatenate([highest[..., 1:],
                            np.where(index[..., -1:] == log1pz.size - 1, -np.inf, unknown)],
                           axis=2)
    local = (highest >= left) & (highest > right) & (highest > -np.inf)
    distance = np.abs(log1pz[np.maximum(index, 0)] - log1pz[np.maximum(best, 0)][:, None, None])
    candidate = (local & (distance > exclusion)).reshape(n, -1)
    second_values = np.where(candidate, highest.reshape(n, -1), -np.inf)
    has_second = candidate.any(axis=1)
    second = flat_index[rows, np.argmax(second_values, axis=1)]
    return {"best": best.astype(np.int32), "f_max": highest.reshape(n, -1).max(axis=1),
            "f_min": lowest.reshape(n, -1).min(axis=1),
            "second": np.where(has_second, second, -1).astype(np.int32),
            "f_second": second_values.max(axis=1)}


def row_inner(weights, x, y):
    """Weighted inner products over pixels, row by row: sum_j w_ij x_ij y_ij.

    Parameters
    ----------
    weights, x, y : ndarray (n, n_pixel)

    Returns
    -------
    out : ndarray (n,)
        float64.
    """
    tf = tensorflow()
    w, a, b = (tf.constant(v, tf.float64) for v in (weights, x, y))
    return tf.reduce_sum(w * a * b, axis=1).numpy()
