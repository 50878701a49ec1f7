"""Is there a redshift at all? The false-alarm probability of the best candidate.

The detection statistic of a spectrum is the chi2 improvement of its best
candidate over no signal, ``S = (chi2_none - score_best) / kappa`` (maths
section 8; kappa the noise inflation of its model, 1 for white noise). It is
maximised over the whole redshift grid and every template, so on noise
alone it is large: the look-elsewhere effect. Its null distribution is
measured by running the same search on noise-only spectra that have the
data's own variance, masks and noise correlation (:func:`null_spectra`),
and described by that of the largest of ``N_eff`` independent chi2 trials
with ``k`` degrees of freedom (:class:`DetectionCalibration`; the fitted
``N_eff`` and ``k`` are the effective number of independent trials of the
search and of free amplitudes), which extrapolates the false-alarm
probability beyond the simulated range, as the upcrossing argument of Gross
& Vitells (2010) does:

    FAP(S) = 1 - (1 - P(chi2_k > S)) ** N_eff  ~  N_eff P(chi2_k > S).

The significance is its one-sided Gaussian equivalent.
"""
import numpy as np
from scipy import optimize, special, stats

from ..spectra import SpectraBatch

__all__ = ["DetectionCalibration", "null_spectra", "null_sample_size", "NULL_SAMPLES",
           "NULL_SAMPLES_FEW"]

#: Noise-only spectra simulated to calibrate the false-alarm probability.
NULL_SAMPLES = 256

#: Noise-only spectra for data of fewer spectra than this (a single spectrum): the
#: calibration costs as much as searching them, and the 16-84 % scatter of the
#: false-alarm probability at 1 % grows only from 15 % to 22 % (docs/detection.rst).
NULL_SAMPLES_FEW = 128

#: The fraction of the null sample, from below, that the null model's fit only counts
#: (censored at that quantile): see `DetectionCalibration`.
CENSORED_FRACTION = 0.25

#: Degrees of freedom tried for the chi2 trials of the null model (the fit keeps the best).
DOF_RANGE = (1, 2, 3, 4, 5, 6)


def null_sample_size(n_spectra):
    """Noise-only spectra of the detection calibration of data with ``n_spectra`` spectra.

    :data:`NULL_SAMPLES`, or :data:`NULL_SAMPLES_FEW` when the data have fewer
    spectra than that, so that the calibration of one spectrum does not cost
    256 searches.
    """
    return NULL_SAMPLES if int(n_spectra) >= NULL_SAMPLES else NULL_SAMPLES_FEW


def null_spectra(batch, n, rho, rng):
    """Noise-only spectra with the variance and validity of ``batch``'s spectra, correlated.

    Parameters
    ----------
    batch : `~muse_xcorr.spectra.SpectraBatch`
        Spectra whose variance and valid pixels are reused (in turn).
    n : int
    rho : ndarray
        Correlation of the whitened noise at lags 1, 2, ...
    rng : `numpy.random.Generator`

    Returns
    -------
    null : `~muse_xcorr.spectra.SpectraBatch`
    """
    pick = np.arange(n) % max(len(batch), 1)
    variance = batch.variance[pick]
    valid = batch.valid[pick]
    white = rng.standard_normal(variance.shape)
    noise = _correlate(white, rho) * np.sqrt(variance)
    flux = np.where(valid, noise, np.nan)
    return SpectraBatch.from_arrays(0, n, flux, np.where(valid, variance, np.nan))


def _correlate(white, rho):
    """Unit-variance noise with autocorrelation ``1, rho_1, ...`` from white noise (rows)."""
    if rho.size == 0:
        return white
    # a moving average whose autocorrelation is rho: the spectral factor of the band
    acf = np.concatenate([[1.0], rho])
    kernel = _spectral_factor(acf)
    out = np.apply_along_axis(lambda row: np.convolve(row, kernel, mode="same"), 1, white)
    return out


