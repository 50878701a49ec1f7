"""Block bootstrap of the normalised residuals (maths section 3).

The residuals r = (d - m) / sigma on the valid pixels (m the spectrum's
fitted model at z_best, in the working space of the correlation) are
centred and resampled with replacement in blocks of ``block`` consecutive
valid pixels (MUSE noise is correlated between neighbouring pixels, and its
STAT variance is known to be off: the bootstrap uses the residuals' actual
scatter; the default block is eight times the measured correlation length),
then x* = m + sigma r*, and z* is recomputed as in the Monte Carlo
(:mod:`._resample`). sigma_z is the standard deviation of z*; the 16-84
percentile half-width is kept as ``zerr_bootstrap_p68``.
"""
import numpy as np

from astropy.utils.decorators import format_doc

from ._resample import DEFAULT_WINDOW, RESAMPLING_PARAMETERS, resampled_sigma

__all__ = ["estimate", "block_resample", "DEFAULT_WINDOW", "OPTIONS"]

#: The options this estimator takes.
OPTIONS = ("window", "n_samples", "seed", "block")


def block_resample(residuals, n_samples, block, rng):
    """Block-bootstrap copies of one residual vector.

    Parameters
    ----------
    residuals : ndarray (m,)
    n_samples, block : int
    rng : `numpy.random.Generator`

    Returns
    -------
    copies : ndarray (n_samples, m)
    """
    m = residuals.size
    block = max(1, min(int(block), m))
    n_blocks = -(-m // block)
    starts = rng.integers(0, m - block + 1, size=(n_samples, n_blocks))
    picks = (starts[:, :, None] + np.arange(block)).reshape(n_samples, -1)[:, :m]
    return residuals[picks]


@format_doc(None, resampling=RESAMPLING_PARAMETERS)
def estimate(result, *, window=DEFAULT_WINDOW, n_samples=200, seed=None, block=None):
    """sigma_z from the block bootstrap.

    Parameters
    ----------
    {resampling}
    block : int, optional
        Block length in valid pixels; default from the result's noise
        correlation: ``max(4, 8 L)`` for correlation over L pixels (the
        blocks must be longer than the correlation, or the bootstrap loses it).

    Returns
    -------
    estimate : `~muse_xcorr.errors._window.Estimate`
    """
    if block is None:
        block = max(4, 8 * result.noise_correlation.size)
    if isinstance(block, bool) or not isinstance(block, (int, np.integer)) or block < 1:
        raise ValueError(f"block must be a positive number of pixels, got {block!r}")
    rng = np.random.default_rng(seed)

    def sample(work, model, vectors, n, rng):
        sigma = np.sqrt(work.variance)
        copies = np.repeat(model[:, None, :], n, axis=1)
        for row in range(model.shape[0]):
            valid = np.flatnonzero(work.valid[row])
            if valid.size == 0:
                continue
            r = (work.flux[row, valid] - model[row, valid]) / sigma[row, valid]
            copies[row][:, valid] += block_resample(r - r.mean(), n, block, rng) * \
                sigma[row, valid]
        return np.einsum("nvp,nsp->nsv", vectors, copies * work.q[:, None, :])

    out, robust = resampled_sigma(result, sample, window=window, n_samples=n_samples, rng=rng)
    out.extra["zerr_bootstrap_p68"] = robust
    return out
