"""The only module that imports TensorFlow. NumPy in, NumPy out.

It does the **search**: matrix products of a batch of spectra (scaled to
unit norm in the fit metric, hot-path dtype, float32 by default) with blocks
of template columns, and the peak finding on the device, so that only a few
numbers per spectrum come back (:func:`entry_seeds`), and the products over
windows of the redshift grid around given centres (:func:`window_sums`).
Everything the package reports is recomputed afterwards in float64 with
NumPy (:mod:`muse_xcorr.correlate`), so it does not depend on the hot-path
precision.

Settings users may change (through :mod:`muse_xcorr.backend`): the thread
pools (:func:`configure_threads`), and TF32 matrix products on NVIDIA GPUs,
which TensorFlow enables by default and which round the inputs of a float32
product to a 10-bit mantissa; they are switched off here when TensorFlow
starts (:func:`allow_tf32`).
"""
import functools
import logging
import os
import sys
import tempfile

import numpy as np

_tf = None
#: Settings applied when TensorFlow starts (None: TensorFlow's default).
_SETTINGS = {"intra_op": None, "inter_op": None, "tf32": False}
#: Compile the peak finding with XLA for batches of at least this many spectra (None:
#: never). XLA halves the time of the peak finding on the CPU but compiles for seconds
#: per template and batch shape, more than it saves on a cube of the default set
#: (measured: 27 s of compilation against 10 s saved for 300 x 300 spaxels); the plain
#: graph takes any shape and traces once, in ~0.05 s.
JIT_MIN_SPECTRA = None


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


class _NoRetracingNotice(logging.Filter):
    """Drop TensorFlow's notice that many functions were traced: one per template is by design."""

    def filter(self, record):
        return "triggered tf.function retracing" not in record.getMessage()


def _start():
    import tensorflow as tf

    logging.getLogger("tensorflow").addFilter(_NoRetracingNotice())

    if _SETTINGS["intra_op"] is not None:
        tf.config.threading.set_intra_op_parallelism_threads(_SETTINGS["intra_op"])
    if _SETTINGS["inter_op"] is not None:
        tf.config.threading.set_inter_op_parallelism_threads(_SETTINGS["inter_op"])
    tf.config.experimental.enable_tensor_float_32_execution(bool(_SETTINGS["tf32"]))
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
    _SETTINGS["intra_op"] = None if intra_op is None else int(intra_op)
    _SETTINGS["inter_op"] = None if inter_op is None else int(inter_op)
    return True


def allow_tf32(enabled):
    """Allow (True) or forbid (False, the package's default) TF32 matrix products on GPUs.

    Applies at once, whether or not TensorFlow has started.
    """
    _SETTINGS["tf32"] = bool(enabled)
    if _tf is not None:
        _tf.config.experimental.enable_tensor_float_32_execution(bool(enabled))


def tf32_enabled():
    """Whether TensorFlow will run float32 products in TF32 (only on recent NVIDIA GPUs)."""
    if _tf is None:
        return bool(_SETTINGS["tf32"])
    return bool(_tf.config.experimental.tensor_float_32_execution_enabled())


def devices():
    """Names of the devices TensorFlow sees (CPU and any GPU)."""
    tf = tensorflow()
    return [d.name for d in tf.config.list_logical_devices()]


#: Byte alignment of the arrays TensorFlow may use without a copy (its CPU allocator's,
#: and the most any of its CPU kernels asks for).
ALIGNMENT = 64


def norm_floor(dtype):
    """The smallest squared norm of a column that the hot-path ``dtype`` tells from zero
    (10^6 times its smallest normal number); below it a column counts as absent."""
    return float(np.finfo(np.dtype(dtype)).tiny * 1e6)


def empty_aligned(shape, dtype):
    """An uninitialised NumPy array whose data start at an :data:`ALIGNMENT`-byte boundary.

    Fill it, then hand it to :func:`constant` without a copy.
    """
    dtype = np.dtype(dtype)
    n = int(np.prod(shape, dtype=np.int64))
    raw = np.empty(n * dtype.itemsize + ALIGNMENT, dtype=np.uint8)
    offset = -raw.ctypes.data % ALIGNMENT
    return raw[offset:offset + n * dtype.itemsize].view(dtype).reshape(shape)


