"""Readers for one-dimensional spectra in the formats found in the wild.

Each reader returns the parts of a spectrum (arrays, units, medium, header)
for `muse_xcorr.MuseSpectrum.read` to build the object from; this module
knows nothing of that class. The readers, by ``format`` name:

``"muse"``
    MUSE/MPDAF layout: DATA and STAT (variance) image extensions, optional DQ
    (see :func:`~muse_xcorr.io.read_muse_fits`).
``"fits-table"``
    A FITS binary (or ASCII) table with wavelength, flux and error, variance or
    inverse-variance columns under their common names (TDOSE, ESO Phase 3
    one-row tables with array cells...); units from ``TUNITn``.
``"fits-image"``
    A 1D image (the primary HDU or a named one) with a linear spectral WCS
    and an error extension: ``SIGMA``/``ERR``/``ERROR``/``NOISE`` (standard
    deviation), ``STAT``/``VAR``/``VARIANCE`` (variance) or ``IVAR``
    (inverse variance). PampelMuse/MUSEpack spectra.
``"ascii"``
    ECSV or whitespace/comma-separated text with a header line naming the
    columns (pPXF_wrapper ``.dat`` files).

:func:`identify_format` picks one from the file's content. Every reader then
masks runs of exactly zero flux (:func:`zero_run_mask`): the AO laser notch.
"""
import os
import re
import warnings

import numpy as np
import astropy.units as u
from astropy.io import fits
from astropy.nddata import InverseVariance, StdDevUncertainty, VarianceUncertainty
from astropy.utils.exceptions import AstropyUserWarning

from ..units import medium_from_ctype, parse_wavelength_unit
from .columns import find_columns
from .fitsfile import is_fits, open_fits, read_hdu_data
from .medium import decide_medium, media_from_mapping
from .muse import parse_fits_unit, read_muse_fits
from .wcs import spectral_axis_from_header, unit_for_unstated

__all__ = ["READERS", "DEFAULT_MIN_ZERO_RUN", "identify_format", "read_spectrum_parts",
           "zero_run_mask", "zero_runs"]

#: Shortest run of consecutive pixels with flux exactly 0 that is masked. The AO
#: laser notch of MUSE WFM-AO data is 127-134 pixels of exact zeros; three is long
#: enough that a single zero (or two) of real data is kept.
DEFAULT_MIN_ZERO_RUN = 3

_UNCERTAINTY_CLASSES = {"error": StdDevUncertainty, "variance": VarianceUncertainty,
                        "ivar": InverseVariance}
_UNCERTAINTY_POWER = {"error": 1, "variance": 2, "ivar": -2}
# image extension names, by what they hold
_IMAGE_UNCERTAINTY = {"error": ("SIGMA", "ERR", "ERROR", "ERRS", "NOISE", "STDDEV", "STD"),
                      "variance": ("STAT", "VAR", "VARIANCE"),
                      "ivar": ("IVAR", "INVVAR", "IVARIANCE")}
_IMAGE_FLUX = ("DATA", "FLUX", "SCI", "SPEC", "SPECTRUM")
_IMAGE_MASK = ("DQ", "MASK", "QUALITY", "BADPIX")
_COMMENT_MEDIUM = re.compile(r"^\s*(?P<key>MEDIUM|AIRORVAC)\s*[=:]\s*['\"]?(?P<value>\w+)",
                             re.IGNORECASE)


# -- masking ------------------------------------------------------------------------
def zero_runs(flux, min_run=DEFAULT_MIN_ZERO_RUN):
    """Runs of at least ``min_run`` consecutive pixels whose flux is exactly 0.

    Parameters
    ----------
    flux : array_like, shape (n,)
    min_run : int
        Shortest run reported (>= 1).

    Returns
    -------
    runs : list of (int, int)
        ``(first, stop)`` pixel indices of each run (``flux[first:stop] == 0``).
    """
    zero = np.asarray(flux) == 0
    edges = np.diff(np.concatenate([[0], zero.astype(np.int8), [0]]))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return [(int(a), int(b)) for a, b in zip(starts, stops) if b - a >= min_run]


