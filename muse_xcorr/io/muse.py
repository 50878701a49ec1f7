"""MUSE FITS files: the DATA / STAT / DQ layout of the pipeline and of MPDAF.

A MUSE cube has a DATA extension (flux, ``10**-20 erg/s/cm2/Angstrom``), a
STAT extension (its variance, the square of that unit), optionally a DQ
extension (non-zero = bad pixel), and NaN where there is no data. The spectral
axis is the third FITS axis (first numpy axis) with ``CTYPE3 = 'AWAV'`` for
air wavelengths or ``'WAVE'`` for vacuum.
"""
import os
import re
import secrets
import warnings
from contextlib import contextmanager

import numpy as np
import astropy.units as u
from astropy.io import fits
from astropy.nddata import VarianceUncertainty
from astropy.utils.exceptions import AstropyUserWarning

from .fitsfile import SizeGuard, is_memory_mapped, open_fits, read_hdu_data, required_size
from .medium import decide_medium, media_from_mapping
from .wcs import spectral_axis_from_header

__all__ = ["read_muse_fits", "write_muse_fits", "parse_fits_unit", "atomic_write",
           "temporary_name"]

_SQUARED = re.compile(r"^\((?P<inner>.+)\)\s*\*\*\s*2$")


def parse_fits_unit(text, *, what="BUNIT"):
    """Parse a FITS ``BUNIT`` string, including MUSE's ``(10**-20 erg/s/cm2/Angstrom)**2``.

    A bare ``A`` in a flux unit (``erg/s/cm2/A``, common in the wild) is read
    as the Angstrom, with a warning: astropy reads it as the ampere, which has
    no place in a spectrum.

    Parameters
    ----------
    text : str or None
        The keyword value. Missing or empty gives dimensionless.
    what : str
        Name used in the messages.

    Returns
    -------
    unit : `~astropy.units.UnitBase`

    Raises
    ------
    ValueError
        If astropy cannot parse it.
    """
    if text is None or not str(text).strip():
        return u.dimensionless_unscaled
    text = str(text).strip()
    match = _SQUARED.match(text)
    if match:
        return parse_fits_unit(match["inner"], what=what) ** 2
    unit = _parse(text)
    if unit is None:
        raise ValueError(f"cannot parse the unit {text!r} of {what}")
    if u.A in unit.decompose().bases and _AMPERE.search(text):
        angstrom = _parse(_AMPERE.sub("Angstrom", text))
        if angstrom is not None and u.A not in angstrom.decompose().bases:
            warnings.warn(f"the unit {text!r} of {what} is read with 'A' as the Angstrom "
                          "(to astropy it is the ampere); write 'Angstrom' to silence this",
                          AstropyUserWarning, stacklevel=3)
            return angstrom
    return unit


_AMPERE = re.compile(r"(?<![A-Za-z])A(?![A-Za-z])")


def _parse(text):
    with warnings.catch_warnings():
        # "multiple slashes" (erg/s/cm2/Angstrom, as MUSE writes it): read as meant
        warnings.filterwarnings("ignore", ".*multiple slashes", u.UnitsWarning)
        for fmt in ("fits", "generic"):
            try:
                return u.Unit(text, format=fmt)
            except ValueError:
                continue
    return None


def _scaled(hdu):
    """True for integer image data with BSCALE/BZERO/BLANK, which astropy cannot memory-map."""
    header = hdu.header
    keywords = ("BSCALE", "BZERO", "BLANK")
    return header.get("BITPIX", -32) > 0 and any(k in header for k in keywords)


def _image_data(hdul, name, path, memmap, scaled_copy):
    """The data of image HDU ``name``, and a mask of its BLANK pixels (or None).

    Scaled integer data (BSCALE/BZERO/BLANK) cannot be memory-mapped: they are
    read into memory, scaled to floats by astropy (float32 for BITPIX 8 and 16,
    float64 for 32 and 64), with their BLANK pixels NaN and masked.
    """
    hdu = hdul[name]
    if not _scaled(hdu):
        return read_hdu_data(hdu, path), None
    if memmap and not isinstance(hdu, fits.CompImageHDU):
        size = hdu.size * (2 if hdu.header["BITPIX"] <= 16 else 1) / 2 ** 20
        warnings.warn(f"the {name} extension of {path} holds scaled integers (BITPIX = "
                      f"{hdu.header['BITPIX']} with BSCALE/BZERO/BLANK), which cannot be "
                      f"memory-mapped: it is read into memory as floats (about {size:.0f} MiB)",
                      AstropyUserWarning, stacklevel=4)
    data = read_hdu_data(scaled_copy()[name], path)
    blank = None
    if "BLANK" in hdu.header:
        blank = np.isnan(data)
        if not blank.any():
            blank = None
    return data, blank


