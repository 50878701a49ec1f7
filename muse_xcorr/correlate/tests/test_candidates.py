"""One Correlator, one model: the candidate list and every number derived from the fitted model.

Each test here fails on the correlator of release 0.1.dev (issue #9): its
template sets, composites, uniform delta_chi2, pdf and second peaks came
from different models.
"""
import numpy as np
import pytest
import astropy.units as u
from astropy.nddata import VarianceUncertainty
from scipy.optimize import minimize

from muse_xcorr import Correlator, MuseSpectrum, Template, datasets, zgrid
from muse_xcorr.flags import Flag
from muse_xcorr.templates import CompositeTemplate
from muse_xcorr.tests.reference import reference_bin_average
from muse_xcorr.units import C_KMS

# exact references without continuum subtraction: the warning of continuum=None
# with a template set is expected
pytestmark = pytest.mark.filterwarnings("ignore:continuum=None with")

WAVE = datasets.muse_wavelength(n_pixels=1600, start=5000.0)
PLAIN = {"continuum": None, "lsf": None}


def lines(names, name, width=60 * u.km / u.s):
    return Template.from_lines(names, width=width, name=name, wave_range=(3000, 7200))


OII = lines(["[OII]3726", "[OII]3729"], "oii")
HB = lines(["Hbeta"], "hb")
OIII = lines(["[OIII]4959", "[OIII]5007"], "oiii")


def spectrum_of(template, z, snr, seed, variance=None):
    variance = datasets.muse_variance(WAVE) if variance is None else variance
    return datasets.make_spectrum(template, z=z, snr=snr, seed=seed, wavelength=WAVE,
                                  variance=variance, lsf=None)


def test_one_class_for_one_or_many_templates():
    """A list gives a Correlator, not another class; a single template is a set of one."""
    z = zgrid(0.3, 0.5, 2e-4)
    many = Correlator([OII, HB, OIII], z)
    one = Correlator(OII, z)
    assert type(many) is Correlator and type(one) is Correlator
    assert many.names == ["oii", "hb", "oiii"] and one.names == ["oii"]
    # the tuple form of a composite is the CompositeTemplate with free amplitudes
    composite = Correlator([(OII, OIII)], z).templates[0]
    assert isinstance(composite, CompositeTemplate) and len(composite) == 2
    assert np.all(composite.free)


def test_candidates_span_templates_are_ranked_and_excluded():
    """Best first by score, at least the exclusion apart across templates, delta = difference."""
    spectrum, _ = spectrum_of(OIII, 0.41, 12.0, seed=4)
    z = zgrid(0.05, 0.9, 1e-4)
    exclusion = 1000 * u.km / u.s
    result = Correlator([OII, HB, OIII], z, exclusion=exclusion, n_candidates=5,
                        **PLAIN).correlate(spectrum, progress=False)
    table = result.candidate_table()
    assert len(table) >= 3
    assert np.all(np.diff(table["score"]) >= 0)
    assert table["delta_chi2"][0] == 0
    np.testing.assert_allclose(table["delta_chi2"], table["score"] - table["score"][0])
    log_z = np.log1p(np.asarray(table["z"]))
    separation = np.abs(log_z[:, None] - log_z[None, :]) + np.eye(len(table))
    assert separation.min() > exclusion.to_value(u.km / u.s) / C_KMS
    assert len(set(table["template"])) >= 2  # the list spans templates
    assert result.template_index == table["template"][0] == 2
    assert abs(result.z_best - 0.41) < 3e-4
    assert result.delta_chi2 == pytest.approx(table["score"][1] - table["score"][0])
    assert result.z_second == pytest.approx(table["z"][1])
    assert result.chi2_second == pytest.approx(table["chi2"][1])


def test_second_candidate_is_refined_in_float64():
    """f_second and z_second are the float64 values of the model at the refined second peak."""
    spectrum, _ = spectrum_of(OIII, 0.41, 10.0, seed=8, variance=np.ones(WAVE.size))
    z = zgrid(0.05, 0.9, 2e-4)
    result = Correlator(OIII, z, dtype="float32", **PLAIN).correlate(spectrum, progress=False)
    index = int(result.candidates("index")[1])
    batch = spectrum.spectra()
    d = batch.flux[0]
    columns = OIII.matrix(WAVE, z[index - 1:index + 2], medium="air")
    f = d @ columns / (np.linalg.norm(d) * np.linalg.norm(columns, axis=0))
    assert f[1] >= f[0] and f[1] >= f[2]               # a confirmed local maximum
    assert result.f_second == pytest.approx(f[1], abs=2e-5)
    coeffs = np.polyfit(z[index - 1:index + 2], f, 2)
    assert result.z_second == pytest.approx(-coeffs[1] / (2 * coeffs[0]), abs=1e-6)


