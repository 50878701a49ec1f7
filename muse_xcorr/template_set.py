"""Correlating with a set of templates: one Correlator per template, the best per spaxel.

``Correlator([t0, t1, ...], z, ...)`` builds a `TemplateSetCorrelator`. Each
template is correlated on its own (same grid, same options); per spaxel the
best template is the one with the smallest chi2_best (``inverse_variance``
weighting: chi2_min = ||d||_w^2 (1 - f_w^2) is comparable across templates,
since ||d||_w is the data's) or the largest f_best (``uniform``).

**Composite templates.** An entry of the list may itself be a tuple of
templates with disjoint wavelength support, e.g. line groups ([OII];
H-beta + [OIII]; H-alpha + [NII] + [SII]). The components get independent
non-negative amplitudes: for disjoint columns the least-squares fit of
sum_g A_g T_g (A_g >= 0) has chi2_min = ||d||^2 (1 - sum_g max(f_g, 0)^2),
so the composite's correlation is f = sqrt(sum_g max(f_g, 0)^2) -- a
galaxy's lines are then not forced into one set of line ratios. It is
evaluated exactly (float64, :meth:`Correlator.window`) at the candidate
redshifts: each component's best and second peaks, +-``composite_halfwidth``
grid samples. Its ``sigma_f_best`` and flags are those of the strongest
component at that redshift (an approximation for sigma_f). Continuum
subtraction (``continuum="median"``) keeps line-group columns disjoint.

The combined `~muse_xcorr.Redshift` holds the best entry's maps, plus

- ``template_index``: which entry won (-1 where none was usable);
- ``z_best_t<i>``, ``f_best_t<i>`` (and ``chi2_best_t<i>``): every
  entry's own answer, so that users see the alternatives;
- the line-confusion maps of :mod:`muse_xcorr.confusion` (``confusion=True``).

``result.meta["templates"]`` lists the entry names in index order.
"""
import numpy as np

from .flags import Flag

__all__ = ["TemplateSetCorrelator", "combine", "composite_f"]


