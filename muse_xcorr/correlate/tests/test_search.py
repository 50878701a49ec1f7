"""The search over the redshift grid: coarse-to-fine against full, float32 against float64.

The coarse-to-fine test uses emission-line spectra (the "lines" template) on a
1000-pixel grid spanning the MUSE range, so that a long fine grid
(0.05 < z < 1.5 at dlnz = 1e-4, 8676 redshifts) stays quick to search in full.
"""
import warnings

import numpy as np
import pytest
from astropy.nddata import VarianceUncertainty

from muse_xcorr import Correlator, MuseCube, datasets, zgrid
from muse_xcorr.backend import _tensorflow as _tf_backend
from muse_xcorr.tests.reference import reference_ccf

LINES = datasets.make_template("lines")
WAVE = datasets.muse_wavelength(n_pixels=1000, step=4.6)  # 4750-9345 A, coarser pixels
LONG_GRID = zgrid(0.05, 1.5, 1e-4)


def line_spectra(shape, snr, seed, z=(0.1, 1.45), nan_fraction=0.0):
    rng = np.random.default_rng(seed)
    snr_map = rng.uniform(*snr, size=shape) if np.ndim(snr) else snr
    return datasets.make_cube(shape, LINES, z=z, snr=snr_map, seed=rng, wavelength=WAVE,
                              nan_fraction=nan_fraction, lsf=None)


@pytest.fixture(scope="module")
def full_and_coarse():
    """2000 emission-line spectra at S/N 5-50 searched both ways on the same operator."""
    cube, truth = line_spectra((40, 50), (5.0, 50.0), seed=6)
    options = {"continuum": None, "lsf": None, "batch_size": 2000}
    full = Correlator(LINES, LONG_GRID, search="full", **options)
    coarse = Correlator(LINES, LONG_GRID, search="coarse-to-fine", **options)
    return cube, truth, full.correlate(cube, progress=False), coarse.correlate(
        cube, progress=False), options


def test_coarse_to_fine_finds_the_full_grid_maximum(full_and_coarse):
    """Same z_best as the full fine grid on >= 99.9 % of the spectra (here: all but <= 2)."""
    cube, truth, full, coarse, _ = full_and_coarse
    same = coarse.best_index == full.best_index
    assert same.sum() >= 0.999 * same.size
    # the full search is right (within 2 fine steps) for most of them: a meaningful test
    assert np.mean(np.abs(full.z_best - truth["z"]) < 2e-4 * (1 + truth["z"])) > 0.95
    # where the peak is the same, every reported number is the same float64 value
    for name in ("z_best", "f_best", "sigma_f_best", "chi2_best"):
        np.testing.assert_allclose(getattr(coarse, name)[same], getattr(full, name)[same],
                                   rtol=1e-12, atol=0)


def test_coarse_to_fine_secondary_peak(full_and_coarse):
    """The second candidate, where both searches have one, is mostly the same."""
    _, _, full, coarse, _ = full_and_coarse
    second_full, second_coarse = full.candidates(
        "index")[..., 1], coarse.candidates("index")[..., 1]
    found = (second_coarse >= 0) & (second_full >= 0) & (coarse.best_index == full.best_index)
    agree = second_coarse[found] == second_full[found]
    assert agree.mean() > 0.9
    # the full search's second candidate is at least as good as the windows' one
    assert np.all(full.f_second[found] >= coarse.f_second[found] - 1e-6)


def test_coarse_to_fine_can_miss_on_noise(full_and_coarse):
    """The documented failure: with one seed, pure noise has spikes the coarse grid misses.

    The global maximum of a noise-only f is one narrow spike among many of
    nearly the same height; averaged over a coarse step it need not be the
    best coarse maximum.
    """
    options = full_and_coarse[-1]
    rng = np.random.default_rng(9)
    variance = datasets.muse_variance(WAVE)
    noise = rng.normal(size=(WAVE.size, 10, 20)) * np.sqrt(variance)[:, None, None]
    stat = np.broadcast_to(variance[:, None, None], noise.shape) * datasets.FLUX_UNIT ** 2
    noise_cube = MuseCube(WAVE, noise * datasets.FLUX_UNIT, VarianceUncertainty(stat),
                          medium="air", spectral_axis_index=0)
    full, one, many = (Correlator(LINES, LONG_GRID, search=search, n_seeds=n, **options)
                       for search, n in (("full", 8), ("coarse-to-fine", 1),
                                         ("coarse-to-fine", 8)))
    truth = full.correlate(noise_cube, progress=False).best_index
    missed_one = np.mean(one.correlate(noise_cube, progress=False).best_index != truth)
    missed_many = np.mean(many.correlate(noise_cube, progress=False).best_index != truth)
    assert missed_one > 0.05
    assert missed_many < missed_one


