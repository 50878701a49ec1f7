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

import numpy as np
import astropy.units as u

from ..units import (as_angstrom, check_medium, convert_medium, medium_from_ctype,
                     resolve_medium)

__all__ = ["Template", "pixel_edges", "check_z_range"]

_WAVE_COLUMNS = ("wavelength", "wave", "lambda", "lam", "wavelength_rest")
_FLUX_COLUMNS = ("flux", "f_lambda", "flam", "spec", "data")


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
    def read(cls, path, *, medium=None, name=None):
        """Read a template from a file.

        Understood: a FITS binary table with wavelength and flux columns
        (``wavelength``/``wave``/``lambda`` and ``flux``/``f_lambda``...,
        wavelength unit from TUNIT, default Angstrom); a 1D FITS image
        spectrum with a linear spectral WCS; an ECSV or whitespace-separated
        ASCII table with the same columns (or two unnamed columns).

        Parameters
        ----------
        path : str or path-like
        medium : {"air", "vacuum"}, optional
            Otherwise taken from the ``MEDIUM`` keyword (or the spectral
            CTYPE of an image); if the file says nothing, the template is taken
            to be in vacuum, as template libraries conventionally are.
        name : str, optional
            Default: the file name.
        """
        from astropy.io import fits
        from astropy.table import Table

        path = os.fspath(path)
        name = name or os.path.splitext(os.path.basename(path))[0]
        lower = path.lower()
        if lower.endswith((".fits", ".fit", ".fits.gz", ".fts")):
            with fits.open(path) as hdul:
                for hdu in hdul:
                    if isinstance(hdu, fits.BinTableHDU):
                        table = Table.read(hdu)
                        file_medium = hdu.header.get("MEDIUM") or hdul[0].header.get("MEDIUM")
                        break
                    if hdu.data is not None and hdu.data.ndim == 1:
                        return cls._from_fits_image(hdu, medium, name)
                else:
                    raise ValueError(f"{path}: no table or 1D image holds a template")
        else:
            fmt = "ascii.ecsv" if lower.endswith(".ecsv") else "ascii"
            table = Table.read(path, format=fmt)
            file_medium = table.meta.get("MEDIUM", table.meta.get("medium"))
        wave, flux = _template_columns(table, path)
        medium = resolve_medium(check_medium(file_medium) if file_medium else None, medium) \
            if (file_medium or medium) else "vacuum"
        return cls(wave, flux, medium=medium, name=name, meta=dict(table.meta))

    @classmethod
    def _from_fits_image(cls, hdu, medium, name):
        from ..io.muse import _spectral_axis_from_header

        wave, ctype, _ = _spectral_axis_from_header(hdu.header, 1)
        from_ctype = medium_from_ctype(ctype)
        medium = resolve_medium(from_ctype, medium) if (from_ctype or medium) else "vacuum"
        return cls(wave, np.asarray(hdu.data, dtype=float), medium=medium, name=name)

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


def _template_columns(table, path):
    """(wavelength Quantity, flux array) from a table, by column name or position."""
    lower = {name.lower(): name for name in table.colnames}
    wave_name = next((lower[c] for c in _WAVE_COLUMNS if c in lower), None)
    flux_name = next((lower[c] for c in _FLUX_COLUMNS if c in lower), None)
    if wave_name is None or flux_name is None:
        if len(table.colnames) == 2:
            wave_name, flux_name = table.colnames
        else:
            raise ValueError(f"{path}: cannot tell the wavelength and flux columns among "
                             f"{table.colnames}; name them 'wavelength' and 'flux'")
    column = table[wave_name]
    unit = column.unit or u.AA
    wave = u.Quantity(np.asarray(column, dtype=float), unit)
    return wave, np.asarray(table[flux_name], dtype=float)
