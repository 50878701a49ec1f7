"""The correlator against the independent float64 reference, and its flags.

The reference columns are the exact bin averages of the piecewise-linear
template (``Template.matrix``); the correlator evaluates them from a table
uniform in ln(lambda) (templates/resample.py), which agrees to ~1e-4 of the
column values: hence the stated tolerances of f (2e-5) and sigma_f (1e-4).
The continuum and the line spread are switched off here (``PLAIN``): their
own tests are in templates/tests.
"""
import warnings

import numpy as np
import pytest
import astropy.units as u
from astropy.nddata import VarianceUncertainty
from astropy.utils.exceptions import AstropyUserWarning

from muse_xcorr import Correlator, MuseCube, MuseSpectrum, Template, datasets, zgrid
from muse_xcorr.flags import Flag
from muse_xcorr.tests.reference import reference_ccf

WAVE = datasets.muse_wavelength(n_pixels=600, start=6000.0)
TEMPLATE = datasets.make_template()
Z = zgrid(0.30, 0.36, 5e-4)
#: The correlator without continuum subtraction and line spread, to compare with the reference.
PLAIN = {"continuum": None, "lsf": None}


def random_cube(seed, shape=(3, 4), mask_fraction=0.1, snr=20.0):
    """Spectra from the template at random z, plus noise, with random per-spaxel masks."""
    rng = np.random.default_rng(seed)
    cube, truth = datasets.make_cube(shape, TEMPLATE, z=(0.31, 0.35), snr=snr, seed=rng,
                                     wavelength=WAVE, lsf=None)
    mask = rng.random(cube.flux.shape) < mask_fraction
    return MuseCube(cube.spectral_axis, cube.flux, cube.uncertainty, mask, medium="air",
                    wcs=cube.wcs), truth


def matrix_for(cube):
    return TEMPLATE.matrix(cube.spectral_axis, Z, medium=cube.medium)


def batch_valid(cube, i):
    return cube.spectra().valid[i]


def reference_for(cube, weighting, correction=True):
    batch = cube.spectra()
    matrix = matrix_for(cube)
    return [reference_ccf(batch.flux[i], batch.variance[i], batch.valid[i], matrix, weighting,
                          correction)
            for i in range(cube.n_spectra)]


@pytest.mark.parametrize("weighting", ["uniform", "inverse_variance"])
def test_peak_values_match_float64_reference(weighting):
    """f_best, sigma_f_best, chi2 as the reference; z_best is the parabola through it."""
    cube, _ = random_cube(1)
    result = Correlator(TEMPLATE, Z, weighting=weighting, **PLAIN).correlate(cube,
                                                                             progress=False)
    refs = reference_for(cube, weighting)
    for i, (f, sigma, chi2) in enumerate(refs):
        k = int(np.argmax(f))
        y, x = np.unravel_index(i, cube.spatial_shape)
        assert result.best_index[y, x] == k
        assert result.f_best[y, x] == pytest.approx(f[k], abs=2e-5)
        assert result.sigma_f_best[y, x] == pytest.approx(sigma[k], rel=1e-4)
        # parabola vertex through the three reference samples (a 1e-5 error of f moves it
        # by ~1e-4 of the step)
        z3, f3 = Z[k - 1:k + 2], f[k - 1:k + 2]
        coeffs = np.polyfit(z3, f3, 2)
        assert result.z_best[y, x] == pytest.approx(-coeffs[1] / (2 * coeffs[0]), abs=5e-7)
        # the weighted chi2 of the fitted model, in both weightings
        w = np.where(batch_valid(cube, i), 1 / np.where(batch_valid(cube, i),
                                                        cube.spectra().variance[i], 1), 0)
        d, t = cube.spectra().flux[i], matrix_for(cube)[:, k]
        q = w if weighting == "inverse_variance" else batch_valid(cube, i).astype(float)
        amplitude = max(np.sum(q * d * t) / np.sum(q * t * t), 0.0)
        expected = np.sum(w * (d - amplitude * t) ** 2)
        assert result.chi2_best[y, x] == pytest.approx(expected, rel=2e-5)
        if weighting == "inverse_variance":
            assert result.chi2_best[y, x] == pytest.approx(chi2[k], rel=2e-5)


