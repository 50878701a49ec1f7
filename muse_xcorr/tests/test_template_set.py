"""Template sets: per-spaxel best template, kept alternatives, and line confusion."""
import numpy as np
import pytest
import astropy.units as u
from astropy.nddata import VarianceUncertainty

from muse_xcorr import Correlator, Template, MuseCube, zgrid, datasets
from muse_xcorr.flags import Flag
from muse_xcorr.template_set import TemplateSetCorrelator

WAVE = datasets.muse_wavelength(1600)  # 4750-6749 A (air)
VAR = datasets.muse_variance(WAVE)
# two segments sampled finely (30 km/s for lines of sigma 100 km/s): chi2 is compared at
# grid samples, so the step must resolve the lines
Z = np.concatenate([zgrid(0.15, 0.4, 1e-4), zgrid(3.75, 4.05, 1e-4)])
WIDTH = 100 * u.km / u.s
SINGLE_OIII = Template.from_lines({"[OIII]5007": 1.0}, WIDTH, name="oiii")
SINGLE_LYA = Template.from_lines({"Lya": 1.0}, WIDTH, name="lya")
MULTI = Template.from_lines({"Hbeta": 1.0, "[OIII]4959": 1.0, "[OIII]5007": 3.0}, WIDTH,
                            name="multi")


def spectrum(template, z, snr, seed):
    return datasets.make_spectrum(template, z=z, snr=snr, seed=seed, wavelength=WAVE,
                                  variance=VAR)[0]


def chi2_min(d, template, z):
    """Independent float64 reference: min over amplitude of sum w (d - A T)^2 at each z."""
    T = template.matrix(WAVE, np.atleast_1d(z), medium="air")
    w = 1 / VAR
    a, b = (w * d) @ T, w @ T ** 2
    return np.sum(w * d * d) - np.where(b > 0, a * a / np.where(b > 0, b, 1), 0.0)


def test_list_dispatches_and_combined_maps_are_the_winners():
    templates = [SINGLE_LYA, MULTI]
    correlator = Correlator(templates, Z, weighting="inverse_variance", confusion=False)
    assert isinstance(correlator, TemplateSetCorrelator)
    with pytest.raises(ValueError, match="empty"):
        Correlator([], Z)
    flux, z_true = [], [0.2, 0.25, 3.9, 0.3]
    for i, (t, z) in enumerate(zip([MULTI, MULTI, SINGLE_LYA, MULTI], z_true)):
        flux.append(spectrum(t, z, 40.0, i).flux.value)
    cube = MuseCube(WAVE, np.array(flux).T.reshape(-1, 2, 2) * datasets.FLUX_UNIT,
                    VarianceUncertainty(np.broadcast_to(VAR[:, None, None], (WAVE.size, 2, 2))
                                        * datasets.FLUX_UNIT ** 2),
                    medium="air", spectral_axis_index=0)
    result = correlator.correlate(cube, progress=False)
    singles = [Correlator(t, Z, weighting="inverse_variance").correlate(cube, progress=False)
               for t in templates]
    chi2 = np.array([s.chi2_best for s in singles])
    assert np.array_equal(result.template_index, np.argmin(chi2, axis=0))
    assert np.array_equal(result.template_index.ravel(), [1, 1, 0, 1])
    for i, s in enumerate(singles):
        assert np.array_equal(getattr(result, f"z_best_t{i}"), s.z_best)
        chosen = result.template_index == i
        assert np.array_equal(result.z_best[chosen], s.z_best[chosen])
    assert np.allclose(result.z_best.ravel(), z_true, atol=1e-3)
    assert result.meta["templates"] == "lya,multi"
    # the per-spaxel curve uses the winning template: its peak is at z_best
    z, f, _ = result.ccf(1, 0)
    assert abs(z[np.argmax(f)] - result.z_best[1, 0]) < 1e-3


def test_uniform_weighting_picks_the_largest_f():
    s = spectrum(MULTI, 0.2, 30.0, 5)
    result = Correlator([SINGLE_OIII, MULTI], Z, confusion=False).correlate(s, progress=False)
    assert result.template_index == int(np.argmax([result.f_best_t0, result.f_best_t1]))
    assert result.template_index == 1


