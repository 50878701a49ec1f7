"""The simulated deep-field population: what it reports is what it simulated.

The S/N of the strongest feature is recomputed here from the truth (line flux,
redshift, width, the MUSE line spread) with an analytic Gaussian, not with the
simulator's own models; the noise's per-pixel variance and lag-1 correlation
are measured on the noise itself.
"""
import ast
import pathlib

import numpy as np
import pytest
import astropy.units as u
from astropy.nddata import VarianceUncertainty
from scipy.special import erf

from muse_xcorr import population as pop
from muse_xcorr.datasets import FLUX_UNIT
from muse_xcorr.templates.lsf import muse_fwhm
from muse_xcorr.units import C_KMS, convert_medium

N = 200


@pytest.fixture(scope="module")
def sample():
    return pop.make_population(N, seed=7, keep_models=True)


def test_cube_is_shaped_like_muse_data(sample):
    cube, truth = sample
    assert cube.flux.shape == (3681, 1, N)
    assert cube.flux.unit == FLUX_UNIT
    assert isinstance(cube.uncertainty, VarianceUncertainty)
    assert cube.medium == "air"
    assert len(truth) == N and list(truth["id"]) == list(range(N))


def test_seeds_reproduce():
    a_cube, a_truth = pop.make_population(12, seed=3)
    b_cube, b_truth = pop.make_population(12, seed=3)
    c_cube, _ = pop.make_population(12, seed=4)
    np.testing.assert_array_equal(a_cube.flux.value, b_cube.flux.value)
    np.testing.assert_array_equal(a_cube.uncertainty.array, b_cube.uncertainty.array)
    assert a_truth.colnames == b_truth.colnames
    for name in a_truth.colnames:
        np.testing.assert_array_equal(a_truth[name], b_truth[name])
    assert not np.array_equal(a_cube.flux.value, c_cube.flux.value)


def test_class_mix_is_exact_and_redshifts_are_in_range(sample):
    _, truth = sample
    for cls, share in pop.DEFAULT_MIX.items():
        assert np.sum(truth["class"] == cls) == round(share * N), cls
    ranges = {"lae": (2.9, 6.6), "oii": (0.3, 1.5), "oiii_ha": (0.01, 0.85),
              "ciii": (1.5, 2.9), "uv_abs": (1.5, 3.2), "passive": (0.001, 1.3),
              "star": (-300 / C_KMS, 300 / C_KMS)}
    for cls, (low, high) in ranges.items():
        z = truth["z"][truth["class"] == cls]
        assert np.all((z >= low) & (z <= high)), cls
    assert np.all(np.isnan(truth["z"][truth["class"] == "noise"]))
    lae = truth["z"][truth["class"] == "lae"]
    assert 0.45 < np.mean((lae > 3) & (lae < 4.5)) < 0.85       # most LAEs at z 3-4.5
    main = {"oii": {"[OII]3727"}, "oiii_ha": {"[OIII]5007", "Halpha"}, "ciii": {"CIII]1908"},
            "uv_abs": {"absorption"}, "passive": {"absorption"}, "star": {"absorption"}}
    for cls, allowed in main.items():
        assert set(truth["feature"][truth["class"] == cls]) <= allowed, cls


@pytest.mark.parametrize("classes, expected", [
    ("star", {"star": 5}), (["lae", "noise"], {"lae": 3, "noise": 2}),
    ({"oii": 3, "passive": 1}, {"oii": 4, "passive": 1})])
def test_requested_classes(classes, expected):
    _, truth = pop.make_population(5, seed=1, classes=classes)
    assert {c: int(np.sum(truth["class"] == c)) for c in expected} == expected


def test_unknown_class_is_refused():
    with pytest.raises(ValueError, match="unknown class"):
        pop.make_population(3, seed=1, classes=["qso"])


