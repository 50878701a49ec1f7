"""Rest-frame wavelengths of the lines that matter for MUSE redshifts, in vacuum.

One table, used to build synthetic templates (:meth:`Template.from_lines
<muse_xcorr.Template.from_lines>`), to label plots (:func:`label_lines`) and
(through :func:`~muse_xcorr.units.convert_medium`, see :func:`line_wavelengths`)
to place lines on MUSE's air grid. Wavelengths are vacuum values in Angstrom
(NIST / SDSS line lists).
"""
import re

import numpy as np
import astropy.units as u
from astropy.table import Table

from ..units import convert_medium

__all__ = ["LINES", "CONFUSION_LINES", "LINE_LABELS", "line_table", "line_wavelengths",
           "resolve_lines", "gaussian_profile", "lya_profile", "RED_TAPER", "build_line_spectrum",
           "line_label",
           "place_labels", "label_lines"]

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


#: Legible names of the lines of :data:`LINES` and :data:`CONFUSION_LINES` for plots:
#: the ion in spectroscopic notation (forbidden lines in brackets, semi-forbidden with
#: one bracket), then the rest wavelength in Angstrom; Greek letters for the Lyman and
#: Balmer series.
LINE_LABELS = {
    "Lya": "Ly α", "NV1240": "N V 1240", "HeII1640": "He II 1640",
    "CIV1548": "C IV 1548", "CIV1551": "C IV 1551",
    "CIII]1907": "C III] 1907", "CIII]1909": "C III] 1909", "CIII]1908": "C III] 1908",
    "MgII2796": "Mg II 2796", "MgII2804": "Mg II 2804",
    "[OII]3726": "[O II] 3726", "[OII]3729": "[O II] 3729", "[OII]3727": "[O II] 3727",
    "[NeIII]3869": "[Ne III] 3869", "CaII_K": "Ca II K", "CaII_H": "Ca II H",
    "Hdelta": "Hδ", "Hgamma": "Hγ", "Gband": "G band", "Hbeta": "Hβ",
    "[OIII]4959": "[O III] 4959", "[OIII]5007": "[O III] 5007", "Mgb": "Mg b",
    "HeI5876": "He I 5876", "NaD": "Na D", "[OI]6300": "[O I] 6300",
    "[NII]6548": "[N II] 6548", "Halpha": "Hα", "[NII]6583": "[N II] 6583",
    "[SII]6716": "[S II] 6716", "[SII]6731": "[S II] 6731", "[ArIII]7136": "[Ar III] 7136",
    "[SIII]9069": "[S III] 9069", "[SIII]9531": "[S III] 9531",
}

#: An ion and a wavelength in the package's key style: "[OIII]5007", "CIII]1909", "HeII1640".
_KEY = re.compile(r"^(\[?)([A-Z][a-z]?)([IVX]+)(\]?)_?(\d+(?:\.\d+)?)$")


def line_label(name):
    """The legible label of a line key, e.g. ``"CaII_K"`` -> ``"Ca II K"``.

    Parameters
    ----------
    name : str
        A key of :data:`LINES` (or of :data:`CONFUSION_LINES`), or any name.

    Returns
    -------
    label : str
        From :data:`LINE_LABELS`; a key not in it but written like the
        package's keys (``"[NeV]3426"``) is spelled out the same way
        (``"[Ne V] 3426"``); any other name is returned as it is.

    Examples
    --------
    >>> from muse_xcorr.templates.lines import line_label
    >>> line_label("[OIII]5007"), line_label("Lya"), line_label("[NeV]3426")
    ('[O III] 5007', 'Ly α', '[Ne V] 3426')
    """
    if name in LINE_LABELS:
        return LINE_LABELS[name]
    match = _KEY.match(str(name))
    if match is None:
        return str(name)
    open_, element, stage, close, wave = match.groups()
    return f"{open_}{element} {stage}{close} {wave}"


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


#: Width of the taper of the red wing of `lya_profile`, in units of its width parameter.
RED_TAPER = 8.0