def zero_run_mask(flux, min_run=DEFAULT_MIN_ZERO_RUN):
    """True on runs of at least ``min_run`` pixels of flux exactly 0 (the AO laser notch).

    MUSE data taken with adaptive optics have no data where the laser light
    is blocked (about 5800-5966 Angstrom); extracted spectra often store 0
    there, with a NaN, zero or finite error, so NaN or variance checks miss it.

    The one home of the rule: readers apply it to the spectra they return,
    and every batch of spectra the correlator reads applies it again
    (:meth:`muse_xcorr.spectra.SpectraBatch.from_arrays`), so hand-made and
    specutils spectra and cubes get it too.

    Parameters
    ----------
    flux : array_like, shape (..., n)
        Runs are along the last axis.
    min_run : int or None
        Shortest masked run; None or 0 masks nothing.

    Returns
    -------
    mask : ndarray of bool, the shape of ``flux``
        True = bad, as elsewhere in the package.
    """
    zero = np.asarray(flux) == 0
    mask = np.zeros(zero.shape, dtype=bool)
    min_run = int(min_run or 0)
    if not min_run or zero.shape[-1] < min_run or not zero.any():
        return mask
    full = np.lib.stride_tricks.sliding_window_view(zero, min_run, axis=-1).all(axis=-1)
    for offset in range(min_run):  # every pixel of a window of zeros
        mask[..., offset:offset + full.shape[-1]] |= full
    return mask


# -- identification -----------------------------------------------------------------
def _hdu_kind(hdu):
    if isinstance(hdu, (fits.BinTableHDU, fits.TableHDU)):
        return "table"
    if isinstance(hdu, (fits.PrimaryHDU, fits.ImageHDU, fits.CompImageHDU)):
        return "image" if hdu.header.get("NAXIS", 0) > 0 else None
    return None


def identify_format(path, *, hdu=None):
    """The reader a file needs: ``"muse"``, ``"fits-table"``, ``"fits-image"`` or ``"ascii"``.

    FITS files (recognised by content, not by name) with ``DATA`` and ``STAT``
    image extensions are ``"muse"``; with a table (or ``hdu`` naming one),
    ``"fits-table"``; with image data, ``"fits-image"``. Other files are
    ``"ascii"``.

    Parameters
    ----------
    path : str or path-like
    hdu : int or str, optional
        The HDU the user names: its kind decides.

    Returns
    -------
    format : str
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such file: {path}")
    if not is_fits(path):
        return "ascii"
    with open_fits(path, memmap=False) as hdul:
        if hdu is not None:
            kind = _hdu_kind(_get_hdu(hdul, hdu, path))
            return {"table": "fits-table", "image": "fits-image"}.get(kind, "fits-image")
        names = {h.name for h in hdul if _hdu_kind(h) == "image"}
        if {"DATA", "STAT"} <= names:
            return "muse"
        if any(_hdu_kind(h) == "table" for h in hdul):
            return "fits-table"
        if names:
            return "fits-image"
        listed = [(h.name, type(h).__name__) for h in hdul]
        raise ValueError(f"{path} holds no spectrum: no image data and no table in {listed}")


def _get_hdu(hdul, hdu, path):
    try:
        return hdul[hdu]
    except (KeyError, IndexError):
        raise ValueError(f"{path} has no HDU {hdu!r} (it has "
                         f"{[h.name for h in hdul]})") from None


# -- units ----------------------------------------------------------------------------
def _unit_text(unit):
    return None if unit is None else str(unit).strip() or None


def _flux_unit(stated, flux_unit, what):
    """The flux unit from the file (``stated``, text or unit) and the user's ``flux_unit``."""
    given = None if flux_unit is None else u.Unit(flux_unit)
    text = _unit_text(stated)
    if text is None:
        if given is not None:
            return given
        warnings.warn(f"{what} has no unit; the flux is taken as dimensionless (pass "
                      "flux_unit= to state it)", AstropyUserWarning, stacklevel=4)
        return u.dimensionless_unscaled
    try:
        unit = stated if isinstance(stated, u.UnitBase) and not isinstance(
            stated, u.UnrecognizedUnit) else parse_fits_unit(text, what=what)
    except ValueError:
        if given is not None:  # the user says what the unreadable unit is
            return given
        raise ValueError(f"cannot parse the unit {text!r} of {what}; pass flux_unit= to "
                         "state it") from None
    if given is not None and unit != given:
        raise ValueError(f"flux_unit={given.to_string()!r} contradicts the unit {text!r} of "
                         f"{what}; leave flux_unit unset")
    return unit


