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

import numpy as np

_tf = None
#: Thread-pool sizes applied when TensorFlow starts (None: TensorFlow's default).
_THREADS = {"intra_op": None, "inter_op": None}


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
        self.T = tf.constant(matrix, dtype=self.dtype)
        self.T2 = tf.constant(matrix * matrix, dtype=self.dtype)
        self.columns64 = tf.constant(np.ascontiguousarray(matrix.T), dtype=tf.float64)
        self.log1pz = tf.constant(log1pz, dtype=tf.float64)

    # ------------------------------------------------------------------ search
    def search(self, data, norm_weights, unique_weights, inverse, variance=None,
               data_variance=None, exclusion=0.0, keep=False):
        """f over the whole grid for a batch, and its peaks.

        Parameters
        ----------
        data : ndarray (n, n_pixel)
            Spectra scaled so that f = (data @ T) / sqrt(norm weights @ T^2).
        norm_weights : None or ndarray (n, n_pixel)
            Per-spectrum weights of the template norm (weighted mode), or None
            to use ``unique_weights[inverse]`` (uniform mode: the validity
            patterns, deduplicated).
        unique_weights : ndarray (n_unique, n_pixel) or None
        inverse : ndarray (n,) of int or None
        variance, data_variance : ndarray (n, n_pixel) or None
            For the full-grid sigma_f in uniform mode: ``v_hat`` and
            ``v_hat * d_hat`` (see correlate); None skips it.
        exclusion : float
            Half-width in ln(1 + z) around the best peak inside which no
            secondary peak is sought.
        keep : bool
            Return f (and the template norms) over the whole grid.

        Returns
        -------
        out : dict of ndarray
            ``best`` (index of max f), ``f_max``, ``f_min``, ``second`` (index
            of the best local maximum outside the exclusion zone, -1 if none),
            ``f_second``, ``covered`` (n_z-long bool: any template flux there),
            and with ``keep`` also ``f`` and ``t_norm2`` (n, n_z); with
            ``variance`` also ``first_order`` terms ``p`` and ``q``.
        """
        tf = tensorflow()
        x = tf.constant(data, dtype=self.dtype)
        numerator = tf.matmul(x, self.T)
        if norm_weights is None:
            norms = tf.matmul(tf.constant(unique_weights, dtype=self.dtype), self.T2)
            t_norm2 = tf.gather(norms, inverse)
        else:
            t_norm2 = tf.matmul(tf.constant(norm_weights, dtype=self.dtype), self.T2)
        tiny = tf.constant(np.finfo(self.dtype.as_numpy_dtype).tiny * 1e6, self.dtype)
        covered = t_norm2 > tiny
        f = tf.where(covered, numerator * tf.math.rsqrt(tf.maximum(t_norm2, tiny)),
                     tf.zeros_like(numerator))
        out = self._peaks(f, covered, exclusion)
        if keep:
            out["f"] = f.numpy()
            out["t_norm2"] = t_norm2.numpy()
        if variance is not None:
            out["p"] = tf.matmul(tf.constant(variance, self.dtype), self.T2).numpy()
            out["q"] = tf.matmul(tf.constant(data_variance, self.dtype), self.T).numpy()
        return out

    def _peaks(self, f, covered, exclusion):
        tf = tensorflow()
        neg_inf = tf.constant(-np.inf, f.dtype)
        masked = tf.where(covered, f, neg_inf)
        best = tf.argmax(masked, axis=1, output_type=tf.int32)
        f_max = tf.reduce_max(masked, axis=1)
        f_min = tf.reduce_min(tf.where(covered, f, tf.constant(np.inf, f.dtype)), axis=1)
        # local maxima (ties to the left count), outside the exclusion zone
        left = tf.pad(masked[:, :-1], [[0, 0], [1, 0]], constant_values=-np.inf)
        right = tf.pad(masked[:, 1:], [[0, 0], [0, 1]], constant_values=-np.inf)
        local = (masked >= left) & (masked > right) & covered
        distance = tf.abs(self.log1pz[None, :] - tf.gather(self.log1pz, best)[:, None])
        candidate = local & (distance > exclusion)
        second_values = tf.where(candidate, masked, neg_inf)
        second = tf.argmax(second_values, axis=1, output_type=tf.int32)
        f_second = tf.reduce_max(second_values, axis=1)
        has_second = tf.reduce_any(candidate, axis=1)
        return {"best": best.numpy(), "f_max": f_max.numpy().astype(float),
                "f_min": f_min.numpy().astype(float),
                "second": tf.where(has_second, second, -1).numpy(),
                "f_second": tf.where(has_second, f_second, neg_inf).numpy().astype(float),
                "any_covered": tf.reduce_any(covered, axis=1).numpy()}

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
        columns = tf.gather(self.columns64, tf.constant(index)) * \
            tf.constant(scale, tf.float64)[:, None, :]
        d_norm2 = tf.reduce_sum(d * d, axis=1)
        t_norm2 = tf.reduce_sum(columns * columns, axis=2)
        d_norm = tf.sqrt(d_norm2)
        t_norm = tf.sqrt(tf.maximum(t_norm2, 1e-300))
        t_hat = columns / t_norm[:, :, None]
        d_hat = d / tf.maximum(d_norm, 1e-300)[:, None]
        f = tf.reduce_sum(t_hat * d_hat[:, None, :], axis=2)
        f = tf.where(t_norm2 > 0, f, tf.zeros_like(f))
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
    def window_samples(self, index, scale, samples):
        """f at given redshift indices for many simulated copies of each spectrum.

        The copies share their spectrum's valid pixels and weights, so the
        template columns are gathered and normalised once per spectrum and
        f is one batched matrix product (the error estimators that rebuild
        spectra: Monte Carlo, bootstrap).

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
        columns = tf.gather(self.columns64, tf.constant(index, tf.int32)) * scale[:, None, :]
        t_norm = tf.sqrt(tf.reduce_sum(columns * columns, axis=2))
        t_hat = columns / tf.maximum(t_norm, 1e-300)[:, :, None]
        x = tf.constant(samples, tf.float64) * scale[:, None, :]
        x_norm = tf.sqrt(tf.reduce_sum(x * x, axis=2))
        f = tf.matmul(x, t_hat, transpose_b=True) / tf.maximum(x_norm, 1e-300)[:, :, None]
        return f.numpy()


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