@pytest.mark.parametrize("f_target", [0.15, 0.95])
def test_uniform_delta_chi2_equals_weighted_on_flat_variance(f_target):
    """Flat variance: uniform and weighted are one problem, so delta_chi2 is the same.

    Release 0.1.dev put the second-order sigma_f into an identity that holds
    for the first-order one: the ratio was 1.31 at high f.
    """
    snr = {0.15: 6.0, 0.95: 120.0}[f_target]
    template = datasets.make_template("lines")
    spectrum, _ = spectrum_of(template, 0.33, snr, seed=3, variance=np.full(WAVE.size, 2.0))
    z = zgrid(0.05, 0.6, 2e-4)
    results = [Correlator(template, z, weighting=w, **PLAIN).correlate(spectrum, progress=False)
               for w in ("uniform", "inverse_variance")]
    assert results[1].f_best == pytest.approx(f_target, abs=0.1)
    for name in ("z_best", "f_best", "chi2_best", "delta_chi2", "sigma_f_best"):
        assert getattr(results[0], name) == pytest.approx(getattr(results[1], name), rel=1e-9)


def test_uniform_chi2_is_the_weighted_chi2_of_the_uniform_fit():
    """Uniform weighting with sky lines: chi2 = sum (d - A T)^2 / v, A from the uniform fit."""
    spectrum, _ = spectrum_of(OIII, 0.41, 15.0, seed=5)
    z = zgrid(0.3, 0.5, 2e-4)
    result = Correlator(OIII, z, weighting="uniform", **PLAIN).correlate(spectrum, progress=False)
    batch = spectrum.spectra()
    d, v = batch.flux[0], batch.variance[0]
    for rank in range(2):
        k = int(result.candidates("index")[rank])
        t = OIII.matrix(WAVE, z[k:k + 1], medium="air")[:, 0]
        amplitude = max(d @ t / (t @ t), 0.0)
        expected = np.sum((d - amplitude * t) ** 2 / v)
        assert result.candidates("chi2")[rank] == pytest.approx(expected, rel=2e-5)


def test_composite_is_one_model():
    """A composite's f, chi2, sigma_f, delta_chi2 and snr are those of its fitted model.

    The bounded fit is checked against a general constrained least-squares
    solution (SLSQP on the exact chi2), and delta_chi2 is the difference of
    the candidates' penalised chi2 (release 0.1.dev reported the strongest
    component's numbers).
    """
    bounds = [(0.2, 5.0), (1.0, 1.0), (0.3, 10.0)]
    composite = CompositeTemplate([OII, HB, OIII], bounds=bounds, name="sf")
    truth = Template.from_lines({"[OII]3726": 1.0, "[OII]3729": 1.4, "Hbeta": 1.0,
                                 "[OIII]4959": 0.9, "[OIII]5007": 2.7}, wave_range=(3000, 7200))
    spectrum, _ = spectrum_of(truth, 0.35, 25.0, seed=2)   # every component inside the data
    z = zgrid(0.3, 0.4, 2e-4)
    penalty = 2.0
    result = Correlator(composite, z, composite_penalty=penalty, **PLAIN).correlate(
        spectrum, progress=False)
    k = int(result.best_index)
    batch = spectrum.spectra()
    d, w = batch.flux[0], batch.inverse_variance()[0]
    columns = np.stack([c.matrix(WAVE, z[k:k + 1], medium="air")[:, 0]
                        for c in (OII, HB, OIII)], axis=1)            # (P, 3)

    def chi2(params):
        return np.sum(w * (d - columns @ params[1:]) ** 2)   # params[0]: the common scale

    constraints = [{"type": "ineq", "fun": (lambda p, g=g, lo=lo: p[1 + g] - lo * p[0])}
                   for g, (lo, _) in enumerate(bounds)]
    constraints += [{"type": "ineq", "fun": (lambda p, g=g, hi=hi: hi * p[0] - p[1 + g])}
                    for g, (_, hi) in enumerate(bounds)]
    start = np.concatenate([[1.0], np.linalg.lstsq(columns * np.sqrt(w)[:, None],
                                                   d * np.sqrt(w), rcond=None)[0]])
    scale = 1.0 / np.abs(start).max()
    best = minimize(lambda p: chi2(p / scale), start * scale, constraints=[
        {"type": c["type"], "fun": (lambda p, c=c: c["fun"](p / scale))} for c in constraints],
        method="SLSQP", options={"ftol": 1e-14, "maxiter": 500})
    expected = chi2(best.x / scale)
    assert result.chi2_best == pytest.approx(expected, rel=1e-6)
    model = columns @ (best.x[1:] / scale)
    f = np.sum(w * d * model) / np.sqrt(np.sum(w * d * d) * np.sum(w * model * model))
    assert result.f_best == pytest.approx(f, abs=1e-5)
    assert result.chi2_best == pytest.approx(result.norm2 * (1 - result.f_best ** 2), rel=1e-9)
    # sigma_f is that of the composite model (its direction), not of a component
    assert result.snr == pytest.approx(result.f_best / result.sigma_f_best)
    amplitudes = result.candidates("amplitudes")[0]
    assert amplitudes == pytest.approx(best.x[1:] / scale, rel=1e-3)
    n_active = result.candidates("n_active")
    scores = result.candidates("score")
    chi2s = result.candidates("chi2")
    np.testing.assert_allclose(scores, chi2s + penalty * np.maximum(n_active - 1, 0))
    assert result.delta_chi2 == pytest.approx(scores[1] - scores[0])