class TemplateSetCorrelator:
    """Correlate with several templates and keep the best per spaxel.

    Parameters
    ----------
    templates : sequence of `~muse_xcorr.Template` or of tuples of them
        A tuple is a composite template (see the module notes).
    z : array_like
        The redshift grid, shared by all templates.
    confusion : bool
        Run the line-confusion analysis (:func:`muse_xcorr.confusion.line_confusion`)
        and flag AMBIGUOUS the spaxels whose main line has an alternative
        identification not excluded by the data. Default True.
    confusion_threshold : float
        Delta chi2 below which an alternative is not excluded. Default 9.
    confusion_tolerance : float
        Fraction of the best fit's chi2 improvement below which an
        alternative is not excluded either (template mismatch). Default 0.1.
    composite_halfwidth : int
        Grid samples searched on each side of a composite's candidates.
    **kwargs
        Every other `~muse_xcorr.Correlator` keyword, applied to each template.
    """

    def __init__(self, templates, z, *, confusion=True, confusion_threshold=9.0,
                 confusion_tolerance=0.1, composite_halfwidth=3, **kwargs):
        from .correlate import Correlator

        entries = [tuple(t) if isinstance(t, (list, tuple)) else (t,) for t in templates]
        if not entries or not all(entries):
            raise ValueError("the template set (or one of its composites) is empty")
        self.templates = [e[0] if len(e) == 1 else e for e in entries]
        self.correlators = [[Correlator(t, z, **kwargs) for t in entry] for entry in entries]
        first = self.correlators[0][0]
        self.z = first.z
        self.weighting = first.weighting
        self.sigma_correction = first.sigma_correction
        self.continuum = first.continuum
        self.confusion = bool(confusion)
        self.confusion_threshold = float(confusion_threshold)
        self.confusion_tolerance = float(confusion_tolerance)
        self.composite_halfwidth = int(composite_halfwidth)
        self._chosen = (None, None)

    def __repr__(self):
        return (f"<TemplateSetCorrelator [{', '.join(self.names)}], {self.z.size} redshifts "
                f"{self.z[0]:.4f}-{self.z[-1]:.4f}, weighting={self.weighting!r}>")

    @property
    def names(self):
        """Entry names in index order (a composite: its components joined by '|')."""
        names = []
        for i, entry in enumerate(self.templates):
            parts = entry if isinstance(entry, tuple) else (entry,)
            names.append("|".join(t.name or f"t{i}" for t in parts))
        return names

    def correlate(self, data, *, progress=True):
        """Correlate ``data`` with every template; see the module notes.

        Returns
        -------
        result : `~muse_xcorr.Redshift`
        """
        from .correlate import as_spectral_data
        from .result import Redshift

        data = as_spectral_data(data)
        entry_maps, view = [], None
        for correlators in self.correlators:
            correlators = _covering(correlators, data)
            if not correlators:  # this entry covers none of the data at any redshift
                entry_maps.append(None)
                continue
            results = [c.correlate(data, progress=progress) for c in correlators]
            view = results[0].data
            if len(results) == 1:
                entry_maps.append(results[0]._maps)
            else:
                entry_maps.append(self._composite(view, correlators, results))
        if view is None:
            raise ValueError("no template of the set covers the data's wavelengths at any "
                             "redshift of the grid")
        maps, index = combine(entry_maps, self.weighting)
        meta = {"template": "+".join(self.names), "templates": ",".join(self.names),
                "weighting": self.weighting, "sigma_correction": self.sigma_correction}
        combined = Redshift(maps, z=self.z, spatial_shape=data.spatial_shape, data=view,
                            meta=meta)
        combined.correlator = self
        self._chosen = (view, index)
        if self.confusion:
            from .confusion import line_confusion

            line_confusion(self, combined, threshold=self.confusion_threshold,
                           tolerance=self.confusion_tolerance)
        return combined

    def entry_f(self, data, start, stop, index):
        """Exact f of every entry at grid indices (composites: sqrt of sum of f_g+^2).

        Parameters
        ----------
        data, start, stop
            As :meth:`muse_xcorr.Correlator.window`.
        index : ndarray of int, shape (stop - start, w)

        Returns
        -------
        f : ndarray, shape (n_entries, stop - start, w)
        """
        out = []
        for correlators in self.correlators:
            parts = [c.window(data, start, stop, index, full_covariance=False)[0]
                     for c in _covering(correlators, data)]
            if not parts:
                out.append(np.full(np.shape(index), -np.inf))
                continue
            out.append(parts[0] if len(parts) == 1 else composite_f(parts))
        return np.array(out)

    def _composite(self, data, correlators, results):
        """Maps of a composite entry: best sqrt(sum f_g+^2) around every component's peaks."""
        from .correlate import parabola_vertex

        n = results[0]._maps["z_best"].size
        k_max = self.z.size - 1
        offsets = np.arange(-self.composite_halfwidth, self.composite_halfwidth + 1)
        candidates = []
        for r in results:
            for name in ("best_index", "second_index"):
                candidates.append(np.asarray(r._maps[name]))
        best_s = np.full(n, -np.inf)
        best_k = np.full(n, -1)
        strongest = np.zeros(n, int)
        refined = np.full(n, np.nan)
        for start in range(0, n, 1024):
            stop = min(start + 1024, n)
            centre = np.concatenate([c[start:stop, None] for c in candidates], axis=1)
            usable = centre >= 0
            index = np.clip(np.where(usable, centre, 0)[:, :, None] + offsets, 0, k_max)
            index = index.reshape(stop - start, -1).astype(np.int32)
            parts = np.array([c.window(data, start, stop, index, full_covariance=False)[0]
                              for c in correlators])
            score = composite_f(parts) ** 2
            score = np.where(np.repeat(usable, offsets.size, axis=1), score, -np.inf)
            column = np.argmax(score, axis=1)
            rows = np.arange(stop - start)
            best_s[start:stop] = score[rows, column]
            best_k[start:stop] = index[rows, column]
            strongest[start:stop] = np.argmax(parts[:, rows, column], axis=0)
            # refine below the grid step with the parabola through the neighbours
            inner = (column % offsets.size > 0) & (column % offsets.size < offsets.size - 1)
            around = np.clip(column[:, None] + np.array([-1, 0, 1]), 0, index.shape[1] - 1)
            vertex = parabola_vertex(self.z[index[rows[:, None], around]],
                                     np.sqrt(np.clip(score[rows[:, None], around], 0, None)))
            refined[start:stop] = np.where(inner & np.isfinite(vertex), vertex,
                                           self.z[index[rows, column]])
        stacked = {name: np.stack([r._maps[name] for r in results])
                   for name in results[0]._maps}
        rows = np.arange(n)
        maps = {name: value[strongest, rows] for name, value in stacked.items()}
        found = np.isfinite(best_s) & (best_k >= 0)
        f = np.sqrt(np.where(found, best_s, np.nan))
        maps["component_index"] = strongest.astype(np.int32)
        maps["best_index"] = np.where(found, best_k, -1)
        maps["z_best"] = np.where(found, refined, np.nan)
        maps["f_best"] = f
        with np.errstate(divide="ignore", invalid="ignore"):
            maps["snr"] = f / maps["sigma_f_best"]
        if "chi2_best" in maps:
            maps["chi2_best"] = maps["norm2"] * (1 - f ** 2)
        return maps

    def window(self, data, start, stop, index, *, full_covariance=True, template=None):
        """f and its covariance at grid indices, each spectrum with its best template.

        For a composite entry f is sqrt(sum_g f_g+^2) and the covariance is
        that of its strongest component (an approximation).

        Parameters
        ----------
        data, start, stop, index, full_covariance
            As :meth:`muse_xcorr.Correlator.window`.
        template : int or ndarray of int, optional
            Entry index per spectrum; default the one chosen by the last
            :meth:`correlate` on ``data``.
        """
        if template is None:
            chosen_data, chosen = self._chosen
            if chosen is None or (data is not chosen_data
                                  and getattr(data, "_parent", None) is not chosen_data):
                raise ValueError("give template= (which template per spectrum): these data "
                                 "were not the last ones correlated with this set")
            template = chosen[start:stop]
        template = np.broadcast_to(np.asarray(template, int), (stop - start,))
        f = cov = None
        for i in np.unique(np.maximum(template, 0)):
            parts = [c.window(data, start, stop, index, full_covariance=full_covariance)
                     for c in _covering(self.correlators[i], data)]
            f_parts = np.array([p[0] for p in parts])
            f_i = f_parts[0] if len(parts) == 1 else composite_f(f_parts)
            cov_i = parts[int(np.argmax(np.nanmax(f_parts, axis=(1, 2)))) if len(parts) > 1
                          else 0][1]
            rows = np.maximum(template, 0) == i
            if f is None:
                f, cov = np.zeros_like(f_i), np.zeros_like(cov_i)
            f[rows], cov[rows] = f_i[rows], cov_i[rows]
        return f, cov


