"""Line confusion: could the main line of a detection be another line?

In MUSE deep fields most galaxies show one strong line, and a single line
at lambda_obs fits Lyman alpha at z = lambda_obs / 1215.67 - 1 as well as
[OII] 3727, H-alpha, [OIII] 5007... For every spectrum correlated with a
template set, :func:`line_confusion`

1. finds the main feature: the observed pixel where the best-fit model
   (best entry at z_best, continuum-subtracted by a 150 A running median,
   each component of a composite with its own non-negative amplitude) has
   the largest (model / sigma)^2;
2. for each line of :data:`~muse_xcorr.templates.lines.CONFUSION_LINES`, puts that
   feature on the line: z_alt = lambda_obs,vac / lambda_line - 1 (skipping
   the current identification, |z_alt - z_best| < 2e-3 (1 + z_best), and
   redshifts outside the grid);
3. evaluates every entry of the set in a +-2e-3 (1 + z) window around z_alt
   (exact float64 f from :meth:`Correlator.window`, composites as
   sqrt(sum f_g+^2)) and keeps the best,
   f_alt >= 0 (a negative amplitude is not an emission line);
4. computes Delta chi2 = chi2_alt - chi2_best = ||d||_w^2 (f_best^2 - f_alt^2)
   (``inverse_variance`` weighting, exact); with ``uniform`` weighting the
   proxy ((f_best - f_alt) / sigma_f_best)^2, which ignores the covariance
   of the two f values (small for well separated redshifts).

The data exclude an alternative when its chi2 is worse: its templates
predict second lines that are absent, a doublet shape ([OII], CIII]) that
is not seen, or a symmetric line where the data show Lyman alpha's
asymmetry, and each of these raises its chi2. "Worse" means Delta chi2 >=
``threshold`` and Delta chi2 >= ``tolerance`` x ||d||^2 f_best^2 (the chi2
improvement of the best fit over no signal, about its S/N^2): at high S/N a
fixed threshold would let template mismatch (line widths, ratios, Lyman-alpha
asymmetry not exactly those of the templates) exclude the right answer, so
an alternative that explains at least 1 - tolerance of the signal stays
open. Otherwise the
spectrum is flagged AMBIGUOUS. How well this works on a simulated deep-field
population is measured by ``benchmarks/evaluate_population.py``
(docs/templates.rst).

Maps added to the result: ``main_wavelength`` (observed, the data's medium),
``dchi2_<line>`` per alternative (NaN where not evaluable), ``alt_line``
(index into ``result.meta['confusion_lines']``, -1 if none), ``z_alt`` and
``dchi2_alt`` for the best alternative.
"""
import numpy as np
import astropy.units as u

from .templates.continuum import ContinuumSubtraction
from .flags import Flag
from .templates.lines import CONFUSION_LINES, LINES
from .units import convert_medium

__all__ = ["line_confusion", "confusion_centres", "map_name"]

_MAIN_FEATURE_CONTINUUM = ContinuumSubtraction("median", 150 * u.AA)


def confusion_centres(lines=CONFUSION_LINES):
    """Vacuum centre of each confusion line: the strength-weighted mean of its members."""
    centres = {}
    for name, members in lines.items():
        wave = np.array([LINES[m][0] for m in members])
        weight = np.array([LINES[m][2] for m in members])
        weight = weight if weight.sum() > 0 else np.ones_like(wave)
        centres[name] = float(np.sum(wave * weight) / weight.sum())
    return centres


def map_name(line):
    """The map name of a line's Delta chi2, e.g. ``dchi2_oiii5007``."""
    keep = "".join(c for c in line.lower() if c.isalnum())
    return f"dchi2_{keep}"


