"""Estimators of the error on z_best, one module each, sharing the window covariance.

Call them through :meth:`Redshift.z_error(method) <muse_xcorr.Redshift.z_error>`;
each returns an `~muse_xcorr.errors._window.Estimate`. See ``docs/errors.rst``
for which one to use and how each was calibrated.

========================  =================================================================
method                    what it is
========================  =================================================================
``"analytic"``            curvature / delta method, Var f' / f''^2 (Delta chi2 = 1 if weighted)
``"parabolic"``           vertex of the parabola through 3 samples, full 3 x 3 covariance
``"peakfit"``             Gaussian + offset fitted by generalised least squares
``"montecarlo"``          noise injection around the best-fit model, f recomputed
``"bootstrap"``           block bootstrap of the normalised residuals, f recomputed
``"chi2"``                68 % interval of the profile likelihood (weighted mode only)
``"tonrydavis"``          Tonry & Davis (1979) r and epsilon, as in IRAF fxcor/xcsao
========================  =================================================================
"""
import importlib

import numpy as np

__all__ = ["METHODS", "estimate"]

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
        Passed to the method (``window``, ``n_samples``, ``seed``, ``block``, ...).

    Returns
    -------
    estimate : `~muse_xcorr.errors._window.Estimate`
    """
    from ._window import need_data

    if method not in METHODS:
        raise ValueError(f"unknown z-error method {method!r}; choose one of {METHODS}")
    need_data(result, method)
    module = importlib.import_module(f"{__name__}.{method}")
    if hasattr(result.correlator, "correlators"):  # a template set
        return _per_template(result, module, options)
    return module.estimate(result, **options)


def _per_template(result, module, options):
    """Run an estimator on a template-set result, each spaxel with the template that won it.

    For each winning single-template correlator, a view of the result whose
    other spaxels are marked NO_DATA (so they are skipped) is estimated, and
    the answers are merged spaxel by spaxel.
    """
    from ..flags import Flag
    from ..result import Redshift
    from ..template_set import entry_correlators
    from ._window import Estimate

    out = Estimate(result.n_spectra)
    flags = result._maps["flags"]
    for correlator, members in entry_correlators(result.correlator, result._maps):
        maps = dict(result._maps, flags=np.where(members, flags, flags | int(Flag.NO_DATA)))
        view = Redshift(maps, z=result.z, spatial_shape=result.spatial_shape,
                        correlator=correlator, data=result.data, meta=result.meta)
        part = module.estimate(view, **options)
        out.sigma[members] = part.sigma[members]
        out.unreliable[members] = part.unreliable[members]
        for name, values in part.extra.items():
            if name not in out.extra:
                out.extra[name] = np.full_like(values, np.nan) if values.dtype.kind == "f" \
                    else np.zeros_like(values)
            out.extra[name][members] = values[members]
    out.unreliable |= result._maps["template_index"] < 0
    return out
