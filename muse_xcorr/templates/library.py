"""The default template set, generated from recipes shipped in ``muse_xcorr/data/templates``.

Each recipe is an ECSV table: one row per line (name, vacuum wavelength with
its reference, rest equivalent width ``ew`` in Angstrom -- positive for
emission, negative for absorption --, Gaussian sigma in km/s, profile
``gaussian`` or ``lya``, Lyman-alpha asymmetry, line ``group``) and, in its
metadata, the continuum and the template's use:

- the continuum ``f = (lambda / pivot) ** slope * (1 - break_amplitude +
  break_amplitude * S)``, S a tanh step at 4000 A (40 A wide), times
  ``lyman_transmission`` blueward of Lyman alpha and zero below 912 A -- or,
  when the metadata give ``uv_cutoff``, times ``1 / (1 + (uv_cutoff / lambda)
  ** 8)``, with no step (any step in a template survives continuum
  subtraction and can mimic a line);
- ``z_range``: the redshifts at which the template's features are inside
  MUSE's range, the only ones it is searched at (a star at z ~ 0, a
  Lyman-alpha emitter at z > 2.8): a prior that keeps templates from
  matching noise where they have nothing to match;
- for recipes with line groups, ``reference_group`` and ``group_bounds``: the
  range of each group's line flux relative to the reference group's, which
  the composite version (:class:`~muse_xcorr.templates.CompositeTemplate`)
  turns into bounds on its amplitudes.

Emission lines (ew > 0) are added as ``ew * continuum(centre) * profile``;
absorption lines (ew < 0) multiply the continuum by ``exp(ew * profile)``
(always positive). Nothing is downloaded: muse_xcorr/data/PROVENANCE.md
documents the recipes and their references.
"""
import pathlib

import numpy as np
import astropy.units as u
from astropy.table import Table

from ..units import C_KMS
from .composite import CompositeTemplate
from .lines import gaussian_profile, lya_profile
from .template import Template

__all__ = ["DEFAULT_NAMES", "recipe", "build_template", "build_composite", "default_set"]

#: The templates of the default set, in the order of ``template_index``.
DEFAULT_NAMES = ("emission", "uv_emission", "uv_absorption", "passive", "qso", "lae",
                 "lae_broad", "star_cool", "star_hot")

_RECIPES = pathlib.Path(__file__).parents[1] / "data" / "templates"
_PROFILES = {"gaussian": gaussian_profile, "lya": lya_profile}
_LYMAN_LIMIT, _LYMAN_ALPHA = 911.75, 1215.67


def recipe(name):
    """The recipe table of one default template (see the module notes).

    Parameters
    ----------
    name : str
        One of :data:`DEFAULT_NAMES`.

    Returns
    -------
    table : `~astropy.table.Table`
    """
    path = _RECIPES / f"{name}.ecsv"
    if not path.is_file():
        raise ValueError(f"no default template {name!r}; known: {', '.join(DEFAULT_NAMES)}")
    return Table.read(path, format="ascii.ecsv")


def _continuum(wave, meta):
    step = 0.5 * (1 + np.tanh((wave - 4000.0) / 40.0))
    amplitude = float(meta.get("break_amplitude", 0.0))
    flux = (wave / float(meta["pivot"])) ** float(meta["slope"]) * (1 - amplitude
                                                                    + amplitude * step)
    flux = np.where(wave < _LYMAN_ALPHA, flux * float(meta["lyman_transmission"]), flux)
    if "uv_cutoff" in meta:  # a smooth UV fall-off and no step (see the passive recipe)
        return flux / (1 + (float(meta["uv_cutoff"]) / wave) ** 8)
    return np.where(wave < _LYMAN_LIMIT, 0.0, flux)


def _z_range(meta):
    return tuple(float(z) for z in meta["z_range"]) if "z_range" in meta else None


