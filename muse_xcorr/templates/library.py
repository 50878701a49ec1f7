"""The default template set, generated from recipes shipped in ``muse_xcorr/data/templates``.

Each recipe is an ECSV table: one row per line (name, vacuum wavelength,
rest equivalent width ``ew`` in Angstrom, Gaussian sigma in km/s, profile
``gaussian`` or ``lya``, Lyman-alpha asymmetry) and, in its metadata, the
continuum: ``f = (lambda / pivot) ** slope * (1 - break_amplitude + break_amplitude * S)``
with S a tanh step at 4000 A (40 A wide), multiplied by ``lyman_transmission``
blueward of Lyman alpha and zero below 912 A -- or, when the metadata give
``uv_cutoff``, multiplied by ``1 / (1 + (uv_cutoff / lambda) ** 8)``, with no
step (any step in a template survives continuum subtraction and can mimic a
line). Emission lines (ew > 0) are added as ``ew * continuum(centre) * profile``;
absorption lines (ew < 0) multiply the continuum by ``exp(ew * profile)``
(always positive). Nothing
is downloaded: muse_xcorr/data/PROVENANCE.md documents the recipes.
"""
import pathlib

import numpy as np
import astropy.units as u
from astropy.table import Table

from .lines import gaussian_profile, lya_profile
from .template import Template

__all__ = ["DEFAULT_NAMES", "recipe", "build_template", "default_set"]

#: The templates of the default set, in the order of ``template_index``.
DEFAULT_NAMES = ("emission", "passive", "qso", "lae", "lae_broad")

_RECIPES = pathlib.Path(__file__).parents[1] / "data" / "templates"
_PROFILES = {"gaussian": gaussian_profile, "lya": lya_profile}
_LYMAN_LIMIT, _LYMAN_ALPHA = 911.75, 1215.67
_C_KMS = 299792.458


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
    amplitude = float(meta["break_amplitude"])
    flux = (wave / float(meta["pivot"])) ** float(meta["slope"]) * (1 - amplitude
                                                                    + amplitude * step)
    flux = np.where(wave < _LYMAN_ALPHA, flux * float(meta["lyman_transmission"]), flux)
    if "uv_cutoff" in meta:  # a smooth UV fall-off and no step (see the passive recipe)
        return flux / (1 + (float(meta["uv_cutoff"]) / wave) ** 8)
    return np.where(wave < _LYMAN_LIMIT, 0.0, flux)


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
        Vacuum rest frame; ``meta`` holds the recipe's metadata, ``lines`` and
        ``line_wavelengths``.
    """
    meta = table.meta
    sigma_kms = u.Quantity(table["sigma"]).to_value(u.km / u.s)
    step = sigma_kms.min() / _C_KMS / samples_per_sigma
    wave = np.exp(np.arange(np.log(meta["wave_min"]), np.log(meta["wave_max"]), step))
    continuum = _continuum(wave, meta)
    flux = continuum.copy() if group is None else np.zeros_like(wave)
    absorption = np.zeros_like(wave)
    for row, sigma in zip(table, sigma_kms):
        if group is not None and row["group"] != group:
            continue
        centre = float(row["wavelength"])
        profile = _PROFILES[str(row["profile"])]
        args = (float(row["asymmetry"]),) if row["profile"] == "lya" else ()
        shape = profile(wave, centre, centre * sigma / _C_KMS, *args)
        ew = float(row["ew"])
        if ew >= 0:
            flux += ew * np.interp(centre, wave, continuum) * shape
        else:
            absorption += ew * shape
    flux = flux * np.exp(absorption)
    info = {k: v for k, v in meta.items()}
    chosen = np.array([group is None or row["group"] == group for row in table])
    # line flux (emission: EW x continuum) or depth x continuum (absorption, negative)
    strengths = [float(row["ew"]) * float(np.interp(float(row["wavelength"]), wave, continuum))
                 for row in table[chosen]]
    info.update(lines=[str(n) for n in table["line"][chosen]],
                line_wavelengths=[float(w) for w in table["wavelength"][chosen]],
                line_strengths=strengths)
    name = meta["name"] if group is None else f"{meta['name']}:{group}"
    return Template(wave * u.AA, flux, medium=meta["medium"], name=name, meta=info)


def default_set(names=DEFAULT_NAMES, *, composite=False):
    """The default templates for a MUSE spectrum of unknown type.

    Parameters
    ----------
    names : sequence of str
        Subset (and order) of :data:`DEFAULT_NAMES`.
    composite : bool
        Return recipes with a ``group`` column as composite templates
        (:class:`~muse_xcorr.templates.CompositeTemplate`, one component per
        line group).

    Returns
    -------
    templates : list of `~muse_xcorr.Template` or `~muse_xcorr.templates.CompositeTemplate`
    """
    from .composite import CompositeTemplate

    templates = []
    for name in names:
        table = recipe(name)
        if composite and "group" in table.colnames:
            groups = [g for g in dict.fromkeys(str(g) for g in table["group"]) if g != "none"]
            templates.append(CompositeTemplate([build_template(table, group=g) for g in groups],
                                               name=table.meta["name"]))
        else:
            templates.append(build_template(table))
    return templates