def _uncertainty(kind, values, stated, flux_unit, what):
    """An astropy.nddata uncertainty of ``kind`` in a unit consistent with the flux."""
    text = _unit_text(stated)
    unit = None
    if text is not None:
        try:
            unit = stated if isinstance(stated, u.UnitBase) and not isinstance(
                stated, u.UnrecognizedUnit) else parse_fits_unit(text, what=what)
        except ValueError:
            raise ValueError(f"cannot parse the unit {text!r} of {what}") from None
        expected = flux_unit ** _UNCERTAINTY_POWER[kind]
        if not unit.is_equivalent(expected):
            raise u.UnitConversionError(f"the unit {unit} of {what} does not fit a "
                                        f"{kind} of a flux in {flux_unit} (expected a unit "
                                        f"like {expected})")
    return _UNCERTAINTY_CLASSES[kind](np.asarray(values, dtype=float), unit=unit, copy=False)


def _wavelength(values, stated, wavelength_unit, what):
    """Wavelengths (Quantity, Angstrom) from column values and the stated unit."""
    given = None if wavelength_unit is None else parse_wavelength_unit(wavelength_unit)
    unit = None
    text = _unit_text(stated)
    if text is not None:
        try:
            unit = parse_wavelength_unit(stated)
        except ValueError:
            if given is None:
                raise ValueError(f"cannot read the unit {text!r} of {what} as a wavelength "
                                 "unit; pass wavelength_unit= to state it") from None
    if given is not None:
        if unit is not None and unit != given:
            raise ValueError(f"wavelength_unit={given.to_string()!r} contradicts the unit "
                             f"{text!r} of {what}; leave wavelength_unit unset")
        unit = given
    values = np.asarray(values, dtype=float)
    if unit is None:
        unit = unit_for_unstated(values, what=what, metres_standard=False,
                                 fix="pass wavelength_unit='Angstrom'")
    return (values * unit).to(u.AA, equivalencies=u.spectral())


# -- tables ---------------------------------------------------------------------------
def _flatten_cells(table, names, path):
    """Column arrays, taking the single row of a table whose cells are spectra."""
    arrays = {}
    for name in names:
        array = np.asarray(table[name])
        if array.ndim == 2 and array.shape[0] == 1:
            array = array[0]
        elif array.ndim != 1:
            raise ValueError(f"{path}: column {name!r} has shape {array.shape}: the table "
                             "holds several spectra (one per row); the 1D reader takes one "
                             "(select a row, or use a cube reader)")
        arrays[name] = array
    sizes = {name: a.size for name, a in arrays.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"{path}: the columns have different lengths {sizes}")
    return arrays


def _table_parts(table, path, *, units, column_media, media, meta, options):
    columns = find_columns(table.colnames, path, wavelength=options["wavelength"],
                           flux=options["flux"], error=options["error"],
                           variance=options["variance"], ivar=options["ivar"],
                           mask=options["mask"])
    kind, error_name = columns["uncertainty"]
    wave_name, flux_name = columns["wavelength"], columns["flux"]
    sources = list(media) + list(column_media.get(wave_name, []))
    medium = decide_medium(sources, options["medium"], path)
    names = [wave_name, flux_name, error_name]
    if columns["mask"]:
        names.append(columns["mask"])
    arrays = _flatten_cells(table, names, path)
    wave = _wavelength(arrays[wave_name], units.get(wave_name), options["wavelength_unit"],
                       f"column {wave_name!r} of {path}")
    flux_unit = _flux_unit(units.get(flux_name), options["flux_unit"],
                           f"column {flux_name!r} of {path}")
    uncertainty = _uncertainty(kind, arrays[error_name], units.get(error_name), flux_unit,
                               f"column {error_name!r} of {path}")
    mask = None
    if columns["mask"]:
        mask = np.asarray(arrays[columns["mask"]]) != 0
    meta = dict(meta, columns={"wavelength": wave_name, "flux": flux_name, kind: error_name,
                               "mask": columns["mask"]})
    flux = u.Quantity(np.asarray(arrays[flux_name], dtype=float), flux_unit)
    return {"spectral_axis": wave, "flux": flux, "uncertainty": uncertainty, "mask": mask,
            "medium": medium, "meta": meta}