@pytest.mark.parametrize("weighting", ["uniform", "inverse_variance"])
def test_coarse_to_fine_with_masks_matches_reference(weighting):
    """Per-spectrum masks (several patterns) and both weightings: the float64 reference peak."""
    cube, _ = line_spectra((4, 5), 30.0, seed=3, z=(0.3, 1.2), nan_fraction=0.05)
    batch = cube.spectra()
    z = zgrid(0.25, 1.25, 2e-4)
    matrix = LINES.matrix(cube.spectral_axis, z, medium="air")
    result = Correlator(LINES, z, weighting=weighting, search="coarse-to-fine",
                        coarse_factor=8, continuum=None, lsf=None).correlate(cube,
                                                                             progress=False)
    for i in range(cube.n_spectra):
        f, sigma, _ = reference_ccf(batch.flux[i], batch.variance[i], batch.valid[i], matrix,
                                    weighting)
        k = int(np.nanargmax(f))
        y, x = np.unravel_index(i, cube.spatial_shape)
        assert result.best_index[y, x] == k
        assert result.f_best[y, x] == pytest.approx(f[k], abs=2e-5)
        assert result.sigma_f_best[y, x] == pytest.approx(sigma[k], rel=1e-4)


def test_float32_hot_path_on_full_muse_grid():
    """float32 search over 3681 pixels at f close to 1 against the float64 search.

    The search only proposes candidates; every reported value is float64, so
    z_best, f_best and sigma_f_best are identical, including where f > 0.999
    (where the terms of sigma_f cancel by ~1 / (1 - f^2)).
    """
    template = datasets.make_template()
    z = zgrid(0.40, 0.43, 1e-4)
    rng = np.random.default_rng(4)
    cube, _ = datasets.make_cube((2, 3), template, z=(0.405, 0.425), snr=[[20, 60, 150],
                                                                          [400, 1000, 3000]],
                                 seed=rng)
    options = {"continuum": None}
    r32 = Correlator(template, z, dtype="float32", **options).correlate(cube, progress=False)
    r64 = Correlator(template, z, dtype="float64", **options).correlate(cube, progress=False)
    assert np.nanmax(r32.f_best) > 0.999  # the cancellation regime is reached
    np.testing.assert_array_equal(r32.best_index, r64.best_index)
    for name in ("z_best", "f_best", "sigma_f_best", "chi2_best"):
        np.testing.assert_array_equal(getattr(r32, name), getattr(r64, name))


def test_search_options_are_checked():
    with pytest.raises(ValueError, match="search must be one of"):
        Correlator(LINES, LONG_GRID, search="fast")
    with pytest.raises(ValueError, match="coarse_factor must be an integer >= 2"):
        Correlator(LINES, LONG_GRID, search="coarse-to-fine", coarse_factor=1)
    assert Correlator(LINES, zgrid(0, 0.3, 1e-4)).search_mode == "full"
    assert Correlator(LINES, zgrid(0, 6.7, 1e-4)).search_mode == "coarse-to-fine"


def test_search_runs_on_gpu_when_tensorflow_sees_one():
    """Device placement: the template matrix and the search live on the GPU when there is one."""
    tf = _tf_backend.tensorflow()
    if not tf.config.list_physical_devices("GPU"):
        pytest.skip("TensorFlow sees no GPU")
    cube, _ = line_spectra((2, 3), 30.0, seed=2, z=(0.3, 1.2))
    z = zgrid(0.25, 1.25, 2e-4)
    correlator = Correlator(LINES, z)
    result = correlator.correlate(cube, progress=False)
    assert all("GPU" in device for device in correlator.search_devices(cube))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with tf.device("/CPU:0"):
            on_cpu = Correlator(LINES, z).correlate(cube, progress=False)
    np.testing.assert_array_equal(result.best_index, on_cpu.best_index)
    np.testing.assert_allclose(result.f_best, on_cpu.f_best, rtol=1e-12)


