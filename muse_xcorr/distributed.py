"""Whole surveys on Dask: spatial chunks of cubes as tasks, the correlator broadcast once.

:func:`correlate_distributed` splits each cube into chunks of consecutive
spaxels (rows of the image, C order), runs
:meth:`Correlator.correlate_rows <muse_xcorr.Correlator.correlate_rows>` on
each chunk as a Dask task and puts the parts together with
:meth:`Correlator.assemble <muse_xcorr.Correlator.assemble>`: the result is
the one :meth:`Correlator.correlate <muse_xcorr.Correlator.correlate>` gives.

What travels: the correlator (its templates and settings, without any
prepared state) is scattered to every worker once
(``client.scatter(..., broadcast=True)``); a cube read from a file travels
as its `CubeSource` (the path and how to read it, a few hundred bytes): each
worker opens the file itself, memory-mapped, and reads only the spaxels of
its chunks. Only an in-memory cube without a file is scattered to the
workers. The parts (maps and candidates, a few hundred bytes per spaxel)
come back to the client.

Each worker process prepares the templates on the data's wavelength grid once
(a few seconds) and keeps them for all its chunks; chunks run one at a time
per worker process (TensorFlow uses the process's cores itself), so give
workers one thread and several cores each.
"""
import os
import threading
from dataclasses import dataclass

__all__ = ["correlate_distributed", "CubeSource", "chunk_ranges", "default_chunk", "parse_region"]


@dataclass(frozen=True)
class CubeSource:
    """How a worker opens a cube: a FITS path and the reader's options, and a pixel box.

    Parameters
    ----------
    path : str
        The MUSE FITS file (as the workers see it: a shared file system).
    medium : {"air", "vacuum"}, optional
        As for :meth:`MuseCube.read <muse_xcorr.MuseCube.read>`.
    ext, stat_ext : str
        The DATA and STAT extension names.
    region : str, optional
        A pixel box ``"Y0:Y1,X0:X1"`` (0-based, stop exclusive) to cut out.
    """

    path: str
    medium: str = None
    ext: str = "DATA"
    stat_ext: str = "STAT"
    region: str = None

    def open(self):
        """The cube (memory-mapped), cut to ``region``."""
        from .spectra import MuseCube, MuseSpectrum
        from .io.fitsfile import open_fits

        with open_fits(self.path) as hdul:
            ndim = hdul[self.ext].header.get("NAXIS", 0) if self.ext in hdul else 3
        if ndim == 1:
            return MuseSpectrum.read(self.path, medium=self.medium, ext=self.ext,
                                     stat_ext=self.stat_ext)
        cube = MuseCube.read(self.path, medium=self.medium, ext=self.ext,
                             stat_ext=self.stat_ext)
        if self.region:
            y, x = parse_region(self.region)
            cube = cube.cutout(y, x)
        return cube

    @classmethod
    def of(cls, data):
        """The source of a cube read from a file (None for one built in memory)."""
        meta = getattr(data, "meta", None) or {}
        path = meta.get("filename")
        options = meta.get("read_options") or {}
        if not path or not os.path.exists(path):
            return None
        return cls(os.path.abspath(path), medium=getattr(data, "medium", None),
                   ext=options.get("ext", "DATA"), stat_ext=options.get("stat_ext", "STAT"),
                   region=meta.get("region"))


def parse_region(text):
    """``"Y0:Y1,X0:X1"`` as two slices (empty bounds are the edges).

    Raises
    ------
    ValueError
        For anything but two ``start:stop`` ranges of non-negative integers.
    """
    parts = str(text).split(",")
    slices = []
    for part in parts:
        bounds = part.split(":")
        if len(parts) != 2 or len(bounds) != 2:
            raise ValueError(f"a region is Y0:Y1,X0:X1 (0-based pixels, stop exclusive), "
                             f"got {text!r}")
        try:
            values = [None if not b.strip() else int(b) for b in bounds]
        except ValueError:
            raise ValueError(f"a region is Y0:Y1,X0:X1 of integers, got {text!r}") from None
        if any(v is not None and v < 0 for v in values):
            raise ValueError(f"a region has non-negative bounds, got {text!r}")
        slices.append(slice(*values))
    return tuple(slices)


def chunk_ranges(n, chunk, done=()):
    """The ``(start, stop)`` chunks of ``range(n)`` not covered by ``done`` (parts or spans)."""
    from .io.checkpoint import missing_ranges

    return missing_ranges(n, chunk, done)


