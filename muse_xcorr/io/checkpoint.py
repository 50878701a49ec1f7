"""Checkpoints of long runs: the parts of :meth:`Correlator.correlate_rows`, one file each.

A checkpoint is a directory beside the output, ``OUTPUT.parts/``, holding

``manifest.json``
    What the parts were computed from: the checkpoint format, the package
    version, the input's size and SHA-256 (and its path, for the reader),
    the number and shape of the spectra, and every option that changes a
    result (templates and their files' checksums, the redshift grid, the
    correlator's settings, the region, the media). Written once, atomically.
``part-<start>-<stop>.npz``
    One `~muse_xcorr.correlate.Part` (the maps, candidates and kept curves of
    the spectra ``start:stop``) as plain NumPy arrays (read with
    ``allow_pickle=False``), written atomically as soon as it is computed.
``lock``
    Held (``flock``) while a run uses the directory: a second run on the same
    output is refused, and the lock dies with its process, even on SIGKILL.

A run with ``--resume`` reads the manifest and refuses to continue when
anything in it differs (the message names what); it then computes only the
spectra no part covers, so the chunk size may change between runs. Parts are
exact: a resumed run gives the same maps as an uninterrupted one.
"""
import json
import os
import re
import shutil

import numpy as np

from .muse import atomic_write

__all__ = ["Checkpoint", "CheckpointMismatch", "StoredPart", "save_part", "load_part",
           "missing_ranges", "comparable", "FORMAT"]

#: The checkpoint format written in every manifest.
FORMAT = "muse-xcorr-checkpoint 1"
_PART = re.compile(r"^part-(\d+)-(\d+)\.npz$")
_STORES = ("maps", "candidates", "curves")


class CheckpointMismatch(ValueError):
    """A checkpoint that was made from another input or with other options."""


def save_part(part, path):
    """Write a `~muse_xcorr.correlate.Part` to ``path`` (``.npz``), atomically.

    A part that serialises itself (a ``to_arrays()`` method giving a dict of
    arrays) is stored as it says; otherwise its ``start``, ``stop`` and the
    arrays of its ``maps``, ``candidates`` and ``curves``.
    """
    if hasattr(part, "to_arrays"):
        arrays = {f"own.{name}": np.asarray(value) for name, value in part.to_arrays().items()}
        arrays.update(start=np.int64(part.start), stop=np.int64(part.stop))
        with atomic_write(path, overwrite=True) as tmp:
            with open(tmp, "wb") as handle:
                np.savez(handle, **arrays)
        return
    arrays = {"start": np.int64(part.start), "stop": np.int64(part.stop)}
    for store in _STORES:
        for name, value in (getattr(part, store) or {}).items():
            arrays[f"{store}.{name}"] = np.asarray(value)
    with atomic_write(path, overwrite=True) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)


class StoredPart:
    """A part read back, with the attributes of `~muse_xcorr.correlate.Part` (the default type)."""

    def __init__(self, start, stop, maps, candidates, curves=None):
        self.start, self.stop = int(start), int(stop)
        self.maps, self.candidates, self.curves = maps, candidates, curves

    def __repr__(self):
        return f"<StoredPart of spectra {self.start}:{self.stop}>"


def load_part(path, part_type=None):
    """Read a part written by `save_part` (no pickles); checks that its arrays fit its span.

    Parameters
    ----------
    path : str or path-like
    part_type : type, optional
        Called as ``part_type(start, stop, maps, candidates, curves)``; the
        command line passes `muse_xcorr.correlate.Part`. Default `StoredPart`.
    """
    stores = {store: {} for store in _STORES}
    try:
        with np.load(path, allow_pickle=False) as archive:
            start, stop = int(archive["start"]), int(archive["stop"])
            own = {key[4:]: archive[key] for key in archive.files if key.startswith("own.")}
            if own:
                if not hasattr(part_type, "from_arrays"):
                    raise ValueError("it was written by a Part that serialises itself")
                return part_type.from_arrays(own)
            for key in archive.files:
                if "." in key:
                    store, name = key.split(".", 1)
                    if store in stores:
                        stores[store][name] = archive[key]
    except (OSError, ValueError, KeyError) as err:
        raise OSError(f"the checkpoint part {path} cannot be read ({err}); remove it and "
                      "resume again to recompute it") from None
    n = stop - start
    bad = [f"{store}.{name}" for store in _STORES for name, value in stores[store].items()
           if value.ndim == 0 or value.shape[0] != n]
    if n < 0 or bad or not stores["maps"]:
        raise OSError(f"the checkpoint part {path} is inconsistent (spectra {start}:{stop}"
                      f"{', arrays ' + ', '.join(bad) if bad else ''}); remove it and resume "
                      "again to recompute it")
    return (part_type or StoredPart)(start, stop, stores["maps"], stores["candidates"],
                                     stores["curves"] or None)


