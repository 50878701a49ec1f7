"""Noiseless rest-frame templates, and their resampling onto observed grids.

The template is the only thing that is ever resampled: the data pixels stay
as observed, independent, so that the error propagation of the correlation
is exact (science.md, section 1).

Redshifting happens in vacuum, where it is physical
(lambda_obs,vac = lambda_rest,vac * (1 + z)): an air template is converted to
vacuum once, and an air observed grid (MUSE) is converted to vacuum before the
template is evaluated on it. Ignoring the medium would bias cz by ~80 km/s.
"""
import os
import re

import numpy as np
import astropy.units as u
from astropy.io import fits

from ..units import as_angstrom, check_medium, convert_medium, medium_from_ctype, resolve_medium

__all__ = ["Template", "pixel_edges", "check_z_range"]


def pixel_edges(centres):
    """Pixel edges from pixel centres: midpoints, with the end pixels mirrored.

    Parameters
    ----------
    centres : ndarray, shape (n,)
        Increasing pixel centres.

    Returns
    -------
    edges : ndarray, shape (n + 1,)
    """
    centres = np.asarray(centres, dtype=float)
    mid = 0.5 * (centres[1:] + centres[:-1])
    return np.concatenate([[2 * centres[0] - mid[0]], mid, [2 * centres[-1] - mid[-1]]])