def test_spectra_sharing_their_variance_share_one_weight_row_and_find_the_reference_peak():
    # 12 spectra of 3 variances (one spectrum with a masked pixel more: a row of its own),
    # as a catalogue of one spectrum's noise draws: weights . T^2 is computed per
    # distinct row, and every peak is still the float64 reference's
    from muse_xcorr.correlate.model import WorkingBatch

    cube, _ = line_spectra((3, 4), 30.0, seed=8, z=(0.3, 1.2))
    rng = np.random.default_rng(8)
    # interleaved: a row's neighbours in memory are other variances
    sigma = rng.uniform(0.5, 2.0, size=(3, cube.n_pixels))[np.arange(12) % 3]
    flux = cube.spectra().flux + rng.normal(size=sigma.shape) * sigma
    flux[5, 100] = np.nan
    shared = MuseCube(cube.spectral_axis, flux.reshape(3, 4, -1) * cube.flux.unit,
                      VarianceUncertainty(sigma.reshape(3, 4, -1) ** 2),
                      medium="air", spectral_axis_index=2)
    batch = shared.spectra()
    work = WorkingBatch(batch, "inverse_variance", None, shared.spectral_axis, 10)
    data, weights, row = work.search_arrays("float32")
    assert weights.shape[0] == 4 and row.shape == (12,)
    w = batch.inverse_variance()
    expected = (w / w.max(axis=1, keepdims=True)).astype(np.float32)
    np.testing.assert_array_equal(weights[row], expected)
    z = zgrid(0.25, 1.25, 2e-4)
    matrix = LINES.matrix(shared.spectral_axis, z, medium="air")
    result = Correlator(LINES, z, search="coarse-to-fine", coarse_factor=8, continuum=None,
                        lsf=None).correlate(shared, progress=False)
    for i in range(shared.n_spectra):
        f, sigma_f, _ = reference_ccf(batch.flux[i], batch.variance[i], batch.valid[i], matrix,
                                      "inverse_variance")
        k = int(np.nanargmax(f))
        y, x = np.unravel_index(i, shared.spatial_shape)
        assert result.best_index[y, x] == k
        assert result.f_best[y, x] == pytest.approx(f[k], abs=2e-5)
        assert result.sigma_f_best[y, x] == pytest.approx(sigma_f[k], rel=1e-4)


def test_composite_window_scores_fitted_only_where_they_can_win_keep_every_best():
    """`window_best` fits a composite only at the window samples whose bound
    ``sqrt(sum max(a, 0)^2 / b)`` reaches the score of the sample of largest bound:
    every window's best sample and score are those of fitting every sample (a
    reference written here), with strong peaks, exact ties, absent components, empty
    windows and missing windows."""
    from types import SimpleNamespace

    from muse_xcorr.correlate.search import _composite_scores
    from muse_xcorr.templates.composite import fit_amplitudes

    rng = np.random.default_rng(3)
    n, s, w = 40, 3, 31
    prepared = SimpleNamespace(lower=np.array([0.2, 1.0, 0.0, 0.3]),
                               upper=np.array([5.0, 1.0, np.inf, 10.0]))
    a = rng.normal(0.0, 1.0, (n, s, w, 4))
    b = rng.uniform(0.5, 2.0, (n, s, w, 4))
    a[:10, 0, 12] += 6.0                                   # a line at one sample
    a[10:15, 1, 20], b[10:15, 1, 20] = a[10:15, 1, 5], b[10:15, 1, 5]   # exact ties
    a[15:20, :, :, 2] = b[15:20, :, :, 2] = 0.0            # a component off the data
    a[20:22, 2] = b[20:22, 2] = 0.0                        # a window without sums
    has = np.ones((n, s), bool)
    has[30:, 2] = False                                    # no window
    got = np.where(has[..., None], _composite_scores(a, b, prepared, has), -np.inf)

    amplitude = fit_amplitudes(a, b, prepared.lower, prepared.upper)
    inner = np.einsum("nswk,nswk->nsw", amplitude, a)
    model2 = np.einsum("nswk,nswk,nswk->nsw", amplitude, amplitude, b)
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = np.where(model2 > 0, inner / np.sqrt(model2), 0.0)
    expected = np.where(np.any(b > 0, axis=-1) & has[..., None], expected, -np.inf)
    best = np.argmax(expected, axis=-1)
    np.testing.assert_array_equal(np.argmax(got, axis=-1), best)
    np.testing.assert_allclose(np.take_along_axis(got, best[..., None], -1),
                               np.take_along_axis(expected, best[..., None], -1),
                               rtol=1e-14, atol=0)
    # no sample scores above its window's best, and most are never fitted
    top = np.max(expected, axis=-1)
    live = np.isfinite(top)
    assert np.all(got[live] <= (top[live] + 1e-12 * np.abs(top[live]))[:, None])
    assert np.all(got[~live] == -np.inf)
    assert np.mean(np.isfinite(got[has])) < 0.7
