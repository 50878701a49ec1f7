"""Block bootstrap of the normalised residuals (science.md section 3).

The residuals r = (d - A T(z_best)) / sigma on the valid pixels are
centred and resampled with replacement in blocks of ``block`` consecutive
valid pixels (MUSE noise is correlated between neighbouring pixels, and its
STAT variance is known to be underestimated: the bootstrap uses the
residuals' actual scatter), then d* = A T(z_best) + sigma r*, and z* is
recomputed like in the Monte Carlo (:mod:`._resample`). sigma_z is the
standard deviation of z*; the 16-84 percentile half-width is kept as
``zerr_bootstrap_p68``.
"""
import numpy as np

from astropy.utils.decorators import format_doc

from ._resample import DEFAULT_WINDOW, RESAMPLING_PARAMETERS, resampled_sigma

__all__ = ["estimate", "DEFAULT_WINDOW"]


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
def estimate(result, *, window=DEFAULT_WINDOW, n_samples=200, seed=None, block=4, **_):
    """sigma_z from the block bootstrap.

    Parameters
    ----------
    {resampling}
    block : int
        Block length in valid pixels.

    Returns
    -------
    estimate : `~muse_xcorr.errors._window.Estimate`
    """
    if int(block) < 1:
        raise ValueError(f"block must be a positive number of pixels, got {block}")
    rng = np.random.default_rng(seed)

    def sample(operator, batch, model, index, scale, n, rng):
        sigma = np.sqrt(batch.variance)
        copies = np.repeat(model[:, None, :], n, axis=1)
        for row in range(model.shape[0]):
            valid = np.flatnonzero(batch.valid[row])
            if valid.size == 0:
                continue
            r = (batch.flux[row, valid] - model[row, valid]) / sigma[row, valid]
            copies[row][:, valid] += block_resample(r - r.mean(), n, block, rng) * \
                sigma[row, valid]
        return operator.window_samples(index, scale, copies)

    out, robust = resampled_sigma(result, sample, window=window, n_samples=n_samples, rng=rng)
    out.extra["zerr_bootstrap_p68"] = robust
    return out
