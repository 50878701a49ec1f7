"""The Cramer-Rao bound on z for d = A T(z) + noise with A fitted (science.md section 3).

    sigma_CRB^2 = 1 / (A^2 (sum w T'^2 - (sum w T' T)^2 / sum w T^2)),

w = 1 / variance on the valid pixels, T' = dT/dz by a central difference of
the exactly resampled template. No unbiased estimator of z has a smaller
variance; an efficient one reaches it at high S/N.
"""
import numpy as np

from ..backend import _tensorflow as _tf_backend
from ._model import best_fit_model, template_rows
from ._window import Estimate, gather_batch, skipped

__all__ = ["cramer_rao", "estimate"]

#: Relative step (in 1 + z) of the numerical derivative of the template.
DERIVATIVE_STEP = 1e-5
#: Spectra per chunk.
_CHUNK = 256


def cramer_rao(template, data, z, amplitude, weights):
    """sigma_CRB on z for given redshifts, amplitudes and pixel weights.

    Parameters
    ----------
    template : `~muse_xcorr.Template`
    data : `~muse_xcorr.MuseCube` or `~muse_xcorr.MuseSpectrum`
        Supplies the wavelength grid and medium.
    z, amplitude : ndarray (n,)
        Redshift and amplitude of the model A T(z) (in the template's flux scale).
    weights : ndarray (n, n_pixel)
        1 / variance on valid pixels, 0 elsewhere.

    Returns
    -------
    sigma : ndarray (n,)
    """
    z = np.asarray(z, float)
    step = DERIVATIVE_STEP * (1 + z)
    shape = template_rows(template, data, z)
    slope = (template_rows(template, data, z + step)
             - template_rows(template, data, z - step)) / (2 * step[:, None])
    tt = _tf_backend.row_inner(weights, shape, shape)
    ss = _tf_backend.row_inner(weights, slope, slope)
    st = _tf_backend.row_inner(weights, slope, shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        information = np.asarray(amplitude, float) ** 2 * (ss - st ** 2 / tt)
        return 1.0 / np.sqrt(information)


def estimate(result, **_):
    """sigma_CRB at z_best with the best-fit amplitude, for every spaxel with a peak."""
    out = Estimate(result.n_spectra)
    rows = np.flatnonzero(~skipped(result))
    for first in range(0, rows.size, _CHUNK):
        part = rows[first:first + _CHUNK]
        batch = gather_batch(result.data, part)
        _, amplitude = best_fit_model(result, batch, part)
        sigma = cramer_rao(result.correlator.template, result.data,
                           result._maps["z_best"][part], amplitude, batch.inverse_variance())
        out.set(part, sigma, np.zeros(part.size, bool))
    return out
