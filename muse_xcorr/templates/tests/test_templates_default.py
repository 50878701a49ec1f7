"""The default template set built from the shipped recipes."""
import numpy as np
import pytest

from muse_xcorr import Template
from muse_xcorr.templates import CompositeTemplate
from muse_xcorr.templates import default_set
from muse_xcorr.templates.library import DEFAULT_NAMES, build_template, recipe


def test_default_set_has_the_documented_templates():
    templates = default_set()
    assert [t.name for t in templates] == list(DEFAULT_NAMES)
    composites = [t.name for t in templates if isinstance(t, CompositeTemplate)]
    assert composites == ["emission", "uv_emission"]
    for t in templates:
        parts = t.components if isinstance(t, CompositeTemplate) else [t]
        assert all(isinstance(p, Template) and p.medium == "vacuum" for p in parts)
        assert t.z_range == tuple(recipe(t.name).meta["z_range"])
    assert all(isinstance(t, Template) for t in default_set(composite=False))
    with pytest.raises(ValueError, match="no default template"):
        recipe("nebula")


def test_every_recipe_line_has_a_vacuum_wavelength_with_a_reference():
    for name in DEFAULT_NAMES:
        table = recipe(name)
        assert np.all(table["wavelength"] > 900) and all(len(r) > 3 for r in table["reference"])
        assert table.meta["medium"] == "vacuum" and len(table.meta["description"]) > 80


def test_composite_bounds_are_the_recipe_flux_ratios():
    """A group's amplitude bound times its recipe flux over the reference's: the declared ratio."""
    table = recipe("emission")
    composite = default_set(["emission"])[0]
    flux = {c.name.split(":")[1]: sum(s for s in c.meta["line_strengths"] if s > 0)
            for c in composite.components}
    reference = table.meta["reference_group"]
    for component, lower, upper in zip(composite.components, composite.lower, composite.upper):
        group = component.name.split(":")[1]
        lo, hi = table.meta["group_bounds"][group]
        assert lower * flux[group] / flux[reference] == pytest.approx(lo, rel=1e-12)
        assert upper * flux[group] / flux[reference] == pytest.approx(hi, rel=1e-12)
    # the Balmer decrement: Halpha / Hbeta between 2.4 and 10
    assert table.meta["group_bounds"]["ha"] == [2.4, 10.0]


@pytest.mark.parametrize("name", ["emission", "qso", "uv_emission"])
def test_emission_line_equivalent_widths_match_the_recipe(name):
    """Integrate each isolated line above the continuum: it returns the recipe's EW."""
    table = recipe(name)
    template = build_template(table)
    wave, flux = template.wavelength.value, template.flux
    continuum = build_template(_without_lines(table)).flux
    for row in table:
        centre, sigma = row["wavelength"], row["wavelength"] * row["sigma"] / 299792.458
        others = [w for w in table["wavelength"] if w != centre]
        if row["ew"] <= 0 or min(abs(np.array(others) - centre)) < 12 * sigma or \
                row["profile"] == "lya":
            continue  # blended: checked through the isolated ones
        near = np.abs(wave - centre) < 6 * sigma
        excess = np.trapezoid((flux - continuum)[near], wave[near])
        ew = excess / np.interp(centre, wave, continuum)
        assert ew == pytest.approx(row["ew"], rel=2e-3), row["line"]


def _without_lines(table):
    empty = table[:1].copy()
    empty.meta = dict(table.meta)
    empty["ew"] = 0.0
    empty["sigma"] = np.min(table["sigma"])
    return empty


def test_passive_absorption_is_positive_and_deep_at_cak():
    t = build_template(recipe("passive"))
    assert np.all(t.flux >= 0)
    wave = t.wavelength.value
    at_k = np.interp(3934.78, wave, t.flux)
    around = np.interp([3900.0, 3960.0], wave, t.flux).mean()
    assert at_k < 0.5 * around


@pytest.mark.parametrize("name", ["lae", "lae_broad"])
def test_lae_is_asymmetric_and_absorbed_blueward(name):
    t = build_template(recipe(name))
    wave, flux = t.wavelength.value, t.flux
    line = np.abs(wave - 1215.67) < 8
    mean = np.sum(flux[line] * wave[line]) / np.sum(flux[line])
    assert mean > 1215.67 + 0.1
    assert np.interp(1100.0, wave, flux) < 0.15 * np.interp(1300.0, wave, flux)


def test_composite_emission_groups_are_disjoint_line_templates():
    composite = default_set(["emission"])[0]
    groups = composite.components
    assert [g.name for g in groups] == ["emission:oii", "emission:hb", "emission:oiii",
                                        "emission:ha", "emission:sii"]
    full = build_template(recipe("emission"))
    continuum = build_template(_without_lines(recipe("emission")))
    for group in groups:
        # no continuum: the component is zero away from its own lines
        wave = group.wavelength.value
        centres = np.array(group.meta["line_wavelengths"])
        far = np.min(np.abs(wave[:, None] - centres[None]), axis=1) > 30
        assert np.all(group.flux[far] < 1e-12)
        # line fluxes equal those of the full template (EW x its continuum)
        near = np.abs(wave - centres[0]) < 3
        full_near = np.abs(full.wavelength.value - centres[0]) < 3
        assert np.trapezoid(group.flux[near], wave[near]) == pytest.approx(
            np.trapezoid(full.flux[full_near] - continuum.flux[full_near],
                         full.wavelength.value[full_near]), rel=1e-3)


def test_absorption_templates_have_their_features():
    for name, line, depth in (("uv_absorption", 2600.17, 0.8), ("star_cool", 8544.44, 0.8),
                              ("star_hot", 6564.61, 0.9), ("passive", 8544.44, 0.9)):
        t = build_template(recipe(name))
        wave = t.wavelength.value
        at = np.interp(line, wave, t.flux)
        around = np.interp([line - 40, line + 40], wave, t.flux).mean()
        assert at < depth * around, name