class Template:
    """A noiseless rest-frame template.

    Parameters
    ----------
    wavelength : `~astropy.units.Quantity`
        Rest-frame wavelengths (any spectral unit), strictly increasing after
        conversion to Angstrom.
    flux : array_like or `~astropy.units.Quantity`
        The template; its unit and normalisation do not matter to the
        normalised correlation.
    medium : {"air", "vacuum"}
        The medium of ``wavelength``. Default ``"vacuum"``, the usual one for
        templates (MUSE data are in air: the package converts).
    name : str, optional
        A label used in plots and tables.
    meta : dict, optional
    z_range : (float, float), optional
        The redshifts at which the correlator searches with this template
        (a prior: e.g. a star near z = 0); default the whole grid.

    Notes
    -----
    Between its samples the template is linear. On an observed pixel grid,
    the template at redshift z is the average of that piecewise-linear
    function over each pixel's rest-frame interval (edges divided by 1 + z), so
    a template sampled more finely than the data is integrated, not aliased,
    and a coarser one is interpolated. Outside its wavelength range the
    template is zero: every redshift is compared on the same data pixels.

    Examples
    --------
    >>> import numpy as np, astropy.units as u
    >>> from muse_xcorr import Template
    >>> wave = np.arange(3000., 9000., 1.) * u.AA
    >>> t = Template(wave, np.exp(-0.5 * ((wave.value - 5000) / 3) ** 2), name="line")
    >>> t
    <Template 'line': 6000 samples, 3000.0-8999.0 Angstrom (vacuum)>
    """

    def __init__(self, wavelength, flux, medium="vacuum", *, name=None, meta=None, z_range=None):
        wave = as_angstrom(wavelength, "template wavelength")
        flux = np.array(getattr(flux, "value", flux), dtype=float)
        if wave.ndim != 1 or flux.shape != wave.shape:
            raise ValueError(f"template wavelength {wave.shape} and flux {flux.shape} must be "
                             "one-dimensional and of the same length")
        if wave.size < 2:
            raise ValueError("a template needs at least two samples")
        if wave[-1] < wave[0]:
            wave, flux = wave[::-1], flux[::-1]
        if not np.all(np.diff(wave) > 0):
            raise ValueError("the template wavelengths must be strictly monotonic")
        if not (np.all(np.isfinite(wave)) and np.all(np.isfinite(flux))):
            raise ValueError("the template has non-finite wavelengths or fluxes")
        if not np.any(flux != 0):
            raise ValueError("the template flux is zero everywhere")
        self.wavelength = wave * u.AA
        self.flux = flux
        self.medium = check_medium(medium)
        self.name = name
        self.meta = dict(meta or {})
        self.z_range = check_z_range(z_range)

    def __repr__(self):
        name = f" {self.name!r}" if self.name else ""
        return (f"<Template{name}: {self.wavelength.size} samples, "
                f"{self.wavelength[0].value:.1f}-{self.wavelength[-1].value:.1f} Angstrom "
                f"({self.medium})>")

    # -- constructors -----------------------------------------------------------
    @classmethod
    def read(cls, path, *, hdu=None, wavelength=None, flux=None, wave_range=None, medium=None,
             name=None):
        """Read a template from a file.

        Understood (recognised by content, not by name): a FITS binary table
        with wavelength and flux columns (``wavelength``/``wave``/``lambda``
        and ``flux``/``f_lambda``..., see :data:`muse_xcorr.io.columns.COLUMN_NAMES`;
        wavelength unit from TUNIT, default Angstrom); a 1D FITS image with a
        linear spectral WCS; an ECSV or whitespace-separated ASCII table with
        the same columns (or two unnamed columns: wavelength, flux).

        Parameters
        ----------
        path : str or path-like
        hdu : int or str, optional
            The FITS HDU (table or 1D image) holding the template; default the
            first table, else the first 1D image.
        wavelength, flux : str, optional
            Column names, instead of finding them by name.
        wave_range : tuple of float or `~astropy.units.Quantity`, optional
            ``(min, max)`` rest wavelengths to keep (Angstrom if plain
            numbers), in the template's own medium; samples outside are dropped.
        medium : {"air", "vacuum"}, optional
            Otherwise taken from the file (``MEDIUM``/``AIRORVAC`` keyword or
            meta, a ``TCTYPn`` or an image's spectral CTYPE); one that
            contradicts the file is an error. If the file says nothing, the
            template is taken to be in vacuum, as template libraries
            conventionally are. Air wavelengths below 2000 Å are vacuum by
            convention (see :func:`muse_xcorr.units.convert_medium`).
        name : str, optional
            Default: the file name without its extension.

        Returns
        -------
        template : `Template`
            ``meta`` holds the file's keywords and ``filename``.
        """
        from ..io.fitsfile import is_fits

        path = os.fspath(path)
        if not os.path.exists(path):
            raise FileNotFoundError(f"no such file: {path}")
        name = name or _EXTENSION.sub("", os.path.basename(path))
        if is_fits(path):
            wave, values, sources, meta = _read_fits_template(path, hdu, wavelength, flux)
        else:
            if hdu is not None:
                raise ValueError(f"hdu= does not apply to the ASCII file {path}")
            wave, values, sources, meta = _read_ascii_template(path, wavelength, flux)
        if any(m is not None for m, _ in sources) or medium is not None:
            from ..io.medium import decide_medium

            medium = decide_medium(sources, medium, path)
        else:
            medium = "vacuum"
        wave, values = _cut(wave, values, wave_range, path)
        return cls(wave, values, medium=medium, name=name, meta=dict(meta, filename=path))

    @classmethod
    def from_spectrum(cls, spectrum, *, medium=None, name=None):
        """A template from a one-dimensional specutils `~specutils.Spectrum`.

        The medium comes from the spectrum's WCS (``AWAV``/``WAVE``), from
        ``medium``, or from ``spectrum.meta['medium']``; one of them must say.
        """
        from ..spectra import inspect_spectrum_wcs

        if spectrum.flux.ndim != 1:
            raise ValueError(f"a template must be one spectrum, got flux of shape "
                             f"{spectrum.flux.shape}")
        wcs_medium, _ = inspect_spectrum_wcs(spectrum)
        given = medium if medium is not None else (spectrum.meta or {}).get("medium")
        return cls(u.Quantity(spectrum.spectral_axis), spectrum.flux,
                   medium=resolve_medium(wcs_medium, given), name=name)

    @classmethod
    def from_lines(cls, lines, width=60 * u.km / u.s, *, continuum=None, wave_range=None,
                   step=None, profiles=None, name=None):
        """A template of Gaussian lines (optionally on a continuum), built on the fly.

        Parameters
        ----------
        lines : list of str, dict or `~astropy.table.Table`
            Line names from :data:`~muse_xcorr.templates.lines.LINES` (relative strengths
            from the list, 1 where the list has 0), a dict name -> strength, or a
            table with ``wavelength`` (vacuum) and ``strength`` columns (and
            optionally ``name``). Negative strengths make absorption lines.
        width : `~astropy.units.Quantity`
            Gaussian sigma of every line: a velocity (default 60 km/s) or a length.
        continuum : callable, optional
            ``continuum(wavelength_angstrom) -> flux`` added under the lines.
        wave_range : tuple of float, optional
            Rest-frame range in Angstrom; default the lines +- 50 sigma + 20 A.
        step : float, optional
            Sampling in Angstrom; default a fifth of the narrowest sigma.
        profiles : dict, optional
            name -> callable ``profile(wavelength, centre, sigma)`` replacing
            the Gaussian for that line (e.g. :func:`~muse_xcorr.templates.lines.lya_profile`);
            it must integrate to 1.
        name : str, optional

        Returns
        -------
        template : `~muse_xcorr.Template`
            In vacuum; ``meta`` holds ``lines`` (names), ``line_wavelengths``
            (vacuum) and ``line_strengths``.

        Examples
        --------
        >>> from muse_xcorr import Template
        >>> Template.from_lines(["[OII]3726", "[OII]3729"], name="oii").meta["lines"]
        ['[OII]3726', '[OII]3729']
        """
        from .lines import build_line_spectrum, resolve_lines

        names, centres, strengths = resolve_lines(lines)
        wave, flux = build_line_spectrum(centres, strengths, width, names=names,
                                         continuum=continuum, wave_range=wave_range,
                                         step=step, profiles=profiles)
        meta = {"lines": list(names), "line_wavelengths": list(map(float, centres)),
                "line_strengths": list(map(float, strengths))}
        return cls(wave * u.AA, flux, medium="vacuum", name=name or "+".join(names[:3]),
                   meta=meta)

    # -- resampling -------------------------------------------------------------
    def vacuum_wavelength(self):
        """The template's rest wavelengths in vacuum (Angstrom, float64 array)."""
        return convert_medium(self.wavelength, self.medium, "vacuum").to_value(u.AA)

    def matrix(self, wavelength, z, *, medium, dtype=np.float64, chunk=512):
        """The template redshifted to every z and averaged over every observed pixel.

        Parameters
        ----------
        wavelength : `~astropy.units.Quantity`, shape (n_pixel,)
            Observed pixel centres, increasing.
        z : ndarray, shape (n_z,)
            Redshifts.
        medium : {"air", "vacuum"}
            Medium of ``wavelength``.
        dtype : numpy dtype
            Of the returned matrix (computed in float64).
        chunk : int
            Redshifts computed at a time (bounds the temporary memory).

        Returns
        -------
        T : ndarray, shape (n_pixel, n_z)
            ``T[j, k]``: mean of the rest-frame template over pixel j's
            interval divided by (1 + z_k); zero outside the template's range.
        """
        edges = self._observed_vacuum_edges(wavelength, medium)
        z = np.asarray(z, dtype=float)
        out = np.empty((edges.size - 1, z.size), dtype=dtype)
        nodes, cumulative = self._cumulative()
        for start in range(0, z.size, chunk):
            rest = edges[:, None] / (1.0 + z[None, start:start + chunk])
            integral = self._integral_to(rest, nodes, cumulative)
            out[:, start:start + chunk] = np.diff(integral, axis=0) / np.diff(rest, axis=0)
        return out

    def coverage(self, wavelength, z, *, medium):
        """Which observed pixels the template covers at each z.

        Parameters
        ----------
        wavelength : `~astropy.units.Quantity`, shape (n_pixel,)
        z : ndarray, shape (n_z,)
        medium : {"air", "vacuum"}

        Returns
        -------
        first, stop : ndarray of int, shape (n_z,)
            Pixels ``first <= j < stop`` have their centre inside the template's
            rest-frame range at z_k (an empty range has ``first == stop``).
        """
        centres = self._observed_vacuum_centres(wavelength, medium)
        rest = self.vacuum_wavelength()
        z = np.asarray(z, dtype=float)
        first = np.searchsorted(centres, rest[0] * (1 + z), side="left")
        stop = np.searchsorted(centres, rest[-1] * (1 + z), side="right")
        return first, np.maximum(stop, first)

    def _observed_vacuum_centres(self, wavelength, medium):
        return convert_medium(u.Quantity(wavelength, u.AA), medium, "vacuum").to_value(u.AA)

    def _observed_vacuum_edges(self, wavelength, medium):
        edges = pixel_edges(u.Quantity(wavelength).to_value(u.AA))
        return convert_medium(edges * u.AA, medium, "vacuum").to_value(u.AA)

    def _cumulative(self):
        """Nodes (vacuum, Angstrom) and the running integral of the linear template."""
        nodes = self.vacuum_wavelength()
        steps = np.diff(nodes) * 0.5 * (self.flux[1:] + self.flux[:-1])
        return nodes, np.concatenate([[0.0], np.cumsum(steps)])

    def _integral_to(self, points, nodes, cumulative):
        """Integral of the piecewise-linear template from nodes[0] to each point."""
        index = np.clip(np.searchsorted(nodes, points, side="right") - 1, 0, nodes.size - 2)
        left = nodes[index]
        width = nodes[index + 1] - left
        slope = (self.flux[index + 1] - self.flux[index]) / width
        offset = np.clip(points - left, 0.0, width)
        partial = self.flux[index] * offset + 0.5 * slope * offset ** 2
        return cumulative[index] + partial


