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

A candidate's float64 refinement is the search's largest cost, and most of
them never enter the list. :class:`PendingPool` refines a candidate only
when a lower bound of its score (from the hot-path window,
:func:`~muse_xcorr.correlate.search.window_best`) does not already put it
behind the last of a full list: the list is the one that refining every
candidate gives.
"""
import numpy as np

from ..templates.lines import CONFUSION_LINES, LINES
from .search import refine

__all__ = ["select_candidates", "scaled_delta", "hypothesis_centres", "confusion_centres",
           "CANDIDATE_FIELDS", "PendingPool", "merge_pools"]

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


#: The fields of a refined candidate (:func:`~muse_xcorr.correlate.search.refine`) and
#: their value where there is none.
_ABSENT = {"index": -1, "z": np.nan, "f": np.nan, "chi2": np.nan, "variance": np.nan,
           "failed": False, "at_edge": False, "n_active": 0, "kappa": np.nan}


def merge_pools(parts, k_max):
    """Concatenate candidate pools along the candidate axis (amplitudes padded to k_max)."""
    parts = [p for p in parts if p is not None]
    if not parts:
        raise ValueError("no candidate pool to merge")
    out = {}
    for name in parts[0]:
        values = []
        for p in parts:
            value = p[name]
            if name == "amplitudes" and value.shape[-1] < k_max:
                value = np.concatenate([value, np.full(value.shape[:-1] + (
                    k_max - value.shape[-1],), np.nan)], axis=-1)
            values.append(value)
        out[name] = np.concatenate(values, axis=1)
    return out


class _Part:
    """One template's starting indices in a `PendingPool`, and what is refined of them."""

    def __init__(self, template, prepared, index, lower):
        n, s = index.shape
        self.template, self.prepared = template, prepared
        self.index = index
        self.lower = lower
        self.done = index < 0
        self.found = {name: np.full((n, s), value) for name, value in _ABSENT.items()}
        self.found["amplitudes"] = np.full((n, s, prepared.n_components), np.nan)
        self.found["template"] = np.full((n, s), template)


class PendingPool:
    """The candidates of one batch, each refined in float64 only if it can enter the list.

    Candidates are added as starting grid indices with a lower bound of their
    score; :meth:`settle` refines (:func:`~muse_xcorr.correlate.search.refine`)
    in rounds, each time every candidate whose bound is not above the last of
    the full list of the refined ones, until none is left that could enter.
    The list is then the one that refining every candidate gives
    (:func:`select_candidates`: a candidate scoring above the last of a full
    list changes nothing, whatever the exclusion).

    Parameters
    ----------
    work : `~muse_xcorr.correlate.model.WorkingBatch`
    k_max : int
        The most components of a template (amplitudes are padded to it).
    correction : bool
        Second-order correction of sigma_f.

    Attributes
    ----------
    n_refined, n_added : int
        Candidates refined so far, and added (with a starting index).
    """

    def __init__(self, work, k_max, correction):
        self.work = work
        self.k_max = int(k_max)
        self.correction = correction
        self.parts = []
        self.n_refined = 0
        self.n_added = 0

    def add(self, template, prepared, index, explained=None):
        """Add one template's candidates.

        Parameters
        ----------
        template : int
            The template's index in the correlator's set.
        prepared : `~muse_xcorr.correlate.model.PreparedTemplate`
        index : ndarray (n, s) of int
            Starting fine grid indices (-1: none).
        explained : ndarray (n, s), optional
            An upper bound of f^2 of each refined candidate
            (:func:`~muse_xcorr.correlate.search.window_best`); with
            inverse-variance weights ``norm2_w (1 - explained)`` is a lower
            bound of its chi2 and so of its score. None (or other weights):
            no bound, refined whenever the list is not settled.
        """
        index = np.asarray(index, dtype=np.int64)
        lower = np.full(index.shape, -np.inf)
        if explained is not None and self.work.weighting == "inverse_variance":
            with np.errstate(invalid="ignore"):  # 0 x inf: no data, no bound
                lower = self.work.norm2_w[:, None] * (1.0 - np.asarray(explained, dtype=float))
            lower = np.where(np.isnan(lower), -np.inf, lower)
        self.parts.append(_Part(template, prepared, index, lower))
        self.n_added += int(np.sum(index >= 0))

    def pool(self):
        """Every candidate, in the order added; the unrefined ones absent (index -1)."""
        return merge_pools([part.found for part in self.parts], self.k_max)

    def settle(self, n_candidates, exclusion, composite_penalty):
        """Refine what can enter the best ``n_candidates`` and return them.

        Parameters and returns as :func:`select_candidates` (over every
        candidate, refined or not).
        """
        while True:
            chosen = select_candidates(self.pool(), n_candidates, exclusion, composite_penalty)
            missing = np.sum(chosen["template"] < 0, axis=1)
            # best first: the next few of least bound (as many as the list lacks, or
            # n_candidates), and of a full list only those that may beat its last;
            # every one without a bound at once
            threshold = self._next_bound(np.where(missing > 0, missing, n_candidates))
            threshold = np.where(missing == 0, np.minimum(threshold, chosen["score"][:, -1]),
                                 threshold)
            if self._refine_where(threshold) == 0:
                return chosen

    def _next_bound(self, count):
        """Per spectrum, the ``count``-th least bound (``count`` (n,) >= 1) of the pending
        candidates that have one (+inf where fewer are pending)."""
        pending = np.concatenate([np.where(part.done | (part.lower == -np.inf), np.inf,
                                           part.lower) for part in self.parts], axis=1)
        if pending.shape[1] == 0:
            return np.full(pending.shape[0], np.inf)
        ordered = np.sort(pending, axis=1)
        position = np.minimum(count, ordered.shape[1]) - 1
        bound = np.take_along_axis(ordered, position[:, None], axis=1)[:, 0]
        return np.where(count <= ordered.shape[1], bound, np.inf)

    def _refine_where(self, threshold):
        """Refine the pending candidates whose bound is at most ``threshold`` (n,)."""
        count = 0
        for part in self.parts:
            want = ~part.done & (part.lower <= threshold[:, None])
            if not want.any():
                continue
            rows = np.flatnonzero(np.any(want, axis=1))
            wanted = want[rows]
            row, slot = np.nonzero(wanted)
            packed_slot = (np.cumsum(wanted, axis=1) - 1)[row, slot]
            packed = np.full((rows.size, int(wanted.sum(axis=1).max())), -1, dtype=np.int64)
            packed[row, packed_slot] = part.index[rows[row], slot]
            found = refine(self.work.subset(rows), part.prepared, packed,
                           correction=self.correction)
            for name, value in found.items():
                part.found[name][rows[row], slot] = value[row, packed_slot]
            part.done |= want
            count += int(want.sum())
        self.n_refined += count
        return count