def build_template(table, *, group=None, samples_per_sigma=4.0):
    """A `~muse_xcorr.Template` from a recipe table.

    Parameters
    ----------
    table : `~astropy.table.Table`
        A recipe (see :func:`recipe`).
    group : str, optional
        Only the lines of this ``group`` (recipe column), without the
        continuum: a component of a composite template. The line fluxes
        are those of the full template (EW times its continuum at the line).
    samples_per_sigma : float
        The template is sampled uniformly in ln(lambda), with this many
        samples per the narrowest line sigma.

    Returns
    -------
    template : `~muse_xcorr.Template`
        Vacuum rest frame, with the recipe's ``z_range``; ``meta`` holds the
        recipe's metadata, ``lines``, ``line_wavelengths`` and
        ``line_strengths`` (line flux, or depth times continuum for absorption).
    """
    meta = table.meta
    sigma_kms = u.Quantity(table["sigma"]).to_value(u.km / u.s)
    step = sigma_kms.min() / C_KMS / samples_per_sigma
    wave = np.exp(np.arange(np.log(meta["wave_min"]), np.log(meta["wave_max"]), step))
    continuum = _continuum(wave, meta)
    flux = continuum.copy() if group is None else np.zeros_like(wave)
    absorption = np.zeros_like(wave)
    chosen = np.array([group is None or str(row["group"]) == group for row in table])
    for row, sigma, keep in zip(table, sigma_kms, chosen):
        if not keep:
            continue
        centre = float(row["wavelength"])
        profile = _PROFILES[str(row["profile"])]
        args = (float(row["asymmetry"]),) if row["profile"] == "lya" else ()
        shape = profile(wave, centre, centre * sigma / C_KMS, *args)
        ew = float(row["ew"])
        if ew >= 0:
            flux += ew * np.interp(centre, wave, continuum) * shape
        else:
            absorption += ew * shape
    flux = flux * np.exp(absorption)
    info = {k: v for k, v in meta.items()}
    strengths = [float(row["ew"]) * float(np.interp(float(row["wavelength"]), wave, continuum))
                 for row in table[chosen]]
    info.update(lines=[str(n) for n in table["line"][chosen]],
                line_wavelengths=[float(w) for w in table["wavelength"][chosen]],
                line_strengths=strengths)
    name = meta["name"] if group is None else f"{meta['name']}:{group}"
    return Template(wave * u.AA, flux, medium=meta["medium"], name=name, meta=info,
                    z_range=_z_range(meta))


def build_composite(table):
    """The composite version of a recipe with line groups, with its physical bounds.

    Each group of the recipe's ``group`` column is a component; a group's
    bounds are ``group_bounds[g]`` (its line flux relative to the reference
    group's), converted to amplitude bounds with the recipe's own fluxes:
    ``A_g / s`` in ``[lo F_ref / F_g, hi F_ref / F_g]``. Groups without bounds
    are free (A >= 0).

    Parameters
    ----------
    table : `~astropy.table.Table`

    Returns
    -------
    composite : `~muse_xcorr.templates.CompositeTemplate`
    """
    meta = table.meta
    groups = [g for g in dict.fromkeys(str(g) for g in table["group"]) if g != "none"]
    components = [build_template(table, group=g) for g in groups]
    fluxes = {g: sum(s for s in c.meta["line_strengths"] if s > 0)
              for g, c in zip(groups, components)}
    declared = meta.get("group_bounds", {})
    reference = meta.get("reference_group")
    bounds = []
    for g in groups:
        if g in declared and reference in fluxes:
            lo, hi = (float(b) for b in declared[g])
            scale = fluxes[reference] / fluxes[g]
            bounds.append((lo * scale, hi * scale))
        else:
            bounds.append((0.0, np.inf))
    return CompositeTemplate(components, bounds=bounds, name=meta["name"],
                             meta={k: v for k, v in meta.items()}, z_range=_z_range(meta))


def default_set(names=DEFAULT_NAMES, *, composite=True):
    """The default templates for MUSE spectra of unknown type.

    The one-line default ``Correlator()`` correlates with these; see the
    templates page of the documentation for the recipes and their measured
    performance.

    Parameters
    ----------
    names : sequence of str
        Subset (and order) of :data:`DEFAULT_NAMES`.
    composite : bool
        Return the recipes with line groups (``emission``, ``uv_emission``) as
        composite templates with physically bounded amplitudes (default),
        or as single templates with the recipe's fixed line ratios.

    Returns
    -------
    templates : list of `~muse_xcorr.Template` or `~muse_xcorr.templates.CompositeTemplate`
    """
    templates = []
    for name in names:
        table = recipe(name)
        if composite and "group" in table.colnames and \
                any(str(g) != "none" for g in table["group"]):
            templates.append(build_composite(table))
        else:
            templates.append(build_template(table))
    return templates