def _valid(truth, i):
    wave = np.arange(3681) * 1.25 + 4750.0
    notch = (wave >= pop.AO_NOTCH[0]) & (wave <= pop.AO_NOTCH[1])
    return ~notch if truth["ao"][i] else np.ones(wave.size, bool)


def _gaussian_on_pixels(flux, centre_vacuum, sigma_kms, z):
    """An emission line on the MUSE grid from first principles (air grid, MUSE LSF)."""
    wave = np.arange(3681) * 1.25 + 4750.0
    edges = np.concatenate([wave - 0.625, [wave[-1] + 0.625]])
    centre = convert_medium(centre_vacuum * (1 + z) * u.AA, "vacuum", "air").to_value(u.AA)
    # Bacon et al. (2017) FWHM includes the pixel; a bin average adds width^2 / 12 back
    sigma_lsf2 = (muse_fwhm(centre * u.AA).value / 2.3548) ** 2 - 1.25 ** 2 / 12
    sigma = np.sqrt((centre * sigma_kms / C_KMS) ** 2 + sigma_lsf2)
    cdf = 0.5 * (1 + erf((edges - centre) / (np.sqrt(2) * sigma)))
    return flux * np.diff(cdf) / 1.25


def test_reported_snr_is_the_matched_filter_snr_of_the_strongest_line(sample):
    _, truth = sample
    checked = 0
    for i in range(N):
        feature = truth["feature"][i]
        lines = {"Halpha": ["Halpha"], "[OIII]5007": ["[OIII]5007"],
                 "[OII]3727": ["[OII]3726", "[OII]3729"]}.get(str(feature))
        if lines is None:
            continue
        model = sum(_gaussian_on_pixels(truth[f"flux_{name}"][i], pop.rest_wavelength(name),
                                        truth["width_kms"][i], truth["z"][i])
                    for name in lines)
        valid = _valid(truth, i)
        snr = np.sqrt(np.sum(model[valid] ** 2 / truth["variance"][i][valid]))
        assert snr == pytest.approx(truth["snr"][i], rel=0.02), (i, feature)
        checked += 1
    assert checked > 40


def test_snr_of_every_feature_model_and_its_range(sample):
    _, truth = sample
    objects = truth["class"] != "noise"
    assert np.all((truth["snr"][objects] >= 3) & (truth["snr"][objects] <= 50))
    for i in np.flatnonzero(objects):
        valid = _valid(truth, i)
        snr = np.sqrt(np.sum(truth["feature_model"][i][valid] ** 2
                             / truth["variance"][i][valid]))
        assert snr == pytest.approx(truth["snr"][i], rel=1e-6)
        # never a feature mostly lost in the AO notch (its S/N would inflate the rest)
        everywhere = np.sqrt(np.sum(truth["feature_model"][i] ** 2 / truth["variance"][i]))
        assert snr >= 0.5 * everywhere
        # the correlated noise lowers the true S/N of a feature (1 + 2 rho_1 for broad ones)
        assert truth["snr"][i] / np.sqrt(1 + 2 * truth["rho1"][i] + 2 * truth["rho2"][i]) \
            <= truth["snr_corr"][i] * 1.001
    assert np.all(truth["model"][~objects] == 0)


def test_data_are_model_plus_reported_noise_and_sky(sample):
    cube, truth = sample
    data = cube.flux.value[:, 0, :].T
    expected = truth["model"] + truth["noise"] + truth["sky"]
    for i in range(N):
        valid = _valid(truth, i)
        np.testing.assert_allclose(data[i][valid], expected[i][valid], rtol=1e-5, atol=1e-4)


