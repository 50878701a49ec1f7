"""The Cramer-Rao bound on z for each spectrum's fitted model (maths section 3).

For d = sum_g A_g T_g(z) + noise with z and the free amplitudes fitted, the
Fisher matrix of (z, A_1, ..., A_K) is F = J^T W J with the columns of J
dm/dz = sum_g A_g dT_g/dz and T_g (the components inside the data), W =
diag(1 / v) on the valid pixels; sigma_CRB^2 = (F^-1)_zz. One component
gives the familiar 1 / (A^2 (sum w T'^2 - (sum w T' T)^2 / sum w T^2)). The
columns are the template's as they were correlated (continuum-subtracted,
line spread), dT/dz by a central difference. No unbiased estimator of z has
a smaller variance; an efficient one reaches it at high S/N.
"""
import numpy as np

from ..correlate.model import noise_gram
from ..spectra.noise import as_correlation
from ._window import Estimate, chunks

__all__ = ["cramer_rao", "estimate", "DERIVATIVE_STEP"]

#: Relative step (in 1 + z) of the numerical derivative of the template.
DERIVATIVE_STEP = 1e-5


def cramer_rao(columns, slopes, amplitudes, weights, rho=()):
    """sigma_CRB on z from component columns, their z-derivatives and fitted amplitudes.

    Parameters
    ----------
    columns, slopes : ndarray (K, n, n_pixel)
        T_g(z) and dT_g/dz of each spectrum's components at its redshift.
    amplitudes : ndarray (n, K)
        The fitted amplitudes (a component with amplitude 0 or NaN is not a
        free parameter).
    weights : ndarray (n, n_pixel)
        1 / variance on valid pixels, 0 elsewhere.
    rho : array_like
        The noise correlation: the variance is then the sandwich
        ``(F^-1 B F^-1)_zz`` with ``B = (W J)^T C (W J)``, that of the
        diagonal-weights fit the correlator makes (the bound of the
        generalised fit would need C^-1).

    Returns
    -------
    sigma : ndarray (n,)
    """
    amplitudes = np.nan_to_num(np.asarray(amplitudes, dtype=float))
    dmdz = np.einsum("gnp,ng->np", slopes, amplitudes)
    free = (amplitudes > 0) & (np.einsum("gnp,gnp,np->ng", columns, columns, weights) > 0)
    jacobian = np.concatenate([dmdz[:, None, :],
                               np.moveaxis(columns, 0, 1) * free[:, :, None]], axis=1)
    fisher = np.einsum("nap,nbp,np->nab", jacobian, jacobian, weights)
    # absent components are zero rows: give them a unit diagonal so F stays invertible
    k = np.arange(1, fisher.shape[1])
    fisher[:, k, k] = np.where(free, fisher[:, k, k], 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        try:
            inverse = np.linalg.inv(fisher)
        except np.linalg.LinAlgError:
            inverse = np.array([np.linalg.pinv(m) for m in fisher])
        rho = as_correlation(rho)
        if rho.size:
            whitened = jacobian * np.sqrt(weights)[:, None, :]
            middle = noise_gram(whitened, rho)
            middle[:, k, k] = np.where(free, middle[:, k, k], 1.0)
            variance = np.einsum("na,nab,nb->n", inverse[:, 0], middle, inverse[:, 0])
        else:
            variance = inverse[:, 0, 0]
        return np.where(variance > 0, np.sqrt(variance), np.nan)


def estimate(result):
    """sigma_CRB at z_best with each spectrum's fitted model, for every spaxel with a peak."""
    out = Estimate(result.n_spectra)
    correlator, data = result.correlator, result.data
    prepared = correlator.prepare(data)
    rows_all = result.peak_rows()
    template_all = result.flat("template_index")
    z_all = result.flat("z_best")
    per_row = 3 * correlator.max_components * data.n_pixels
    for rows in chunks(rows_all, per_row):
        work = correlator.working(data, rows, rho=result.noise_correlation)
        sigma = np.full(rows.size, np.nan)
        for t in np.unique(template_all[rows]):
            members = np.flatnonzero(template_all[rows] == t)
            p = prepared[t]
            z = z_all[rows[members]]
            step = DERIVATIVE_STEP * (1 + z)
            columns = p.columns_at(z)
            slopes = (p.columns_at(z + step) - p.columns_at(z - step)) / (2 * step[None, :, None])
            _, amplitudes, _ = correlator.fitted_model(data, rows[members], t, z,
                                                       work=work.subset(members))
            sigma[members] = cramer_rao(columns, slopes, amplitudes[:, :p.n_components],
                                        work.w[members], result.noise_correlation)
        out.set(rows, sigma, np.zeros(rows.size, bool))
    return out
