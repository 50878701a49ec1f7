"""The candidate list of each spectrum, across templates and line identifications.

Every template contributes its refined local maxima (:mod:`.search`), and
the main line of the best one is put on every other line of
:data:`~muse_xcorr.templates.lines.CONFUSION_LINES` (:func:`hypothesis_centres`):
each hypothesis is searched for with every template. The pool is ranked by

    score = chi2 + composite_penalty x (free amplitudes - 1),

the weighted chi2 of each candidate's fitted model plus a penalty for the
extra free amplitudes of a composite template (each component inside the
data counts one), so that candidates of templates with different numbers
of parameters compare fairly. Candidates closer than the exclusion velocity
to a better one are dropped (whatever their template: the same redshift
is not an alternative), and the best ``n_candidates`` are kept, best first.
``delta_chi2`` of a candidate is its score minus the best score; that of the
spectrum is the second candidate's (Redrock's Delta chi2; +inf without a
second candidate).
"""
import numpy as np

from ..templates.lines import CONFUSION_LINES, LINES

__all__ = ["select_candidates", "scaled_delta", "hypothesis_centres", "confusion_centres",
           "CANDIDATE_FIELDS"]

#: The per-candidate arrays a `~muse_xcorr.Redshift` holds, (n_spectra, n_candidates) each.
CANDIDATE_FIELDS = ("template", "index", "z", "f", "chi2", "score", "delta_chi2",
                    "sigma_f", "n_active", "kappa")


def select_candidates(pool, n_candidates, exclusion, composite_penalty):
    """Rank a pool of candidates and keep the best, at least ``exclusion`` apart.

    Parameters
    ----------
    pool : dict of ndarray (n, C)
        ``template``, ``index``, ``z``, ``f``, ``chi2``, ``variance``,
        ``n_active``, ``kappa``, ``failed``, ``at_edge`` and ``amplitudes`` (n, C, K_max)
        (index -1: no candidate).
    n_candidates : int
    exclusion : float
        In ln(1 + z).
    composite_penalty : float
        chi2 added per free amplitude beyond the first.

    Returns
    -------
    candidates : dict of ndarray (n, n_candidates)
        The fields of :data:`CANDIDATE_FIELDS` plus ``amplitudes``,
        ``failed`` and ``at_edge``, best first; missing candidates have
        template -1 and NaN values.
    """
    n, size = pool["index"].shape
    present = (pool["index"] >= 0) & np.isfinite(pool["chi2"])
    score = pool["chi2"] + composite_penalty * np.maximum(pool["n_active"] - 1, 0)
    score = np.where(present, score, np.inf)
    order = np.argsort(score, axis=1, kind="stable")
    rows = np.arange(n)
    log_z = np.log1p(np.where(present, pool["z"], 0.0))
    kept = np.full((n, n_candidates), -1, dtype=np.int64)
    count = np.zeros(n, dtype=np.int64)
    for i in range(size):
        c = order[:, i]
        ok = present[rows, c] & (count < n_candidates)
        for j in range(n_candidates):
            other = kept[:, j]
            near = (other >= 0) & (np.abs(log_z[rows, c] - log_z[rows, np.maximum(other, 0)])
                                   <= exclusion)
            ok &= ~near
        kept[rows[ok], count[ok]] = c[ok]
        count[ok] += 1
    has = kept >= 0
    take = np.maximum(kept, 0)

    def pick(values, fill):
        extra = (None,) * (values.ndim - 2)
        chosen = np.take_along_axis(values, take[(...,) + extra], axis=1)
        return np.where(has[(...,) + extra], chosen, fill)

    out = {"template": pick(pool["template"], -1).astype(np.int32),
           "index": pick(pool["index"], -1).astype(np.int64),
           "z": pick(pool["z"], np.nan), "f": pick(pool["f"], np.nan),
           "chi2": pick(pool["chi2"], np.nan), "score": pick(score, np.nan),
           "sigma_f": pick(np.sqrt(np.maximum(pool["variance"], 0.0)), np.nan),
           "n_active": pick(pool["n_active"], 0).astype(np.int32),
           "kappa": pick(pool["kappa"], np.nan),
           "failed": pick(pool["failed"], False).astype(bool),
           "at_edge": pick(pool["at_edge"], False).astype(bool),
           "amplitudes": pick(pool["amplitudes"], np.nan)}
    out["score"] = np.where(has, out["score"], np.nan)
    out["delta_chi2"] = scaled_delta(out["score"], out["kappa"])
    return out


def scaled_delta(score, kappa):
    """delta_chi2 of each candidate to the best: score difference over the noise inflation.

    With correlated noise the chi2 of diagonal weights overstates the
    evidence by the variance inflation kappa of the models' amplitudes
    (maths section 7); the difference is divided by the larger kappa of the
    two candidates (1 for white noise).

    Parameters
    ----------
    score, kappa : ndarray (n, n_candidates)
    """
    scale = np.maximum(np.nan_to_num(kappa, nan=1.0), np.nan_to_num(kappa[:, :1], nan=1.0))
    return (score - score[:, :1]) / np.maximum(scale, 1e-12)


def confusion_centres(lines=CONFUSION_LINES):
    """Vacuum centre of each confusion line: the strength-weighted mean of its members."""
    centres = {}
    for name, members in lines.items():
        wave = np.array([LINES[m][0] for m in members])
        weight = np.array([LINES[m][2] for m in members])
        weight = weight if weight.sum() > 0 else np.ones_like(wave)
        centres[name] = float(np.sum(wave * weight) / weight.sum())
    return centres


def hypothesis_centres(main_wavelength, z_best, z_grid, *, lines=CONFUSION_LINES,
                       separation=2e-3):
    """Grid indices of the redshifts at which the main line is another confusion line.

    Parameters
    ----------
    main_wavelength : ndarray (n,)
        Vacuum observed wavelength of the best candidate's strongest line
        (NaN: none).
    z_best : ndarray (n,)
    z_grid : ndarray
    lines : dict
        Name -> member lines (default :data:`CONFUSION_LINES`).
    separation : float
        Hypotheses within ``separation (1 + z_best)`` of z_best are the
        current identification and are skipped.

    Returns
    -------
    centres : ndarray (n, len(lines)) of int
        -1 where the hypothesis is the current one, off the grid, or undefined.
    names : list of str
    """
    centres = confusion_centres(lines)
    names = list(centres)
    out = np.full((np.size(z_best), len(names)), -1, dtype=np.int64)
    for j, name in enumerate(names):
        z_alt = main_wavelength / centres[name] - 1
        ok = np.isfinite(z_alt) & (z_alt >= z_grid[0]) & (z_alt <= z_grid[-1]) & \
            (np.abs(z_alt - z_best) > separation * (1 + z_best))
        index = np.clip(np.searchsorted(z_grid, np.where(ok, z_alt, z_grid[0])), 0,
                        z_grid.size - 1)
        out[:, j] = np.where(ok, index, -1)
    return out, names