def _spectral_factor(acf, size=4096):
    """The minimum-phase filter h with sum_j h_j h_{j+o} = acf_o (acf clipped to be valid)."""
    spectrum = np.real(np.fft.rfft(np.concatenate([acf, np.zeros(size - 2 * acf.size + 1),
                                                   acf[:0:-1]])))
    spectrum = np.clip(spectrum, 1e-6 * spectrum.max(), None)
    cepstrum = np.fft.irfft(np.log(spectrum) / 2, size)
    fold = np.zeros(size)
    fold[0] = cepstrum[0]
    fold[1:size // 2] = 2 * cepstrum[1:size // 2]
    kernel = np.real(np.fft.irfft(np.exp(np.fft.rfft(fold)), size))[:4 * acf.size]
    return kernel / np.sqrt(np.sum(kernel ** 2))


class DetectionCalibration:
    """The false-alarm probability of a detection statistic, fitted to its null sample.

    Parameters
    ----------
    null : ndarray
        The detection statistic of noise-only spectra (:func:`null_spectra`
        through the correlator's search).

    Attributes
    ----------
    n_eff : float
        Effective number of independent trials of the search.
    dof : int
        Degrees of freedom of each trial (1, 2 or 3).
    """

    def __init__(self, null):
        null = np.asarray(null, dtype=float)
        null = null[np.isfinite(null)]
        if null.size < 20:
            raise ValueError(f"a detection calibration needs at least 20 null samples, got "
                             f"{null.size}")
        self.null = np.sort(null)
        # Only the null sample above its CENSORED_FRACTION quantile is fitted (the rest
        # counts as "below that quantile"): false alarms live in the tail, and the bulk
        # can be unlike a maximum of chi2 trials (statistics clipped at 0 on continuum-
        # dominated or uniformly weighted searches), which pulled a fit of all of it
        # off the tail by a factor 3-30 in FAP.
        self.threshold = float(np.quantile(self.null, CENSORED_FRACTION))
        best = None
        for dof in DOF_RANGE:
            fit = optimize.minimize_scalar(lambda log_n: -self._loglike(dof, np.exp(log_n)),
                                           bounds=(0.0, np.log(1e9)), method="bounded")
            if best is None or fit.fun < best[0]:
                best = (fit.fun, dof, float(np.exp(fit.x)))
        _, self.dof, self.n_eff = best

    def __repr__(self):
        return (f"<DetectionCalibration N_eff={self.n_eff:.3g}, dof={self.dof}, "
                f"{self.null.size} null spectra>")

    def _log_cdf(self, u, dof, n_eff):
        """log P(max of n_eff chi2_dof trials <= u)."""
        survival = stats.chi2.sf(np.clip(u, 1e-9, None), dof)
        return n_eff * np.log1p(-np.clip(survival, 0.0, 1 - 1e-16))

    def _loglike(self, dof, n_eff):
        """Log-likelihood of the null sample, censored below ``threshold``, under the
        maximum of n_eff chi2_dof trials."""
        tail = self.null[self.null > self.threshold]
        below = self.null.size - tail.size
        u = np.clip(tail, 1e-9, None)
        survival = np.clip(stats.chi2.sf(u, dof), 0.0, 1 - 1e-16)
        # d/du (1 - sf)^n = n (1 - sf)^(n - 1) pdf
        density = np.log(n_eff) + (n_eff - 1) * np.log1p(-survival) + \
            stats.chi2.logpdf(u, dof)
        return below * self._log_cdf(self.threshold, dof, n_eff) + np.sum(density)

    def fap(self, statistic):
        """False-alarm probability of detection statistics (NaN stays NaN)."""
        s = np.asarray(statistic, dtype=float)
        with np.errstate(invalid="ignore", divide="ignore"):   # s = 0: log1p(-1) = -inf
            log_survival = stats.chi2.logsf(np.clip(s, 0.0, None), self.dof)
            # 1 - (1 - p)^n, exact for small p through log1p / expm1
            out = -np.expm1(self.n_eff * np.log1p(-np.exp(log_survival)))
        return np.where(np.isfinite(s), np.clip(out, 0.0, 1.0), np.nan)

    def significance(self, statistic):
        """The one-sided Gaussian equivalent of the false-alarm probability (sigma)."""
        fap = self.fap(statistic)
        with np.errstate(divide="ignore", invalid="ignore"):
            # isf of a tiny FAP: through the log survival for the far tail
            sigma = -special.ndtri(np.clip(fap, 1e-300, 1 - 1e-16))
        return np.where(np.isfinite(fap), sigma, np.nan)
