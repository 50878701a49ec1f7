"""Estimators of the error on z_best, one module each, sharing the window covariance.

Call them through :meth:`Redshift.z_error(method) <muse_xcorr.Redshift.z_error>`;
each returns an `~muse_xcorr.errors._window.Estimate`. Every estimator uses
each spaxel's own fitted model (its best template's columns as they were
correlated, a composite with its fitted amplitudes). See the errors page of
the documentation for which one to use and how each was calibrated.

========================  =================================================================
method                    what it is
========================  =================================================================
``"analytic"``            curvature / delta method, Var f' / f''^2 (Delta chi2 = 1 if weighted)
``"parabolic"``           vertex of the parabola through 3 samples, full 3 x 3 covariance
``"peakfit"``             Gaussian + offset fitted by generalised least squares
``"montecarlo"``          noise injection around the best-fit model, z recomputed
``"bootstrap"``           block bootstrap of the normalised residuals, z recomputed
``"chi2"``                68 % interval of the profile likelihood (weighted mode only)
``"tonrydavis"``          Tonry & Davis (1979) r and epsilon, as in IRAF fxcor/xcsao
========================  =================================================================
"""
import importlib

__all__ = ["METHODS", "MIN_SAMPLES", "estimate"]

#: The fewest copies the resampling estimators (``montecarlo``, ``bootstrap``) accept
#: (the relative error of a standard deviation from n copies is about 1 / sqrt(2 n):
#: 22 % at the minimum, 5 % at the default 200).
MIN_SAMPLES = 10

#: The z-error methods, by name (module of this subpackage that implements each).
METHODS = ("analytic", "parabolic", "peakfit", "montecarlo", "bootstrap", "chi2",
           "tonrydavis")


def estimate(result, method, **options):
    """Run one estimator on a `~muse_xcorr.Redshift`.

    Parameters
    ----------
    result : `~muse_xcorr.Redshift`
        With its data and correlator (not one read from a file).
    method : str
        One of `METHODS`.
    **options
        Passed to the method (``window``, ``n_samples``, ``seed``, ``block``,
        ``perturb``); an option the method does not take is an error.

    Returns
    -------
    estimate : `~muse_xcorr.errors._window.Estimate`
    """
    if method not in METHODS:
        raise ValueError(f"unknown z-error method {method!r}; choose one of {METHODS}")
    result.need_data(f"z_error({method!r})")
    module = importlib.import_module(f"{__name__}.{method}")
    allowed = getattr(module, "OPTIONS", ())
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise TypeError(f"z_error({method!r}) got unexpected option(s) {unknown}; it takes "
                        f"{list(allowed) or 'none'}")
    return module.estimate(result, **options)