def constant(array, dtype, *, share=False):
    """A tensor of a NumPy array; with ``share``, sharing its memory where TensorFlow allows it.

    Template columns are generated in NumPy and used once by TensorFlow; a
    copy of them cost 0.13 s per 100 MB (about a tenth of a cold start
    went into copies). With ``share=True`` (for a buffer the caller made
    for this, e.g. with :func:`empty_aligned`, and never writes to again:
    the tensor sees every later write) and without a GPU, a writable
    C-contiguous array of the tensor's dtype that starts at an
    :data:`ALIGNMENT`-byte boundary is handed over through DLPack without a
    copy. Anything else is copied (``tf.constant``).
    """
    tf = tensorflow()
    dtype = tf.as_dtype(dtype)
    if (share and isinstance(array, np.ndarray) and array.dtype == dtype.as_numpy_dtype
            and array.flags.c_contiguous and array.flags.writeable and array.size
            and array.ctypes.data % ALIGNMENT == 0 and not _has_gpu()):
        return tf.experimental.dlpack.from_dlpack(array.__dlpack__())
    return tf.constant(array, dtype=dtype)


@functools.lru_cache(maxsize=None)
def _has_gpu():
    """Whether TensorFlow sees a GPU (asked once)."""
    return bool(tensorflow().config.list_logical_devices("GPU"))


class Columns:
    """A block of template columns held by TensorFlow, one row per column.

    Parameters
    ----------
    rows : ndarray (n_columns, n_pixel)
    dtype : {"float32", "float64"}
        The hot-path dtype.
    share : bool
        The tensor may share the memory of ``rows`` (:func:`constant`), which
        are then never written to again.
    """

    def __init__(self, rows, dtype="float32", *, share=False):
        tf = tensorflow()
        self.dtype = tf.as_dtype(dtype)
        self.n_columns, self.n_pixel = rows.shape
        self.rows = constant(rows, self.dtype, share=share)
        self.tiny = norm_floor(self.dtype.as_numpy_dtype)

    @property
    def nbytes(self):
        return self.n_columns * self.n_pixel * self.dtype.size


def as_tensor(array, dtype):
    """A NumPy (n, n_pixel) array as a row-major tensor; a transposed view is not copied twice."""
    tf = tensorflow()
    if not array.flags.c_contiguous and array.T.flags.c_contiguous:
        return tf.transpose(tf.constant(array.T, dtype))
    return tf.constant(array, dtype)


def entry_seeds(data, weights, pattern_of_row, columns, n_components, n_seeds):
    """The best local maxima of one template's search score over the grid, per spectrum.

    Parameters
    ----------
    data : Tensor (n, n_pixel)
        Spectra scaled so that a component's f = (data @ T) / sqrt(weights @ T^2).
    weights : Tensor (m, n_pixel)
        One weight row per spectrum (``pattern_of_row`` None), or the
        validity patterns of uniform weighting.
    pattern_of_row : ndarray (n,) of int or None
        The pattern of each spectrum.
    columns : `Columns`
        ``n_components`` blocks of n_z columns each (component-major).
    n_components : int
        1: the score is f. More: a composite, score sqrt(sum_g max(f_g, 0)^2)
        (the non-negative fit of disjoint components; the bounded fit is
        applied later, on the candidates).
    n_seeds : int

    Returns
    -------
    seeds : ndarray (n, n_seeds) of int32
        Grid indices of the highest local maxima (-1 where there are fewer).
    values : ndarray (n, n_seeds)
        The score there (-inf where there is no seed).
    f_extrema : ndarray (n, 2)
        The largest and the smallest covered f (single templates; the score for composites).
    """
    tf = tensorflow()
    numerator = tf.matmul(data, columns.rows, transpose_b=True)
    norm2 = tf.matmul(weights, tf.square(columns.rows), transpose_b=True)
    if pattern_of_row is not None and weights.shape[0] > 1:
        norm2 = tf.gather(norm2, tf.constant(pattern_of_row, tf.int32))
    n_z = columns.n_columns // n_components
    k = min(int(n_seeds), n_z)
    if JIT_MIN_SPECTRA is not None and int(numerator.shape[0]) >= JIT_MIN_SPECTRA:  # XLA
        function = _compiled("seeds", True, n_components, k, n_z, columns.dtype)
    else:  # one graph for every template and batch size (it traces in ~0.05 s)
        function = _compiled("seeds", False, n_components, k, None, columns.dtype)
    seeds, values, extrema = function(numerator, norm2, tf.constant(columns.tiny, columns.dtype))
    seeds, values = seeds.numpy(), values.numpy().astype(float)
    if n_seeds > k:
        seeds = np.pad(seeds, ((0, 0), (0, n_seeds - k)), constant_values=-1)
        values = np.pad(values, ((0, 0), (0, n_seeds - k)), constant_values=-np.inf)
    return seeds, values, extrema.numpy().astype(float)


