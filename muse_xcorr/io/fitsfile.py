"""Opening FITS files safely: clear errors for missing, corrupt and truncated files.

`open_fits` opens a file read-only and checks, before any data are touched,
that the file holds every byte its headers describe (a memory-mapped read of
a truncated file would otherwise read zeros, or die of SIGBUS). `SizeGuard`
repeats that check cheaply before each batch of a memory-mapped cube is read,
in case the file shrinks while it is open.
"""
import os
import warnings
import weakref

import numpy as np
from astropy.io import fits

__all__ = ["open_fits", "is_fits", "required_size", "read_hdu_data", "SizeGuard",
           "is_memory_mapped"]

# first bytes of the compressed containers astropy.io.fits opens transparently
_COMPRESSED_MAGIC = (b"\x1f\x8b", b"BZh", b"PK\x03\x04")


def _magic(path, n=80):
    with open(path, "rb") as handle:
        return handle.read(n)


def is_fits(path):
    """True if ``path`` starts like a FITS file (``SIMPLE  =``), possibly gzip/bzip2/zip.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    bool
        A compressed file counts as FITS when its name says so (``.fits.gz``...).
    """
    head = _magic(path)
    if head.startswith(b"SIMPLE  ="):
        return True
    if head.startswith(_COMPRESSED_MAGIC):
        name = os.fspath(path).lower()
        return any(f".{ext}." in name or name.endswith(f".{ext}")
                   for ext in ("fits", "fit", "fts", "fz"))
    return False


def _magic_at(path, offset, n):
    with open(path, "rb") as handle:
        handle.seek(offset)
        return handle.read(n)


def _padded_end(hdul):
    """Byte offset just after the last HDU astropy read (its data padded to 2880)."""
    info = hdul[-1].fileinfo()
    return int(info["datLoc"]) + int(info["datSpan"]) if info else 0


def _is_compressed(path):
    return _magic(path, 4).startswith(_COMPRESSED_MAGIC)


def _data_bytes(hdu):
    """Bytes of data (without the padding) that an HDU's header describes."""
    if isinstance(hdu, fits.CompImageHDU):
        table = getattr(hdu, "_bintable", None)  # the binary table that stores the tiles
        if table is not None:
            return int(table.size)
        return max(int(hdu.fileinfo()["datSpan"]) - 2879, 0)
    return int(hdu.size)


def required_size(hdul, hdus=None):
    """Smallest file size (bytes) that holds the data of ``hdus`` (default: all) of ``hdul``.

    Parameters
    ----------
    hdul : `~astropy.io.fits.HDUList`
        Opened from a file.
    hdus : list of HDUs, optional

    Returns
    -------
    size : int
    """
    size = 0
    for hdu in (hdul if hdus is None else hdus):
        info = hdu.fileinfo()
        if info is None:
            continue
        size = max(size, int(info["datLoc"]) + _data_bytes(hdu))
    return size


def open_fits(path, *, memmap=True):
    """Open a FITS file read-only, with errors that name the file.

    Parameters
    ----------
    path : str or path-like
    memmap : bool
        Memory-map the data (ignored by astropy for compressed files).

    Returns
    -------
    hdul : `~astropy.io.fits.HDUList`
        All headers read. The caller closes it (or keeps it open while its
        memory-mapped arrays are in use).

    Raises
    ------
    FileNotFoundError
        If there is no such file.
    OSError
        If the file is not FITS, is corrupt, or is shorter than its headers say
        (truncated): the message gives the file name and both sizes.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such file: {path}")
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path} is a directory, not a FITS file")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            hdul = fits.open(path, memmap=memmap, mode="readonly", lazy_load_hdus=False)
        except (OSError, ValueError, EOFError, TypeError, IndexError) as err:
            raise OSError(f"{path} is not a readable FITS file ({type(err).__name__}: "
                          f"{err})") from err
    truncated = [w for w in caught if "truncated" in str(w.message)]
    for w in caught:
        if w not in truncated:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if not _is_compressed(path):
        actual = os.path.getsize(path)
        needed = required_size(hdul)
        if actual < needed or truncated:
            hdul.close()
            raise OSError(f"{path} is truncated: it has {actual} bytes but its headers "
                          f"describe {max(needed, actual + 1)} (an interrupted copy or "
                          "download?); get the complete file")
        end = _padded_end(hdul)
        if actual > end and _magic_at(path, end, 8) == b"XTENSION":
            hdul.close()  # astropy skips a header cut short without a word
            raise OSError(f"{path} is truncated: it ends in the middle of the header of "
                          f"HDU {len(hdul)} (at byte {actual}); get the complete file")
    else:
        actual = _decompressed_size(path)
        needed = required_size(hdul)
        if actual is None or actual < needed or truncated:
            hdul.close()
            got = "ends before its end marker" if actual is None else (
                f"holds {actual} bytes, its headers describe {needed}")
            raise OSError(f"{path} is truncated: its compressed stream {got}; get the "
                          "complete file")
    return hdul


def _decompressed_size(path):
    """Bytes in a gzip or bzip2 file once decompressed; None if the stream is cut short.

    astropy drops the HDUs of a truncated compressed file without a word, so
    the stream is read to its end once (about the cost of reading the data).
    For a zip file, astropy reads the first member, whose size the zip index gives.
    """
    import bz2
    import gzip
    import zipfile

    head = _magic(path, 4)
    if head.startswith(b"PK"):
        with zipfile.ZipFile(path) as archive:
            return archive.infolist()[0].file_size
    opener = gzip.open if head.startswith(b"\x1f\x8b") else bz2.open
    size = 0
    try:
        with opener(path, "rb") as stream:
            while True:
                chunk = stream.read(1 << 22)
                if not chunk:
                    return size
                size += len(chunk)
    except (EOFError, OSError):
        return None


def read_hdu_data(hdu, path):
    """``hdu.data``, with decompression and I/O failures turned into errors naming the file."""
    try:
        return hdu.data
    except (OSError, EOFError, ValueError) as err:
        raise OSError(f"cannot read the data of HDU {hdu.name!r} of {path} "
                      f"({type(err).__name__}: {err})") from err


def is_memory_mapped(array):
    """True if ``array`` is a view of a memory map (its pages come from a file)."""
    import mmap

    while array is not None:
        if isinstance(array, (np.memmap, mmap.mmap)):
            return True
        array = getattr(array, "base", None)
    return False


class SizeGuard:
    """Check, cheaply and as often as needed, that an open file still has its bytes.

    A memory-mapped array whose file is truncated in place (by another process)
    kills the Python process with SIGBUS when the lost pages are read. Calling
    the guard before reading a batch turns that into an `OSError`. It keeps its
    own read-only descriptor of the file, so a file replaced by a new one
    (rename) is still the one checked, as the memory map still shows the old
    file's bytes.

    Parameters
    ----------
    path : str
        The file (for messages).
    size : int
        Bytes the mapped data need (see `required_size`).
    """

    def __init__(self, path, size):
        self.path, self.size = os.fspath(path), int(size)
        self._fd = os.open(self.path, os.O_RDONLY)
        weakref.finalize(self, os.close, self._fd)

    def __call__(self):
        """Raise `OSError` if the file is now shorter than the mapped data need."""
        actual = os.fstat(self._fd).st_size
        if actual < self.size:
            raise OSError(f"{self.path} shrank to {actual} bytes while it was open "
                          f"(its memory-mapped data need {self.size}): another process "
                          "truncated or rewrote it in place; read it again")

    def __repr__(self):
        return f"<SizeGuard {self.path!r} >= {self.size} bytes>"
