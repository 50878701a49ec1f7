"""The spectral axis and celestial WCS of a FITS header, checked before they are believed.

WCSLIB fills in what a header leaves out: a missing ``CDELT3`` becomes 1, a
wavelength axis without ``CUNIT3`` is in metres, and a ``CD3_3`` beside
celestial ``CDELT1``/``CDELT2`` makes it ignore the CDELTs and take 1-degree
spaxels. Each of these reads a MUSE file silently wrong, so
:func:`spectral_axis_from_header` checks the header first:

* the spectral axis needs a numeric, finite ``CRVALn`` and a non-zero step
  (``CDELTn`` or ``CDn_n``): otherwise a `ValueError` names the keyword;
* a header mixing ``CDi_j`` on some axes with ``CDELTi`` on others (which the
  FITS standard forbids) is read as each axis states it, the CDELTs turned
  into CD rows, with an `~astropy.utils.exceptions.AstropyUserWarning`;
* a wavelength axis (``AWAV``/``WAVE``, or an unknown CTYPE) without a unit
  is read in metres (the FITS default) when its values are plausible metres,
  as Angstrom with a warning when they are only plausible as Angstrom
  (:data:`PLAUSIBLE_ANGSTROM`, what MUSE writes), and is an error otherwise;
* a frequency or energy axis converts to vacuum wavelengths; a velocity axis
  is an error;
* celestial axes without a pixel scale are dropped with a warning (no
  celestial WCS rather than 1-degree spaxels).

Only the FITSFixedWarnings about dates and observatory positions (``datfix``,
``obsfix``), which do not touch the axes, are silenced; the others reach the
user.
"""
import re
import warnings
from collections import namedtuple

import numpy as np
import astropy.units as u
from astropy.utils.exceptions import AstropyUserWarning
from astropy.wcs import WCS, FITSFixedWarning

from ..units import medium_from_ctype, parse_wavelength_unit

__all__ = ["SpectralAxis", "spectral_axis_from_header", "unit_for_unstated",
           "PLAUSIBLE_ANGSTROM", "PLAUSIBLE_METRES"]

#: Wavelengths (Angstrom) that values without a unit must lie in to be read as
#: Angstrom: 1000 A to 10 micron (MUSE covers 4600-9400 A).
PLAUSIBLE_ANGSTROM = (1.0e3, 1.0e5)

#: Wavelengths (metres) that values without a unit on a ``WAVE``/``AWAV`` axis
#: must lie in to be read in metres, the FITS default: 100 A to 1 mm.
PLAUSIBLE_METRES = (1.0e-8, 1.0e-3)

_SPECTRAL_CODES = {"WAVE", "AWAV", "FREQ", "AFRQ", "ENER", "WAVN", "VRAD", "VOPT", "ZOPT",
                   "VELO", "BETA"}
_VELOCITY_CODES = {"VRAD", "VOPT", "ZOPT", "VELO", "BETA"}
_WAVELENGTH_CODES = {"WAVE", "AWAV"}
_FREQUENCY_CODES = {"FREQ", "AFRQ", "ENER", "WAVN"}
_BENIGN_FIXES = ("'datfix'", "'obsfix'")
_LINEAR_KEY = re.compile(r"^((CRVAL|CRPIX|CDELT|CROTA)\d+|(CD|PC)\d+_\d+)$")

#: What :func:`spectral_axis_from_header` returns.
SpectralAxis = namedtuple("SpectralAxis", ["wavelength", "ctype", "medium", "medium_source",
                                           "celestial"])


def spectral_code(ctype):
    """The four-letter spectral code of a CTYPE (``'AWAV'`` of ``'AWAV-TAB'``), else None."""
    text = str(ctype or "").strip().upper()
    code = text[:4]
    if code in _SPECTRAL_CODES and (len(text) == 4 or text[4] == "-"):
        return code
    return None


