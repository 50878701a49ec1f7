"""Detection calibrations kept on disk, so that a fresh process does not redo them.

The null distribution of the detection statistic
(:mod:`~muse_xcorr.correlate.detection`) is a search of 128-256 noise-only
spectra: most of the time of a run on one spectrum. It depends only on the
correlator's templates and settings, the data's wavelength grid and medium,
their typical mask and their noise correlation (rounded), so it is stored
under a hash of exactly those (and the package version) in
``<astropy cache>/muse_xcorr/detection/`` (``astropy.config.get_cache_dir``),
one small ``.npy`` file of null statistics each, written atomically. A file
that cannot be read is recomputed, never trusted.

``MUSE_XCORR_CACHE_DIR`` names another directory; ``MUSE_XCORR_CACHE=0``
switches the store off (every process calibrates for itself).
"""
import hashlib
import os
import pickle
from pathlib import Path

import numpy as np

__all__ = ["store_directory", "calibration_key", "load_null", "save_null",
           "SETTINGS_WITHOUT_EFFECT"]

#: Correlator attributes that do not change the null statistic (left out of the key).
#: The statistic takes the best candidate only, so the length of the candidate list
#: and the exclusion between its entries are among them.
SETTINGS_WITHOUT_EFFECT = ("batch_size", "keep_ccf", "max_fap", "ambiguity_threshold",
                           "ambiguity_tolerance", "min_coverage", "noise_correlation",
                           "n_candidates", "exclusion", "_prepared", "_calibrations")


def store_directory():
    """Where calibrations are stored, or None when the store is switched off."""
    if os.environ.get("MUSE_XCORR_CACHE", "1").strip().lower() in ("0", "no", "false", "off"):
        return None
    given = os.environ.get("MUSE_XCORR_CACHE_DIR")
    if given:
        return Path(given)
    from astropy.config import get_cache_dir

    try:
        return Path(get_cache_dir()) / "muse_xcorr" / "detection"
    except OSError:   # no writable home for astropy's cache: no store
        return None


def calibration_key(correlator, key):
    """A hex digest of the package version, the correlator's settings and ``key``.

    Parameters
    ----------
    correlator : `~muse_xcorr.Correlator`
    key : tuple
        The in-memory key of the calibration (grid, medium, typical mask,
        number of null spectra, seed, rounded noise correlation).
    """
    from ..version import __version__

    state = {name: value for name, value in correlator.__getstate__().items()
             if name not in SETTINGS_WITHOUT_EFFECT}
    digest = hashlib.sha256()
    digest.update(str(__version__).encode())
    digest.update(pickle.dumps(sorted(state.items()), protocol=4))
    digest.update(pickle.dumps(key, protocol=4))
    return digest.hexdigest()


def load_null(digest):
    """The stored null statistics under ``digest``, or None (absent, unreadable, off)."""
    directory = store_directory()
    if directory is None:
        return None
    path = directory / f"{digest}.npy"
    try:
        null = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    if null.ndim != 1 or null.dtype.kind != "f":
        return None
    return null


def save_null(digest, null):
    """Store null statistics under ``digest`` (atomically; silently skipped if impossible)."""
    from ..io import atomic_write

    directory = store_directory()
    if directory is None:
        return
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with atomic_write(directory / f"{digest}.npy", overwrite=True) as tmp:
            with open(tmp, "wb") as handle:
                np.save(handle, np.asarray(null, dtype=float), allow_pickle=False)
    except OSError:
        pass   # a read-only or full cache directory costs only the time of a recomputation
