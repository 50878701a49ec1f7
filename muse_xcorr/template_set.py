"""Correlating with a set of templates: one Correlator per template, the best per spaxel.

``Correlator([t0, t1, ...], z, ...)`` builds a `TemplateSetCorrelator`. Each
template is correlated on its own (same grid, same options); per spaxel the
best template is the one with the smallest chi2_best (``inverse_variance``
weighting: chi2_min = ||d||_w^2 (1 - f_w^2) is comparable across templates,
since ||d||_w is the data's) or the largest f_best (``uniform``). The
combined `~muse_xcorr.Redshift` holds the best template's maps, plus

- ``template_index``: which template won (-1 where none was usable);
- ``z_best_t<i>``, ``f_best_t<i>`` (and ``chi2_best_t<i>``): every
  template's own answer, so that users see the alternatives;
- the line-confusion maps of :mod:`muse_xcorr.confusion` (``confusion=True``).

``result.meta["templates"]`` lists the template names in index order.
"""
import numpy as np

from .flags import Flag

__all__ = ["TemplateSetCorrelator"]


class TemplateSetCorrelator:
    """Correlate with several templates and keep the best per spaxel.

    Parameters
    ----------
    templates : sequence of `~muse_xcorr.Template`
    z : array_like
        The redshift grid, shared by all templates.
    confusion : bool
        Run the line-confusion analysis (:func:`muse_xcorr.confusion.line_confusion`)
        and flag AMBIGUOUS the spaxels whose main line has an alternative
        identification not excluded by the data. Default True.
    confusion_threshold : float
        Delta chi2 below which an alternative is not excluded. Default 9.
    **kwargs
        Every other `~muse_xcorr.Correlator` keyword, applied to each template.
    """

    def __init__(self, templates, z, *, confusion=True, confusion_threshold=9.0, **kwargs):
        from .correlate import Correlator

        templates = list(templates)
        if not templates:
            raise ValueError("the template set is empty")
        self.correlators = [Correlator(t, z, **kwargs) for t in templates]
        first = self.correlators[0]
        self.templates = templates
        self.z = first.z
        self.weighting = first.weighting
        self.sigma_correction = first.sigma_correction
        self.continuum = first.continuum
        self.confusion = bool(confusion)
        self.confusion_threshold = float(confusion_threshold)
        self._chosen = (None, None)

    def __repr__(self):
        names = ", ".join(str(t.name) for t in self.templates)
        return (f"<TemplateSetCorrelator [{names}], {self.z.size} redshifts "
                f"{self.z[0]:.4f}-{self.z[-1]:.4f}, weighting={self.weighting!r}>")

    @property
    def names(self):
        """Template names (or ``t<i>`` where a template has none), in index order."""
        return [t.name or f"t{i}" for i, t in enumerate(self.templates)]

    def correlate(self, data, *, progress=True):
        """Correlate ``data`` with every template; see the module notes.

        Returns
        -------
        result : `~muse_xcorr.Redshift`
        """
        from .correlate import as_spectral_data
        from .result import Redshift

        data = as_spectral_data(data)
        results = [c.correlate(data, progress=progress) for c in self.correlators]
        maps, index = combine(results, self.weighting)
        meta = {"template": "+".join(self.names), "templates": ",".join(self.names),
                "weighting": self.weighting, "sigma_correction": self.sigma_correction}
        combined = Redshift(maps, z=self.z, spatial_shape=data.spatial_shape, data=results[0].data,
                            meta=meta)
        combined.correlator = self
        self._chosen = (combined.data, index)
        if self.confusion:
            from .confusion import line_confusion

            line_confusion(self, combined, threshold=self.confusion_threshold)
        return combined

    def window(self, data, start, stop, index, *, full_covariance=True, template=None):
        """f and its covariance at grid indices, each spectrum with its best template.

        Parameters
        ----------
        data, start, stop, index, full_covariance
            As :meth:`muse_xcorr.Correlator.window`.
        template : int or ndarray of int, optional
            Template index per spectrum; default the one chosen by the last
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
            f_i, cov_i = self.correlators[i].window(data, start, stop, index,
                                                    full_covariance=full_covariance)
            rows = np.maximum(template, 0) == i
            if f is None:
                f, cov = np.zeros_like(f_i), np.zeros_like(cov_i)
            f[rows], cov[rows] = f_i[rows], cov_i[rows]
        return f, cov


def combine(results, weighting):
    """Per-spaxel best of several single-template results.

    Parameters
    ----------
    results : list of `~muse_xcorr.Redshift`
        Same data, same grid.
    weighting : {"uniform", "inverse_variance"}
        Best by smallest chi2_best, or by largest f_best.

    Returns
    -------
    maps : dict
        Flat maps: the best template's, ``template_index`` and the
        per-template ``z_best_t<i>``, ``f_best_t<i>``, ``chi2_best_t<i>``.
    index : ndarray of int
        ``template_index`` (-1 where every template skipped the spaxel).
    """
    if weighting == "inverse_variance":
        score = np.array([r._maps["chi2_best"] for r in results])
        score = np.where(np.isfinite(score), score, np.inf)
        index = np.argmin(score, axis=0)
        usable = np.isfinite(score).any(axis=0)
    else:
        score = np.array([r._maps["f_best"] for r in results])
        score = np.where(np.isfinite(score), score, -np.inf)
        index = np.argmax(score, axis=0)
        usable = np.isfinite(score).any(axis=0)
    names = [n for n in results[0]._maps if all(n in r._maps for r in results)]
    rows = np.arange(index.size)
    maps = {}
    for name in names:
        stacked = np.stack([r._maps[name] for r in results])
        maps[name] = stacked[index, rows]
    index = np.where(usable, index, -1)
    maps["template_index"] = index.astype(np.int32)
    for i, r in enumerate(results):
        maps[f"z_best_t{i}"] = r._maps["z_best"]
        maps[f"f_best_t{i}"] = r._maps["f_best"]
        if "chi2_best" in r._maps:
            maps[f"chi2_best_t{i}"] = r._maps["chi2_best"]
    maps["flags"] = np.where(usable, maps["flags"], maps["flags"] | Flag.NO_DATA)
    return maps, index