def unit_for_unstated(values, *, what, metres_standard, fix):
    """The unit of wavelengths whose file states none, by the only reading that is plausible.

    Parameters
    ----------
    values : ndarray
        The numbers as written.
    what : str
        What they are (the axis or column, and the file), for the messages.
    metres_standard : bool
        True for a FITS ``WAVE``/``AWAV`` axis, whose default unit is the metre.
    fix : str
        How the user states the unit (``"add CUNIT3"``, ``"pass wavelength_unit="``).

    Returns
    -------
    unit : `~astropy.units.UnitBase`
        ``u.m`` for values that are plausible metres on a WAVE/AWAV axis
        (:data:`PLAUSIBLE_METRES`, no warning: that is the standard);
        ``u.AA`` for values plausible only as Angstrom (:data:`PLAUSIBLE_ANGSTROM`),
        with an `~astropy.utils.exceptions.AstropyUserWarning` naming the assumption.

    Raises
    ------
    ValueError
        If the values are neither.
    """
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        raise ValueError(f"{what} has no finite values")
    low, high = float(finite.min()), float(finite.max())
    if metres_standard and PLAUSIBLE_METRES[0] <= low and high <= PLAUSIBLE_METRES[1]:
        return u.m
    if PLAUSIBLE_ANGSTROM[0] <= low and high <= PLAUSIBLE_ANGSTROM[1]:
        warnings.warn(f"{what} has no unit; its values {low:g}-{high:g} are plausible only "
                      "as Angstrom (what MUSE writes), so they are read as Angstrom: "
                      f"{fix} to state it", AstropyUserWarning, stacklevel=3)
        return u.AA
    metres = " or metres (the FITS default)" if metres_standard else ""
    raise ValueError(f"{what} has no unit, and its values {low:g}-{high:g} are plausible "
                     f"neither as Angstrom ({PLAUSIBLE_ANGSTROM[0]:g}-"
                     f"{PLAUSIBLE_ANGSTROM[1]:g}){metres}: {fix}")


def _number(header, key, where):
    value = header[key]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        raise ValueError(f"{where}: {key} = {value!r} is not a number; fix the header")
    if not np.isfinite(value):
        raise ValueError(f"{where}: {key} = {value!r} is not finite; fix the header")
    return float(value)


def _checked_header(header, ndim, spectral, where):
    """A copy of ``header`` with its linear WCS keywords checked and a CD/CDELT mix unified.

    Returns the copy and the set of axes that state a pixel scale.
    """
    header = header.copy()
    for key in list(header.keys()):
        if _LINEAR_KEY.match(key):
            _number(header, key, where)
    axes = range(1, ndim + 1)
    cd_rows = {i for i in axes if any(f"CD{i}_{j}" in header for j in axes)}
    cdelts = {i for i in axes if f"CDELT{i}" in header}
    if cd_rows:
        if any(f"CROTA{i}" in header for i in axes):
            raise ValueError(f"{where}: the header has both CDi_j and CROTAi keywords, so "
                             "its pixel scale and rotation are ambiguous; keep one of them")
        mixed = sorted(i for i in axes if i not in cd_rows and i in cdelts)
        if mixed:
            for i in mixed:
                step = header[f"CDELT{i}"]
                for j in axes:
                    header[f"CD{i}_{j}"] = step * header.get(f"PC{i}_{j}",
                                                             1.0 if i == j else 0.0)
            warnings.warn(
                f"{where}: the header mixes CDi_j (axes {sorted(cd_rows)}) with CDELTi (axes "
                f"{mixed}), which the FITS standard does not allow (a WCS reader then ignores "
                "the CDELTs and takes 1 per pixel on those axes); read each axis as its own "
                "keywords state. Write one convention to silence this",
                AstropyUserWarning, stacklevel=4)
            cd_rows |= set(mixed)
        # with a CD matrix the CDELTs and PCs are ignored: drop them (no WCSLIB warning)
        for key in list(header.keys()):
            if re.match(r"^(CDELT\d+|PC\d+_\d+)$", key):
                del header[key]
        scaled = cd_rows
    else:
        scaled = cdelts
    if f"CRVAL{spectral}" not in header:
        raise ValueError(f"{where}: no CRVAL{spectral}, so the wavelength of the spectral "
                         "axis is unknown; fix the header")
    if spectral not in scaled:
        names = f"CDELT{spectral} or CD{spectral}_{spectral}"
        raise ValueError(f"{where}: no {names}, so the wavelength step of the spectral axis "
                         "is unknown (a WCS reader would silently take 1 per pixel); fix the "
                         "header")
    if cd_rows:
        step = header.get(f"CD{spectral}_{spectral}", 0.0)
    else:
        step = header[f"CDELT{spectral}"] * header.get(f"PC{spectral}_{spectral}", 1.0)
    if step == 0:
        raise ValueError(f"{where}: the wavelength step of the spectral axis is 0; fix "
                         f"CDELT{spectral} / CD{spectral}_{spectral}")
    unit = str(header.get(f"CUNIT{spectral}", "") or "").strip()
    if unit:  # spellings WCSLIB refuses ('ANGSTROM', 'Angstroms') that mean a known unit
        try:
            header[f"CUNIT{spectral}"] = parse_wavelength_unit(unit).to_string("fits")
        except ValueError:
            pass  # WCSLIB (or the unit check after it) reports it
    if f"CRPIX{spectral}" not in header:
        warnings.warn(f"{where}: no CRPIX{spectral}; the FITS default 0 is used, so the first "
                      f"pixel is at CRVAL{spectral} + 1 step", AstropyUserWarning, stacklevel=4)
    return header, scaled