def read_muse_fits(path, *, ndim, medium=None, memmap=True, ext="DATA", stat_ext="STAT",
                   dq_ext="DQ"):
    """Read a MUSE FITS cube (``ndim=3``) or spectrum (``ndim=1``).

    Parameters
    ----------
    path : str or path-like
    ndim : {1, 3}
        Dimensions of the DATA extension.
    medium : {"air", "vacuum"}, optional
        Only needed when the file does not say (a spectral CTYPE other than
        ``AWAV``/``WAVE``/a frequency, and no ``MEDIUM``/``AIRORVAC`` keyword);
        an explicit value that contradicts the file is an error.
    memmap : bool
        Keep the arrays memory-mapped on disk (default). Not possible for
        compressed files (``.fits.gz``, tile-compressed extensions) and scaled
        integer data (BSCALE/BZERO/BLANK), which are read into memory.
    ext, stat_ext, dq_ext : str
        Extension names. A missing DQ extension is fine; a missing STAT is an error.

    Returns
    -------
    parts : dict
        ``spectral_axis`` (Quantity, Angstrom), ``flux`` (Quantity),
        ``uncertainty`` (`~astropy.nddata.VarianceUncertainty`), ``mask``
        (bool array from DQ, non-zero = bad, and BLANK pixels; or None: NaNs are
        masked at use), ``medium``, ``wcs`` (celestial WCS or None), ``meta``
        (``header``, ``primary_header``, ``filename``) and ``guard`` (a
        `~muse_xcorr.io.fitsfile.SizeGuard` to call before reading memory-mapped
        data, or None).

    Raises
    ------
    FileNotFoundError, OSError
        No such file; not FITS, corrupt or truncated (the message names the file).
    ValueError
        Missing extensions, wrong dimensions, a spectral axis that cannot be
        read (see :func:`~muse_xcorr.io.wcs.spectral_axis_from_header`), an
        unknown or contradictory medium.
    astropy.units.UnitConversionError
        If the STAT unit is not the square of the DATA unit.
    """
    path = os.fspath(path)
    hdul = open_fits(path, memmap=memmap)
    copy = []
    try:
        parts = _read_muse(hdul, copy, path, ndim, medium, memmap, ext, stat_ext, dq_ext)
    except BaseException:
        hdul.close()
        raise
    finally:
        for other in copy:
            other.close()
    # memory-mapped arrays keep their map after the file object is closed
    hdul.close()
    return parts


