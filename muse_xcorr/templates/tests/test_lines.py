"""The line list, air conversion, Gaussian-line templates and plot labels."""
import numpy as np
import pytest
import astropy.units as u
from astropy.table import Table

from muse_xcorr import Template
from muse_xcorr.templates.lines import (LINES, CONFUSION_LINES, label_lines, line_table,
                                        line_wavelengths, lya_profile)


def test_air_wavelengths_follow_edlen_size():
    vac = line_wavelengths(["Halpha", "[OIII]5007"]).value
    air = line_wavelengths(["Halpha", "[OIII]5007"], medium="air").value
    # air = vac / n with n - 1 ~ 2.76e-4 in the optical (independent approximate check)
    assert np.allclose(vac / air - 1, 2.77e-4, atol=4e-6)
    assert air[0] == pytest.approx(6562.80, abs=0.02)  # the classical air value of Halpha
    with pytest.raises(KeyError):
        line_wavelengths(["Hzeta"])


def test_line_table_and_confusion_lines_are_consistent():
    table = line_table()
    assert len(table) == len(LINES) and table.meta["medium"] == "vacuum"
    for members in CONFUSION_LINES.values():
        assert all(m in LINES for m in members)


def test_from_lines_areas_and_centres():
    t = Template.from_lines({"Hbeta": 1.0, "[OIII]5007": 3.0}, width=1.0 * u.AA, step=0.05)
    wave, flux = t.wavelength.value, t.flux
    for centre, area in ((4862.69, 1.0), (5008.24, 3.0)):
        near = np.abs(wave - centre) < 10
        assert np.trapezoid(flux[near], wave[near]) == pytest.approx(area, rel=1e-6)
        assert wave[near][np.argmax(flux[near])] == pytest.approx(centre, abs=0.03)
    assert t.meta["lines"] == ["Hbeta", "[OIII]5007"]
    assert t.medium == "vacuum"


def test_from_lines_velocity_width_table_and_continuum():
    table = Table({"name": ["a", "b"], "wavelength": [4000.0, 6000.0] * u.AA,
                   "strength": [1.0, -0.5]})
    t = Template.from_lines(table, width=100 * u.km / u.s, continuum=lambda w: np.ones_like(w))
    wave, flux = t.wavelength.value, t.flux
    sigma = 6000.0 * 100 / 299792.458
    near = np.abs(wave - 6000.0) < 10 * sigma
    depth = 1 - flux[near].min()
    assert depth == pytest.approx(0.5 / (sigma * np.sqrt(2 * np.pi)), rel=1e-3)
    with pytest.raises(ValueError):
        Template.from_lines({"Halpha": 0.0})
    with pytest.raises(u.UnitTypeError):
        Template.from_lines(["Halpha"], width=3 * u.s)


def test_lya_profile_is_skewed_to_the_red_with_unit_area():
    wave = np.arange(1190.0, 1250.0, 0.01)
    profile = lya_profile(wave, 1215.67, 0.8, asymmetry=0.3)
    assert np.trapezoid(profile, wave) == pytest.approx(1.0, rel=1e-9)
    mean = np.trapezoid(profile * wave, wave)
    assert mean > 1215.67 + 0.2  # red wing
    assert wave[np.argmax(profile)] == pytest.approx(1215.67, abs=0.02)


def test_label_lines_on_an_axis():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.set_xlim(4750, 9350)
    labelled = label_lines(ax, 0.3)
    plt.close(fig)
    expected = [n for n, (w, _, _) in LINES.items() if 4750 < w * 1.3 / 1.00028 < 9350]
    assert labelled == expected


def test_lya_profile_has_no_red_shelf():
    """Far on the red side the tapered profile falls to zero (a = 0.3 left a 0.4 % shelf)."""
    from muse_xcorr.templates.lines import lya_profile

    wave = np.arange(1100.0, 2500.0, 0.02)
    profile = lya_profile(wave, 1215.67, 1.0, asymmetry=0.3)
    assert np.trapezoid(profile[wave > 1300], wave[wave > 1300]) < 1e-6
    near = np.abs(wave - 1215.67) < 40
    assert np.trapezoid(profile[near], wave[near]) > 0.999
