"""Ambiguity of the best peak: Delta chi2 to the best secondary peak, and the AMBIGUOUS flag.

The correlator already finds the best local maximum of f outside the
exclusion zone (``Correlator(exclusion=...)``, default +-1000 km/s) and stores
``z_second`` and ``f_second``. Here:

* inverse-variance weighting: chi2_min = ||d||_w^2 (1 - f^2), so
  ``delta_chi2 = ||d||_w^2 (f_best^2 - f_second^2)`` exactly;
* uniform weighting: there is no chi2, and the same quantity is formed with
  the first-order weighted relation ||d||_w^2 = (1 - f^2) / sigma_f^2 at the
  best peak, ``delta_chi2 = (f_best^2 - f_second^2) (1 - f_best^2) / sigma_f_best^2``
  (the Delta chi2 a weighted correlation would give for the same f and
  sigma_f; with uniform variance it is the weighted value).

A spaxel is flagged AMBIGUOUS when ``delta_chi2 < AMBIGUITY_THRESHOLD``
(9, the threshold of Redrock): the second peak is within 3 sigma of the
first. Without a secondary peak delta_chi2 is +inf.
"""
import numpy as np

from ..flags import Flag

__all__ = ["AMBIGUITY_THRESHOLD", "delta_chi2", "flag_ambiguous"]

#: delta_chi2 below which a spaxel is flagged AMBIGUOUS (Redrock's choice).
AMBIGUITY_THRESHOLD = 9.0


def delta_chi2(maps, weighting):
    """Delta chi2 between the best and the best secondary peak, per spaxel.

    Parameters
    ----------
    maps : dict of ndarray
        Flat maps of a `~muse_xcorr.Redshift` (``f_best``, ``f_second``,
        ``norm2`` or ``sigma_f_best``).
    weighting : {"uniform", "inverse_variance"}

    Returns
    -------
    delta : ndarray
        NaN where there is no peak, +inf where there is no secondary peak.
    """
    f_best, f_second = maps["f_best"], maps["f_second"]
    with np.errstate(divide="ignore", invalid="ignore"):
        if weighting == "inverse_variance":
            delta = maps["norm2"] * (f_best ** 2 - f_second ** 2)
        else:
            delta = (f_best ** 2 - f_second ** 2) * (1 - f_best ** 2) / maps["sigma_f_best"] ** 2
    return np.where(np.isfinite(f_best) & np.isnan(f_second), np.inf, delta)


def flag_ambiguous(flags, delta, threshold=AMBIGUITY_THRESHOLD):
    """``flags`` with AMBIGUOUS set where ``delta < threshold`` (a new array)."""
    return np.where(delta < threshold, flags | int(Flag.AMBIGUOUS), flags).astype(flags.dtype)