class _Columns(dict):
    """A table as ``name -> array`` with ``colnames``, what the column logic needs."""

    @property
    def colnames(self):
        return list(self)


def _read_fits_table(path, options):
    with open_fits(path, memmap=False) as hdul:
        if options["hdu"] is not None:
            hdu = _get_hdu(hdul, options["hdu"], path)
            if _hdu_kind(hdu) != "table":
                raise ValueError(f"HDU {options['hdu']!r} of {path} is not a table; use "
                                 "format='fits-image' for an image")
        else:
            tables = [h for h in hdul if _hdu_kind(h) == "table" and h.data is not None]
            if not tables:
                raise ValueError(f"{path} has no table with data (HDUs: "
                                 f"{[h.name for h in hdul]})")
            hdu = tables[0]
        where = f"the {hdu.name} table of {path}"
        records = read_hdu_data(hdu, path)
        # the columns as arrays (TSCAL/TZERO applied); the units are read from TUNIT below
        table = _Columns({name: np.array(records[name]) for name in records.names})
        header, primary = hdu.header.copy(), hdul[0].header.copy()
    units, column_media = {}, {}
    for index, name in enumerate(table.colnames, start=1):
        units[name] = header.get(f"TUNIT{index}")
        ctype = header.get(f"TCTYP{index}")
        if ctype:
            column_media[name] = [(medium_from_ctype(ctype),
                                   f"TCTYP{index} = {ctype!r} in {where}")]
    media = media_from_mapping(header, where) + media_from_mapping(
        primary, f"the primary header of {path}")
    if "BUNIT" in header:  # a table-wide flux unit, if the flux column has none
        flux_column = None
        try:
            flux_column = find_columns(table.colnames, path, flux=options["flux"],
                                       need_uncertainty=False,
                                       wavelength=options["wavelength"])["flux"]
        except ValueError:
            pass
        if flux_column and not _unit_text(units.get(flux_column)):
            units[flux_column] = header["BUNIT"]
    meta = {"filename": path, "header": header, "primary_header": primary, "format":
            "fits-table"}
    return _table_parts(table, path, units=units, column_media=column_media, media=media,
                        meta=meta, options=options)


def _read_ascii(path, options):
    from astropy.table import Table

    if options["hdu"] is not None:
        raise ValueError(f"hdu= does not apply to the ASCII file {path}")
    with open(path, "rb") as handle:
        head = handle.read(64)
    fmt = "ascii.ecsv" if head.lstrip().startswith(b"# %ECSV") else "ascii"
    try:
        with warnings.catch_warnings():
            # astropy reports unit strings it cannot parse; they are checked below
            warnings.simplefilter("ignore", u.UnitsWarning)
            table = Table.read(path, format=fmt)
    except Exception as err:  # astropy.io.ascii raises many types (InconsistentTableError...)
        raise ValueError(f"cannot read {path} as an ASCII or ECSV table "
                         f"({type(err).__name__}: {err})") from err
    units = {name: table[name].unit for name in table.colnames}
    where = f"the metadata of {path}"
    mapping = {k: v for k, v in table.meta.items() if isinstance(v, (str, bytes))}
    for line in table.meta.get("comments", []) or []:
        match = _COMMENT_MEDIUM.match(str(line))
        if match:
            mapping[match["key"].upper()] = match["value"]
    media = media_from_mapping(mapping, where)
    column_media = {name: media_from_mapping(table[name].meta, f"the meta of column "
                                             f"{name!r} of {path}")
                    for name in table.colnames if table[name].meta}
    meta = {"filename": path, "header": dict(table.meta), "format": "ascii"}
    return _table_parts(table, path, units=units, column_media=column_media, media=media,
                        meta=meta, options=options)


# -- images ---------------------------------------------------------------------------
def _find_image(hdul, names, exclude=()):
    for hdu in hdul:
        if hdu.name in names and _hdu_kind(hdu) == "image" and hdu not in exclude:
            return hdu
    return None