def missing_ranges(n, chunk, parts=()):
    """The ``(start, stop)`` chunks of ``range(n)`` that no part covers, at most ``chunk`` long.

    Parameters
    ----------
    n : int
        Number of spectra.
    chunk : int
        Largest chunk.
    parts : iterable of objects with ``start`` and ``stop``, or of (start, stop)
        What is done already.

    Returns
    -------
    ranges : list of (int, int)
    """
    chunk = int(chunk)
    if chunk < 1:
        raise ValueError(f"the chunk size must be a positive integer, got {chunk}")
    spans = []
    for part in parts:
        start, stop = (part.start, part.stop) if hasattr(part, "start") else part
        spans.append((int(start), int(stop)))
    spans.sort()
    ranges, position = [], 0
    for start, stop in spans + [(n, n)]:
        for first in range(position, max(start, position), chunk):
            ranges.append((first, min(first + chunk, start)))
        position = max(position, stop)
    return ranges


class Checkpoint:
    """The checkpoint directory of one output (see the module docstring).

    Parameters
    ----------
    directory : str or path-like
        Usually ``OUTPUT + ".parts"`` (`for_output`).
    manifest : dict
        What the parts are computed from (JSON-serialisable). On resume the
        stored manifest must equal it; ``input.path`` and ``created`` are not
        compared.
    """

    #: Manifest entries that may differ on resume (informational).
    IGNORED = ("created", "command", "outputs")

    def __init__(self, directory, manifest=None, *, part_type=None):
        self.directory = os.fspath(directory)
        self.manifest = manifest
        self.part_type = part_type
        self._lock = None

    @property
    def manifest(self):
        """What this run's parts depend on (with the checkpoint ``format``); {} if not set."""
        return self._manifest

    @manifest.setter
    def manifest(self, value):
        self._manifest = dict(value, format=FORMAT) if value else {}

    @classmethod
    def for_output(cls, output, manifest=None, *, part_type=None):
        """The checkpoint beside ``output``: ``OUTPUT.parts/``."""
        return cls(os.fspath(output) + ".parts", manifest, part_type=part_type)

    @property
    def manifest_path(self):
        return os.path.join(self.directory, "manifest.json")

    def exists(self):
        """True if the directory exists (an interrupted run, or one running now)."""
        return os.path.isdir(self.directory)

    def stored_manifest(self):
        """The manifest on disk, or a `CheckpointMismatch` if there is none readable."""
        try:
            with open(self.manifest_path) as handle:
                return json.load(handle)
        except (OSError, ValueError) as err:
            raise CheckpointMismatch(f"the checkpoint {self.directory} has no readable "
                                     f"manifest ({err}); remove the directory or pass "
                                     "--overwrite to start again") from None

    def differences(self, stored=None):
        """The manifest entries (dotted names) that differ between this run and the stored one."""
        stored = self.stored_manifest() if stored is None else stored
        return sorted(_differences(comparable(self.manifest, self.IGNORED),
                                   comparable(stored, self.IGNORED)))

    def check(self, *, resume, overwrite):
        """The checks of `open`, without touching anything (run before the work).

        Raises
        ------
        FileExistsError
            A checkpoint exists and neither ``resume`` nor ``overwrite`` is given.
        CheckpointMismatch
            ``resume`` and the checkpoint was made from another input or options.
        """
        if not self.exists():
            return
        self._acquire()  # another run holds it: refuse now, before any work
        self.release()
        if not resume:
            if overwrite:
                return
            raise FileExistsError(f"a checkpoint of an interrupted run exists at "
                                  f"{self.directory}: pass --resume to continue it, or "
                                  "--overwrite to start again (it is removed)")
        differ = self.differences()
        if differ:
            raise CheckpointMismatch(f"cannot resume from {self.directory}: it was made with "
                                     f"another {', '.join(differ)} (the input must be the "
                                     "same file and every option the same); pass --overwrite "
                                     "to start again")

    def open(self, *, resume, overwrite):
        """Create (or, with ``resume``, reopen) the directory, lock it; return the parts done.

        Returns
        -------
        parts : list of `~muse_xcorr.correlate.Part`
        """
        self.check(resume=resume, overwrite=overwrite)
        fresh = not self.exists() or not resume
        os.makedirs(self.directory, exist_ok=True)
        self._acquire()  # before anything is removed: never another run's parts
        if fresh:
            self._clear()
        if fresh or not os.path.exists(self.manifest_path):
            with atomic_write(self.manifest_path, overwrite=True) as tmp:
                with open(tmp, "w") as handle:
                    json.dump(self.manifest, handle, indent=1, sort_keys=True)
            return []
        self._remove_temporaries()
        return self.load()

    def _acquire(self):
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            return
        handle = open(os.path.join(self.directory, "lock"), "a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            raise RuntimeError(f"another muse-xcorr run is using {self.directory} (its lock "
                               "is held); wait for it, or stop it") from None
        self._lock = handle

    def release(self):
        """Release the lock (the directory stays)."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def _clear(self):
        """Remove everything but the lock (held by this run)."""
        for name in os.listdir(self.directory):
            if name != "lock":
                path = os.path.join(self.directory, name)
                if os.path.isdir(path):
                    shutil.rmtree(path)
                else:
                    os.remove(path)

    def _remove_temporaries(self):
        for name in os.listdir(self.directory):
            if name.startswith(".") and ".tmp" in name:
                os.remove(os.path.join(self.directory, name))

    def part_path(self, start, stop):
        return os.path.join(self.directory, f"part-{int(start):010d}-{int(stop):010d}.npz")

    def save(self, part):
        """Write one part, atomically."""
        save_part(part, self.part_path(part.start, part.stop))

    def load(self):
        """Every part in the directory, sorted; overlapping or out-of-range parts are an error."""
        parts = []
        for name in sorted(os.listdir(self.directory)):
            if _PART.match(name):
                parts.append(load_part(os.path.join(self.directory, name), self.part_type))
        parts.sort(key=lambda p: p.start)
        n = self.manifest.get("n_spectra")
        for a, b in zip(parts[:-1], parts[1:]):
            if b.start < a.stop:
                raise OSError(f"the checkpoint {self.directory} has overlapping parts "
                              f"{a.start}:{a.stop} and {b.start}:{b.stop}; pass --overwrite "
                              "to start again")
        if n is not None and parts and parts[-1].stop > n:
            raise OSError(f"the checkpoint {self.directory} has a part beyond the "
                          f"{n} spectra of the input; pass --overwrite to start again")
        return parts

    def remove(self):
        """Delete the directory (after the outputs are written), the lock last."""
        if self._lock is None:
            self._acquire()
        self._clear()
        lock = os.path.join(self.directory, "lock")
        if os.path.exists(lock):
            os.remove(lock)
        self.release()
        shutil.rmtree(self.directory, ignore_errors=True)


def comparable(manifest, ignored=Checkpoint.IGNORED):
    """The entries of a manifest that a resume compares (JSON-normalised)."""
    manifest = {k: v for k, v in manifest.items() if k not in ignored}
    if isinstance(manifest.get("input"), dict):
        manifest["input"] = {k: v for k, v in manifest["input"].items() if k != "path"}
    return json.loads(json.dumps(manifest, sort_keys=True))  # tuples -> lists, as stored


def _differences(a, b, prefix=""):
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in set(a) | set(b):
            out += _differences(a.get(key), b.get(key), f"{prefix}{key}.")
        return out
    return [] if a == b else [prefix.rstrip(".") or "manifest"]
