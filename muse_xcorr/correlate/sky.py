"""Does a detection rest on sky lines? The share of its chi2 from bright sky-line pixels.

Sky-subtraction residuals at the bright night-sky lines are the commonest
false line in MUSE spectra: a few sigma beyond STAT at one wavelength, with
the shape of a line, they are no noise that the null distribution of the
detection statistic (:mod:`~muse_xcorr.correlate.detection`) can know.
Their pixels are found in the variance itself, where the sky line raises
STAT above its running median (:func:`sky_pixels`) -- unless the data are
bright there: a source raises its own variance at its emission lines too,
but only where it is many sigma above zero -- and the best
candidate's chi2 improvement is split between them and the rest
(:func:`sky_share`). A detection whose improvement without the sky-line
pixels is no longer significant is flagged SKY_RESIDUAL: the line may be
real, but the spectrum cannot tell it from a residual.
"""
import numpy as np

from ..templates.continuum import lattice_median

__all__ = ["sky_pixels", "sky_share", "SKY_VARIANCE_RATIO", "SKY_WINDOW", "SKY_MAX_SNR"]

#: A pixel is a sky-line pixel where its variance exceeds this many times the running median.
SKY_VARIANCE_RATIO = 2.0
#: Width of the running median of the variance, pixels (~64 A on the MUSE grid).
SKY_WINDOW = 51
#: A pixel whose flux is more than this many sigma from zero is the source's own line, not
#: a sky line: a source that doubles the variance at a pixel (its counts there equal to the
#: sky's, B) is sqrt(B / 2) sigma bright, tens of sigma for MUSE's sky counts.
SKY_MAX_SNR = 10.0


def sky_pixels(variance, valid, flux=None, *, ratio=SKY_VARIANCE_RATIO, window=SKY_WINDOW,
               max_snr=SKY_MAX_SNR):
    """Pixels of bright sky lines: variance above ``ratio`` times its running median.

    Parameters
    ----------
    variance : ndarray (n, n_pixel)
    valid : ndarray of bool (n, n_pixel)
    flux : ndarray (n, n_pixel), optional
        The (continuum-subtracted) data: pixels more than ``max_snr`` sigma
        from zero are the source's own bright lines and not counted.
    ratio : float
    window : int
        Running-median width in pixels.
    max_snr : float

    Returns
    -------
    sky : ndarray of bool (n, n_pixel)
        False at invalid pixels, and everywhere in a spectrum whose variance
        is constant (no sky line to see).
    """
    variance = np.atleast_2d(np.asarray(variance, float))
    valid = np.broadcast_to(np.asarray(valid, bool), variance.shape)
    x = np.arange(variance.shape[1], dtype=float)
    baseline = lattice_median(variance, valid, x, float(window))
    with np.errstate(invalid="ignore", divide="ignore"):
        sky = valid & (variance > ratio * baseline) & (baseline > 0)
        if flux is not None:
            sky &= ~(np.abs(flux) > max_snr * np.sqrt(variance))
    return sky


def sky_share(whitened_data, whitened_residuals, valid, sky):
    """The share of each spectrum's chi2 improvement that comes from sky-line pixels.

    Parameters
    ----------
    whitened_data, whitened_residuals : ndarray (n, n_pixel)
        ``d / sigma`` and ``(d - m) / sigma`` of the best fit (zero where invalid).
    valid, sky : ndarray of bool (n, n_pixel)

    Returns
    -------
    share : ndarray (n,)
        In [0, 1]; NaN where the fit improves nothing.
    """
    gain = np.where(valid, whitened_data ** 2 - whitened_residuals ** 2, 0.0)
    total = gain.sum(axis=1)
    on_sky = np.where(sky, gain, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(total > 0, on_sky / total, np.nan)
    return np.clip(share, 0.0, 1.0)