def lya_profile(wavelength, centre, sigma, asymmetry=0.25):
    """A unit-area asymmetric Lyman-alpha profile: sharp blue edge, extended red wing.

    The skewed Gaussian of Shibuya et al. (2014, ApJ 788, 74),
    ``exp(-x^2 / (2 (a x + d)^2))`` with ``x = lambda - centre`` and
    ``d = sigma``, truncated to zero where ``a x + d <= 0`` (far on the blue side),
    normalised numerically to unit area. Far on the red side the skewed
    Gaussian does not fall to zero but levels off at ``exp(-1 / (2 a^2))``
    (0.4 % of the peak for a = 0.3, a shelf that would hold most of the flux
    of a wide template); the red wing is therefore tapered by
    ``exp(-x^2 / (2 (RED_TAPER d)^2))``.

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
    taper = np.exp(-0.5 * (np.clip(x, 0.0, None) / (RED_TAPER * sigma)) ** 2)
    profile = profile * taper
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


def place_labels(ax, x, labels, priority=None, *, rows=3, top=0.98, pad=4.0,
                 **text_kwargs):
    """Write labels at the top of an axis, in rows, so that no two of them overlap.

    Each label is centred on its x (data coordinates) in the highest row
    where it overlaps no label already placed, in decreasing order of
    ``priority``; a label that fits in none of the ``rows`` rows is left out.
    A label that would stick out of the axis is aligned on its x by its
    edge instead of its centre. Overlap is tested on the labels' bounding
    boxes on the canvas as the figure is laid out *now*: lay the figure
    out first (``fig.draw_without_rendering()`` under a constrained
    layout), and do not resize it afterwards. The labels do not take part
    in the figure's layout.

    Parameters
    ----------
    ax : `matplotlib.axes.Axes`
    x : array_like of float
        Positions, in the x axis' data units.
    labels : sequence of str
    priority : array_like of float, optional
        Higher first (default: the order given). Ties keep the order given.
    rows : int
        Rows of labels at most.
    top : float
        Top of the first row, in axes fraction.
    pad : float
        Smallest horizontal gap between two labels of a row, in points.
    **text_kwargs
        Passed to ``ax.text`` (default ``fontsize=7``).

    Returns
    -------
    texts : list of `matplotlib.text.Text` or None
        One per label, in the order given: the text placed, or None for a
        label left out (or outside the x range).
    """
    x = np.asarray(x, dtype=float)
    labels = [str(label) for label in labels]
    priority = np.zeros(x.size) if priority is None else np.asarray(priority, dtype=float)
    if not (x.size == len(labels) == priority.size):
        raise ValueError(f"{x.size} positions, {len(labels)} labels and {priority.size} "
                         "priorities: give one of each per label")
    kwargs = dict(fontsize=7, va="top", ha="center", clip_on=False)
    kwargs.update(text_kwargs)
    transform = ax.get_xaxis_transform()  # x in data units, y in axes fraction
    frame = ax.get_window_extent()
    low, high = sorted(ax.get_xlim())
    # one row pitch for all labels: the height of the tallest glyphs (brackets, descenders)
    probe = ax.text(0.5, 0.5, "[Åg|Hα]", transform=ax.transAxes,
                    **{k: v for k, v in kwargs.items() if k not in ("ha", "va")})
    pitch = 1.15 * probe.get_window_extent().height
    probe.remove()
    pad = float(pad) * ax.figure.dpi / 72.0  # pixels
    taken = [[] for _ in range(int(rows))]
    texts = [None] * x.size
    for i in np.argsort(-priority, kind="stable"):
        if not (low <= x[i] <= high):
            continue
        text = ax.text(x[i], top, labels[i], transform=transform, **kwargs)
        text.set_in_layout(False)
        box = text.get_window_extent()
        if box.x1 > frame.x1:
            text.set_horizontalalignment("right")
            box = text.get_window_extent()
        elif box.x0 < frame.x0:
            text.set_horizontalalignment("left")
            box = text.get_window_extent()
        for row, spans in enumerate(taken):
            if all(box.x1 + pad <= left or box.x0 - pad >= right for left, right in spans):
                text.set_y(top - row * pitch / max(frame.height, 1.0))
                spans.append((box.x0, box.x1))
                texts[i] = text
                break
        else:
            text.remove()
    return texts


def _merged(names, observed, strengths, ax, fontsize):
    """Runs of neighbouring lines of one ion whose labels would collide, as one label each.

    Returns (labels, x, strengths, members): e.g. ``"[O II] 3726,3729"`` at the
    strength-weighted mean position of the doublet, with the summed strength.
    """
    order = np.argsort(observed, kind="stable")
    scale = ax.transData.transform([[observed[order[0]], 0], [observed[order[0]] + 1.0, 0]])
    pixels_per_unit = abs(scale[1, 0] - scale[0, 0])
    width = 0.6 * fontsize * ax.figure.dpi / 72.0  # a character's width, pixels
    groups = []
    for i in order:
        ion, _, suffix = line_label(names[i]).rpartition(" ")
        if groups:
            last = groups[-1]
            gap = (observed[i] - observed[last[-1]]) * pixels_per_unit
            other = line_label(names[last[-1]]).rpartition(" ")[0]
            if ion and ion == other and gap < width * len(line_label(names[i])):
                last.append(i)
                continue
        groups.append([i])
    labels, x, total, members = [], [], [], []
    for group in groups:
        weights = np.asarray([max(strengths[i], 0.0) for i in group]) + 1e-12
        if len(group) == 1:
            labels.append(line_label(names[group[0]]))
        else:
            ion = line_label(names[group[0]]).rpartition(" ")[0]
            labels.append(ion + " " + ",".join(line_label(names[i]).rpartition(" ")[2]
                                               for i in group))
        x.append(float(np.average(observed[group], weights=weights)))
        total.append(float(np.sum([strengths[i] for i in group])))
        members.append([names[i] for i in group])
    return labels, np.array(x), np.array(total), members


def label_lines(ax, z, *, medium="air", names=None, strengths=None, wavelength_unit=u.AA,
                rows=3, merge=True, marker_kwargs=None, **text_kwargs):
    """Mark the lines of :data:`LINES` at redshift z on an axis, with legible labels.

    Every line inside the axis' x range gets a dotted vertical line. Its
    label (:func:`line_label`: "Ca II K", "[O III] 5007", "Hα") goes in one
    of ``rows`` rows at the top of the axis where it overlaps no other
    label, strongest lines first (:func:`place_labels`); neighbouring lines
    of one ion whose labels would collide share one label
    ("[O II] 3726,3729"); a label that still does not fit is left out (its
    line stays marked). Set the axis' x range and lay out the figure before
    calling this.

    Parameters
    ----------
    ax : `matplotlib.axes.Axes`
        An axis whose x axis is the observed wavelength.
    z : float
    medium : {"air", "vacuum"}
        Medium of the axis' wavelengths (MUSE: air).
    names : list of str, optional
        Default all lines.
    strengths : array_like of float, optional
        One per name: the order in which labels are placed (strongest
        first). Default the strengths of :data:`LINES` (1 where the list
        has 0).
    wavelength_unit : `~astropy.units.Unit`
        Unit of the x axis.
    rows : int
        Rows of labels at most.
    merge : bool
        One label for neighbouring lines of one ion.
    marker_kwargs : dict, optional
        Passed to ``ax.axvline`` for the markers.
    **text_kwargs
        Passed to ``ax.text`` (default ``fontsize=7``).

    Returns
    -------
    marked : list of str
        The lines that fall inside the axis' x range (each marked), in the
        order of ``names``. Their labels are the texts added to ``ax.texts``.
    """
    names = list(LINES) if names is None else list(names)
    if strengths is None:
        strengths = [LINES[n][2] or 1.0 for n in names]
    strengths = np.abs(np.asarray(strengths, dtype=float))
    if strengths.size != len(names):
        raise ValueError(f"{strengths.size} strengths for {len(names)} lines")
    # only lines redshifted into the optical have an air wavelength
    keep = [i for i, n in enumerate(names) if LINES[n][0] * (1 + z) > 2000.0]
    names, strengths = [names[i] for i in keep], strengths[keep]
    if not names:
        return []
    observed = line_wavelengths(names, medium, z).to_value(wavelength_unit)
    low, high = sorted(ax.get_xlim())
    inside = [i for i, wave in enumerate(observed) if low <= wave <= high]
    if not inside:
        return []
    names, observed, strengths = ([names[i] for i in inside], observed[inside],
                                  strengths[inside])
    marker = dict(color="0.6", lw=0.6, ls=":", zorder=0.5)
    marker.update(marker_kwargs or {})
    for wave in observed:
        ax.axvline(wave, **marker)
    fontsize = text_kwargs.get("fontsize", 7)
    if not isinstance(fontsize, (int, float)):
        from matplotlib.font_manager import FontProperties

        fontsize = FontProperties(size=fontsize).get_size_in_points()
    if merge:
        labels, x, priority, _ = _merged(names, observed, strengths, ax, fontsize)
    else:
        labels, x, priority = [line_label(n) for n in names], observed, strengths
    place_labels(ax, x, labels, priority, rows=rows, **text_kwargs)
    return names