def test_composite_sigma_f_matches_the_scatter_of_its_f():
    """sigma_f of the fitted composite against the Monte Carlo scatter of its f (5 %)."""
    composite = CompositeTemplate([OII, HB, OIII], name="free")
    truth = Template.from_lines({"[OII]3726": 1.0, "[OII]3729": 1.4, "Hbeta": 1.0,
                                 "[OIII]4959": 0.9, "[OIII]5007": 2.7}, wave_range=(3000, 7200))
    variance = datasets.muse_variance(WAVE)
    model = datasets.observed_models(truth, WAVE, 0.35, lsf=None)[0]
    model *= 40.0 / np.sqrt(np.sum(model ** 2 / variance))
    rng = np.random.default_rng(11)
    n = 300
    noise = rng.normal(size=(n, WAVE.size)) * np.sqrt(variance)
    flux = (model + noise).T[:, :, None]
    cube = datasets.MuseCube(WAVE, flux * datasets.FLUX_UNIT, VarianceUncertainty(
        np.broadcast_to(variance[:, None, None], flux.shape) * datasets.FLUX_UNIT ** 2),
        medium="air")
    z = zgrid(0.34, 0.36, 2e-4)
    result = Correlator(composite, z, **PLAIN).correlate(cube, progress=False)
    k = int(np.bincount(result.best_index.ravel()).argmax())
    f, variance, _ = result.correlator.window(cube, np.arange(n), np.zeros(n, int),
                                              np.full((n, 1), k), full_covariance=False)
    assert np.median(np.sqrt(variance)) / np.std(f) == pytest.approx(1.0, abs=0.08)


def test_pdf_puts_no_mass_on_negative_amplitudes():
    """p(z) at S/N 5: where f < 0 the likelihood is that of no signal (chi2 = sum d^2 / v).

    Release 0.1.dev used chi2 = N (1 - f^2) there, which counts an
    anti-correlation as a fit: 1-5 % of the p(z) mass sat where f < 0.
    """
    template = datasets.make_template("lines")
    spectrum, _ = spectrum_of(template, 0.33, 5.0, seed=21)
    z = zgrid(0.05, 0.6, 2e-4)
    result = Correlator(template, z, **PLAIN).correlate(spectrum, progress=False)
    _, f, _ = result.ccf()
    _, p = result.pdf()
    negative = f < 0
    assert negative.any()
    expected = np.exp(-0.5 * (result.norm2 - result.chi2_best))  # relative to the peak
    np.testing.assert_allclose(p[negative] / p.max(), expected, rtol=1e-6)
    assert p[negative].max() == pytest.approx(p.min(), rel=1e-12)  # no fit is the worst fit


def test_exactly_proportional_data_get_a_finite_sigma_and_a_flag():
    """Noiseless data = A T: sigma_f is the chi2-fluctuation floor, flagged ZERR_UNRELIABLE."""
    template = datasets.make_template()  # a continuum: no runs of exact zeros to mask
    z = zgrid(0.30, 0.36, 2e-4)
    variance = np.full(WAVE.size, 0.5)
    model = datasets.observed_models(template, WAVE, z[120], lsf=None)[0] * 7.0
    spectrum = MuseSpectrum(WAVE, model * u.Jy, VarianceUncertainty(variance * u.Jy ** 2),
                            medium="air")
    for weighting in ("uniform", "inverse_variance"):
        result = Correlator(template, z, weighting=weighting, **PLAIN).correlate(
            spectrum, progress=False)
        assert result.f_best == pytest.approx(1.0, abs=1e-4)
        assert np.isfinite(result.sigma_f_best) and result.sigma_f_best > 0
        assert result.flags & Flag.ZERR_UNRELIABLE
        # the floor: Var f = sum (v q)^2 / (2 ||d||^4), whatever the weighting
        d2 = np.sum(model ** 2 / (variance if weighting == "inverse_variance" else 1.0))
        floor = np.sqrt(np.sum((variance / (variance if weighting == "inverse_variance"
                                            else 1.0)) ** 2) / (2 * d2 ** 2))
        assert result.sigma_f_best == pytest.approx(floor, rel=1e-3)