@pytest.mark.parametrize("weighting", ["uniform", "inverse_variance"])
def test_kept_curves_match_reference(weighting):
    """keep_ccf: f and sigma_f over the whole grid, float64, against the reference."""
    cube, _ = random_cube(2)
    result = Correlator(TEMPLATE, Z, weighting=weighting, keep_ccf=True, **PLAIN).correlate(
        cube, progress=False)
    for i, (f, sigma, _) in enumerate(reference_for(cube, weighting)):
        y, x = np.unravel_index(i, cube.spatial_shape)
        z, f_kept, sigma_kept = result.ccf(y, x)
        np.testing.assert_allclose(f_kept, f, atol=2e-5, rtol=0)
        np.testing.assert_allclose(sigma_kept, sigma, rtol=1e-4)


@pytest.mark.parametrize("weighting", ["uniform", "inverse_variance"])
def test_ccf_recomputed_in_float64(weighting):
    cube, _ = random_cube(3, shape=(2, 2))
    result = Correlator(TEMPLATE, Z, weighting=weighting, **PLAIN).correlate(cube,
                                                                             progress=False)
    f, sigma, _ = reference_for(cube, weighting)[3]
    z, f_pkg, sigma_pkg = result.ccf(1, 1)
    np.testing.assert_array_equal(z, Z)
    np.testing.assert_allclose(f_pkg, f, rtol=0, atol=2e-5)
    np.testing.assert_allclose(sigma_pkg, sigma, rtol=1e-4)


