"""MUSE FITS files: the DATA / STAT / DQ layout of the pipeline and of MPDAF.

A MUSE cube has a DATA extension (flux, ``10**-20 erg/s/cm2/Angstrom``), a
STAT extension (its variance, the square of that unit), optionally a DQ
extension (non-zero = bad pixel), and NaN where there is no data. The spectral
axis is the third FITS axis (first numpy axis) with ``CTYPE3 = 'AWAV'`` for
air wavelengths or ``'WAVE'`` for vacuum.
"""
import os
import re
import tempfile
import warnings
from contextlib import contextmanager

import numpy as np
import astropy.units as u
from astropy.io import fits
from astropy.nddata import VarianceUncertainty
from astropy.utils.exceptions import AstropyUserWarning
from astropy.wcs import WCS, FITSFixedWarning

from ..units import medium_from_ctype, resolve_medium

__all__ = ["read_muse_fits", "write_muse_fits", "parse_fits_unit", "atomic_write"]

_SQUARED = re.compile(r"^\((?P<inner>.+)\)\s*\*\*\s*2$")


def parse_fits_unit(text, *, what="BUNIT"):
    """Parse a FITS ``BUNIT`` string, including MUSE's ``(10**-20 erg/s/cm2/Angstrom)**2``.

    Parameters
    ----------
    text : str or None
        The keyword value. Missing or empty gives dimensionless.
    what : str
        Name used in the error message.

    Returns
    -------
    unit : `~astropy.units.UnitBase`
    """
    if text is None or not str(text).strip():
        return u.dimensionless_unscaled
    text = str(text).strip()
    match = _SQUARED.match(text)
    if match:
        return parse_fits_unit(match["inner"], what=what) ** 2
    for fmt in ("fits", "generic"):
        try:
            return u.Unit(text, format=fmt)
        except ValueError:
            continue
    raise ValueError(f"cannot parse the {what} unit {text!r}")


def _spectral_axis_from_header(header, ndim):
    """Wavelengths (Angstrom) and the spectral CTYPE from a FITS header."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        wcs = WCS(header)
    if wcs.naxis != ndim:
        raise ValueError(f"the header describes {wcs.naxis} WCS axes, expected {ndim}")
    # a CTYPE that WCSLIB does not know as spectral (e.g. 'LINEAR') still means the
    # last FITS axis is the wavelength; the medium is then for the user to state
    spectral_index = wcs.wcs.spec if (ndim > 1 and wcs.wcs.spec >= 0) else ndim - 1
    n = header[f"NAXIS{spectral_index + 1}"]
    spectral = wcs.sub([spectral_index + 1])
    values = spectral.pixel_to_world_values(np.arange(n))
    unit = u.Unit(spectral.wcs.cunit[0] or "m")
    wave = (np.asarray(values, dtype=float) * unit).to(u.AA, equivalencies=u.spectral())
    ctype = wcs.wcs.ctype[spectral_index]
    celestial = wcs.celestial if (ndim == 3 and wcs.has_celestial) else None
    return wave, ctype, celestial


def read_muse_fits(path, *, ndim, medium=None, memmap=True, ext="DATA", stat_ext="STAT",
                   dq_ext="DQ"):
    """Read a MUSE FITS cube (``ndim=3``) or spectrum (``ndim=1``).

    Parameters
    ----------
    path : str or path-like
    ndim : {1, 3}
        Dimensions of the DATA extension.
    medium : {"air", "vacuum"}, optional
        Only needed when the spectral CTYPE is neither ``AWAV`` nor ``WAVE``;
        an explicit value that contradicts the header is an error.
    memmap : bool
        Keep the arrays memory-mapped on disk (default).
    ext, stat_ext, dq_ext : str
        Extension names. A missing DQ extension is fine; a missing STAT is an error.

    Returns
    -------
    parts : dict
        ``spectral_axis`` (Quantity, Angstrom), ``flux`` (Quantity),
        ``uncertainty`` (`~astropy.nddata.VarianceUncertainty`), ``mask``
        (bool array from DQ, or None; NaNs are masked at use), ``medium``,
        ``wcs`` (celestial WCS or None) and ``meta`` (``header`` and
        ``primary_header``).
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such file: {path}")
    hdul = fits.open(path, memmap=memmap, mode="readonly")
    names = [hdu.name for hdu in hdul]
    if ext not in names:
        raise ValueError(f"{path} has no {ext!r} extension (it has {names})")
    if stat_ext not in names:
        raise ValueError(f"{path} has no {stat_ext!r} (variance) extension: the correlation "
                         f"error needs it (extensions: {names})")
    data_hdu, stat_hdu = hdul[ext], hdul[stat_ext]
    data, stat = data_hdu.data, stat_hdu.data
    if data is None or data.ndim != ndim:
        raise ValueError(f"the {ext} extension of {path} has shape "
                         f"{None if data is None else data.shape}, expected {ndim} dimensions")
    if stat is None or stat.shape != data.shape:
        raise ValueError(f"the {stat_ext} extension shape "
                         f"{None if stat is None else stat.shape} differs from {ext} {data.shape}")
    wave, ctype, celestial = _spectral_axis_from_header(data_hdu.header, ndim)
    medium = resolve_medium(medium_from_ctype(ctype), medium)
    flux_unit = parse_fits_unit(data_hdu.header.get("BUNIT"), what=f"{ext} BUNIT")
    if "BUNIT" not in data_hdu.header:
        warnings.warn(f"{path}: no BUNIT in {ext}; the flux is taken as dimensionless",
                      AstropyUserWarning)
    stat_unit = parse_fits_unit(stat_hdu.header.get("BUNIT"), what=f"{stat_ext} BUNIT")
    if "BUNIT" not in stat_hdu.header:
        stat_unit = flux_unit ** 2
    if not stat_unit.is_equivalent(flux_unit ** 2):
        raise u.UnitConversionError(f"the {stat_ext} unit {stat_unit} is not the square of "
                                    f"the {ext} unit {flux_unit}")
    mask = None
    if dq_ext in names and hdul[dq_ext].data is not None:
        if hdul[dq_ext].data.shape != data.shape:
            raise ValueError(f"the {dq_ext} extension shape differs from {ext}")
        mask = np.asarray(hdul[dq_ext].data) != 0
    meta = {"header": data_hdu.header, "primary_header": hdul[0].header, "filename": path}
    return {"spectral_axis": wave, "flux": u.Quantity(data, flux_unit, copy=False),
            "uncertainty": VarianceUncertainty(stat, unit=stat_unit, copy=False), "mask": mask,
            "medium": medium, "wcs": celestial, "meta": meta}


@contextmanager
def atomic_write(path, *, overwrite=False):
    """Write a file atomically: yield a temporary name beside ``path``, then rename.

    A reader never sees a half-written file, and ``path`` is untouched if the
    writing fails.

    Parameters
    ----------
    path : str or path-like
        The final file name.
    overwrite : bool
        Replace an existing file; otherwise an existing ``path`` is an error.
    """
    path = os.fspath(path)
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    directory = os.path.dirname(os.path.abspath(path))
    handle, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp",
                                   dir=directory)
    os.close(handle)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
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