def _read_muse(hdul, copy, path, ndim, medium, memmap, ext, stat_ext, dq_ext):
    """The body of `read_muse_fits`, on an open file (``copy``: HDULists it opens too)."""
    names = [hdu.name for hdu in hdul]
    if ext not in names:
        raise ValueError(f"{path} has no {ext!r} extension (it has {names})")
    if stat_ext not in names:
        raise ValueError(f"{path} has no {stat_ext!r} (variance) extension: the correlation "
                         f"error needs it (extensions: {names})")

    def scaled_copy():  # a second, non-memory-mapped view of the file, opened once
        if not copy:
            copy.append(open_fits(path, memmap=False))
        return copy[0]

    data_hdu, stat_hdu = hdul[ext], hdul[stat_ext]
    data, blank = _image_data(hdul, ext, path, memmap, scaled_copy)
    if data is None or data.ndim != ndim:
        shape = None if data is None else data.shape
        other = {1: "MuseSpectrum.read", 3: "MuseCube.read"}.get(getattr(data, "ndim", 0))
        hint = f"; use {other} for it" if other else ""
        raise ValueError(f"the {ext} extension of {path} has shape {shape}, expected "
                         f"{ndim} dimensions{hint}")
    stat, stat_blank = _image_data(hdul, stat_ext, path, memmap, scaled_copy)
    if stat is None or stat.shape != data.shape:
        raise ValueError(f"the {stat_ext} extension shape "
                         f"{None if stat is None else stat.shape} differs from {ext} "
                         f"{data.shape} in {path}")
    where = f"the {ext} header of {path}"
    axis = spectral_axis_from_header(data_hdu.header, ndim, data.shape[0], where=where)
    sources = [(axis.medium, axis.medium_source)]
    sources += media_from_mapping(data_hdu.header, where)
    sources += media_from_mapping(hdul[0].header, f"the primary header of {path}")
    medium = decide_medium(sources, medium, path)
    flux_unit = parse_fits_unit(data_hdu.header.get("BUNIT"), what=f"{ext} (BUNIT) of {path}")
    if "BUNIT" not in data_hdu.header:
        warnings.warn(f"{path}: no BUNIT in {ext}; the flux is taken as dimensionless",
                      AstropyUserWarning)
    stat_unit = parse_fits_unit(stat_hdu.header.get("BUNIT"),
                                what=f"{stat_ext} (BUNIT) of {path}")
    if "BUNIT" not in stat_hdu.header:
        stat_unit = flux_unit ** 2
    if not stat_unit.is_equivalent(flux_unit ** 2):
        raise u.UnitConversionError(f"the {stat_ext} unit {stat_unit} is not the square of "
                                    f"the {ext} unit {flux_unit} in {path}")
    mask = None
    used = [data_hdu, stat_hdu]
    if dq_ext in names and hdul[dq_ext].data is not None:
        dq = read_hdu_data(hdul[dq_ext], path)
        if dq.shape != data.shape:
            raise ValueError(f"the {dq_ext} extension shape {dq.shape} differs from {ext} "
                             f"{data.shape} in {path}")
        mask = np.asarray(dq) != 0
        used.append(hdul[dq_ext])
    for extra in (blank, stat_blank):
        if extra is not None:
            mask = extra.copy() if mask is None else (mask | extra)
    guard = None
    if any(is_memory_mapped(array) for array in (data, stat)):
        guard = SizeGuard(path, required_size(hdul, used))
    meta = {"header": data_hdu.header, "primary_header": hdul[0].header, "filename": path}
    return {"spectral_axis": axis.wavelength, "flux": u.Quantity(data, flux_unit, copy=False),
            "uncertainty": VarianceUncertainty(stat, unit=stat_unit, copy=False), "mask": mask,
            "medium": medium, "wcs": axis.celestial, "meta": meta, "guard": guard}


#: Suffixes kept at the end of a temporary file name: astropy compresses by the name.
_COMPRESSION_SUFFIXES = (".gz", ".bz2")


def temporary_name(path):
    """A fresh hidden temporary name beside ``path``: ``.NAME.<12 hex>.tmp[.gz|.bz2]``.

    The compression suffix of ``path`` is kept so that writers that compress by
    the file name (astropy) write the same bytes as to ``path`` itself.
    """
    path = os.fspath(path)
    directory, base = os.path.split(os.path.abspath(path))
    suffix = next((s for s in _COMPRESSION_SUFFIXES if base.lower().endswith(s)), "")
    return os.path.join(directory, f".{base}.{secrets.token_hex(6)}.tmp{suffix}")