def test_float32_hot_path_agrees_with_float64():
    """The hot-path dtype changes nothing reported: same candidates, same values."""
    cube, _ = random_cube(4)
    r32 = Correlator(TEMPLATE, Z, dtype="float32").correlate(cube, progress=False)
    r64 = Correlator(TEMPLATE, Z, dtype="float64").correlate(cube, progress=False)
    np.testing.assert_array_equal(r32.best_index, r64.best_index)
    np.testing.assert_allclose(r32.z_best, r64.z_best, rtol=0, atol=1e-12)
    np.testing.assert_allclose(r32.f_best, r64.f_best, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(r32.candidates("index"), r64.candidates("index"))
    np.testing.assert_allclose(r32.f_second, r64.f_second, rtol=0, atol=1e-12)


def test_first_order_option_matches_uncorrected_reference():
    cube, _ = random_cube(5, shape=(2, 3))
    result = Correlator(TEMPLATE, Z, sigma_correction=False, weighting="uniform",
                        **PLAIN).correlate(cube, progress=False)
    for i, (f, sigma, _) in enumerate(reference_for(cube, "uniform", correction=False)):
        y, x = np.unravel_index(i, cube.spatial_shape)
        assert result.sigma_f_best[y, x] == pytest.approx(sigma[np.argmax(f)], rel=1e-4)


def test_per_spaxel_masks_are_exact_not_shared():
    """Two spaxels with the same data but different masks get their own template norms."""
    cube, _ = random_cube(6, shape=(1, 2), mask_fraction=0.0)
    flux = cube.flux.copy()
    flux[:, 0, 1] = flux[:, 0, 0]
    mask = np.zeros(flux.shape, bool)
    mask[100:300, 0, 1] = True  # a big gap in the second spaxel only
    masked = MuseCube(cube.spectral_axis, flux, cube.uncertainty, mask, medium="air")
    result = Correlator(TEMPLATE, Z, weighting="uniform", **PLAIN).correlate(masked,
                                                                             progress=False)
    batch = masked.spectra()
    matrix = TEMPLATE.matrix(WAVE, Z, medium="air")
    for x in range(2):
        f, _, _ = reference_ccf(batch.flux[x], batch.variance[x], batch.valid[x], matrix)
        np.testing.assert_allclose(result.ccf(0, x)[1], f, atol=2e-5)
    assert not np.allclose(result.ccf(0, 0)[1], result.ccf(0, 1)[1], atol=1e-4)


def test_recovers_known_redshift_in_simulated_cube():
    cube, truth = datasets.make_cube((4, 5), z=(0.32, 0.66), snr=40, seed=11)
    z = zgrid(0.3, 0.7, 1e-4)
    result = Correlator(datasets.make_template(), z).correlate(cube, progress=False)
    assert result.meta["continuum"].startswith("median") and result.meta["lsf"] == "muse"
    assert np.all(result.flags == 0)
    # within half a grid step (1e-4 in ln(1+z) = 30 km/s): the refinement never does
    # worse than the nearest sample; the noise at S/N 40 moves z by ~1e-5 (1+z)
    offsets = np.abs(np.log1p(result.z_best) - np.log1p(truth["z"]))
    assert np.max(offsets) < 0.5e-4
    # and better than the grid alone on average (uniform sub-step offsets give 0.25 step)
    assert np.mean(offsets) < 0.2e-4


def test_air_vacuum_conversion_is_a_known_shift():
    """Data in air, template in vacuum: handled, z is right; mislabelled, z shifts by n_air - 1."""
    from muse_xcorr.units import convert_medium

    z_true = 0.45
    spectrum, truth = datasets.make_spectrum(TEMPLATE, z=z_true, snr=300, seed=3)
    grid = zgrid(0.44, 0.46, 2e-5)
    right = Correlator(TEMPLATE, grid).correlate(spectrum, progress=False)
    assert abs(right.z_best - z_true) < 5e-6
    # the same numbers claimed to be vacuum wavelengths: the fit is off by the refraction
    as_vacuum = MuseSpectrum(spectrum.spectral_axis, spectrum.flux, spectrum.uncertainty,
                             medium="vacuum")
    wrong = Correlator(TEMPLATE, grid).correlate(as_vacuum, progress=False)
    lam = 7000.0 * u.AA
    refraction = (convert_medium(lam, "air", "vacuum") / lam).decompose().value - 1
    expected = (1 + z_true) / (1 + refraction) - 1  # air numbers read as vacuum are shorter
    assert wrong.z_best - z_true == pytest.approx(expected - z_true, rel=0.05)
    assert abs(wrong.z_best - z_true) * 299792.458 / (1 + z_true) > 70  # km/s


def test_flags_and_nan_handling_keep_other_spaxels():
    cube, truth = datasets.make_cube((3, 3), TEMPLATE, z=0.33, snr=30, seed=8, wavelength=WAVE)
    flux = cube.flux.value.copy()
    var = cube.uncertainty.array.copy()
    flux[:, 0, 0] = np.nan                 # empty spaxel
    var[50:60, 0, 1] = 0.0                 # zero variance in a few pixels
    var[70, 0, 2] = -1.0                   # negative variance
    flux[:, 1, 0] = 0.0                    # flux zero everywhere
    flux[:595, 1, 1] = np.nan              # five valid pixels only
    before = flux.copy()
    data = MuseCube(WAVE, flux * cube.flux.unit,
                    VarianceUncertainty(var, unit=cube.uncertainty.unit), medium="air")
    result = Correlator(TEMPLATE, Z).correlate(data, progress=False)
    np.testing.assert_array_equal(flux, before)  # input untouched
    assert result.flags[0, 0] & Flag.NO_DATA and np.isnan(result.z_best[0, 0])
    assert result.flags[1, 0] & Flag.NO_DATA and np.isnan(result.f_best[1, 0])
    assert result.flags[1, 1] & Flag.FEW_PIXELS and np.isnan(result.sigma_f_best[1, 1])
    for y, x in [(0, 1), (0, 2)]:
        assert result.flags[y, x] == Flag.BAD_VARIANCE
        assert result.n_valid[y, x] < WAVE.size
        assert abs(result.z_best[y, x] - 0.33) < 1e-3
    good = result.flags == 0
    assert good.sum() == 4
    assert np.all(np.isfinite(result.z_best[good]))
    assert np.all(np.abs(result.z_best[good] - 0.33) < 1e-3)


def test_edge_and_negative_peak_flags():
    spectrum, _ = datasets.make_spectrum(TEMPLATE, z=0.40, snr=50, seed=1, wavelength=WAVE,
                                         variance=np.ones(WAVE.size))
    edge = Correlator(TEMPLATE, zgrid(0.30, 0.35, 5e-4), **PLAIN).correlate(spectrum,
                                                                            progress=False)
    assert edge.flags & Flag.EDGE
    # an absorption feature against an emission-line template: a negative correlation
    lines = datasets.make_template("lines")
    inverted = MuseSpectrum(WAVE, -spectrum.flux, spectrum.uncertainty, medium="air")
    result = Correlator(lines, zgrid(0.30, 0.50, 5e-4)).correlate(inverted, progress=False)
    assert result.flags & Flag.NEGATIVE_PEAK
    assert result.f_max < np.abs(result.f_min)


def test_low_coverage_flag():
    """A template ending at 4650 A rest covers at most 43 % of 6000-6750 A at z <= 0.36."""
    short = Template(TEMPLATE.wavelength[TEMPLATE.wavelength < 4650 * u.AA],
                     TEMPLATE.flux[TEMPLATE.wavelength.value < 4650], name="blue part")
    spectrum, _ = datasets.make_spectrum(TEMPLATE, z=0.33, snr=30, seed=2, wavelength=WAVE)
    result = Correlator(short, Z, continuum=None).correlate(spectrum, progress=False)
    assert result.coverage < 0.5
    assert result.flags & Flag.LOW_COVERAGE


def test_clear_errors_for_bad_input():
    spectrum, _ = datasets.make_spectrum(TEMPLATE, z=0.33, snr=30, seed=2, wavelength=WAVE)
    far = Template([100, 200, 300] * u.AA, [1, 2, 1], name="far")
    with pytest.raises(ValueError, match="covers the data's wavelengths"):
        Correlator(far, Z, continuum=None).correlate(spectrum, progress=False)
    with pytest.raises(TypeError, match="Template"):
        Correlator(np.ones(10), Z)
    with pytest.raises(ValueError, match="weighting"):
        Correlator(TEMPLATE, Z, weighting="chi")
    with pytest.raises(ValueError, match="increasing"):
        Correlator(TEMPLATE, Z[::-1])
    with pytest.raises(TypeError, match="cannot correlate"):
        Correlator(TEMPLATE, Z).correlate(np.ones(600), progress=False)
    no_errors = MuseSpectrum(WAVE, spectrum.flux, medium="air")
    with pytest.raises(ValueError, match="no uncertainty"):
        Correlator(TEMPLATE, Z).correlate(no_errors, progress=False)
    for name, value in [("batch_size", 2.5), ("n_candidates", 0), ("n_seeds", -1),
                        ("coarse_factor", 1)]:
        with pytest.raises(ValueError, match=name):
            Correlator(TEMPLATE, Z, **{name: value})
    for name in ("min_coverage", "composite_penalty", "ambiguity_threshold"):
        with pytest.raises(ValueError, match=name):
            Correlator(TEMPLATE, Z, **{name: np.nan})
    with pytest.raises(ValueError, match="exclusion"):
        Correlator(TEMPLATE, Z, exclusion=-5 * u.km / u.s)


def test_batches_do_not_change_the_answer():
    cube, _ = random_cube(9, shape=(3, 5))
    whole = Correlator(TEMPLATE, Z, batch_size=1000).correlate(cube, progress=False)
    parts = Correlator(TEMPLATE, Z, batch_size=4).correlate(cube, progress=False)
    for name in ("z_best", "f_best", "sigma_f_best", "z_second", "flags", "delta_chi2"):
        np.testing.assert_array_equal(getattr(whole, name), getattr(parts, name))


def test_parabola_vertex_exact_and_quiet():
    from muse_xcorr.statistics import parabola_vertex

    x = np.array([[0.1, 0.4, 1.3], [2.0, 2.0, 2.5], [0.0, 1.0, 2.0]])
    y = np.stack([-3 * (x[0] - 0.7) ** 2 + 2, [1.0, 1.0, 0.5], (x[2] - 1) ** 2])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        vertex = parabola_vertex(x, y)
    assert vertex[0] == pytest.approx(0.7, abs=1e-12)   # uneven spacing, exact
    assert np.isnan(vertex[1])                          # repeated abscissa (grid edge)
    assert np.isnan(vertex[2])                          # a minimum, not a maximum


def correlated_cube(seed, shape=(3, 5), snr=20.0):
    """A cube whose noise is a 3-tap moving average (lag-1 correlation 2/3)."""
    rng = np.random.default_rng(seed)
    n = shape[0] * shape[1]
    variance = datasets.muse_variance(WAVE)
    models = datasets.observed_models(TEMPLATE, WAVE, rng.uniform(0.31, 0.35, n), lsf=None)
    models *= (snr / np.sqrt(np.sum(models ** 2 / variance, axis=1)))[:, None]
    white = rng.standard_normal(models.shape)
    smooth = (white + np.roll(white, 1, -1) + np.roll(white, -1, -1)) / np.sqrt(3.0)
    flux = (models + smooth * np.sqrt(variance)).reshape(shape + (WAVE.size,))
    stat = np.broadcast_to(variance, flux.shape)
    return MuseCube(WAVE, flux * datasets.FLUX_UNIT,
                    VarianceUncertainty(stat * datasets.FLUX_UNIT ** 2), medium="air",
                    spectral_axis_index=-1)


def test_parts_saved_and_completed_assemble_to_correlate_with_correlated_noise(tmp_path):
    """Parts through to_arrays / from_arrays (a checkpoint), then complete: = correlate.

    With correlated noise the run's noise correlation is pooled from every
    part's residuals afterwards; a resumed or distributed run must finish
    its parts with it as correlate() does.
    """
    from muse_xcorr.correlate.correlator import Part
    from muse_xcorr.io.checkpoint import load_part, save_part

    cube = correlated_cube(3)
    correlator = Correlator(TEMPLATE, Z, batch_size=4)
    whole = correlator.correlate(cube, progress=False)
    assert whole.noise_correlation.size and whole.noise_correlation[0] > 0.4
    noise = correlator.noise_for(cube)
    assert noise is None  # few spectra: pooled afterwards
    for start in (0, 6, 12):
        save_part(correlator.correlate_rows(cube, start, start + 6, rho=()),
                  tmp_path / f"part-{start}.npz")
    parts = [load_part(tmp_path / f"part-{start}.npz", Part) for start in (12, 0, 6)]
    assert isinstance(parts[0], Part) and parts[0].residuals.count > 0
    assembled = correlator.assemble(cube, correlator.complete(cube, parts, noise))
    # the residual sums are merged in another order: equal to rounding
    np.testing.assert_allclose(assembled.noise_correlation, whole.noise_correlation,
                               rtol=1e-12)
    for name in ("flags", "template_index"):
        np.testing.assert_array_equal(getattr(assembled, name), getattr(whole, name))
    for name in ("z_best", "f_best", "sigma_f_best", "delta_chi2", "fap"):
        np.testing.assert_allclose(getattr(assembled, name), getattr(whole, name), rtol=1e-9)
    np.testing.assert_allclose(assembled.candidates("kappa"), whole.candidates("kappa"),
                               rtol=1e-9)
    # without complete(), the variances would be those of white noise: not the same
    white = correlator.assemble(cube, parts)
    assert not np.allclose(white.sigma_f_best, whole.sigma_f_best)


def test_a_pickled_correlator_leaves_its_prepared_templates_behind():
    import pickle

    cube, _ = random_cube(11, shape=(2, 2))
    correlator = Correlator(TEMPLATE, Z)
    first = correlator.correlate(cube, progress=False)
    unprepared = len(pickle.dumps(Correlator(TEMPLATE, Z)))
    sent = pickle.dumps(correlator)
    assert len(sent) < unprepared + 1000  # not the prepared columns (MB)
    copy = pickle.loads(sent)
    np.testing.assert_array_equal(copy.correlate(cube, progress=False).z_best, first.z_best)


def test_parts_in_any_order_assemble_to_the_whole():
    """correlate_rows + assemble (the unit of distributed and resumed runs) = correlate."""
    cube, _ = random_cube(10, shape=(3, 5))
    correlator = Correlator(TEMPLATE, Z, batch_size=4)
    whole = correlator.correlate(cube, progress=False)
    parts = [correlator.correlate_rows(cube, start, start + 6) for start in (12, 0, 6)]
    assembled = correlator.assemble(cube, parts)
    for name in ("z_best", "f_best", "sigma_f_best", "flags", "delta_chi2", "template_index"):
        np.testing.assert_array_equal(getattr(assembled, name), getattr(whole, name))
    np.testing.assert_array_equal(assembled.candidates("z"), whole.candidates("z"))
    with pytest.raises(ValueError, match="exactly once"):
        correlator.assemble(cube, parts[:2])
    with pytest.raises(ValueError, match="outside"):
        correlator.correlate_rows(cube, -1, 3)


def test_working_batches_kept_for_the_noise_pass_give_the_same_result():
    # correlate() keeps the working batches of a small data set for the second pass with
    # the measured noise correlation; parts computed without them (as on a cluster or from
    # checkpoints) must give exactly the same maps and candidates
    from muse_xcorr.correlate.model import WorkingBatch

    from muse_xcorr.population import make_population

    template = datasets.make_template("starforming")
    cube = make_population(15, seed=21, classes="oii", snr=(6.0, 30.0),
                           correlated_noise=(0.3, 0.4))[0]
    correlator = Correlator(template, zgrid(0.2, 1.5, 2e-4), batch_size=4)
    direct = correlator.correlate(cube, progress=False)
    parts = [correlator.correlate_rows(cube, start, start + 4)
             for start in range(0, cube.n_spectra, 4)]
    assert all(part.work is None for part in parts)
    rebuilt = correlator.assemble(cube, correlator.complete(cube, parts, None))
    assert direct.noise_correlation[0] > 0.2     # the second pass did run with a correlation
    for name in direct.map_names:
        np.testing.assert_array_equal(direct.map(name), rebuilt.map(name), err_msg=name)
    np.testing.assert_array_equal(direct.candidates("sigma_f"), rebuilt.candidates("sigma_f"))
    # and with_correlation is a batch built for that correlation from the start
    batch = cube.spectra_at(np.arange(4))
    rho = direct.noise_correlation
    white = WorkingBatch(batch, "inverse_variance", correlator.continuum, cube.spectral_axis,
                         10).with_correlation(rho)
    fresh = WorkingBatch(batch, "inverse_variance", correlator.continuum, cube.spectral_axis,
                         10, rho=rho)
    for name in ("sum_v2", "r", "rho", "flux", "w"):
        np.testing.assert_array_equal(getattr(white, name), getattr(fresh, name), err_msg=name)


def test_continuum_none_with_a_template_set_warns_and_one_template_does_not():
    # without continuum subtraction the templates' continua pick the winner:
    # measured to give unflagged wrong redshifts with the default set
    star = datasets.make_template("starforming")
    passive = datasets.make_template("passive")
    with pytest.warns(AstropyUserWarning, match="continuum=None with 2 templates"):
        Correlator([star, passive], zgrid(0.2, 0.4, 1e-3), continuum=None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Correlator(star, zgrid(0.2, 0.4, 1e-3), continuum=None)
        Correlator([star, passive], zgrid(0.2, 0.4, 1e-3))


@pytest.mark.parametrize("rho1", [0.0, 0.36])
def test_measured_noise_correlation_is_that_of_the_noise_before_continuum_subtraction(rho1):
    """600 noise-only spectra (the sample path of noise_correlation_of), white or with
    the 3-tap kernel's lag-1 0.36 and lag-2 0.035: the measured lags match those of the
    noise itself within 5e-3 (the template fit absorbs 3-4e-3 at lags 1-2 of correlated
    noise), where the running median alone leaves -0.0055 (white)
    to -0.014 (rho1 0.36) at every lag in the residuals: measured without the baseline,
    lag 2 came out at 0.018 and lags 3-5 at -0.014."""
    template = datasets.make_template("starforming")
    cube, _ = datasets.make_cube((20, 30), template, z=(0.3, 0.5), snr=0.0, seed=4, rho1=rho1)
    correlator = Correlator(template, zgrid(0.3, 0.5, 5e-4))
    baseline = correlator.subtraction_baseline(cube)
    assert np.all((baseline > -0.012) & (baseline < -0.002)), baseline
    baseline[:] = 0.0                        # a copy: the cached one is unchanged
    again = correlator.subtraction_baseline(cube)
    assert np.all(again < -0.002)
    # the reference: the lags of this very noise, before any processing (NumPy)
    flux, variance = np.asarray(cube.flux.value), np.asarray(cube.uncertainty.array)
    white = (flux / np.sqrt(variance)).reshape(flux.shape[0], -1)
    expected = np.array([np.sum(white[:-k] * white[k:]) / np.sum(white[:-k] ** 2)
                         for k in (1, 2)])
    kernel = datasets.kernel_for_rho(rho1)
    assert abs(expected[0] - 2 * kernel[0] * kernel[1]) < 3e-3      # the sample is the kernel's
    measured = correlator.noise_correlation_of(cube)
    padded = np.zeros(5)
    padded[:measured.size] = measured
    np.testing.assert_allclose(padded[:2], expected, atol=5e-3)
    np.testing.assert_allclose(padded[2:], 0.0, atol=5e-3)
    assert Correlator(template, zgrid(0.3, 0.5, 5e-4), continuum=None) \
        .subtraction_baseline(cube).tolist() == [0.0] * 5


@pytest.mark.parametrize("rows", [[2, 3, 4, 5], [0, 2, 1, 3], [3, 3, 4], [-2, -1], [5, 1]])
def test_a_subset_of_a_working_batch_holds_its_rows(rows):
    """Every per-row array of a subset is those rows of the batch, whether the rows are
    consecutive (a view: nothing is copied) or not (permuted, repeated, negative)."""
    from muse_xcorr.correlate.model import WorkingBatch

    cube, _ = datasets.make_cube((2, 4), z=(0.3, 0.4), snr=10, seed=4)
    continuum = Correlator(datasets.make_template(), zgrid(0.2, 0.5, 1e-3)).continuum
    work = WorkingBatch(cube.spectra_at(np.arange(8)), "inverse_variance", continuum,
                        cube.spectral_axis, 10)
    sub = work.subset(np.array(rows))
    assert len(sub) == len(rows)
    for name in ("flux", "w", "q", "qd", "sigma_q", "norm2", "norm2_w", "r", "skipped"):
        np.testing.assert_array_equal(getattr(sub, name), getattr(work, name)[rows], err_msg=name)
    consecutive = rows == list(range(rows[0], rows[0] + len(rows))) and rows[0] >= 0
    assert np.shares_memory(sub.flux, work.flux) == consecutive