def _build_wcs(header, where):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            wcs = WCS(header)
        except Exception as err:  # WCSLIB raises several types, none naming the file
            raise ValueError(f"{where}: invalid WCS ({type(err).__name__}: "
                             f"{str(err).strip()})") from err
    for w in caught:
        message = str(w.message)
        if issubclass(w.category, FITSFixedWarning) and message.startswith(_BENIGN_FIXES):
            continue
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return wcs


def spectral_axis_from_header(header, ndim, n_pixels, *, where="the header"):
    """The checked spectral axis (and a cube's celestial WCS) of a FITS image header.

    Parameters
    ----------
    header : `~astropy.io.fits.Header`
        Not modified.
    ndim : int
        Number of data axes (1 for a spectrum, 3 for a cube).
    n_pixels : int
        Number of pixels along the spectral axis.
    where : str
        The header's HDU and file, for the messages (``"the DATA header of x.fits"``).

    Returns
    -------
    axis : `SpectralAxis`
        ``wavelength`` (Quantity, Angstrom, float64, in pixel order), ``ctype``,
        ``medium`` (from the CTYPE, or None), ``medium_source`` (the keyword
        that says it, for messages) and ``celestial`` (a 2D WCS, or None).

    Raises
    ------
    ValueError
        Missing or non-numeric CRVAL/CDELT/CD of the spectral axis, a zero
        step, an invalid WCS, a velocity axis, an implausible wavelength
        without a unit. (Celestial axes without a pixel scale give a warning
        and ``celestial=None``: WCSLIB would take 1-degree pixels.)
    """
    codes = {i: spectral_code(header.get(f"CTYPE{i}")) for i in range(1, ndim + 1)}
    found = [i for i, code in codes.items() if code is not None]
    # a CTYPE that is not spectral (e.g. 'LINEAR') still means the last FITS axis is
    # the wavelength; the medium is then for the user to state
    spectral = found[0] if found else ndim
    code = codes[spectral]
    ctype = str(header.get(f"CTYPE{spectral}", "")).strip()
    if code in _VELOCITY_CODES:
        raise ValueError(f"{where}: CTYPE{spectral} = {ctype!r} is a velocity axis; "
                         "muse_xcorr needs wavelengths (or frequencies)")
    checked, scaled = _checked_header(header, ndim, spectral, where)
    wcs = _build_wcs(checked, where)
    if wcs.naxis != ndim:
        raise ValueError(f"{where}: the header describes {wcs.naxis} WCS axes, expected {ndim} "
                         f"(a {ndim}-dimensional data array)")
    sub = wcs.sub([spectral])
    values = np.asarray(sub.pixel_to_world_values(np.arange(n_pixels)), dtype=float)
    stated = str(header.get(f"CUNIT{spectral}", "") or "").strip()
    if stated or code in _FREQUENCY_CODES:
        text = str(sub.wcs.cunit[0]) or stated
        try:
            unit = parse_wavelength_unit(text)
        except ValueError as err:
            raise ValueError(f"{where}: CUNIT{spectral} = {stated!r}: {err}") from None
    else:
        unit = unit_for_unstated(values, what=f"the spectral axis ({ctype or 'no CTYPE'}) of "
                                 f"{where}", metres_standard=code in _WAVELENGTH_CODES,
                                 fix=f"add CUNIT{spectral} = 'Angstrom'")
    try:
        wave = (values * unit).to(u.AA, equivalencies=u.spectral())
    except u.UnitConversionError:
        raise ValueError(f"{where}: the spectral axis unit {unit} is not a length, frequency "
                         "or energy") from None
    if not (np.all(np.isfinite(wave.value)) and np.all(wave.value > 0)):
        raise ValueError(f"{where}: the spectral axis has non-finite or non-positive "
                         "wavelengths; check CRVAL/CDELT/CRPIX")
    medium = medium_from_ctype(ctype)
    source = f"CTYPE{spectral} = {ctype!r} in {where}"
    if code in _FREQUENCY_CODES:
        source += " (a frequency or energy axis converts to vacuum wavelengths)"
    celestial = None
    if ndim == 3 and wcs.has_celestial:
        lon, lat = wcs.wcs.lng + 1, wcs.wcs.lat + 1
        missing = [i for i in (lon, lat) if i not in scaled]
        if missing:  # WCSLIB would give 1-degree spaxels: no celestial WCS is better
            warnings.warn(f"{where}: no pixel scale (CDELTi or CDi_j) for the celestial axes "
                          f"{missing}; the cube is read without a celestial WCS (result maps "
                          "will have none)", AstropyUserWarning, stacklevel=2)
        else:
            celestial = wcs.celestial
    return SpectralAxis(wave, ctype, medium, source, celestial)