def line_confusion(set_correlator, result, *, threshold=9.0, tolerance=0.1,
                   lines=CONFUSION_LINES, search=2e-3, batch_size=512):
    """Alternative identifications of each spectrum's main line; flags AMBIGUOUS in place.

    Parameters
    ----------
    set_correlator : `~muse_xcorr.template_set.TemplateSetCorrelator`
        The correlator that produced ``result``.
    result : `~muse_xcorr.Redshift`
        Its combined result (with ``data``); maps are added to it.
    threshold : float
        Delta chi2 below which an alternative is not excluded.
    tolerance : float
        Fraction of the best fit's chi2 improvement (||d||^2 f_best^2) below
        which an alternative is not excluded either (template mismatch).
    lines : dict
        Name -> member lines, default :data:`~muse_xcorr.templates.lines.CONFUSION_LINES`.
    search : float
        Half-width of the search around each z_alt, in dz / (1 + z).
    batch_size : int

    Returns
    -------
    result : `~muse_xcorr.Redshift`
        The same object.
    """
    data, maps = result.data, result._maps
    z_grid = set_correlator.z
    wave = data.spectral_axis
    centres = confusion_centres(lines)
    names = list(centres)
    n = maps["z_best"].size
    main = np.full(n, np.nan)
    dchi2 = np.full((len(names), n), np.nan)
    z_alt_all = np.full((len(names), n), np.nan)
    dlnz = np.median(np.diff(np.log1p(z_grid)))
    half = int(np.ceil(np.log1p(search) / dlnz))
    offsets = np.arange(-half, half + 1)
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        batch = data.spectra(start, stop)
        index = maps["template_index"][start:stop]
        z_best = maps["z_best"][start:stop]
        usable = (index >= 0) & np.isfinite(z_best)
        observed = _main_wavelength(set_correlator.templates, batch, wave, data.medium,
                                    index, z_best, usable)
        main[start:stop] = observed
        observed_vac = np.full(observed.shape, np.nan)
        observed_vac[usable] = convert_medium(observed[usable] * u.AA, data.medium,
                                              "vacuum").to_value(u.AA)
        for k, name in enumerate(names):
            z_alt = observed_vac / centres[name] - 1
            ok = usable & (z_alt >= z_grid[0]) & (z_alt <= z_grid[-1]) & \
                (np.abs(z_alt - z_best) > search * (1 + z_best))
            if not ok.any():
                continue
            centre = np.searchsorted(z_grid, np.where(ok, z_alt, z_grid[0]))
            grid_index = np.clip(centre[:, None] + offsets, 0, z_grid.size - 1).astype(np.int32)
            f = set_correlator.entry_f(data, start, stop, grid_index)
            f_alt = np.clip(np.max(np.where(np.isfinite(f), f, -np.inf), axis=(0, 2)), 0, None)
            delta = _delta_chi2(set_correlator.weighting, maps, start, stop, f_alt)
            dchi2[k, start:stop] = np.where(ok, delta, np.nan)
            z_alt_all[k, start:stop] = np.where(ok, z_alt, np.nan)
    evaluated = np.isfinite(dchi2)
    best = np.argmin(np.where(evaluated, dchi2, np.inf), axis=0)
    has_alt = evaluated.any(axis=0)
    rows = np.arange(n)
    maps["main_wavelength"] = main
    for k, name in enumerate(names):
        maps[map_name(name)] = dchi2[k]
    maps["alt_line"] = np.where(has_alt, best, -1).astype(np.int32)
    maps["z_alt"] = np.where(has_alt, z_alt_all[best, rows], np.nan)
    maps["dchi2_alt"] = np.where(has_alt, dchi2[best, rows], np.nan)
    signal = maps["norm2"] * np.clip(maps["f_best"], 0, None) ** 2
    if set_correlator.weighting != "inverse_variance":  # the proxy is in units of sigma_f^2
        with np.errstate(divide="ignore", invalid="ignore"):
            signal = (maps["f_best"] / maps["sigma_f_best"]) ** 2
    limit = np.maximum(threshold, tolerance * np.nan_to_num(signal))
    ambiguous = has_alt & (maps["dchi2_alt"] < limit)
    maps["flags"] = np.where(ambiguous, maps["flags"] | Flag.AMBIGUOUS, maps["flags"])
    result.meta["confusion_lines"] = ",".join(names)
    result.meta["confusion_threshold"] = float(threshold)
    result.meta["confusion_tolerance"] = float(tolerance)
    return result


def _delta_chi2(weighting, maps, start, stop, f_alt):
    f_best = maps["f_best"][start:stop]
    if weighting == "inverse_variance":
        return maps["norm2"][start:stop] * (np.clip(f_best, 0, None) ** 2 - f_alt ** 2)
    sigma = maps["sigma_f_best"][start:stop]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sign(f_best - f_alt) * ((f_best - f_alt) / sigma) ** 2


def _main_wavelength(templates, batch, wave, medium, index, z_best, usable):
    """Observed wavelength of the most significant feature of each best-fit model.

    The model is the best entry at z_best, continuum-subtracted, with each
    component of a composite scaled by its own non-negative amplitude.
    """
    observed = np.full(index.size, np.nan)
    weight = batch.inverse_variance()
    for i in np.unique(index[usable]):
        rows = np.flatnonzero(usable & (index == i))
        entry = templates[i] if isinstance(templates[i], tuple) else (templates[i],)
        model = np.zeros((rows.size, wave.size))
        for component in entry:
            column = component.matrix(wave, z_best[rows], medium=medium).T
            column = _MAIN_FEATURE_CONTINUUM.subtract(column, True, wave)
            a = np.einsum("ij,ij,ij->i", weight[rows], batch.flux[rows], column)
            b = np.einsum("ij,ij,ij->i", weight[rows], column, column)
            with np.errstate(divide="ignore", invalid="ignore"):
                amplitude = np.where(b > 0, np.clip(a / b, 0, None), 0.0)
            model += amplitude[:, None] * column
        significance = model ** 2 * weight[rows]
        observed[rows] = wave.to_value(u.AA)[np.argmax(significance, axis=1)]
    return observed