def test_correlated_noise_has_the_reported_variance_and_correlation(sample):
    _, truth = sample
    r = truth["noise"] / np.sqrt(truth["variance"])
    assert np.mean(r ** 2) == pytest.approx(1.0, abs=0.01)
    lag1 = np.sum(r[:, 1:] * r[:, :-1], axis=1) / np.sum(r ** 2, axis=1)
    lag2 = np.sum(r[:, 2:] * r[:, :-2], axis=1) / np.sum(r ** 2, axis=1)
    assert np.all(np.abs(lag1 - truth["rho1"]) < 0.07)
    assert np.mean(lag1) == pytest.approx(np.mean(truth["rho1"]), abs=0.005)
    assert np.mean(lag2) == pytest.approx(np.mean(truth["rho2"]), abs=0.005)
    assert np.all((truth["rho1"] >= 0.1) & (truth["rho1"] <= 0.45))
    slope = np.polyfit(truth["rho1"], lag1, 1)[0]
    assert slope == pytest.approx(1.0, abs=0.1)


def test_white_noise_option():
    _, truth = pop.make_population(6, seed=2, correlated_noise=False, keep_models=True,
                                   sky_residuals=False)
    assert np.all(truth["rho1"] == 0) and np.all(truth["n_sky_residuals"] == 0)
    r = truth["noise"] / np.sqrt(truth["variance"])
    assert abs(np.mean(r[:, 1:] * r[:, :-1])) < 0.03


def test_ao_notch_is_exactly_zero(sample):
    cube, truth = sample
    wave = cube.spectral_axis.value
    notch = (wave >= pop.AO_NOTCH[0]) & (wave <= pop.AO_NOTCH[1])
    data = cube.flux.value[:, 0, :]
    stat = cube.uncertainty.array[:, 0, :]
    ao = np.asarray(truth["ao"])
    assert 60 < ao.sum() < 140                               # ao_fraction 0.5
    assert np.all(data[notch][:, ao] == 0)
    assert np.all(data[notch][:, ~ao] != 0)
    for i in np.flatnonzero(ao):
        kind = truth["ao_stat"][i]
        if kind == "nan":
            assert np.all(np.isnan(stat[notch, i]))
        elif kind == "zero":
            assert np.all(stat[notch, i] == 0)
        else:
            assert np.all(stat[notch, i] > 0)
    assert np.all(np.isfinite(stat[~notch]) & (stat[~notch] > 0))


def test_sky_residuals_are_a_few_sigma(sample):
    _, truth = sample
    has = truth["n_sky_residuals"] > 0
    assert 0.15 < np.mean(has) < 0.45                        # sky_residuals 0.3
    assert np.all((truth["sky_residual_amp"][has] >= 2) & (truth["sky_residual_amp"][has] <= 5))
    assert np.all(truth["sky"][~has] == 0)
    wave = np.arange(3681) * 1.25 + 4750.0
    for i in np.flatnonzero(has):
        sigma = np.sqrt(truth["variance"][i])
        ratios = []
        for centre in pop.SKY_LINES:
            j = int(np.argmin(np.abs(wave - centre)))
            if truth["sky"][i][j - 2:j + 3].any():
                ratios.append(np.max(np.abs(truth["sky"][i][j - 2:j + 3])) / sigma[j])
        # the peak (at most 5 sigma, a little more where two sky lines overlap)
        n_sky = truth["n_sky_residuals"][i]
        assert len(ratios) >= n_sky                    # neighbours' wings may reach a line
        assert np.sort(ratios)[-n_sky] > 1.0 and np.max(ratios) < 5.5


def _ratio(truth, rows, a, b):
    return np.asarray(truth[f"flux_{a}"][rows] / truth[f"flux_{b}"][rows])