def check_z_range(z_range):
    """``(low, high)`` as floats with -1 < low < high, or None (no restriction)."""
    if z_range is None:
        return None
    low, high = (float(z) for z in z_range)
    if not (-1 < low < high):
        raise ValueError(f"z_range must be (low, high) with -1 < low < high, got {z_range!r}")
    return (low, high)


_EXTENSION = re.compile(r"\.(fits|fit|fts|ecsv|dat|txt|csv|ascii)(\.gz)?$", re.IGNORECASE)
_STRUCTURAL = re.compile(r"^(XTENSION|BITPIX|NAXIS\d*|PCOUNT|GCOUNT|TFIELDS|EXTEND|SIMPLE|"
                         r"T(TYPE|FORM|UNIT|DISP|NULL|SCAL|ZERO|DIM|CTYP)\d+|COMMENT|HISTORY|)$")


def _keywords(header):
    """The non-structural keywords of a FITS header, as a plain dict."""
    return {k: v for k, v in header.items() if not _STRUCTURAL.match(k)}


def _template_columns(colnames, path, wavelength, flux):
    """(wavelength name, flux name) by name, or the two columns of a two-column table."""
    from ..io.columns import find_columns

    try:
        found = find_columns(colnames, path, wavelength=wavelength, flux=flux,
                             need_uncertainty=False)
    except ValueError as err:
        if len(colnames) == 2 and wavelength is None and flux is None:
            return tuple(colnames)
        raise ValueError(f"{path}: cannot tell the wavelength and flux columns among "
                         f"{list(colnames)}; name them with wavelength= and flux= ({err})"
                         ) from None
    return found["wavelength"], found["flux"]