def _fsync(path):
    """Flush a file (or directory) to the disk; silently a no-op where it is not supported."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. a directory on some file systems
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_write(path, *, overwrite=False):
    """Write a file atomically: yield a temporary name beside ``path``, then rename.

    A reader never sees a half-written file; ``path`` is untouched, and no
    temporary file is left, if the writing fails (an exception, a full disk,
    or a signal that a handler turns into an exception, as the command line
    does for SIGTERM). The temporary file is flushed to the disk before the
    rename, so that a crash right after it cannot leave a truncated file
    either. A process killed by SIGKILL can leave only the hidden temporary
    file (``.NAME.<hex>.tmp``), never a partial ``path``. The file gets the
    permissions a new file gets under the process umask (the temporary file
    is created with mode ``0o666`` and the umask applied, not ``0o600``).
    Without ``overwrite``, an existing ``path`` is never replaced, even one
    that appears while writing.

    Parameters
    ----------
    path : str or path-like
        The final file name.
    overwrite : bool
        Replace an existing file; otherwise an existing ``path`` is an error.

    Yields
    ------
    tmp : str
        An empty file in the directory of ``path``, for the writer to fill
        (with the same compression suffix, ``.gz`` or ``.bz2``, as ``path``).
    """
    path = os.fspath(path)
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    while True:
        tmp = temporary_name(path)
        try:  # the mode is filtered by the umask, as for any new file
            handle = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            break
        except FileExistsError:  # pragma: no cover - 48 random bits
            continue
    os.close(handle)
    try:
        yield tmp
        _fsync(tmp)
        if overwrite:
            os.replace(tmp, path)
        else:
            _rename_no_replace(tmp, path)
        _fsync(os.path.dirname(os.path.abspath(path)))
    finally:
        if os.path.lexists(tmp):
            os.remove(tmp)


def _rename_no_replace(tmp, path):
    """Move ``tmp`` to ``path`` unless ``path`` exists (atomically where links work)."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise FileExistsError(f"{path} appeared while it was being written; pass "
                              "overwrite=True to replace it") from None
    except OSError:  # a file system without hard links: check, then rename
        if os.path.exists(path):
            raise FileExistsError(f"{path} appeared while it was being written; pass "
                                  "overwrite=True to replace it") from None
        os.replace(tmp, path)
    else:
        os.remove(tmp)


def write_muse_fits(data, path, *, overwrite=False):
    """Write a `~muse_xcorr.MuseCube` or `~muse_xcorr.MuseSpectrum` in the MUSE layout.

    DATA and STAT (variance) image extensions, the spectral axis as a linear
    WCS (``CTYPE = 'AWAV'`` in air, ``'WAVE'`` in vacuum), BUNIT, the celestial
    WCS of a cube, masked pixels as NaN. The file is written atomically.

    Parameters
    ----------
    data : `~muse_xcorr.MuseCube` or `~muse_xcorr.MuseSpectrum`
        Its wavelengths must be linearly spaced.
    path : str or path-like
    overwrite : bool
    """
    wave = data.spectral_axis.to_value(u.AA)
    step = np.diff(wave)
    if not np.allclose(step, step[0], rtol=1e-6, atol=0):
        raise ValueError("write_muse_fits needs a linear wavelength grid")
    n = data.n_spectra
    batch = data.spectra(0, n)
    flux = np.where(batch.valid, batch.flux, np.nan).astype(np.float32)
    variance = np.where(batch.valid, batch.variance, np.nan).astype(np.float32)
    cube = len(data.spatial_shape) == 2
    header = data.wcs.to_header() if (cube and data.wcs is not None) else fits.Header()
    axis = 3 if cube else 1
    header[f"CTYPE{axis}"] = "AWAV" if data.medium == "air" else "WAVE"
    header[f"CUNIT{axis}"] = "Angstrom"
    header[f"CRVAL{axis}"] = wave[0]
    header[f"CRPIX{axis}"] = 1.0
    # CDELT, not CD3_3: a CD keyword makes WCS readers ignore the CDELTs (and
    # PCs) that the celestial header carries
    header[f"CDELT{axis}"] = float(step[0])
    shape = (data.n_pixels,) + data.spatial_shape
    flux = np.moveaxis(flux.reshape(data.spatial_shape + (-1,)), -1, 0).reshape(shape)
    variance = np.moveaxis(variance.reshape(data.spatial_shape + (-1,)), -1, 0).reshape(shape)
    flux_header, stat_header = header.copy(), header.copy()
    flux_header["BUNIT"] = data.flux.unit.to_string("fits")
    stat_header["BUNIT"] = (data.flux.unit ** 2).to_string("fits")
    primary = fits.PrimaryHDU()
    primary.header["INSTRUME"] = "MUSE"
    hdul = fits.HDUList([primary, fits.ImageHDU(flux, flux_header, name="DATA"),
                         fits.ImageHDU(variance, stat_header, name="STAT")])
    with atomic_write(path, overwrite=overwrite) as tmp:
        hdul.writeto(tmp)
