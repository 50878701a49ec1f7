"""Correlation of spectra with templates: one `Correlator` for one or many templates.

- :mod:`.model`: the fitted model of a spectrum in float64 (f, chi2, sigma_f,
  the covariance of f), the one place every reported number comes from;
- :mod:`.search`: seeds on the device, windows, float64 refinement;
- :mod:`.candidates`: the candidate list across templates and line identifications;
- :mod:`.correlator`: the `Correlator` that runs them batch by batch.
"""
from .correlator import Correlator, WEIGHTINGS, SEARCHES  # noqa: F401

__all__ = ["Correlator", "WEIGHTINGS", "SEARCHES"]