def _wavelength_quantity(values, unit, what):
    from ..units import parse_wavelength_unit

    try:
        unit = parse_wavelength_unit(unit) or u.AA  # templates: Angstrom unless stated
    except ValueError as err:
        raise ValueError(f"{what}: {err}") from None
    return u.Quantity(np.asarray(values, dtype=float), unit)


def _read_fits_template(path, hdu, wavelength, flux):
    """(wavelength Quantity, flux, medium sources, meta) from a FITS table or 1D image."""
    from ..io.fitsfile import open_fits, read_hdu_data
    from ..io.medium import media_from_mapping
    from ..io.wcs import spectral_axis_from_header

    with open_fits(path, memmap=False) as hdul:
        if hdu is not None:
            try:
                chosen = hdul[hdu]
            except (KeyError, IndexError):
                raise ValueError(f"{path} has no HDU {hdu!r} (it has "
                                 f"{[h.name for h in hdul]})") from None
        else:
            tables = [h for h in hdul if isinstance(h, (fits.BinTableHDU, fits.TableHDU))
                      and h.data is not None]
            images = [h for h in hdul if h.is_image and h.header.get("NAXIS", 0) == 1]
            chosen = (tables or images or [None])[0]
            if chosen is None:
                raise ValueError(f"{path}: no table or 1D image holds a template (HDUs: "
                                 f"{[h.name for h in hdul]})")
        header, primary = chosen.header.copy(), hdul[0].header.copy()
        data = read_hdu_data(chosen, path)
        where = f"the {chosen.name} HDU of {path}"
        sources = media_from_mapping(header, where)
        if chosen is not hdul[0]:
            sources += media_from_mapping(primary, f"the primary header of {path}")
        meta = dict(_keywords(primary), **_keywords(header))
        if isinstance(chosen, (fits.BinTableHDU, fits.TableHDU)):
            colnames = list(data.names)
            wave_name, flux_name = _template_columns(colnames, path, wavelength, flux)
            index = colnames.index(wave_name) + 1
            ctype = header.get(f"TCTYP{index}")
            if ctype:
                sources.append((medium_from_ctype(ctype),
                                f"TCTYP{index} = {ctype!r} in {where}"))
            wave = _wavelength_quantity(data[wave_name], header.get(f"TUNIT{index}"),
                                        f"column {wave_name!r} of {path}")
            return wave, np.array(data[flux_name], dtype=float), sources, meta
        if wavelength is not None or flux is not None:
            raise ValueError(f"{where} is an image: wavelength= and flux= name table columns")
        if data is None or data.ndim != 1:
            raise ValueError(f"{where} has shape {None if data is None else data.shape}: a "
                             "template is one spectrum")
        values = np.array(data, dtype=float)
    axis = spectral_axis_from_header(header, 1, values.size, where=f"the header of {where}")
    sources.insert(0, (axis.medium, axis.medium_source))
    return axis.wavelength, values, sources, meta


