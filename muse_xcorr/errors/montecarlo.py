"""Monte Carlo noise injection (science.md section 3).

Each spectrum is replaced n_samples times by d* = A T(z_best) + n*,
n* ~ N(0, variance) (the best-fit model plus fresh noise), z* is recomputed
around the best and the best secondary peak (:mod:`._resample`) and sigma_z
is the standard deviation of z*; the 16-84 percentile half-width is kept
too, as ``zerr_montecarlo_p68``. This catches non-Gaussian and two-peak
cases that first-order formulas miss.

The copies are not built pixel by pixel. In a copy, f_k = <x*, t_k> / ||x*||
over the window's template columns t_k; ||x*|| is the same for every k, so
the argmax and the parabola through it, hence z*, depend only on the
numerators <x*, t_k>. With Gaussian noise these are exactly jointly Gaussian
(mean from the model, covariance sum_j v_j t_jk t_jl in the working space),
so they are drawn directly: w numbers per copy instead of n_pixel, the same
distribution of z* (tested against whole simulated spectra), about a
hundred times less work.

With ``perturb="data"`` the copies are d* = d + n* instead. d* then carries
the noise twice (variance 2 v): measured against z_true, the error of z* is
sqrt(2) times that of z_best, and that is the factor usually quoted. But the
scatter of z* *about its own centre*, with d held fixed, comes from n* alone
and is, to first order, the error of z_best itself: no sqrt(2) to divide out.
benchmarks/calibration.py measures it: at S/N >= 20 the median ratio of the
two Monte Carlo sigmas is 1.00 and both give pull widths of 1.01-1.05, so
:data:`DATA_PERTURBATION_FACTOR` is 1. Below S/N ~15 the doubled noise makes
the copies jump to other peaks and the data option overestimates sigma_z
(pull width 0.2-0.6): use the default ``"model"``.
"""
import numpy as np

from astropy.utils.decorators import format_doc

from ._resample import DEFAULT_WINDOW, RESAMPLING_PARAMETERS, resampled_sigma

__all__ = ["estimate", "DATA_PERTURBATION_FACTOR", "DEFAULT_WINDOW"]

#: Factor applied to the scatter of z* when the data themselves are perturbed.
DATA_PERTURBATION_FACTOR = 1.0


@format_doc(None, resampling=RESAMPLING_PARAMETERS)
def estimate(result, *, window=DEFAULT_WINDOW, n_samples=200, seed=None, perturb="model", **_):
    """sigma_z from noise injection.

    Parameters
    ----------
    {resampling}
    perturb : {{"model", "data"}}
        Add the noise to the best-fit model (default) or to the data.

    Returns
    -------
    estimate : `~muse_xcorr.errors._window.Estimate`
    """
    if perturb not in ("model", "data"):
        raise ValueError(f"perturb must be 'model' or 'data', got {perturb!r}")
    rng = np.random.default_rng(seed)

    def sample(operator, batch, model, index, scale, n, rng):
        base = model if perturb == "model" else batch.flux
        mean, cov = operator.numerator_moments(index, scale, batch.variance, base)
        return mean[:, None, :] + rng.standard_normal((mean.shape[0], n, mean.shape[1])) @ \
            np.swapaxes(_matrix_root(cov), 1, 2)

    out, robust = resampled_sigma(result, sample, window=window, n_samples=n_samples, rng=rng)
    if perturb == "data":
        out.sigma *= DATA_PERTURBATION_FACTOR
        robust *= DATA_PERTURBATION_FACTOR
    out.extra["zerr_montecarlo_p68"] = robust
    return out


def _matrix_root(cov):
    """L with L L^T = cov for a stack of covariance matrices (n, w, w).

    By eigen-decomposition, not Cholesky: neighbouring f(z_k) are correlated
    at 0.98 and more, so the window covariance is nearly singular; rounding
    below zero is clipped.
    """
    values, vectors = np.linalg.eigh(cov)
    return vectors * np.sqrt(np.clip(values, 0.0, None))[:, None, :]
