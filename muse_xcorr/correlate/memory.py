"""The memory a correlation needs, estimated before its large allocations.

A correlation holds, for its whole run, the **template operators**: every
template's columns on its search grid (the full redshift grid, or every
``coarse_factor``-th redshift of it), ``n_components x n_search x n_pixel``
numbers in the hot-path dtype (`~muse_xcorr.correlate.search.SearchGrid`).
On top of them, for one batch of ``batch_size`` spectra at a time:

- the spectra in the fit metric (`~muse_xcorr.correlate.model.WorkingBatch`:
  float64 arrays of batch_size x n_pixel) and the float64 batch they are
  made from;
- the scaled search arrays, in NumPy and as device tensors (hot-path dtype);
- the products of the peak finding over one block of columns and their
  temporaries (batch_size x block columns, hot-path dtype);
- the fine columns of the windows around the candidates and around the
  other line identifications (at most the whole grid), in NumPy and as
  tensors;
- the float64 columns gathered for the exact evaluation
  (:data:`~muse_xcorr.correlate.model.GATHER_ELEMENTS`);
- with ``keep_ccf=True``, f(z) and sigma_f(z) of every spectrum (float64,
  n_spectra x n_z each), once in the parts and once in the result.

:func:`estimate_bytes` adds these up; :func:`check_memory` compares the sum
with :func:`available_bytes` and raises a `MemoryError` that says what to
change, instead of a crash inside TensorFlow or the kernel's OOM killer.
TensorFlow's own footprint (~0.8 GiB on the CPU) and the data themselves
(a cube in memory or memory-mapped) are not counted. Set the environment
variable ``MUSE_XCORR_MEMORY_CHECK=0`` to skip the check.
"""
import os

import numpy as np

from ..templates.lines import CONFUSION_LINES
from . import search as _search_module
from .detection import NULL_SAMPLES
from .model import GATHER_ELEMENTS

__all__ = ["search_columns", "estimate_parts", "estimate_bytes", "available_bytes",
           "check_memory"]

#: Float64 arrays of batch_size x n_pixel held by a `WorkingBatch` (flux, variance, w,
#: q d, sigma q, (sigma q)^2; q is w itself under inverse-variance weighting, one more
#: array under uniform weighting; the validity mask, bool, apart) ...
_WORK_FLOAT64 = 6
#: ... and besides them (the `SpectraBatch`'s flux it is made from, whose variance and
#: mask it shares, and two temporaries of the continuum subtraction).
_SOURCE_FLOAT64 = 3
#: Arrays of batch_size x block columns alive at once in the peak finding of one block
#: (the two products, f, the score, its shifted copies and masks; hot-path dtype).
_SEED_TEMPORARIES = 8
#: Copies of the gathered float64 columns alive in `evaluate` (gathered, model, weighted).
_GATHER_COPIES = 3


