"""Rest-frame wavelengths of the lines that matter for MUSE redshifts, in vacuum.

One table, used to build synthetic templates (:meth:`Template.from_lines
<muse_xcorr.Template.from_lines>`), to label plots (:func:`label_lines`) and
(through :func:`~muse_xcorr.units.convert_medium`, see :func:`line_wavelengths`)
to place lines on MUSE's air grid. Wavelengths are vacuum values in Angstrom
(NIST / SDSS line lists).
"""
import numpy as np
import astropy.units as u
from astropy.table import Table

from ..units import convert_medium

__all__ = ["LINES", "CONFUSION_LINES", "line_table", "line_wavelengths", "resolve_lines",
           "gaussian_profile", "lya_profile", "build_line_spectrum", "label_lines"]

#: name -> (vacuum wavelength in Angstrom, kind, relative strength in a
#: typical star-forming galaxy (emission) or depth (absorption))
LINES = {
    "Lya": (1215.67, "emission", 0.0),
    "NV1240": (1240.81, "emission", 0.0),
    "HeII1640": (1640.42, "emission", 0.0),
    "CIV1548": (1548.20, "emission", 0.0),
    "CIV1551": (1550.77, "emission", 0.0),
    "CIII]1907": (1906.68, "emission", 0.0),
    "CIII]1909": (1908.73, "emission", 0.0),
    "MgII2796": (2796.35, "emission", 0.0),
    "MgII2804": (2803.53, "emission", 0.0),
    "[OII]3726": (3727.09, "emission", 1.3),
    "[OII]3729": (3729.88, "emission", 1.7),
    "[NeIII]3869": (3869.86, "emission", 0.25),
    "CaII_K": (3934.78, "absorption", 0.35),
    "CaII_H": (3969.59, "absorption", 0.30),
    "Hdelta": (4102.89, "emission", 0.26),
    "Hgamma": (4341.69, "emission", 0.47),
    "Gband": (4305.61, "absorption", 0.15),
    "Hbeta": (4862.69, "emission", 1.0),
    "[OIII]4959": (4960.30, "emission", 0.7),
    "[OIII]5007": (5008.24, "emission", 2.1),
    "Mgb": (5176.7, "absorption", 0.15),
    "HeI5876": (5877.25, "emission", 0.12),
    "NaD": (5895.6, "absorption", 0.12),
    "[OI]6300": (6302.05, "emission", 0.08),
    "[NII]6548": (6549.86, "emission", 0.12),
    "Halpha": (6564.61, "emission", 3.0),
    "[NII]6583": (6585.27, "emission", 0.35),
    "[SII]6716": (6718.29, "emission", 0.3),
    "[SII]6731": (6732.67, "emission", 0.22),
    "[ArIII]7136": (7137.77, "emission", 0.0),
    "[SIII]9069": (9071.1, "emission", 0.0),
    "[SIII]9531": (9533.2, "emission", 0.0),
}

#: The single strong lines that are confused with one another in MUSE deep
#: fields (name -> the LINES entries whose flux-weighted mean is the line's centre).
CONFUSION_LINES = {
    "Lya": ("Lya",),
    "CIII]1908": ("CIII]1907", "CIII]1909"),
    "[OII]3727": ("[OII]3726", "[OII]3729"),
    "Hbeta": ("Hbeta",),
    "[OIII]5007": ("[OIII]5007",),
    "Halpha": ("Halpha",),
}


def line_table():
    """The line list as an `~astropy.table.Table` (vacuum wavelengths)."""
    names = list(LINES)
    wave, kind, strength = zip(*(LINES[n] for n in names))
    return Table({"name": names, "wavelength": np.array(wave) * u.AA, "kind": list(kind),
                  "strength": np.array(strength)}, meta={"medium": "vacuum"})


def line_wavelengths(names=None, medium="vacuum", z=0.0):
    """Wavelengths of lines at redshift z, in vacuum or (converted) in air.

    Redshifting is done in vacuum, then the observed wavelengths are
    converted (air wavelengths exist only above 2000 Angstrom).

    Parameters
    ----------
    names : list of str, optional
        Names in :data:`LINES`; default all.
    medium : {"air", "vacuum"}
    z : float
        Redshift; default 0 (rest frame).

    Returns
    -------
    wavelength : `~astropy.units.Quantity`
        Angstrom, in the order of ``names``.
    """
    names = list(LINES) if names is None else list(names)
    unknown = [n for n in names if n not in LINES]
    if unknown:
        raise KeyError(f"unknown line(s) {unknown}; known: {', '.join(LINES)}")
    vacuum = np.array([LINES[n][0] for n in names]) * (1 + float(z)) * u.AA
    return convert_medium(vacuum, "vacuum", medium)


def resolve_lines(lines):
    """Names, vacuum centres (Angstrom) and strengths from what users pass.

    Parameters
    ----------
    lines : list of str, dict name -> strength, or `~astropy.table.Table`
        See :meth:`muse_xcorr.Template.from_lines`.

    Returns
    -------
    names : list of str
    centres, strengths : ndarray
    """
    if isinstance(lines, Table):
        if "wavelength" not in lines.colnames:
            raise ValueError("a line table needs a 'wavelength' column (vacuum)")
        centres = u.Quantity(lines["wavelength"], lines["wavelength"].unit or u.AA).to_value(u.AA)
        strengths = np.asarray(lines["strength"], float) if "strength" in lines.colnames \
            else np.ones(len(lines))
        names = [str(n) for n in lines["name"]] if "name" in lines.colnames \
            else [f"{c:.1f}" for c in centres]
        return names, np.asarray(centres, float), strengths
    if isinstance(lines, str):
        lines = [lines]
    if isinstance(lines, dict):
        names, strengths = list(lines), np.array([float(v) for v in lines.values()])
    else:
        names = list(lines)
        strengths = np.array([LINES[n][2] or 1.0 if n in LINES else 1.0 for n in names])
    if not names:
        raise ValueError("no line given")
    centres = line_wavelengths(names).to_value(u.AA)
    if not np.any(strengths != 0):
        raise ValueError("every line strength is zero")
    return names, centres, strengths