def test_single_line_is_ambiguous_and_delta_chi2_matches_reference():
    """One Gaussian line: [OIII] at z1 and Lyman alpha at z2 fit equally well."""
    s = spectrum(SINGLE_OIII, 0.2, 15.0, 11)
    correlator = Correlator([SINGLE_OIII, SINGLE_LYA], Z, weighting="inverse_variance")
    result = correlator.correlate(s, progress=False)
    assert result.flags & Flag.AMBIGUOUS
    names = result.meta["confusion_lines"].split(",")
    assert names[result.alt_line] in ("Lya", "[OIII]5007")
    d = s.flux.value
    best = min(chi2_min(d, t, result.z_best).min() for t in correlator.templates)
    # reference for the other single-line reading: scan the same +-2e-3 (1 + z) window
    other = names[result.alt_line]
    observed_vac = result.main_wavelength * (1 + 2.77e-4)  # air -> vacuum near 6000 A
    z_alt = observed_vac / {"Lya": 1215.67, "[OIII]5007": 5008.24}[other] - 1
    scan = Z[np.abs(Z - z_alt) < 2.2e-3 * (1 + z_alt)]
    alt = min(chi2_min(d, t, scan).min() for t in correlator.templates)
    assert result.dchi2_alt == pytest.approx(alt - best, abs=0.5)
    assert abs(result.dchi2_alt) < 9


def test_multiline_detection_excludes_the_alternatives():
    s = spectrum(MULTI, 0.2, 30.0, 12)
    result = Correlator([MULTI, SINGLE_LYA], Z, weighting="inverse_variance").correlate(
        s, progress=False)
    assert not result.flags & Flag.AMBIGUOUS
    assert result.dchi2_alt > 50
    assert abs(result.z_best - 0.2) < 1e-3
    # main feature: [OIII] 5007 at z = 0.2 (air)
    assert result.main_wavelength == pytest.approx(5008.24 * 1.2 / 1.000277, abs=1.5)


def test_composite_chi2_matches_a_two_amplitude_least_squares_fit():
    """Disjoint components with free amplitudes: chi2 = ||d||^2 (1 - f1^2 - f2^2)."""
    hb = Template.from_lines({"Hbeta": 1.0}, WIDTH, name="hb")
    oiii = Template.from_lines({"[OIII]4959": 1.0, "[OIII]5007": 3.0}, WIDTH, name="oiii")
    # line ratio far from any fixed template: [OIII] / Hbeta = 0.3
    mix = Template.from_lines({"Hbeta": 1.0, "[OIII]4959": 0.1, "[OIII]5007": 0.3}, WIDTH)
    s = spectrum(mix, 0.2, 25.0, 21)
    correlator = Correlator([(hb, oiii), MULTI], Z, weighting="inverse_variance",
                            confusion=False)
    result = correlator.correlate(s, progress=False)
    assert result.template_index == 0 and abs(result.z_best - 0.2) < 5e-4
    k = int(np.argmin(np.abs(Z - result.z_best)))
    k = min(range(k - 2, k + 3), key=lambda j: -_two_component_gain(s.flux.value, hb, oiii, Z[j]))
    w, d = 1 / VAR, s.flux.value
    design = np.column_stack([t.matrix(WAVE, [Z[k]], medium="air")[:, 0] for t in (hb, oiii)])
    amplitude, *_ = np.linalg.lstsq(design * np.sqrt(w)[:, None], d * np.sqrt(w), rcond=None)
    assert np.all(amplitude > 0)
    chi2 = np.sum(w * (d - design @ amplitude) ** 2)
    assert result.chi2_best == pytest.approx(chi2, rel=1e-3)
    assert result.chi2_best < result.chi2_best_t1 - 9  # the fixed-ratio template is worse


def _two_component_gain(d, a, b, z):
    w = 1 / VAR
    total = 0.0
    for t in (a, b):
        column = t.matrix(WAVE, [z], medium="air")[:, 0]
        total += max(np.sum(w * d * column), 0) ** 2 / np.sum(w * column ** 2)
    return total


def test_entries_covering_nothing_are_skipped():
    far = Template.from_lines({"[SIII]9531": 1.0}, WIDTH, name="siii")  # > 6749 A at z >= 0.15
    s = spectrum(MULTI, 0.2, 20.0, 3)
    result = Correlator([far, MULTI], Z, weighting="inverse_variance").correlate(
        s, progress=False)
    assert result.template_index == 1 and np.isnan(result.z_best_t0)
    with pytest.raises(ValueError, match="no template"):
        Correlator([far], Z).correlate(s, progress=False)


def test_set_result_round_trips_through_fits(tmp_path):
    s = spectrum(MULTI, 0.2, 20.0, 4)
    result = Correlator([SINGLE_LYA, MULTI], Z, weighting="inverse_variance").correlate(
        s, progress=False)
    result.write(tmp_path / "set.fits")
    back = type(result).read(tmp_path / "set.fits")
    for name in ("z_best", "template_index", "z_best_t0", "dchi2_alt", "flags"):
        assert np.array_equal(np.ravel(getattr(back, name)), np.ravel(getattr(result, name)),
                              equal_nan=True), name
    assert back.meta["templates"] == "lya,multi"
