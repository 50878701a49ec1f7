"""The best-fit model A T(z) of each spectrum, shared by the CRB, Monte Carlo and bootstrap."""
import numpy as np

from ..backend import _tensorflow as _tf_backend

__all__ = ["template_rows", "fit_weights", "best_fit_model"]


def template_rows(template, data, z):
    """The template at redshifts ``z`` on the data's grid, one row per redshift.

    Returns
    -------
    rows : ndarray (len(z), n_pixel)
    """
    return template.matrix(data.spectral_axis, np.asarray(z, float), medium=data.medium).T


def fit_weights(batch, weighting):
    """Weights of the amplitude fit in the correlator's metric (n, n_pixel)."""
    return batch.inverse_variance() if weighting == "inverse_variance" else \
        batch.valid.astype(float)


def best_fit_model(result, batch, rows):
    """A T(z_best) for the spectra ``rows``, A fitted by (weighted) least squares.

    Parameters
    ----------
    result : `~muse_xcorr.Redshift`
    batch : `~muse_xcorr.spectra.SpectraBatch`
        The spectra of ``rows``.
    rows : ndarray of int

    Returns
    -------
    model : ndarray (len(rows), n_pixel)
        Zero on invalid pixels' weight only (the model itself covers every pixel).
    amplitude : ndarray (len(rows),)
    """
    shape = template_rows(result.correlator.template, result.data, result._maps["z_best"][rows])
    weights = fit_weights(batch, result.correlator.weighting)
    with np.errstate(divide="ignore", invalid="ignore"):
        amplitude = _tf_backend.row_inner(weights, batch.flux, shape) / \
            _tf_backend.row_inner(weights, shape, shape)
    return amplitude[:, None] * shape, amplitude