def test_line_ratios_lie_in_their_stated_ranges(sample):
    _, truth = sample
    neb = np.isin(truth["class"], ["oii", "oiii_ha"])
    assert neb.sum() > 30
    stated = {"oii_ratio": (0.8, 1.5), "oiii_hb": (0.2, 6), "ha_hb": (2.86, 6),
              "nii_ha": (0.03, 0.5), "oii_hb": (0.5, 5), "sii_ratio": (0.8, 1.4),
              "width_kms": (30, 120)}
    for name, (low, high) in stated.items():
        values = truth[name][neb]
        assert np.all((values >= low) & (values <= high)), name
    # ... and they are the ratios of the line fluxes reported
    np.testing.assert_allclose(_ratio(truth, neb, "[OII]3729", "[OII]3726"),
                               truth["oii_ratio"][neb], rtol=1e-9)
    np.testing.assert_allclose(_ratio(truth, neb, "Halpha", "Hbeta"), truth["ha_hb"][neb],
                               rtol=1e-9)
    np.testing.assert_allclose(_ratio(truth, neb, "[OIII]5007", "Hbeta"),
                               truth["oiii_hb"][neb], rtol=1e-9)
    np.testing.assert_allclose(_ratio(truth, neb, "[NII]6583", "Halpha"),
                               truth["nii_ha"][neb], rtol=1e-9)
    np.testing.assert_allclose(_ratio(truth, neb, "[SII]6716", "[SII]6731"),
                               truth["sii_ratio"][neb], rtol=1e-9)
    np.testing.assert_allclose(_ratio(truth, neb, "[OIII]5007", "[OIII]4959"), 2.98, rtol=1e-9)
    assert np.all((truth["ew_rest"][truth["class"] == "oii"] >= 5)
                  & (truth["ew_rest"][truth["class"] == "oii"] <= 100))
    ciii = truth["class"] == "ciii"
    np.testing.assert_allclose(_ratio(truth, ciii, "CIII]1907", "CIII]1909"),
                               truth["ciii_ratio"][ciii], rtol=1e-9)
    assert np.all((truth["ciii_ratio"][ciii] >= 1.2) & (truth["ciii_ratio"][ciii] <= 1.6))
    lae = truth["class"] == "lae"
    assert np.all((truth["lya_asymmetry"][lae] >= 0.1) & (truth["lya_asymmetry"][lae] <= 0.45))
    assert np.all((truth["lya_fwhm_kms"][lae] >= 80) & (truth["lya_fwhm_kms"][lae] <= 300))
    assert np.all((truth["ew_rest"][lae] >= 10) & (truth["ew_rest"][lae] <= 200))
    uv = np.isin(truth["class"], ["uv_abs", "ciii"])
    assert np.all((truth["abs_factor"][uv] >= 0.5) & (truth["abs_factor"][uv] <= 2))
    assert np.all((truth["outflow_kms"][uv] >= 0) & (truth["outflow_kms"][uv] <= 300))
    passive = truth["class"] == "passive"
    assert np.all((truth["width_kms"][passive] >= 80) & (truth["width_kms"][passive] <= 300))


def test_lya_profile_keeps_its_flux_in_the_line():
    wave = np.arange(1150.0, 2500.0, 0.02)
    profile = pop._lya_line(300.0, 0.45)(wave, 1215.67)
    assert np.trapezoid(profile, wave) == pytest.approx(1.0, rel=1e-3)
    near = np.abs(wave - 1216.5) < 10
    assert np.trapezoid(profile[near], wave[near]) > 0.95


@pytest.mark.parametrize("rho", [0.0, 0.2, 0.45, 0.7])
def test_kernel_for_rho(rho):
    kernel = pop.kernel_for_rho(rho)
    assert np.sum(kernel ** 2) == pytest.approx(1.0)
    assert 2 * kernel[0] * kernel[1] == pytest.approx(rho)


def test_population_imports_only_lower_layers():
    path = pathlib.Path(pop.__file__)
    allowed = {"units", "flags", "grid", "statistics", "io", "spectra", "templates", "datasets"}
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            found.add((node.module or "").split(".")[0])
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [node.module] if isinstance(node, ast.ImportFrom) else \
                [a.name for a in node.names]
            found |= {n.split(".")[1] for n in names if n and n.startswith("muse_xcorr.")}
    assert found <= allowed, found - allowed
