"""The probability that a redshift is right: a calibrated confidence per spaxel.

``z_conf`` answers the user's second question, "can I trust this redshift?",
with a number: the probability that ``z_best`` is within 2e-3 (1 + z) of the
true redshift. It is a logistic model of what the correlator measured for the
spaxel,

    logit P(right) = b0 + b1 min(sqrt(delta_chi2), D) + b2 min(max(S, -S_cap), S_cap)
                     + b_template,

with ``delta_chi2`` the chi2 distance of the best candidate to the next one
(across templates and line identifications: a small value means a line
confusion is as good a fit), ``S`` the detection significance (the false-alarm
probability over the whole grid and every template, in Gaussian sigma) and
``b_template`` an offset per template of the default set (some classes are
harder to tell apart than others: a single emission line is Lyman-alpha,
[OII] or H-alpha by its shape alone). ``D`` and ``S_cap`` bound the features
where the simulation holds no wrong answers to learn from.

The coefficients (:data:`DEFAULT_CONFIDENCE`) were fitted by
``python benchmarks/fit_confidence.py`` on the realistic MUSE deep-field
population of :mod:`muse_xcorr.population` (the one-line default
``Correlator()``, correlated noise, sky residuals, the AO notch, real MXDF
variance shapes) and checked on an independent population (another seed):
the reliability diagram of ``docs/detection.rst`` shows predicted against
observed. This is the anchor of DESI's ``Z_CONF`` and of the AUTOZ
figure-of-merit calibration (Baldry et al. 2014), here with the look-elsewhere
significance as a second feature.

The template offsets are relative to their population average: a template
outside the default set gets 0, the average of the default set's classes,
not a calibration of that template.
"""
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize, special

__all__ = ["ConfidenceModel", "DEFAULT_CONFIDENCE", "SUCCESS_TOLERANCE"]

#: What "right" means: |z_best - z_true| < SUCCESS_TOLERANCE (1 + z_true).
SUCCESS_TOLERANCE = 2e-3