def _seeds(numerator, norm2, tiny, n_components, n_seeds):
    tf = tensorflow()
    n = tf.shape(numerator)[0]
    m = tf.shape(norm2)[0]
    numerator = tf.reshape(numerator, [n, n_components, -1])
    norm2 = tf.reshape(norm2, [m, n_components, -1])
    covered = norm2 > tiny
    f = tf.where(covered, numerator * tf.math.rsqrt(tf.maximum(norm2, tiny)), 0.0)
    if n_components == 1:
        score = f[:, 0]
        lowest = tf.reduce_min(tf.where(covered[:, 0], score, np.inf), axis=1)
    else:
        score = tf.sqrt(tf.reduce_sum(tf.square(tf.maximum(f, 0.0)), axis=1))
        lowest = tf.reduce_min(tf.where(tf.reduce_any(covered, axis=1), score, np.inf), axis=1)
    any_covered = tf.reduce_any(covered, axis=1)
    masked = tf.where(any_covered, score, -np.inf)
    highest = tf.reduce_max(masked, axis=1)
    left = tf.pad(masked[:, :-1], [[0, 0], [1, 0]], constant_values=-np.inf)
    right = tf.pad(masked[:, 1:], [[0, 0], [0, 1]], constant_values=-np.inf)
    local = (masked >= left) & (masked > right) & (masked > -np.inf)
    top = tf.math.top_k(tf.where(local, masked, -np.inf), k=n_seeds)
    seeds = tf.where(top.values > -np.inf, top.indices, -1)
    return seeds, top.values, tf.stack([highest, lowest], axis=1)


_COMPILED = {}


def _compiled(name, jit, n_components, n_seeds, n_z, dtype):
    """The TensorFlow function of a search step, built once per shape class.

    With XLA (``jit``) the shapes are static (``n_z`` given); without, the
    graph takes any number of spectra and redshifts.
    """
    key = (name, jit, n_components, n_seeds, n_z, dtype)
    if key not in _COMPILED:
        tf = tensorflow()
        if name != "seeds":  # pragma: no cover - internal
            raise KeyError(name)

        def function(numerator, norm2, tiny):
            return _seeds(numerator, norm2, tiny, n_components, n_seeds)

        signature = None if jit else [tf.TensorSpec([None, None], dtype),
                                      tf.TensorSpec([None, None], dtype),
                                      tf.TensorSpec([], dtype)]
        # no AutoGraph: the steps have no tensor-dependent Python control flow, and its
        # source transformation was ~1 s of a cold start
        _COMPILED[key] = tf.function(function, jit_compile=jit, input_signature=signature,
                                     autograph=False)
    return _COMPILED[key]