def default_chunk(batch_size, n_spectra, workers=1):
    """Spaxels per chunk: 1 to 4 batches, enough chunks to keep ``workers`` busy.

    Always a multiple of ``batch_size``, so that every batch of the float32
    search holds the same spectra as in a local run: results are then
    identical to the bit (with other chunk sizes only ``f_max`` and ``f_min``,
    the float32 search scores, may differ in their last digit).
    """
    per_worker = -(-int(n_spectra) // (4 * max(int(workers), 1)))
    return int(batch_size) * max(1, min(4, -(-per_worker // int(batch_size))))


def _bar(total, enabled):
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="spec", desc="muse-xcorr", disable=not enabled, leave=False,
                dynamic_ncols=True)


# -- worker side ----------------------------------------------------------------------------
_LOCK = threading.Lock()
_OPENED = {}


def _open(source):
    """The data of a source, opened once per worker process (a few kept).

    Keyed by the file's identity too (inode, size, modification time), so that
    a long-lived cluster never serves an old memory map of a rewritten file.
    """
    if not isinstance(source, CubeSource):
        return source  # data scattered to the worker
    stat = os.stat(source.path)
    key = (source, stat.st_ino, stat.st_size, stat.st_mtime_ns)
    if key not in _OPENED:
        if len(_OPENED) >= 4:
            _OPENED.pop(next(iter(_OPENED)))
        _OPENED[key] = source.open()
    return _OPENED[key]


def _correlate_chunk(correlator, source, start, stop, rho):
    """One task: the part of spectra ``start:stop``; one at a time per worker process."""
    with _LOCK:
        return correlator.correlate_rows(_open(source), start, stop, rho=rho)


# -- client side ----------------------------------------------------------------------------


def correlate_distributed(correlator, data_or_paths, client, *, chunk_spectra=None,
                          progress=False, parts=None, on_part=None):
    """Correlate cubes on a Dask cluster: spatial chunks as tasks; results as local ones.

    Parameters
    ----------
    correlator : `~muse_xcorr.Correlator`
        Broadcast to every worker once (``client.scatter(..., broadcast=True)``).
    data_or_paths : path, `~muse_xcorr.MuseCube`, `CubeSource`, or a list of them
        A path or a cube read from a file is opened by each worker itself
        (nothing of the cube goes through the scheduler); a cube built in
        memory is scattered to the workers. A list gives a list of results,
        with the chunks of all its cubes in one pool of tasks.
    client : `distributed.Client`
    chunk_spectra : int, optional
        Spaxels per task (consecutive in C order, so whole image rows for
        chunks of at least a row). Default (`default_chunk`): up to four
        batches of the correlator (``4 * correlator.batch_size``), fewer where
        that would leave workers idle; a multiple of ``batch_size`` always.
    progress : bool
        A progress bar (tqdm) over the spectra.
    parts : list, optional
        Parts already computed (e.g. from a checkpoint), a list per cube for a
        list of cubes: their spectra are not computed again.
    on_part : callable, optional
        Called as ``on_part(index, part)`` in this process as each part
        arrives (``index``: the cube's position in the list, 0 for one cube);
        the command line saves checkpoints with it.

    Returns
    -------
    result : `~muse_xcorr.Redshift` or list of them
        Equal to ``correlator.correlate(data)``: with ``chunk_spectra`` a
        multiple of ``correlator.batch_size`` (the default) every map, flag
        and candidate is identical to the bit on the same machine; with
        other chunks the float32 search scores ``f_max`` and ``f_min`` may
        differ by float32 rounding (< 1e-6), nothing else. Each result keeps
        the locally opened data, so its z errors can be computed afterwards.

    Notes
    -----
    ``Correlator.correlate(data, client=client)`` calls this function.
    """
    from distributed import as_completed

    from .spectra import as_spectral_data

    single = not isinstance(data_or_paths, (list, tuple))
    items = [data_or_paths] if single else list(data_or_paths)
    done = [list(parts or [])] if single else [list(p) for p in (parts or [[]] * len(items))]
    if len(done) != len(items):
        raise ValueError(f"parts must hold one list per cube ({len(items)}), got {len(done)}")
    sources, local = [], []
    for item in items:
        if isinstance(item, (str, os.PathLike)):
            source = CubeSource(os.path.abspath(os.fspath(item)))
            data = source.open()
        elif isinstance(item, CubeSource):
            source, data = item, item.open()
        else:
            data = as_spectral_data(item)
            source = CubeSource.of(data)
        local.append(data)
        sources.append(source)
    in_memory = [i for i, s in enumerate(sources) if s is None]
    scattered = {}
    if in_memory:
        futures = client.scatter([local[i] for i in in_memory], broadcast=True, hash=False)
        scattered = dict(zip(in_memory, futures))
    # pickled without prepared templates; hash=False: a random key, since the key of
    # the same data scattered again by the next call can be released under it
    # ("lost dependencies", dask/distributed#3703)
    remote = client.scatter(correlator, broadcast=True, hash=False)
    if chunk_spectra is None:
        workers = max(len(client.scheduler_info().get("workers", {})), 1)
        total = sum(d.n_spectra for d in local)
        chunk_spectra = default_chunk(correlator.batch_size, total, workers)
    chunk_spectra = int(chunk_spectra)
    if chunk_spectra < 1:
        raise ValueError(f"chunk_spectra must be a positive integer, got {chunk_spectra}")
    # the noise correlation of each cube, measured here once (a sample of its spectra)
    noise = [correlator.noise_for(data) for data in local]
    tasks = {}
    for i, data in enumerate(local):
        argument = scattered.get(i, sources[i])
        rho = () if noise[i] is None else noise[i]
        for start, stop in chunk_ranges(data.n_spectra, chunk_spectra, done[i]):
            future = client.submit(_correlate_chunk, remote, argument, start, stop, rho,
                                   pure=False, key=f"muse-xcorr-{i}-{start}-{stop}-"
                                                   f"{os.urandom(4).hex()}")
            tasks[future] = i
    bar = _bar(sum(d.n_spectra for d in local), progress)
    bar.update(sum(p.stop - p.start for parts_i in done for p in parts_i))
    try:
        for future in as_completed(list(tasks)):
            part = future.result()
            i = tasks.pop(future)
            done[i].append(part)
            if on_part is not None:
                on_part(i, part)
            bar.update(part.stop - part.start)
    finally:
        bar.close()
        for future in tasks:  # an error or an interruption: stop what is left
            future.cancel()
    results = [correlator.assemble(data, correlator.complete(data, parts_i, noise_i))
               for data, parts_i, noise_i in zip(local, done, noise)]
    return results[0] if single else results