def _read_fits_image(path, options):
    if options["wavelength"] is not None:
        raise ValueError("wavelength= names a table column; a FITS image spectrum takes its "
                         "wavelengths from its WCS (CRVAL1, CDELT1...)")
    with open_fits(path, memmap=False) as hdul:
        if options["hdu"] is not None:
            flux_hdu = _get_hdu(hdul, options["hdu"], path)
        elif _hdu_kind(hdul[0]) == "image":
            flux_hdu = hdul[0]
        else:
            flux_hdu = _find_image(hdul, _IMAGE_FLUX) or next(
                (h for h in hdul if _hdu_kind(h) == "image"), None)
        if flux_hdu is None or _hdu_kind(flux_hdu) != "image":
            raise ValueError(f"{path} has no image HDU with a spectrum (HDUs: "
                             f"{[h.name for h in hdul]})")
        data = read_hdu_data(flux_hdu, path)
        if data.ndim != 1:
            hint = "; use MuseCube.read for a cube" if data.ndim == 3 else ""
            raise ValueError(f"HDU {flux_hdu.name!r} of {path} has shape {data.shape}: the 1D "
                             f"reader needs one spectrum{hint}")
        given = {k: options[k] for k in ("error", "variance", "ivar") if options[k] is not None}
        if len(given) > 1:
            raise ValueError(f"give one of error=, variance= and ivar=, not "
                             f"{' and '.join(k + '=' for k in given)}")
        if given:
            (kind, name), = given.items()
            error_hdu = _get_hdu(hdul, name, path)
        else:
            found = [(kind, h) for kind, names in _IMAGE_UNCERTAINTY.items()
                     for h in hdul if h.name in names and h is not flux_hdu]
            if not found:
                raise ValueError(f"{path} has no error extension (SIGMA, ERR, STAT, VAR, IVAR"
                                 f"...) beside the flux in HDU {flux_hdu.name!r}: the "
                                 f"correlation error needs one (HDUs: "
                                 f"{[h.name for h in hdul]}); name it with error=, variance= "
                                 "or ivar=")
            if len(found) > 1:
                listed = [h.name for _, h in found]
                raise ValueError(f"{path}: the error extension is ambiguous: {listed}; name "
                                 "one with error=, variance= or ivar=")
            (kind, error_hdu), = found
        errors = read_hdu_data(error_hdu, path)
        if errors is None or errors.shape != data.shape:
            raise ValueError(f"the {error_hdu.name} extension of {path} has shape "
                             f"{None if errors is None else errors.shape}, the flux "
                             f"{data.shape}")
        mask_hdu = (_get_hdu(hdul, options["mask"], path) if options["mask"] is not None
                    else _find_image(hdul, _IMAGE_MASK, exclude=(flux_hdu, error_hdu)))
        mask = None
        if mask_hdu is not None:
            mask_data = read_hdu_data(mask_hdu, path)
            if mask_data.shape != data.shape:
                raise ValueError(f"the {mask_hdu.name} extension of {path} has shape "
                                 f"{mask_data.shape}, the flux {data.shape}")
            mask = np.asarray(mask_data) != 0
        header, error_header = flux_hdu.header.copy(), error_hdu.header.copy()
        primary = hdul[0].header.copy()
        data, errors = np.array(data, dtype=float), np.array(errors, dtype=float)
        flux_name, error_name = flux_hdu.name, error_hdu.name
    where = f"the {flux_name} header of {path}"
    axis = spectral_axis_from_header(header, 1, data.size, where=where)
    _check_same_axis(header, error_header, path, flux_name, error_name)
    if options["wavelength_unit"] is not None:
        raise ValueError("wavelength_unit= is for tables; a FITS image states it in CUNIT1")
    sources = [(axis.medium, axis.medium_source)] + media_from_mapping(header, where)
    if flux_name != "PRIMARY":
        sources += media_from_mapping(primary, f"the primary header of {path}")
    medium = decide_medium(sources, options["medium"], path)
    flux_unit = _flux_unit(header.get("BUNIT"), options["flux_unit"],
                           f"HDU {flux_name!r} (BUNIT) of {path}")
    uncertainty = _uncertainty(kind, errors, error_header.get("BUNIT"), flux_unit,
                               f"HDU {error_name!r} (BUNIT) of {path}")
    meta = {"filename": path, "header": header, "error_header": error_header,
            "primary_header": primary, "format": "fits-image",
            "extensions": {"flux": flux_name, kind: error_name}}
    return {"spectral_axis": axis.wavelength, "flux": u.Quantity(data, flux_unit),
            "uncertainty": uncertainty, "mask": mask, "medium": medium, "meta": meta}