def window_sums(data, weights, pattern_of_row, rows, position, windows_per_product=64,
                extent=None):
    """Products of spectra with template columns over windows of the grid, grouped.

    For spectrum ``i`` and window slot ``s`` the sums ``data_i . T_p`` and
    ``weights_i . T_p^2`` at the columns ``p = position[i, s, :]`` of ``rows``.
    The windows of all spectra are sorted by position and taken in groups
    of ``windows_per_product``; each group is one dense product over the
    columns its windows span, so the work stays in matrix products while
    the columns outside the windows are never touched.

    Parameters
    ----------
    data, weights, pattern_of_row
        As :func:`entry_seeds`.
    rows : Tensor (U, n_pixel)
        The columns the windows refer to, in increasing order of position.
    position : ndarray (n, s, w) of int
        Row of ``rows`` for every window sample; -1 for none.
    windows_per_product : int
    extent : (start, stop) of ndarray (U,) of int, optional
        The pixels outside which each row of ``rows`` is exactly zero (a
        narrow component's columns); each group's products then run over the
        pixels its columns reach, not over all of them. None: all pixels.

    Returns
    -------
    numerator, norm2 : ndarray (n, s, w)
        NaN where ``position`` is -1.
    """
    tf = tensorflow()
    n, n_slots, width = position.shape
    numerator = np.full(position.shape, np.nan)
    norm2 = np.full(position.shape, np.nan)
    row, slot = np.nonzero(position[:, :, 0] >= 0)
    if row.size == 0:
        return numerator, norm2
    first = position[row, slot, 0]
    order = np.argsort(first, kind="stable")
    row, slot, first = row[order], slot[order], first[order]
    step = _window_step(rows.dtype, int(rows.shape[1]))
    for start in range(0, row.size, windows_per_product):
        part = slice(start, start + windows_per_product)
        group_rows, group_slots = row[part], slot[part]
        low = int(first[part][0])
        high = int(position[group_rows, group_slots].max()) + 1
        if pattern_of_row is None:
            group_weights = tf.gather(weights, tf.constant(group_rows, tf.int32))
            pattern = np.arange(group_rows.size)
        else:
            patterns, pattern = np.unique(pattern_of_row[group_rows], return_inverse=True)
            group_weights = tf.gather(weights, tf.constant(patterns, tf.int32))
        local = position[group_rows, group_slots] - low
        pixels = _group_pixels(extent, low, high, int(rows.shape[1]))
        if pixels is None:  # every column of the group is exactly zero
            numerator[group_rows, group_slots] = 0.0
            norm2[group_rows, group_slots] = 0.0
            continue
        a, b = step(data, tf.constant(group_rows, tf.int32), rows[low:high], group_weights,
                    tf.constant(np.ravel(pattern), tf.int32), tf.constant(local, tf.int32),
                    tf.constant(pixels, tf.int32))
        numerator[group_rows, group_slots] = a.numpy()
        norm2[group_rows, group_slots] = b.numpy()
    return numerator, norm2


def _group_pixels(extent, low, high, n_pixel):
    """[first, stop) of the pixels that rows low:high reach (all without an extent; None
    where they reach none)."""
    if extent is None:
        return np.array([0, n_pixel])
    start, stop = extent[0][low:high], extent[1][low:high]
    reached = stop > start
    if not reached.any():
        return None
    return np.array([start[reached].min(), stop[reached].max()])


_WINDOW_STEPS = {}


def _window_step(dtype, n_pixel):
    """The traced step of :func:`window_sums` (one graph per dtype and pixel count)."""
    key = (dtype, n_pixel)
    if key not in _WINDOW_STEPS:
        tf = tensorflow()
        spec = [tf.TensorSpec([None, n_pixel], dtype), tf.TensorSpec([None], tf.int32),
                tf.TensorSpec([None, n_pixel], dtype), tf.TensorSpec([None, n_pixel], dtype),
                tf.TensorSpec([None], tf.int32), tf.TensorSpec([None, None], tf.int32),
                tf.TensorSpec([2], tf.int32)]

        def step(data, rows, columns, weights, pattern, local, pixels):
            # the pixels the columns reach (all of them unless a narrow component's)
            first, stop = pixels[0], pixels[1]
            columns = columns[:, first:stop]
            numerator = tf.matmul(tf.gather(data, rows)[:, first:stop], columns,
                                  transpose_b=True)
            norm2 = tf.gather(tf.matmul(weights[:, first:stop], tf.square(columns),
                                        transpose_b=True), pattern)
            return (tf.cast(tf.gather(numerator, local, batch_dims=1), tf.float64),
                    tf.cast(tf.gather(norm2, local, batch_dims=1), tf.float64))

        _WINDOW_STEPS[key] = tf.function(step, input_signature=spec,
                                         autograph=False).get_concrete_function()
    return _WINDOW_STEPS[key]
