"""Files that must not lose work: checksums, atomic tables, and checks made before a run.

`file_checksum` and `fingerprint` identify an input (a resumed run refuses a
changed cube); `write_table` writes an `~astropy.table.Table` as atomically
as :func:`~muse_xcorr.io.atomic_write` writes FITS maps; `same_file`,
`check_output` and `probe_directory` are the checks the command line makes
before any work, so that a run never fails at its end for a reason that was
known at its start; `remove_stale_temporaries` clears what a killed run
(SIGKILL) can leave behind.
"""
import errno
import hashlib
import os
import re

from .muse import atomic_write

__all__ = ["file_checksum", "fingerprint", "write_table", "table_format", "same_file",
           "check_output", "probe_directory", "remove_stale_temporaries"]

_BLOCK = 1 << 23  # 8 MiB
#: Table formats by file suffix, when astropy's identifiers cannot be asked.
_SUFFIXES = ((".ecsv", "ascii.ecsv"), (".fits", "fits"), (".fits.gz", "fits"),
             (".fit", "fits"), (".csv", "ascii.csv"), (".hdf5", "hdf5"), (".h5", "hdf5"),
             (".vot", "votable"), (".xml", "votable"), (".parquet", "parquet"))


def file_checksum(path, algorithm="sha256"):
    """The hex digest of a file's bytes, read in 8 MiB blocks (never the whole file at once).

    Parameters
    ----------
    path : str or path-like
    algorithm : str
        A :mod:`hashlib` algorithm name.

    Returns
    -------
    digest : str
    """
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        while True:
            block = handle.read(_BLOCK)
            if not block:
                break
            digest.update(block)
    return digest.hexdigest()


def fingerprint(path):
    """What identifies an input file: ``{"path", "size", "sha256"}`` (``path`` is the real path).

    A resumed run compares ``size`` and ``sha256`` (not the path: a moved
    file is the same input).
    """
    path = os.fspath(path)
    return {"path": os.path.realpath(path), "size": os.path.getsize(path),
            "sha256": file_checksum(path)}


def table_format(path, format=None):
    """The astropy table format that ``path`` (or ``format``) means, or a `ValueError`.

    Parameters
    ----------
    path : str or path-like
    format : str, optional
        An explicit astropy format (``"ascii.ecsv"``, ``"fits"``...).

    Returns
    -------
    format : str
    """
    from astropy.io import registry
    from astropy.table import Table

    if format is not None:
        return format
    path = os.fspath(path)
    try:  # the arguments Table.write gives the identifiers: some read args[2]
        found = registry.identify_format("write", Table, path, None, [path], {})
    except Exception:  # a third-party identifier that fails: go by the suffix
        found = [f for suffix, f in _SUFFIXES if path.lower().endswith(suffix)][:1]
    if len(found) != 1:
        raise ValueError(f"cannot tell the table format from the name {path!r}"
                         f"{' (' + ', '.join(found) + ')' if found else ''}: end it in .ecsv, "
                         ".fits, .csv or .hdf5, or give the format")
    return found[0]


def write_table(table, path, *, overwrite=False, format=None, **kwargs):
    """Write an `~astropy.table.Table` atomically (as :func:`~muse_xcorr.io.atomic_write`).

    The format is the one the final name implies (the temporary file's name
    does not), or ``format``. A writer that fails (a full disk, a signal)
    leaves neither a partial file nor a temporary one.

    Parameters
    ----------
    table : `~astropy.table.Table`
    path : str or path-like
    overwrite : bool
        Replace an existing file; otherwise an existing ``path`` is an error.
    format : str, optional
    **kwargs
        Passed to `~astropy.table.Table.write`.
    """
    format = table_format(path, format)
    with atomic_write(path, overwrite=overwrite) as tmp:
        table.write(tmp, format=format, overwrite=True, **kwargs)


def same_file(a, b):
    """True if two paths name the same file: same real path (symlinks, ``..``) or inode."""
    a, b = os.fspath(a), os.fspath(b)
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)  # hard links
    except OSError:
        return False


def probe_directory(directory):
    """Raise `PermissionError` unless a file can really be created in ``directory``.

    Creates and removes a hidden empty file: `os.access` says nothing about
    read-only mounts, ACLs or quotas.
    """
    directory = os.fspath(directory) or "."
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"the output directory {directory} does not exist")
    probe = os.path.join(directory, f".muse-xcorr-probe-{os.getpid()}")
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as err:
        if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise PermissionError(f"cannot write in {directory} ({os.strerror(err.errno)})") \
                from None
        raise OSError(f"cannot write in {directory} ({err.strerror})") from None
    os.close(fd)
    os.remove(probe)


def check_output(path, *, inputs=(), overwrite=False, what="output", make_directory=False):
    """The checks on an output path, before any work; raises what writing would raise later.

    Parameters
    ----------
    path : str or path-like
    inputs : sequence of path-like
        Files the output must not be (compared by real path and inode, so
        symlinks, hard links and relative paths are caught).
    overwrite : bool
        An existing file is an error unless True.
    what : str
        The name used in the messages (``"output"``, ``"table"``).
    make_directory : bool
        The directory will be created: if it is missing, check that its
        parent is writable instead.

    Raises
    ------
    ValueError
        If ``path`` is one of ``inputs``.
    FileExistsError
        If it exists and ``overwrite`` is False.
    IsADirectoryError, FileNotFoundError, PermissionError
        If it is a directory, or its directory is missing or not writable.
    """
    path = os.fspath(path)
    for source in inputs:
        if same_file(path, source):
            raise ValueError(f"the {what} {path} is the input {os.fspath(source)}: it would "
                             "be replaced; choose another name")
    if os.path.isdir(path):
        raise IsADirectoryError(f"the {what} {path} is a directory")
    if os.path.lexists(path) and not overwrite:
        raise FileExistsError(f"the {what} {path} exists; pass --overwrite to replace it")
    directory = os.path.dirname(os.path.abspath(path))
    if make_directory and not os.path.exists(directory):
        directory = os.path.dirname(directory)
    probe_directory(directory)


def remove_stale_temporaries(path):
    """Remove the hidden temporary files a killed writer of ``path`` left beside it.

    Only names that :func:`~muse_xcorr.io.atomic_write` makes for ``path``
    (``.NAME.<12 hex>.tmp``) are touched. Call it only when no other process
    writes ``path`` (the command line does with ``--resume``).

    Returns
    -------
    removed : list of str
    """
    path = os.fspath(path)
    directory, base = os.path.split(os.path.abspath(path))
    pattern = re.compile(rf"^\.{re.escape(base)}\.[0-9a-f]{{12}}\.tmp(\.gz|\.bz2)?$")
    removed = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        if pattern.match(name):
            try:
                os.remove(os.path.join(directory, name))
                removed.append(os.path.join(directory, name))
            except FileNotFoundError:  # pragma: no cover - raced with another cleaner
                pass
    return removed
