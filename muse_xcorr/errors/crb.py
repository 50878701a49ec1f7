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

from ._window import Estimate, chunks

__all__ = ["cramer_rao", "estimate", "DERIVATIVE_STEP"]

#: Relative step (in 1 + z) of the numerical derivative of the template.
DERIVATIVE_STEP = 1e-5


def cramer_rao(columns, slopes, amplitudes, weights):
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
            variance = np.linalg.inv(fisher)[:, 0, 0]
        except np.linalg.LinAlgError:
            variance = np.array([np.linalg.pinv(m)[0, 0] for m in fisher])
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
        work = correlator.working(data, rows)
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
                                        work.w[members])
        out.set(rows, sigma, np.zeros(rows.size, bool))
    return out