def composite_f(parts):
    """The correlation of a composite template from its components' f (stacked on axis 0).

    With disjoint components and independent non-negative amplitudes,
    chi2_min = ||d||^2 (1 - sum_g max(f_g, 0)^2): the composite's f is
    sqrt(sum_g max(f_g, 0)^2). A NaN component counts as no signal.
    """
    parts = np.clip(np.nan_to_num(np.asarray(parts, dtype=float), nan=0.0), 0, None)
    return np.sqrt(np.sum(parts ** 2, axis=0))


def _covering(correlators, data):
    """The correlators whose template is non-zero on some data pixel at some redshift.

    A 0.1 % margin on the wavelength range keeps this conservative (the
    air-vacuum difference is 0.03 %); the Correlator itself raises on a
    template that turns out to be all zero on the grid.
    """
    wave = data.spectral_axis.to_value("Angstrom")
    kept = []
    for c in correlators:
        rest = c.template.vacuum_wavelength()[c.template.flux != 0]
        if rest[0] * (1 + c.z[0]) < wave[-1] * 1.001 and rest[-1] * (1 + c.z[-1]) > \
                wave[0] * 0.999:
            kept.append(c)
    return kept


def combine(entry_maps, weighting):
    """Per-spaxel best of several entries' flat maps.

    Parameters
    ----------
    entry_maps : list of dict or None
        Flat maps of each entry (same data, same grid); None for an entry
        that covers none of the data (it never wins; its maps are NaN).
    weighting : {"uniform", "inverse_variance"}
        Best by smallest chi2_best, or by largest f_best.

    Returns
    -------
    maps : dict
        Flat maps: the best entry's, ``template_index`` and the
        per-entry ``z_best_t<i>``, ``f_best_t<i>``, ``chi2_best_t<i>``.
    index : ndarray of int
        ``template_index`` (-1 where every entry skipped the spaxel).
    """
    template = next(m for m in entry_maps if m is not None)
    n = template["z_best"].size
    blank = {"z_best": np.full(n, np.nan), "f_best": np.full(n, np.nan),
             "chi2_best": np.full(n, np.nan)}
    entry_maps = [m if m is not None else blank for m in entry_maps]
    if weighting == "inverse_variance":
        score = -np.array([m["chi2_best"] for m in entry_maps])
    else:
        score = np.array([m["f_best"] for m in entry_maps])
    score = np.where(np.isfinite(score), score, -np.inf)
    index = np.argmax(score, axis=0)
    usable = np.isfinite(score).any(axis=0)
    names = list(dict.fromkeys(name for m in entry_maps for name in m))
    rows = np.arange(index.size)
    maps = {name: np.stack([_entry_map(m, name, entry_maps) for m in entry_maps])[index, rows]
            for name in names}
    index = np.where(usable, index, -1)
    maps["template_index"] = index.astype(np.int32)
    for i, m in enumerate(entry_maps):
        maps[f"z_best_t{i}"] = m["z_best"]
        maps[f"f_best_t{i}"] = m["f_best"]
        if "chi2_best" in template:
            maps[f"chi2_best_t{i}"] = m["chi2_best"]
    maps["flags"] = np.where(usable, maps["flags"], maps["flags"] | Flag.NO_DATA)
    return maps, index


def _entry_map(maps, name, entry_maps):
    """An entry's map ``name``; one it lacks (e.g. a composite's ``component_index``) is
    blank: NaN for floats, 0 for integers, like the first entry that has it."""
    if name in maps:
        return maps[name]
    like = next(m[name] for m in entry_maps if name in m)
    return np.full_like(like, np.nan) if like.dtype.kind == "f" else np.zeros_like(like)


def entry_correlators(correlator, maps):
    """The single-template correlator behind each spaxel of a template-set result.

    For a composite entry, its strongest component at z_best (the one whose
    sigma_f_best the result reports).

    Parameters
    ----------
    correlator : `TemplateSetCorrelator`
    maps : dict
        The combined result's flat maps (``template_index``, ``component_index``).

    Returns
    -------
    groups : list of (`~muse_xcorr.Correlator`, ndarray of bool)
        Each correlator with the spaxels it answers for.
    """
    entry = maps["template_index"]
    component = maps.get("component_index", np.zeros_like(entry))
    groups = []
    for i in np.unique(entry[entry >= 0]):
        for k in np.unique(component[entry == i]):
            members = correlator.correlators[i]
            groups.append((members[min(int(k), len(members) - 1)],
                           (entry == i) & (component == k)))
    return groups
