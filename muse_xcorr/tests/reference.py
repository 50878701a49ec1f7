"""Independent float64 NumPy reference for the tests: science.md sections 1, 1b and 2.

Written from the formulas, one spectrum and one redshift at a time, without
calling package code; the tests compare the package against it.
"""
import numpy as np


def reference_ccf(flux, variance, valid, templates, weighting="uniform", correction=True):
    """f(z) and sigma_f(z) for one spectrum.

    Parameters
    ----------
    flux, variance : ndarray (n_pixel,)
    valid : ndarray of bool (n_pixel,)
    templates : ndarray (n_pixel, n_z)
    weighting : {"uniform", "inverse_variance"}

    Returns
    -------
    f, sigma_f, chi2 : ndarray (n_z,)
        chi2 is the minimum chi2 over the amplitude (weighted mode; NaN otherwise).
    """
    m = valid.astype(float)
    d = np.where(valid, flux, 0.0)
    v = np.where(valid, variance, 0.0)
    n_z = templates.shape[1]
    f, sigma, chi2 = np.zeros(n_z), np.zeros(n_z), np.full(n_z, np.nan)
    for k in range(n_z):
        t = templates[:, k]
        if weighting == "uniform":
            dd = np.sum(m * d * d)
            tt = np.sum(m * t * t)
            f[k] = np.sum(m * d * t) / np.sqrt(dd * tt)
            g = m * (t / np.sqrt(dd * tt) - f[k] * d / dd)
            var = np.sum(v * g * g)
            if correction:
                var -= f[k] ** 2 * np.sum(m * v * v) / (2 * dd ** 2)
        else:
            w = np.zeros_like(v)
            w[valid] = 1.0 / v[valid]
            dd = np.sum(w * d * d)
            a = np.sum(w * d * t)
            b = np.sum(w * t * t)
            f[k] = a / np.sqrt(b * dd)
            chi2[k] = dd - a * a / b
            var = (1 - f[k] ** 2) / dd
            if correction:
                var -= f[k] ** 2 * valid.sum() / (2 * dd ** 2)
        sigma[k] = np.sqrt(var)
    return f, sigma, chi2


def reference_bin_average(rest_wave, rest_flux, edges_rest, n_sub=50):
    """Mean of the linearly interpolated template over each interval, by quadrature.

    The template is zero outside its range (the zero part counts in the
    mean). The trapezoid rule is exact for a piecewise-linear function when
    every node inside the interval is a quadrature point, which is how it
    is used here (plus ``n_sub`` extra points).
    """
    out = np.zeros(edges_rest.size - 1)
    for j in range(out.size):
        a, b = edges_rest[j], edges_rest[j + 1]
        lo, hi = max(a, rest_wave[0]), min(b, rest_wave[-1])
        if hi <= lo:
            continue
        inner = rest_wave[(rest_wave > lo) & (rest_wave < hi)]
        x = np.union1d(np.linspace(lo, hi, n_sub + 1), inner)
        out[j] = np.trapezoid(np.interp(x, rest_wave, rest_flux), x) / (b - a)
    return out
