"""The confidence model z_conf: its logistic fit, its evaluation, and its place in results."""
import numpy as np
import pytest
from scipy.special import expit

from muse_xcorr import Correlator, datasets, zgrid
from muse_xcorr.confidence import DEFAULT_CONFIDENCE, ConfidenceModel


def test_fit_recovers_the_coefficients_of_a_simulated_logistic_population():
    rng = np.random.default_rng(3)
    n = 6000
    delta = rng.uniform(0, 10, n) ** 2                 # sqrt(delta_chi2) uniform in 0-10
    significance = rng.normal(2.0, 2.0, n)
    names = rng.choice(np.array(["a", "b"], dtype=object), n)
    truth = {"b0": -2.0, "b1": 0.6, "b2": 0.4, "a": 0.5, "b": -0.5}
    x_sig = np.clip(significance, -8, 8)
    logit = (truth["b0"] + truth["b1"] * np.sqrt(delta) + truth["b2"] * x_sig
             + np.where(names == "a", truth["a"], truth["b"]))
    right = rng.uniform(size=n) < expit(logit)
    model, cov = ConfidenceModel.fit(delta, significance, names, right, ridge=0.0)
    errors = np.sqrt(np.diag(cov))
    # intercept and offsets are degenerate without a ridge: test their sums, and slopes
    assert abs(model.delta_slope - truth["b1"]) < 4 * errors[1]
    assert abs(model.significance_slope - truth["b2"]) < 4 * errors[2]
    for name in ("a", "b"):
        fitted = model.intercept + model.template_offsets[name]
        assert abs(fitted - (truth["b0"] + truth[name])) < 0.25
    assert 0.005 < errors[1] < 0.1                     # a covariance, not zeros


def test_evaluation_matches_an_independent_logistic_with_caps_and_missing_values():
    model = ConfidenceModel(-1.0, 0.5, 0.3, {"lae": -0.7}, delta_cap=6.0, significance_cap=5.0)
    delta = np.array([0.0, 16.0, 1e6, np.inf, np.nan, 4.0])
    sig = np.array([1.0, -9.0, 2.0, 20.0, np.nan, np.nan])
    names = np.array(["lae", "other", "lae", "", "", "lae"], dtype=object)
    got = model(delta, sig, names)
    expected = expit(np.array([-1 + 0 + 0.3 - 0.7, -1 + 0.5 * 4 - 0.3 * 5,
                               -1 + 0.5 * 6 + 0.6 - 0.7, -1 + 0.5 * 6 + 0.3 * 5,
                               np.nan, -1 + 0.5 * 2 - 0.3 * 5 - 0.7]))
    np.testing.assert_allclose(got[:4], expected[:4], rtol=1e-12)
    assert np.isnan(got[4])                            # no candidate at all: NaN
    np.testing.assert_allclose(got[5], expected[5], rtol=1e-12)   # NaN significance: -cap


@pytest.fixture(scope="module")
def bright_and_noise():
    template = datasets.make_template("starforming")
    snr = np.array([[60.0, 60.0, 0.0, 0.0]])
    cube, truth = datasets.make_cube((1, 4), template, z=(0.4, 0.6), snr=snr, seed=4)
    result = Correlator(template, zgrid(0.3, 0.7, 2e-4)).correlate(cube, progress=False)
    return result, truth


def test_z_conf_is_a_map_high_for_bright_lines_and_low_for_noise(bright_and_noise, tmp_path):
    result, truth = bright_and_noise
    assert "z_conf" in result.map_names
    conf = result.z_conf
    assert conf.shape == (1, 4) and np.all((conf >= 0) & (conf <= 1))
    assert np.all(np.abs(result.z_best[0, :2] - truth["z"][0, :2]) < 1e-3)
    assert np.all(conf[0, :2] > 0.9) and np.all(conf[0, 2:] < 0.5)
    assert "z_conf" in result.to_table().colnames
    path = tmp_path / "maps.fits"
    result.write(path)
    from muse_xcorr import Redshift
    back = Redshift.read(path)
    np.testing.assert_allclose(back.z_conf, conf, rtol=1e-6)


def test_the_default_model_prefers_a_clear_detection_to_a_confusion():
    names = np.array(["emission"] * 3, dtype=object)
    p = DEFAULT_CONFIDENCE(np.array([100.0, 1.0, 100.0]), np.array([6.0, 6.0, 0.0]), names)
    assert p[0] > p[1] and p[0] > p[2]


@pytest.mark.slow
def test_z_conf_is_calibrated_on_a_population_it_was_not_fitted_on():
    """Predicted against observed on 100 simulated deep-field objects (seed 21; the
    default model was fitted on seed 11). Tolerances: the overall rate within 0.1
    (about 2 binomial sigma at n = 100, plus the model's own error), and the two
    ends of the reliability diagram on the right side of 0.5 by a margin."""
    from muse_xcorr.population import make_population
    cube, truth = make_population(100, seed=21)
    result = Correlator().correlate(cube, progress=False)
    z = np.asarray(truth["z"], dtype=float)
    with np.errstate(invalid="ignore"):
        right = np.abs(np.ravel(result.z_best) - z) < 2e-3 * (1 + z)
    conf = np.nan_to_num(np.ravel(result.z_conf), nan=0.0)
    assert abs(conf.mean() - right.mean()) < 0.1
    high, low = conf >= 0.9, conf < 0.3
    assert high.sum() >= 25 and low.sum() >= 5
    assert right[high].mean() >= 0.9
    assert right[low].mean() <= 0.35