def _read_ascii_template(path, wavelength, flux):
    """(wavelength Quantity, flux, medium sources, meta) from an ECSV or ASCII table."""
    from astropy.table import Table

    from ..io.medium import media_from_mapping

    with open(path, "rb") as handle:
        ecsv = handle.read(64).lstrip().startswith(b"# %ECSV")
    try:
        table = Table.read(path, format="ascii.ecsv" if ecsv else "ascii")
    except Exception as err:  # astropy.io.ascii raises many types
        raise ValueError(f"cannot read {path} as an ASCII or ECSV table "
                         f"({type(err).__name__}: {err})") from err
    wave_name, flux_name = _template_columns(table.colnames, path, wavelength, flux)
    sources = media_from_mapping({k: v for k, v in table.meta.items()
                                  if isinstance(v, str)}, f"the metadata of {path}")
    sources += media_from_mapping(table[wave_name].meta,
                                  f"the meta of column {wave_name!r} of {path}")
    wave = _wavelength_quantity(table[wave_name], table[wave_name].unit,
                                f"column {wave_name!r} of {path}")
    return wave, np.array(table[flux_name], dtype=float), sources, dict(table.meta)


def _cut(wave, flux, wave_range, path):
    """Keep the samples within ``wave_range`` (Angstrom, or a Quantity)."""
    if wave_range is None:
        return wave, flux
    low, high = (u.Quantity(v, u.AA).to_value(u.AA, equivalencies=u.spectral())
                 for v in wave_range)
    if not low < high:
        raise ValueError(f"wave_range {wave_range} must be (min, max) with min < max")
    angstrom = wave.to_value(u.AA, equivalencies=u.spectral())
    slack = 1e-12  # bounds given in another unit (700 nm) must keep their own sample
    keep = (angstrom >= low * (1 - slack)) & (angstrom <= high * (1 + slack))
    if keep.sum() < 2:
        raise ValueError(f"{path}: wave_range ({low:g}, {high:g}) Angstrom keeps "
                         f"{keep.sum()} of the template's samples "
                         f"({angstrom.min():g}-{angstrom.max():g} Angstrom); it needs two")
    return wave[keep], flux[keep]