def _check_same_axis(header, other, path, name, other_name):
    """The error extension's spectral WCS, where it has one, must be the flux's."""
    for key in ("CRVAL1", "CDELT1", "CD1_1", "CRPIX1"):
        if key in header and key in other:
            a, b = header[key], other[key]
            if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not np.isclose(
                    a, b, rtol=1e-10, atol=0):
                raise ValueError(f"{path}: {key} is {a} in {name} but {b} in {other_name}: "
                                 "the error extension is on another wavelength grid")


def _read_muse(path, options):
    for key in ("wavelength", "flux", "error", "ivar", "wavelength_unit", "flux_unit"):
        if options[key] is not None:
            raise ValueError(f"{key}= does not apply to the MUSE DATA/STAT layout of {path} "
                             "(use hdu= and variance= to name its extensions)")
    ext = options["hdu"] if options["hdu"] is not None else options["ext"]
    stat = options["variance"] if options["variance"] is not None else options["stat_ext"]
    dq = options["mask"] if options["mask"] is not None else "DQ"
    parts = read_muse_fits(path, ndim=1, medium=options["medium"], memmap=False, ext=ext,
                           stat_ext=stat, dq_ext=dq)
    parts.pop("guard", None)
    parts.pop("wcs", None)
    parts["meta"]["format"] = "muse"
    return parts


#: The 1D readers by ``format`` name: ``name -> reader(path, options) -> parts``.
READERS = {"muse": _read_muse, "fits-table": _read_fits_table,
           "fits-image": _read_fits_image, "ascii": _read_ascii}
_ALIASES = {"ecsv": "ascii", "txt": "ascii", "dat": "ascii", "mpdaf": "muse",
            "table": "fits-table", "image": "fits-image"}


def read_spectrum_parts(path, *, format=None, medium=None, hdu=None, wavelength=None,
                        flux=None, error=None, variance=None, ivar=None, mask=None,
                        flux_unit=None, wavelength_unit=None,
                        min_zero_run=DEFAULT_MIN_ZERO_RUN, ext="DATA", stat_ext="STAT"):
    """Read a one-dimensional spectrum from any supported file, as parts.

    See `muse_xcorr.MuseSpectrum.read` for the parameters; it builds the
    object from what this returns.

    Returns
    -------
    parts : dict
        ``spectral_axis`` (Quantity, Angstrom), ``flux`` (Quantity), ``uncertainty``
        (`~astropy.nddata.StdDevUncertainty`, `~astropy.nddata.VarianceUncertainty`
        or `~astropy.nddata.InverseVariance`, as the file stores it), ``mask``
        (bool, True = bad: the file's DQ/mask and the zero-flux runs), ``medium``
        and ``meta`` (``filename``, ``format``, ``header`` and the other headers,
        ``zero_runs``: the masked runs as ``(first, last)`` wavelengths in Angstrom).
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such file: {path}")
    if format is None:
        format = identify_format(path, hdu=hdu)
    name = _ALIASES.get(str(format).lower(), str(format).lower())
    if name not in READERS:
        raise ValueError(f"unknown format {format!r}; known: {', '.join(READERS)}")
    options = {"medium": medium, "hdu": hdu, "wavelength": wavelength, "flux": flux,
               "error": error, "variance": variance, "ivar": ivar, "mask": mask,
               "flux_unit": flux_unit, "wavelength_unit": wavelength_unit, "ext": ext,
               "stat_ext": stat_ext}
    parts = READERS[name](path, options)
    flux_values = np.asarray(parts["flux"].value)
    if flux_values.ndim != 1:
        raise ValueError(f"{path} holds data of shape {flux_values.shape}, not one spectrum")
    notch = zero_run_mask(flux_values, min_run=min_zero_run)
    wave = parts["spectral_axis"].to_value(u.AA)
    runs = zero_runs(flux_values, int(min_zero_run)) if min_zero_run else []
    parts["meta"]["zero_runs"] = [(float(wave[a]), float(wave[b - 1])) for a, b in runs]
    mask = parts["mask"]
    parts["mask"] = notch if mask is None else (np.asarray(mask, dtype=bool) | notch)
    return parts
