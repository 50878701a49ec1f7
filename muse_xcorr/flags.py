"""Per-spaxel bit flags of a :class:`~muse_xcorr.Redshift`.

Every flag and its meaning lives here, once. A spaxel's ``flags`` value is the
bitwise OR of the flags that apply; ``0`` means nothing was noticed. Test one
with ``result.flags & Flag.EDGE``, list them with :func:`describe`, or print
:func:`flag_table`.
"""
import enum

import numpy as np

__all__ = ["Flag", "describe", "flag_table", "MEANING"]


class Flag(enum.IntFlag):
    """Bit flags set per spaxel by the correlator and the error estimators.

    The meaning of each bit is in `MEANING` and in the table of the
    documentation (:func:`flag_table` builds it).
    """

    NO_DATA = 1
    EDGE = 2
    NEGATIVE_PEAK = 4
    LOW_COVERAGE = 8
    BAD_VARIANCE = 16
    AMBIGUOUS = 32
    ZERR_UNRELIABLE = 64
    FEW_PIXELS = 128
    LOW_SIGNIFICANCE = 256
    OUTLIER_PIXELS = 512
    SKY_RESIDUAL = 1024


#: What each flag means, in words.
MEANING = {
    Flag.NO_DATA: "No valid pixel: every pixel is NaN, masked, or has a non-positive "
                  "variance. All other outputs of the spaxel are NaN.",
    Flag.EDGE: "The maximum of f(z) is at the first or last redshift of the grid: the "
               "true peak may lie outside it, and z_best is not refined.",
    Flag.NEGATIVE_PEAK: "The strongest extremum of f(z) is negative (|min f| > max f): the "
                        "data anti-correlate with the template (e.g. absorption against an "
                        "emission template). z_best is still the maximum of f, never a "
                        "flipped minimum.",
    Flag.LOW_COVERAGE: "At z_best the template covers less than min_coverage of the valid "
                       "pixels (the template is zero outside its wavelength range).",
    Flag.BAD_VARIANCE: "Some otherwise valid pixels had a zero, negative or non-finite "
                       "variance; they were masked and the spaxel was processed without them.",
    Flag.AMBIGUOUS: "A secondary peak outside the exclusion zone is nearly as good as the "
                    "best one: the redshift is ambiguous.",
    Flag.ZERR_UNRELIABLE: "The error on z_best could not be estimated reliably (singular "
                          "covariance, failed fit, non-concave peak, too few samples).",
    Flag.FEW_PIXELS: "Fewer valid pixels than min_pixels: the spaxel is skipped like NO_DATA.",
    Flag.LOW_SIGNIFICANCE: "The best candidate is not a detection: its false-alarm probability "
                           "over the whole redshift grid and every template (fap) is above "
                           "the correlator's max_fap; noise or a featureless continuum.",
    Flag.OUTLIER_PIXELS: "Some otherwise valid pixels had an absurd flux (a sentinel of at "
                         "least 1e30, or more than 1e5 sigma from the spectrum's median); "
                         "they were masked and the spaxel was processed without them.",
    Flag.SKY_RESIDUAL: "The detection rests on bright sky-line pixels (variance above twice "
                       "its running median): without them the best candidate's chi2 "
                       "improvement is no longer significant at max_fap (sky_share is the "
                       "part of it from those pixels). A sky-subtraction residual can mimic "
                       "a line; the spectrum cannot tell them apart.",
}


def describe(value):
    """Names of the flags set in one flag value.

    Parameters
    ----------
    value : int
        A flag value, e.g. ``result.flags[y, x]``.

    Returns
    -------
    names : list of str

    Examples
    --------
    >>> from muse_xcorr.flags import Flag, describe
    >>> describe(Flag.EDGE | Flag.AMBIGUOUS)
    ['EDGE', 'AMBIGUOUS']
    """
    value = int(value)
    return [flag.name for flag in Flag if value & flag]


def flag_table():
    """The flag bits and their meaning as an `~astropy.table.Table`."""
    from astropy.table import Table

    flags = list(Flag)
    return Table({"bit": np.array([int(f) for f in flags]),
                  "name": [f.name for f in flags],
                  "meaning": [MEANING[f] for f in flags]})
