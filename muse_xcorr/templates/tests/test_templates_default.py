"""The default template set built from the shipped recipes."""
import numpy as np
import pytest

from muse_xcorr import Template
from muse_xcorr.templates import CompositeTemplate
from muse_xcorr.templates import default_set
from muse_xcorr.templates.library import DEFAULT_NAMES, build_template, recipe


def test_default_set_has_the_four_documented_templates():
    templates = default_set()
    assert [t.name for t in templates] == list(DEFAULT_NAMES)
    assert all(isinstance(t, Template) and t.medium == "vacuum" for t in templates)
    with pytest.raises(ValueError, match="no default template"):
        recipe("nebula")


@pytest.mark.parametrize("name", ["emission", "qso"])
def test_emission_line_equivalent_widths_match_the_recipe(name):
    """Integrate each isolated line above the continuum: it returns the recipe's EW."""
    table = recipe(name)
    template = build_template(table)
    wave, flux = template.wavelength.value, template.flux
    continuum = build_template(_without_lines(table)).flux
    for row in table:
        centre, sigma = row["wavelength"], row["wavelength"] * row["sigma"] / 299792.458
        others = [w for w in table["wavelength"] if w != centre]
        if row["ew"] <= 0 or min(abs(np.array(others) - centre)) < 12 * sigma:
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
    templates = default_set(["emission", "lae"], composite=True)
    composite, lae = templates
    assert isinstance(composite, CompositeTemplate) and isinstance(lae, Template)
    groups = composite.components
    assert [g.name for g in groups] == ["emission:oii", "emission:hb_oiii", "emission:ha"]
    full = build_template(recipe("emission"))
    for group in groups:
        # no continuum: the component is zero away from its own lines
        wave = group.wavelength.value
        centres = np.array(group.meta["line_wavelengths"])
        far = np.min(np.abs(wave[:, None] - centres[None]), axis=1) > 30
        assert np.all(group.flux[far] < 1e-12)
        # line fluxes equal those of the full template (EW x its continuum)
        near = np.abs(wave - centres[0]) < 3
        full_near = np.abs(full.wavelength.value - centres[0]) < 3
        continuum = build_template(_without_lines(recipe("emission"))).flux[full_near]
        assert np.trapezoid(group.flux[near], wave[near]) == pytest.approx(
            np.trapezoid(full.flux[full_near] - continuum, full.wavelength.value[full_near]),
            rel=1e-3)