def gaussian_profile(wavelength, centre, sigma):
    """A unit-area Gaussian line profile (per Angstrom)."""
    return np.exp(-0.5 * ((wavelength - centre) / sigma) ** 2) / (sigma * np.sqrt(2 * np.pi))


def lya_profile(wavelength, centre, sigma, asymmetry=0.25):
    """A unit-area asymmetric Lyman-alpha profile: sharp blue edge, extended red wing.

    The skewed Gaussian of Shibuya et al. (2014, ApJ 788, 74),
    ``exp(-x^2 / (2 (a x + d)^2))`` with ``x = lambda - centre`` and
    ``d = sigma``, truncated to zero where ``a x + d <= 0`` (far on the blue side),
    normalised numerically to unit area.

    Parameters
    ----------
    wavelength : ndarray
        Angstrom.
    centre, sigma : float
        Peak wavelength and width parameter d, Angstrom.
    asymmetry : float
        The parameter a (> 0: red wing); 0.1-0.4 is typical of LAEs.
    """
    x = wavelength - centre
    scale = asymmetry * x + sigma
    with np.errstate(divide="ignore", invalid="ignore"):
        profile = np.where(scale > 0, np.exp(-0.5 * (x / scale) ** 2), 0.0)
    area = np.trapezoid(profile, wavelength) if wavelength.size > 1 else 0.0
    if not area > 0:
        raise ValueError("the Lyman-alpha profile is not resolved by the sampling")
    return profile / area


def build_line_spectrum(centres, strengths, width, *, names=None, continuum=None,
                        wave_range=None, step=None, profiles=None):
    """Rest wavelengths and flux of lines (unit area times strength) on an optional continuum.

    Parameters
    ----------
    centres, strengths : array_like
        Vacuum centres (Angstrom) and line fluxes (relative).
    width : `~astropy.units.Quantity`
        Gaussian sigma: velocity or length.
    names, continuum, wave_range, step, profiles
        See :meth:`muse_xcorr.Template.from_lines`.

    Returns
    -------
    wavelength, flux : ndarray
    """
    centres = np.atleast_1d(np.asarray(centres, float))
    strengths = np.atleast_1d(np.asarray(strengths, float))
    width = u.Quantity(width)
    if width.unit.physical_type == "speed":
        sigmas = centres * float((width / (299792.458 * u.km / u.s)).decompose())
    elif width.unit.physical_type == "length":
        sigmas = np.full(centres.shape, width.to_value(u.AA))
    else:
        raise u.UnitTypeError(f"the line width must be a velocity or a length, got {width.unit}")
    if not np.all(sigmas > 0):
        raise ValueError("the line width must be positive")
    if wave_range is None:
        wave_range = (max(centres.min() - 50 * sigmas.max() - 20, 1.0),
                      centres.max() + 50 * sigmas.max() + 20)
    step = float(step) if step is not None else sigmas.min() / 5
    wave = np.arange(wave_range[0], wave_range[1] + step, step)
    flux = np.zeros_like(wave) if continuum is None else np.asarray(continuum(wave), float)
    names = names or [None] * centres.size
    profiles = profiles or {}
    for name, centre, sigma, strength in zip(names, centres, sigmas, strengths):
        profile = profiles.get(name, gaussian_profile)
        flux = flux + strength * profile(wave, centre, sigma)
    return wave, flux


def label_lines(ax, z, *, medium="air", names=None, wavelength_unit=u.AA, **text_kwargs):
    """Mark and label the lines of :data:`LINES` on a matplotlib axis at redshift z.

    Parameters
    ----------
    ax : `matplotlib.axes.Axes`
        An axis whose x axis is the observed wavelength.
    z : float
    medium : {"air", "vacuum"}
        Medium of the axis' wavelengths (MUSE: air).
    names : list of str, optional
        Default all lines.
    wavelength_unit : `~astropy.units.Unit`
        Unit of the x axis.
    **text_kwargs
        Passed to ``ax.text``.

    Returns
    -------
    labelled : list of str
        The lines that fall inside the axis' x range.
    """
    names = list(LINES) if names is None else list(names)
    # only lines redshifted into the optical have an air wavelength
    names = [n for n in names if LINES[n][0] * (1 + z) > 2000.0]
    observed = line_wavelengths(names, medium, z).to_value(wavelength_unit)
    low, high = sorted(ax.get_xlim())
    kwargs = dict(rotation=90, va="top", ha="right", fontsize=7)
    kwargs.update(text_kwargs)
    labelled = []
    for name, wave in zip(names, observed):
        if low <= wave <= high:
            ax.axvline(wave, color="0.6", lw=0.6, ls=":")
            ax.text(wave, 0.98, name, transform=ax.get_xaxis_transform(), **kwargs)
            labelled.append(name)
    return labelled