def search_columns(n_search, n_components):
    """Rows of a search grid's column blocks, one block halo column per block edge.

    Parameters
    ----------
    n_search : int
        Redshifts of the search grid (the template's range of the full grid,
        or its coarse grid).
    n_components : int
        Components of the template (1 for a single template).

    Returns
    -------
    rows : int
        Columns held, over all blocks and components.
    largest : int
        Columns of the largest block (all components).
    """
    n_search, n_components = int(n_search), int(n_components)
    if n_search <= 0:
        return 0, 0
    per_block = max(_search_module.MAX_BLOCK_COLUMNS // n_components, 3)
    n_blocks = -(-n_search // per_block)
    # every block but the first has a halo column on its left, every one but the last on
    # its right (SearchGrid)
    rows = n_search + 2 * (n_blocks - 1)
    largest = min(per_block, n_search) + min(2, n_blocks - 1) if n_blocks > 1 else n_search
    return n_components * rows, n_components * largest


def _n_search(prepared, factor):
    low, high = prepared.index_range
    if high < low:
        return 0
    return high - low + 1 if factor == 1 else len(range(low, high + 1, factor))


def estimate_parts(correlator, prepared, n_pixel, n_spectra=1):
    """The bytes a correlation needs, by item (see the module notes).

    Parameters
    ----------
    correlator : `~muse_xcorr.Correlator`
        Its ``z``, ``factor``, ``dtype``, ``batch_size``, ``n_seeds`` and
        ``keep_ccf`` are used.
    prepared : list of `~muse_xcorr.correlate.model.PreparedTemplate` or None
        The templates prepared on the data's grid (None: not searched).
    n_pixel : int
        Pixels of a spectrum.
    n_spectra : int
        Spectra of the data. A batch holds ``batch_size`` of them, or fewer
        when the data and the noise-only spectra of the detection calibration
        (:data:`~muse_xcorr.correlate.detection.NULL_SAMPLES`) are fewer.

    Returns
    -------
    parts : dict of int
        Bytes of ``"operators"`` (template columns held for the whole run),
        ``"operator transient"`` (the NumPy copy of the largest block while it
        is handed to the device), ``"working batch"`` (`WorkingBatch` arrays),
        ``"source batch"``, ``"search arrays"``, ``"peak finding"``,
        ``"windows"``, ``"evaluation"`` and ``"curves"``.
    """
    item = np.dtype(correlator.dtype).itemsize
    factor = int(correlator.factor)
    n_pixel = int(n_pixel)
    # the noise-only spectra of the detection calibration go through the same batches
    batch = max(1, min(int(correlator.batch_size), max(int(n_spectra), NULL_SAMPLES)))
    held, largest, widest_block, widest_range, components = 0, 0, 0, 0, 0
    for p in prepared:
        if p is None:
            continue
        rows, block = search_columns(_n_search(p, factor), p.n_components)
        held += rows
        largest = max(largest, block)
        widest_block = max(widest_block, block // p.n_components)
        widest_range = max(widest_range, _n_search(p, 1))
        components = max(components, p.n_components)
    # the windows around the candidates (coarse-to-fine) and the line identifications
    step = float(np.median(np.diff(np.log1p(correlator.z)))) if correlator.z.size > 1 else 1.0
    half_hypothesis = max(int(np.ceil(np.log1p(2e-3) / step)), 1) if step > 0 else 1
    samples = len(CONFUSION_LINES) * (2 * half_hypothesis + 1)
    if factor > 1:
        samples += int(correlator.n_seeds) * (2 * int(np.ceil(1.5 * factor)) + 1)
    window_columns = min(widest_range, batch * samples)
    curves = 2 * 2 * int(n_spectra) * correlator.z.size * 8 if correlator.keep_ccf else 0
    return {
        "operators": held * n_pixel * item,
        "operator transient": 2 * largest * n_pixel * item,
        "working batch": batch * n_pixel * (8 * _WORK_FLOAT64 + 1 +
                                            (8 if correlator.weighting == "uniform" else 0)),
        "source batch": batch * n_pixel * 8 * _SOURCE_FLOAT64,
        "search arrays": 2 * 2 * batch * n_pixel * item,
        "peak finding": _SEED_TEMPORARIES * batch * widest_block * item,
        "windows": 2 * window_columns * n_pixel * item,
        "evaluation": _GATHER_COPIES * GATHER_ELEMENTS * 8 * max(components, 1),
        "curves": curves,
    }


def estimate_bytes(correlator, prepared, n_pixel, n_spectra=1):
    """The bytes a correlation needs at its peak, TensorFlow and the data not counted.

    Parameters
    ----------
    correlator, prepared, n_pixel, n_spectra
        As :func:`estimate_parts`.

    Returns
    -------
    nbytes : int
        Bytes (the sum of :func:`estimate_parts`).
    """
    return int(sum(estimate_parts(correlator, prepared, n_pixel, n_spectra).values()))


def _meminfo_available():
    """MemAvailable of /proc/meminfo (free memory plus reclaimable page cache), bytes."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_available():
    """The room left under this process's cgroup memory limit (v2, else v1), bytes."""
    for limit_path, usage_path in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            with open(limit_path) as f:
                limit = f.read().strip()
            with open(usage_path) as f:
                usage = int(f.read().strip())
        except (OSError, ValueError):
            continue
        if not limit.isdigit() or int(limit) >= 2 ** 60:  # "max", or v1's "unlimited"
            return None
        # page cache in the group is reclaimable: count it as available
        cache = 0
        stat_path = os.path.join(os.path.dirname(usage_path), "memory.stat")
        try:
            with open(stat_path) as f:
                for line in f:
                    key, value = line.split()
                    if key in ("file", "total_cache"):
                        cache = int(value)
        except (OSError, ValueError):
            pass
        return max(int(limit) - usage + cache, 0)
    return None


def available_bytes():
    """The memory this process may still allocate, in bytes, or None where unknown.

    On Linux the smaller of ``MemAvailable`` (/proc/meminfo: free memory and
    reclaimable page cache) and the room under the process's cgroup memory
    limit; elsewhere ``os.sysconf('SC_AVPHYS_PAGES') * SC_PAGE_SIZE`` (free
    physical pages) where the system provides it; else None (no check).

    Returns
    -------
    nbytes : int or None
        Bytes.
    """
    found = [value for value in (_meminfo_available(), _cgroup_available())
             if value is not None]
    if not found:
        try:
            found.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (AttributeError, ValueError, OSError):
            return None
    return min(found)


def _gib(nbytes):
    return f"{nbytes / 2 ** 30:.2f} GiB"


def check_memory(correlator, prepared, n_pixel, n_spectra=1):
    """Raise `MemoryError` if a correlation needs more memory than is available.

    Parameters
    ----------
    correlator, prepared, n_pixel, n_spectra
        As :func:`estimate_parts`.

    Returns
    -------
    nbytes : int
        The estimate (:func:`estimate_bytes`), bytes.

    Raises
    ------
    MemoryError
        With the estimate, its largest items, the memory available and what
        to change. Skipped when ``MUSE_XCORR_MEMORY_CHECK=0``.
    """
    parts = estimate_parts(correlator, prepared, n_pixel, n_spectra)
    needed = int(sum(parts.values()))
    if os.environ.get("MUSE_XCORR_MEMORY_CHECK", "1").strip().lower() in ("0", "no", "false"):
        return needed
    available = available_bytes()
    if available is None or needed <= available:
        return needed
    largest = sorted(parts.items(), key=lambda kv: -kv[1])[:3]
    items = ", ".join(f"{name} {_gib(value)}" for name, value in largest if value)
    n_templates = sum(p is not None for p in prepared)
    advice = [f"a coarser redshift grid (larger dlnz) or a narrower z range ({correlator.z.size} "
              f"redshifts now)", f"fewer templates ({n_templates} now)",
              f"a smaller batch_size ({correlator.batch_size} now)"]
    if correlator.factor == 1 and correlator.z.size > 3:
        advice.insert(1, 'search="coarse-to-fine" (the full search holds every redshift)')
    if correlator.keep_ccf:
        advice.append("keep_ccf=False (f(z) of every spectrum is n_spectra x n_z float64)")
    raise MemoryError(
        f"the correlation needs about {_gib(needed)} ({items}; TensorFlow itself not counted) "
        f"but only {_gib(available)} of memory is available. Use " + "; or ".join(advice) +
        ". Set MUSE_XCORR_MEMORY_CHECK=0 to skip this check.")
