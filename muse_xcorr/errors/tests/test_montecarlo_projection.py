"""The Monte Carlo draws the numerators of f, not whole spectra: same distribution of z*.

Brute force: 3000 whole copies x* = m + n* of each spectrum (m its fitted
model), projected on the window columns pixel by pixel. Projected: the
numerators <x*, T_k> drawn from their exact Gaussian distribution. At S/N 25,
where z* has no jumps to other peaks, each standard deviation is known to
1/sqrt(2 * 3000) = 1.3 %, their ratio to 1.8 %: it must be within 8 % per
spectrum (4.4 of those) and within 3 % on average over the six spectra (4 of
those), for both weightings and both perturbations; the same for the 16-84 %
half-widths.
"""
import numpy as np
import pytest

from muse_xcorr import Correlator, datasets, zgrid
from muse_xcorr.errors._resample import DEFAULT_WINDOW, resampled_sigma
from muse_xcorr.errors.montecarlo import estimate

N_SAMPLES = 3000


@pytest.fixture(scope="module", params=["uniform", "inverse_variance"])
def result(request):
    template = datasets.make_template("starforming")
    cube, _ = datasets.make_cube((2, 3), template, z=(0.41, 0.42), snr=25.0, seed=3,
                                 wavelength=datasets.muse_wavelength(1800, 5500.0))
    return Correlator(template, zgrid(0.38, 0.45, 1e-4), weighting=request.param).correlate(
        cube, progress=False)


@pytest.mark.parametrize("perturb", ["model", "data"])
def test_projected_montecarlo_matches_whole_spectra(result, perturb):
    def whole_spectra(work, model, vectors, n, rng):
        base = model if perturb == "model" else work.flux
        noise = rng.standard_normal((base.shape[0], n, base.shape[1]))
        copies = base[:, None, :] + noise * np.sqrt(work.variance)[:, None, :]
        return np.einsum("nvp,nsp->nsv", vectors, copies * work.q[:, None, :])

    brute, brute_p68 = resampled_sigma(result, whole_spectra, window=DEFAULT_WINDOW,
                                       n_samples=N_SAMPLES, rng=np.random.default_rng(1))
    projected = estimate(result, n_samples=N_SAMPLES, seed=2, perturb=perturb)
    for ratio in (projected.sigma / brute.sigma,
                  projected.extra["zerr_montecarlo_p68"] / brute_p68):
        assert np.all(np.isfinite(ratio))
        np.testing.assert_allclose(ratio, 1.0, atol=0.08)
        assert abs(np.mean(ratio) - 1) < 0.03