def test_earlier_results_survive_a_second_correlate():
    """ccf and pdf of a result still work after its correlator correlated other data."""
    template = datasets.make_template("lines")
    z = zgrid(0.3, 0.4, 2e-4)
    correlator = Correlator(template, z)
    first, _ = spectrum_of(template, 0.33, 20.0, seed=1)
    other = datasets.make_spectrum(template, z=0.35, snr=20, seed=2,
                                   wavelength=datasets.muse_wavelength(900, start=6000.0))[0]
    result = correlator.correlate(first, progress=False)
    before = result.ccf()[1].copy()
    correlator.correlate(other, progress=False)        # another grid: re-prepared
    np.testing.assert_array_equal(result.ccf()[1], before)
    assert np.isfinite(result.pdf()[1]).all()
    assert np.isfinite(result.z_error("montecarlo", seed=1, n_samples=20))


def test_line_hypotheses_enter_the_candidate_list():
    """A single line: the redshifts of the other identifications are candidates too."""
    lae = Template.from_lines(["Lya"], width=100 * u.km / u.s, name="lae",
                              wave_range=(1000, 7200))
    template = Template.from_lines(["[OII]3726", "[OII]3729"], name="oii",
                                   wave_range=(1000, 7200))
    spectrum, _ = spectrum_of(template, 0.45, 15.0, seed=7)
    z = zgrid(0.0, 4.0, 2e-4)
    result = Correlator([template, lae], z, search="coarse-to-fine", **PLAIN).correlate(
        spectrum, progress=False)
    table = result.candidate_table()
    main = 3728.0 * 1.45
    assert abs(result.z_best - 0.45) < 1e-3
    assert np.any(np.abs(np.asarray(table["z"]) - (main / 1215.67 - 1)) < 5e-3)


def test_template_covering_nothing_is_skipped_and_never_wins():
    template = datasets.make_template("lines")
    spectrum, _ = spectrum_of(template, 0.33, 20.0, seed=1)
    far = Template([100, 150, 200] * u.AA, [0.0, 1.0, 0.0], name="far")
    result = Correlator([far, template], zgrid(0.3, 0.4, 2e-4), **PLAIN).correlate(
        spectrum, progress=False)
    assert result.template_index == 1 and result.template_names == ["far", "synthetic-lines"]


def test_bin_average_reference_of_the_tests_is_exact():
    """The reference the tests use integrates a linear template exactly."""
    rest = np.array([1.0, 2.0, 4.0])
    flux = np.array([0.0, 2.0, 0.0])
    out = reference_bin_average(rest, flux, np.array([1.0, 3.0, 5.0]))
    np.testing.assert_allclose(out, [(1.0 + 1.5) / 2, (0.5 + 0.0) / 2])


def test_component_whose_line_is_off_the_data_is_outside():
    """A composite's component whose line lies beyond the data's red end is outside the
    fit (amplitude 0, not an active parameter), even though its Gaussian's far wings
    (~1e-73 of its peak) reach into the data. Before its table was trimmed
    (`~muse_xcorr.templates.resample.LogTable.trimmed`) the wings made it an active
    component (n_active 2: one more penalised amplitude)."""
    wave = datasets.muse_wavelength()
    oii = lines(["[OII]3726", "[OII]3729"], "oii", width=100 * u.km / u.s)
    hb = lines(["Hbeta"], "hb", width=100 * u.km / u.s)
    z_true = (wave.value[-1] + 60.0) / 4862.7 - 1.0     # Hbeta 60 A beyond the last pixel
    spectrum, _ = datasets.make_spectrum(oii, z=z_true, snr=15.0, seed=3, wavelength=wave,
                                         lsf=None)
    z = zgrid(z_true - 0.01, z_true + 0.01, 1e-4)
    correlator = Correlator([(oii, hb)], z, **PLAIN)
    k = np.argmin(np.abs(z - z_true))
    evaluation, _ = correlator.evaluate(spectrum, [0], [0], [[k]])
    assert evaluation.n_active[0, 0] == 1
    assert evaluation.amplitudes[0, 0, 1] == 0.0
    assert evaluation.amplitudes[0, 0, 0] > 0.0
    result = correlator.correlate(spectrum, progress=False)
    assert int(result.candidates("n_active")[0]) == 1