@dataclass(frozen=True)
class ConfidenceModel:
    """A logistic model of P(z_best is right) from delta_chi2, significance and template.

    Parameters
    ----------
    intercept, delta_slope, significance_slope : float
        b0, b1 (per unit of sqrt(delta_chi2)) and b2 (per sigma of significance).
    template_offsets : dict of str to float
        b_template by template name; templates not listed get 0.
    delta_cap : float
        D, the cap on sqrt(delta_chi2) (+inf, no second candidate, is the cap).
    significance_cap : float
        S_cap, the bound on abs(significance).
    """

    intercept: float
    delta_slope: float
    significance_slope: float
    template_offsets: dict = field(default_factory=dict)
    delta_cap: float = 10.0
    significance_cap: float = 8.0

    def features(self, delta_chi2, significance):
        """The two bounded features, (n, 2), from delta_chi2 and significance arrays."""
        delta = np.sqrt(np.clip(np.nan_to_num(np.asarray(delta_chi2, dtype=float),
                                              nan=0.0, posinf=np.inf), 0.0, None))
        delta = np.minimum(delta, self.delta_cap)
        cap = self.significance_cap
        sig = np.clip(np.nan_to_num(np.asarray(significance, dtype=float), nan=-cap,
                                    posinf=cap, neginf=-cap), -cap, cap)
        return np.stack(np.broadcast_arrays(delta, sig), axis=-1)

    def offsets(self, template_names):
        """b_template for each spaxel's template name (0 for unknown or none)."""
        names = np.asarray(template_names, dtype=object)
        return np.array([self.template_offsets.get(str(n), 0.0) for n in names.ravel()],
                        dtype=float).reshape(names.shape)

    def __call__(self, delta_chi2, significance, template_names):
        """P(right) per spaxel; NaN where there is no candidate (NaN significance and chi2).

        Parameters
        ----------
        delta_chi2, significance : array_like
            As the result's maps (dimensionless; significance in Gaussian sigma).
        template_names : array_like of str
            The best candidate's template per spaxel ("" or None: no candidate).

        Returns
        -------
        z_conf : ndarray
            Probabilities in [0, 1], shaped like ``delta_chi2``.
        """
        delta_chi2 = np.asarray(delta_chi2, dtype=float)
        x = self.features(delta_chi2, significance)
        logit = (self.intercept + self.delta_slope * x[..., 0]
                 + self.significance_slope * x[..., 1] + self.offsets(template_names))
        p = special.expit(logit)
        missing = np.isnan(np.asarray(significance, dtype=float)) & np.isnan(delta_chi2)
        return np.where(missing, np.nan, p)

    @classmethod
    def fit(cls, delta_chi2, significance, template_names, right, *, ridge=1.0,
            delta_cap=10.0, significance_cap=8.0):
        """Maximum-likelihood logistic fit (with a small ridge on the template offsets).

        Parameters
        ----------
        delta_chi2, significance, template_names : array_like
            Per object, as for :meth:`__call__`.
        right : array_like of bool
            Whether each object's z_best was right.
        ridge : float
            L2 penalty on the template offsets (keeps rare templates near 0).

        Returns
        -------
        model : ConfidenceModel
        covariance : ndarray
            The covariance of (b0, b1, b2, offsets...) from the inverse Hessian
            of the penalised negative log-likelihood (before the offsets are
            made relative to their average).
        """
        shell = cls(0.0, 0.0, 0.0, delta_cap=delta_cap, significance_cap=significance_cap)
        x = shell.features(delta_chi2, significance).reshape(-1, 2)
        y = np.asarray(right, dtype=float).ravel()
        names = np.asarray(template_names, dtype=object).ravel()
        keep = np.isfinite(x).all(axis=1) & np.array([bool(n) for n in names])
        x, y, names = x[keep], y[keep], names[keep]
        kinds = sorted({str(n) for n in names})
        onehot = (names[:, None].astype(str) == np.array(kinds)[None, :]).astype(float)
        design = np.column_stack([np.ones(len(y)), x, onehot])
        penalty = np.r_[np.zeros(3), np.full(len(kinds), ridge)]

        def loss(beta):
            eta = design @ beta
            value = np.sum(np.logaddexp(0.0, eta) - y * eta) + 0.5 * np.sum(penalty * beta ** 2)
            grad = design.T @ (special.expit(eta) - y) + penalty * beta
            return value, grad

        solution = optimize.minimize(loss, np.zeros(design.shape[1]), jac=True,
                                     method="L-BFGS-B")
        beta = solution.x
        p = special.expit(design @ beta)
        hessian = design.T @ (design * (p * (1 - p))[:, None]) + np.diag(penalty)
        covariance = np.linalg.pinv(hessian)
        # offsets relative to their population average, so that a template the
        # fit never saw (offset 0) gets the average
        shift = np.r_[np.zeros(3), onehot.mean(axis=0)]
        average = float(shift @ beta)
        beta = beta - np.r_[-average, 0.0, 0.0, np.full(len(kinds), average)]
        model = cls(float(beta[0]), float(beta[1]), float(beta[2]),
                    {k: float(b) for k, b in zip(kinds, beta[3:])},
                    delta_cap=delta_cap, significance_cap=significance_cap)
        return model, covariance


#: Fitted by ``python benchmarks/fit_confidence.py`` (see the module docstring): 1500
#: simulated objects (seed 11), standard errors 0.43 (b0), 0.10 (b1), 0.04 (b2),
#: 0.4-1.0 (offsets).
DEFAULT_CONFIDENCE = ConfidenceModel(
    -2.540, 0.922, 0.282,
    {"emission": -0.317, "lae": 0.817, "lae_broad": -0.447, "passive": 0.364, "qso": -0.120,
     "star_cool": -0.132, "star_hot": -0.131, "uv_absorption": -0.701, "uv_emission": -0.975})
