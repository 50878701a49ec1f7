"""Monte Carlo noise injection (maths section 3).

Each spectrum is replaced n_samples times by x* = m + n*, n* ~ N(0, v):
m is the spectrum's fitted model at z_best -- its best template's columns as
they were correlated (continuum-subtracted, line spread, a composite with
its fitted amplitudes) times the fitted amplitude, in the same working
space as the data the correlator saw -- and z* is recomputed around the best
and the second candidate (:mod:`._resample`); sigma_z is the standard
deviation of z*, and the 16-84 percentile half-width is kept as
``zerr_montecarlo_p68``. This catches non-Gaussian and two-peak cases that
first-order formulas miss.

The copies are not built pixel by pixel. z* depends only on the
numerators <x*, T_g(z_k)> (the norm of x* is common to every k); with
Gaussian noise they are exactly jointly Gaussian, with mean <m, T_gk> and
covariance sum_j v_j q_j^2 T_gkj T_hlj, so they are drawn directly
(:func:`~muse_xcorr.correlate.model.numerator_moments` is the same
computation).

With ``perturb="data"`` the copies are x* = d + n* instead. Measured against
z_true, the error of z* is then sqrt(2) times that of z_best; but the
scatter of z* about its own centre, with d held fixed, comes from n* alone
and is, to first order, the error of z_best itself: no factor to divide
out. Below S/N ~15 the doubled noise makes copies jump to other peaks:
use the default ``"model"``.
"""
import numpy as np

from astropy.utils.decorators import format_doc

from ..correlate.model import noise_gram
from ._resample import DEFAULT_WINDOW, RESAMPLING_PARAMETERS, resampled_sigma

__all__ = ["estimate", "DEFAULT_WINDOW", "OPTIONS", "matrix_root"]

#: The options this estimator takes.
OPTIONS = ("window", "n_samples", "seed", "perturb")


@format_doc(None, resampling=RESAMPLING_PARAMETERS)
def estimate(result, *, window=DEFAULT_WINDOW, n_samples=200, seed=None, perturb="model"):
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

    def sample(work, model, vectors, n, rng):
        base = model if perturb == "model" else work.flux
        mean = np.matmul(vectors, (work.q * base)[..., None])[..., 0]
        cov = noise_gram(vectors * work.sigma_q[:, None, :], work.rho)
        draws = rng.standard_normal((mean.shape[0], n, mean.shape[1]))
        return mean[:, None, :] + draws @ np.swapaxes(matrix_root(cov), 1, 2)

    out, robust = resampled_sigma(result, sample, window=window, n_samples=n_samples, rng=rng)
    out.extra["zerr_montecarlo_p68"] = robust
    return out


def matrix_root(cov):
    """L with L L^T = cov for a stack of covariance matrices (n, w, w).

    By eigen-decomposition, not Cholesky: neighbouring numerators are
    correlated at 0.98 and more, so the covariance is nearly singular (and
    exactly singular for the zero vectors of absent components); rounding
    below zero is clipped.
    """
    values, vectors = np.linalg.eigh(cov)
    return vectors * np.sqrt(np.clip(values, 0.0, None))[:, None, :]
