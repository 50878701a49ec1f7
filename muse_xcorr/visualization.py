"""Plots of a :class:`~muse_xcorr.Redshift` and of the data it came from.

Each function draws on matplotlib axes and returns them (or the figure),
with labels ready for a paper:

- :func:`plot_candidates`: the inspection plot of one spaxel, its
  (continuum-subtracted) spectrum with the fitted models of its best
  candidates and the best one's lines labelled, above its p(z) or
  Delta chi2(z) with every candidate marked: why a spaxel is ambiguous;
- :func:`plot_pdf`: one spaxel's p(z) with its candidates marked;
- :func:`plot_chi2`: one spaxel's Delta chi2(z), per template of its candidates;
- :func:`plot_ccf`: one spaxel's correlation f(z) with its 1-sigma band and
  the best and second-best peaks marked;
- :func:`plot_map`: a map of the result (``z_best``, ``snr``, ``flags``...) on
  the sky, in celestial coordinates when the cube has a WCS, with flagged
  spaxels masked; ``flags`` and ``template_index`` as categories with a
  legend of names;
- :func:`plot_spectrum`: one spaxel's spectrum with the template at a
  redshift, scaled by its maximum-likelihood amplitude, or with the
  correlator's fitted model (``model=True``), overlaid.

The spectra are drawn with a y range that a few extreme pixels (a sky-line
residual) do not set, see :func:`robust_limits`. The figures these
functions create use matplotlib's constrained layout (matplotlib >= 3.6),
so that no axis label is cut.

matplotlib is imported only when a function is called: it is an optional
dependency (``pip install muse_xcorr[all]``).
"""
import numpy as np
import astropy.units as u

from .flags import describe

__all__ = ["plot_candidates", "plot_pdf", "plot_chi2", "plot_ccf", "plot_map",
           "plot_spectrum", "robust_limits", "MAP_LABELS", "CATEGORICAL_MAPS", "RANK_COLORS"]

#: Colour-bar labels of the maps a `~muse_xcorr.Redshift` holds.
MAP_LABELS = {
    "z_best": r"Redshift $z_\mathrm{best}$",
    "f_best": r"Peak correlation $f(z_\mathrm{best})$",
    "sigma_f_best": r"$\sigma_f$ at the peak",
    "snr": r"Peak S/N $f_\mathrm{best} / \sigma_f$",
    "flags": "Flags",
    "template_index": "Best template",
    "z_second": r"Second-best redshift $z_\mathrm{second}$",
    "f_second": r"Second-best correlation $f_\mathrm{second}$",
    "coverage": "Template coverage of the valid pixels",
    "n_valid": "Valid pixels",
    "chi2_best": r"$\chi^2_\mathrm{min}$ at $z_\mathrm{best}$",
    "chi2_second": r"$\chi^2_\mathrm{min}$ at $z_\mathrm{second}$",
    "delta_chi2": r"$\Delta\chi^2$ of the second candidate",
}

#: Maps drawn as categories (one colour and one legend entry per value) by `plot_map`.
CATEGORICAL_MAPS = ("flags", "template_index")

#: Colours of the candidates, best first (in every plot of candidates; C0 is left
#: out: it is close to the error band's blue).
RANK_COLORS = ("C3", "C2", "C1", "C4", "C5", "C6", "C8", "C9")

#: Colour and opacity of the +-1 sigma band of the spectra.
_BAND = dict(color="tab:blue", alpha=0.3, lw=0)


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("muse_xcorr.visualization needs matplotlib: pip install matplotlib") \
            from None
    return plt


def _at(result, name, index):
    """The value of map ``name`` of ``result`` at spatial ``index`` (``()`` for a spectrum)."""
    return np.asarray(getattr(result, name))[tuple(index)]


def _spaxel_label(index):
    return "spectrum" if not index else "spaxel (" + ", ".join(str(int(i)) for i in index) + ")"


def _title(result, index):
    """The spaxel and, in brackets, the names of its flags."""
    title = _spaxel_label(index)
    flags = describe(_at(result, "flags", index))
    return title + (" [" + ", ".join(flags) + "]" if flags else "")


def _rank_style(rank):
    return dict(color=RANK_COLORS[rank % len(RANK_COLORS)], lw=1.4 if rank == 0 else 1.0,
                ls="-" if rank == 0 else "--", zorder=3 - 0.01 * rank)


def robust_limits(values, *, percentiles=(0.5, 99.5), margin=0.08, include=()):
    """A y range for a spectrum that a few extreme pixels do not set.

    The range spans the ``percentiles`` of the finite ``values``, widened by
    ``margin`` of its width on each side, and then extended to cover every
    finite value of the arrays in ``include`` (e.g. a fitted model, so that
    the lines it fits are drawn whole). With the default percentiles, up to
    0.5 % of the pixels at each end -- single sky-line residuals, cosmic
    rays -- fall outside; so would an emission line narrower than that with
    no model over it.

    Parameters
    ----------
    values : array_like
        The flux (any unit); NaN ignored.
    percentiles : (float, float)
        Lower and upper percentile, in per cent.
    margin : float
        Fraction of the range added on each side.
    include : sequence of array_like
        Arrays whose whole finite range must be shown.

    Returns
    -------
    limits : (float, float) or None
        In the unit of ``values``; None when nothing is finite.
    """
    values = np.asarray(values, dtype=float)
    finite = values[np.isfinite(values)]
    low = high = None
    if finite.size:
        low, high = (float(v) for v in np.percentile(finite, percentiles))
    for extra in include:
        extra = np.asarray(extra, dtype=float)
        extra = extra[np.isfinite(extra)]
        if extra.size:
            low = float(extra.min()) if low is None else min(low, float(extra.min()))
            high = float(extra.max()) if high is None else max(high, float(extra.max()))
    if low is None:
        return None
    span = high - low
    if not span > 0:
        span = abs(high) if high != 0 else 1.0
    return low - margin * span, high + margin * span


def _draw_spectrum(ax, wave, flux, sigma, errors, kwargs, label="data"):
    """The spectrum (``ax.lines`` gets it) and its +-1 sigma band; NaN pixels are gaps."""
    line, = ax.plot(wave, flux, color=kwargs.pop("color", "0.2"), lw=kwargs.pop("lw", 0.6),
                    label=kwargs.pop("label", label), **kwargs)
    if errors:
        ax.fill_between(wave, flux - sigma, flux + sigma, label=r"$\pm 1\,\sigma$", **_BAND)
    return line


def _set_robust_ylim(ax, flux, ylim, include=()):
    if ylim is None:
        return
    if ylim == "robust":
        limits = robust_limits(flux, include=include)
        if limits is not None:
            ax.set_ylim(*limits)
    else:
        ax.set_ylim(*ylim)


# ---------------------------------------------------------------------- correlation curves
def plot_ccf(result, *index, ax=None, band=True, show_peaks=True, color="k", **kwargs):
    """Plot one spaxel's correlation f(z) with its 1-sigma band and peaks.

    Parameters
    ----------
    result : `~muse_xcorr.Redshift`
        Its :meth:`~muse_xcorr.Redshift.ccf` must be available: a result
        fresh from :meth:`~muse_xcorr.Correlator.correlate`, or one read from
        a file that was written with ``keep_ccf=True``.
    *index : int
        Spatial indices of the spaxel, e.g. ``plot_ccf(result, y, x)``; none
        for a single spectrum.
    ax : `~matplotlib.axes.Axes`, optional
        Default: the current axes.
    band : bool
        Shade f +- sigma_f.
    show_peaks : bool
        Mark z_best (dashed) and z_second (dotted, when there is one) with
        vertical lines labelled by their values.
    color : str
        Colour of the curve and its band.
    **kwargs
        Passed to `~matplotlib.axes.Axes.plot` for the curve.

    Returns
    -------
    ax : `~matplotlib.axes.Axes`
        ``ax.lines[0]`` is f(z); ``ax.collections[0]`` the band.
    """
    plt = _pyplot()
    ax = plt.gca() if ax is None else ax
    z, f, sigma_f = result.ccf(*index)
    ax.plot(z, f, color=color, lw=kwargs.pop("lw", 1.0), label=kwargs.pop("label", "$f(z)$"),
            **kwargs)
    if band:
        ax.fill_between(z, f - sigma_f, f + sigma_f, color=color, alpha=0.25, lw=0,
                        label=r"$\pm 1\,\sigma_f$")
    if show_peaks:
        z_best, z_second = _at(result, "z_best", index), _at(result, "z_second", index)
        if np.isfinite(z_best):
            ax.axvline(z_best, color="C3", ls="--", lw=1,
                       label=rf"$z_\mathrm{{best}} = {z_best:.5f}$")
        if np.isfinite(z_second):
            ax.axvline(z_second, color="C0", ls=":", lw=1,
                       label=rf"$z_\mathrm{{second}} = {z_second:.5f}$")
    ax.set_xlabel("Redshift $z$")
    ax.set_ylabel("Normalised cross-correlation $f(z)$")
    ax.set_title(_title(result, index))
    ax.legend(loc="best", fontsize="small")
    return ax


def _candidates_of(result, flat, n=None):
    """The spaxel's candidates, best first: rank, template, z, delta_chi2 (those that exist)."""
    template = np.asarray(result.flat_candidates("template")[flat])
    keep = np.flatnonzero(template >= 0)
    if n is not None:
        keep = keep[:max(int(n), 0)]
    fields = {name: np.asarray(result.flat_candidates(name)[flat])[keep]
              for name in ("template", "z", "delta_chi2")}
    fields["rank"] = keep
    return fields


def _candidate_label(result, template, z, delta, rank, short=False):
    names = result.template_names
    name = names[template] if 0 <= template < len(names) else f"template {template}"
    if short:
        return f"#{rank + 1} {name}, z = {z:.4f}"
    delta = r"$\Delta\chi^2$ = " + ("0 (best)" if rank == 0 else f"{delta:.1f}")
    return f"#{rank + 1} {name}: z = {z:.5f}, {delta}"


def _mark_candidates(ax, result, candidates):
    """A vertical line at every candidate's z, in its rank's colour, with a legend label."""
    for rank, template, z, delta in zip(candidates["rank"], candidates["template"],
                                        candidates["z"], candidates["delta_chi2"]):
        style = _rank_style(int(rank))
        style.update(lw=1.0, ls="-" if rank == 0 else "--", alpha=0.8)
        ax.axvline(z, label=_candidate_label(result, int(template), z, delta, int(rank),
                                             short=True), **style)


def _no_candidate(ax):
    ax.text(0.5, 0.5, "no candidate", transform=ax.transAxes, ha="center", va="center",
            color="0.4")


def plot_pdf(result, *index, ax=None, n=None, templates="candidates", log=False, color="k",
             **kwargs):
    """Plot one spaxel's redshift probability p(z), with its candidates marked.

    p(z) is :meth:`Redshift.pdf <muse_xcorr.Redshift.pdf>`: the profile
    likelihood exp(-chi2(z) / 2) of the spaxel's best template, normalised
    to unit integral over the grid. With ``templates="candidates"`` each
    other template among the candidates gets its curve exp(-chi2_t(z) / 2)
    on the same scale (divided by the same constant), so that heights
    compare: a candidate Delta chi2 = 9 worse peaks at 1 % of the best one
    (use ``log=True`` to see it). p(z) exists for the inverse-variance
    weighting only: for a result of the uniform weighting this raises a
    ValueError (plot :func:`plot_chi2` instead).

    Parameters
    ----------
    result : `~muse_xcorr.Redshift`
        Fresh from :meth:`~muse_xcorr.Correlator.correlate` (it needs the data).
    *index : int
        Spatial indices of the spaxel; none for a single spectrum.
    ax : `~matplotlib.axes.Axes`, optional
        Default: the current axes.
    n : int, optional
        Mark the ``n`` best candidates; default all.
    templates : {"candidates", "best"}
        Curves for every template among those candidates, or the best only.
    log : bool
        A logarithmic p axis, down to 1e-8 of the peak.
    color : str
        Colour of the best template's curve.
    **kwargs
        Passed to `~matplotlib.axes.Axes.plot` for the best template's curve.

    Returns
    -------
    ax : `~matplotlib.axes.Axes`
        ``ax.lines[0]`` is p(z) (per unit redshift, unit integral), then one
        curve per other template (``templates="candidates"``, in the colour of
        its best candidate), then one vertical line per candidate, best first.

    Raises
    ------
    ValueError
        If the result was correlated with uniform weighting.
    """
    from .statistics import likelihood_pdf

    if templates not in ("candidates", "best"):
        raise ValueError(f"templates must be 'candidates' or 'best', got {templates!r}")
    if result.meta.get("weighting") != "inverse_variance":
        raise ValueError("plot_pdf needs a result of the inverse-variance weighting: a "
                         "uniformly weighted fit has no likelihood, so no p(z); use "
                         "plot_chi2 (Delta chi2(z) of the fitted models) instead")
    result.need_data("plot_pdf")
    plt = _pyplot()
    ax = plt.gca() if ax is None else ax
    flat = result.flat_index(*index)
    z, _, _, chi2 = result.curve(*index)  # what Redshift.pdf uses
    p = likelihood_pdf(z, chi2)
    names = result.template_names
    best = int(result.flat("template_index")[flat])
    ax.plot(z, p, color=color, lw=kwargs.pop("lw", 1.0),
            label=kwargs.pop("label", "$p(z)$" + (f", {names[best]}" if best >= 0 else "")),
            **kwargs)
    candidates = _candidates_of(result, flat, n)
    if templates == "candidates" and np.any(np.isfinite(chi2)):
        lowest = np.nanmin(chi2)
        scale = np.trapezoid(np.where(np.isfinite(chi2), np.exp(-0.5 * (chi2 - lowest)), 0.0),
                             z)
        for t in dict.fromkeys(int(t) for t in candidates["template"]):
            if t == best:
                continue
            rank = int(candidates["rank"][np.flatnonzero(candidates["template"] == t)[0]])
            other = np.exp(-0.5 * (_template_chi2(result, flat, t) - lowest)) / scale
            style = _rank_style(rank)
            style.update(lw=1.0)
            ax.plot(z, other, label=f"{names[t] if t < len(names) else t} (same scale)",
                    **style)
    _mark_candidates(ax, result, candidates)
    if not candidates["rank"].size:
        _no_candidate(ax)
    peak = float(np.max(p[np.isfinite(p)], initial=0.0))
    if log and peak > 0:
        ax.set_yscale("log")
        ax.set_ylim(peak * 1e-8, peak * 3)
    ax.set_xlabel("Redshift $z$")
    ax.set_ylabel("$p(z)$ (per unit $z$)")
    ax.set_title(_title(result, index))
    ax.legend(loc="best", fontsize="small")
    return ax


def _template_chi2(result, flat, template):
    """chi2(z) over the whole grid of one template's fitted model of one spaxel."""
    chi2 = []
    for start in range(0, result.z.size, 2048):
        columns = np.arange(start, min(start + 2048, result.z.size))[None]
        ev, _ = result.correlator.evaluate(result.data, [flat], [template], columns)
        chi2.append(ev.chi2[0])
    return np.concatenate(chi2)


def plot_chi2(result, *index, ax=None, n=None, templates="candidates", threshold=True):
    """Plot one spaxel's Delta chi2(z) for the templates of its candidates.

    Delta chi2(z) = chi2(z) - chi2 of the best candidate, chi2(z) the
    weighted chi2 of a template's fitted model at each z of the grid (in
    both weightings: see :class:`~muse_xcorr.Correlator`). A candidate is a
    minimum of its template's curve; the spaxel is AMBIGUOUS when a second
    one comes within the result's ``ambiguity_threshold`` (drawn) of the best.

    Parameters
    ----------
    result : `~muse_xcorr.Redshift`
        Fresh from :meth:`~muse_xcorr.Correlator.correlate` (it needs the data).
    *index : int
        Spatial indices of the spaxel; none for a single spectrum.
    ax : `~matplotlib.axes.Axes`, optional
        Default: the current axes.
    n : int, optional
        Consider the ``n`` best candidates; default all.
    templates : {"candidates", "best"}
        A curve for every template among those candidates (best first), or
        for the best template only.
    threshold : bool
        Draw the ambiguity threshold as a horizontal line.

    Returns
    -------
    ax : `~matplotlib.axes.Axes`
        ``ax.lines[0]`` is the best template's Delta chi2(z); then one curve
        per other template; then (``threshold``) the threshold line; then one
        vertical line per candidate, best first. The y range shows the
        candidates' minima (at least Delta chi2 = 25).
    """
    if templates not in ("candidates", "best"):
        raise ValueError(f"templates must be 'candidates' or 'best', got {templates!r}")
    plt = _pyplot()
    ax = plt.gca() if ax is None else ax
    result.need_data("plot_chi2")
    flat = result.flat_index(*index)
    candidates = _candidates_of(result, flat, n)
    if candidates["rank"].size:
        reference = float(result.flat_candidates("chi2")[flat][candidates["rank"][0]])
        order = list(dict.fromkeys(int(t) for t in candidates["template"]))
        if templates == "best":
            order = order[:1]
        names = result.template_names
        for t in order:
            rank = int(candidates["rank"][np.flatnonzero(candidates["template"] == t)[0]])
            style = _rank_style(rank)
            style.update(lw=1.0)
            ax.plot(result.z, _template_chi2(result, flat, t) - reference,
                    label=rf"$\Delta\chi^2(z)$, {names[t] if t < len(names) else t}", **style)
        top = max(25.0, 1.5 * float(np.nanmax(np.where(np.isfinite(candidates["delta_chi2"]),
                                                       candidates["delta_chi2"], 0.0))))
        ax.set_ylim(-0.05 * top, top)
    else:
        ax.plot(result.z, np.full(result.z.size, np.nan), color="k")
        _no_candidate(ax)
    if threshold:
        value = float(result.meta.get("ambiguity_threshold", 9.0))
        ax.axhline(value, color="0.5", lw=0.8, ls=":", label=f"AMBIGUOUS below {value:g}")
    _mark_candidates(ax, result, candidates)
    ax.set_xlabel("Redshift $z$")
    ax.set_ylabel(r"$\chi^2(z) - \chi^2_\mathrm{best}$")
    ax.set_title(_title(result, index))
    ax.legend(loc="best", fontsize="small")
    return ax


# ---------------------------------------------------------------------- spectra and models
def _template_lines(template, amplitudes):
    """The lines of a template (its components with a positive amplitude) and their strengths.

    From the ``lines`` / ``line_strengths`` a template carries in its meta
    (`Template.from_lines <muse_xcorr.Template.from_lines>`, the default
    set); a template without them gets every line of the list in its
    wavelength range, with the list's strengths.
    """
    from .templates.lines import LINES

    components = getattr(template, "components", None)
    composite = components is not None
    components = components if composite else [template]
    amplitudes = np.ones(len(components)) if amplitudes is None else np.asarray(amplitudes)
    strengths = {}
    for component, amplitude in zip(components, amplitudes):
        if composite and not amplitude > 0:
            continue
        scale = float(amplitude) if composite else 1.0
        names = component.meta.get("lines")
        if names:
            values = component.meta.get("line_strengths") or [1.0] * len(names)
            pairs = zip(names, values)
        else:
            rest = component.vacuum_wavelength()
            pairs = [(name, strength or 1.0) for name, (wave, _, strength) in LINES.items()
                     if rest[0] <= wave <= rest[-1]]
        for name, value in pairs:
            if name in LINES:
                strengths[name] = max(strengths.get(name, 0.0), abs(float(value)) * scale)
    return list(strengths), [strengths[n] for n in strengths]


def _fitted(result, flat, templates, redshifts):
    """The fitted models of one spaxel for several (template, z), and its working spectrum."""
    rows = np.full(len(templates), flat, dtype=np.int64)
    flux, amplitudes, work = result.correlator.fitted_model(
        result.data, rows, np.asarray(templates, dtype=np.int64),
        np.asarray(redshifts, dtype=float))
    return flux, amplitudes, work


def _working_spectrum(work, row=0):
    valid = np.asarray(work.valid[row], bool)
    flux = np.where(valid, work.flux[row], np.nan)
    sigma = np.where(valid, np.sqrt(np.where(valid, work.variance[row], 0.0)), np.nan)
    return flux, sigma


def _flux_label(data, subtracted):
    unit = data.flux.unit.to_string("latex_inline")
    return f"Flux - continuum\n[{unit}]" if subtracted else f"Flux [{unit}]"


def plot_spectrum(data, *index, template=None, z=None, model=False, ax=None, errors=True,
                  ylim="robust", **kwargs):
    """Plot one spaxel's spectrum, with a template or the fitted model at redshift z overlaid.

    Two modes:

    - ``model=False`` (default): the spectrum as it is, with ``template``
      redshifted and resampled onto the data's pixels exactly as the
      correlator does it (in the data's air or vacuum medium), then scaled by
      its maximum-likelihood amplitude A = sum(w d T) / sum(w T^2),
      w = 1 / variance, over the valid pixels (no continuum subtracted, no
      line spread);
    - ``model=True``: ``data`` is a `~muse_xcorr.Redshift`; the spectrum
      minus the continuum the correlator subtracted, and the correlator's
      fitted model (:meth:`Correlator.fitted_model
      <muse_xcorr.Correlator.fitted_model>`: continuum-subtracted, line spread,
      a composite's fitted amplitudes) of the spaxel's best template at
      z_best, or of ``template`` at ``z``.

    Parameters
    ----------
    data : `~muse_xcorr.MuseCube`, `~muse_xcorr.MuseSpectrum`, `~specutils.Spectrum` \
or `~muse_xcorr.Redshift`
        The data, or a result (its data; with ``model=True``, its correlator too).
    *index : int
        Spatial indices of the spaxel (none for a single spectrum).
    template : `~muse_xcorr.Template`, int or str, optional
        ``model=False``: overlay this template (needs ``z``). ``model=True``:
        one of the result's templates, by index or name (needs ``z``);
        default the spaxel's best.
    z : float, optional
        Redshift of the overlay, e.g. ``result.z_best[y, x]``.
    model : bool
        Draw the continuum-subtracted data and the fitted model.
    ax : `~matplotlib.axes.Axes`, optional
        Default: the current axes.
    errors : bool
        Shade the data's +-1 sigma (a blue band).
    ylim : "robust", (float, float) or None
        ``"robust"``: see :func:`robust_limits` (the overlay always shown
        whole); a pair: these limits, in the flux unit; None: matplotlib's.
    **kwargs
        Passed to `~matplotlib.axes.Axes.plot` for the spectrum.

    Returns
    -------
    ax : `~matplotlib.axes.Axes`
        ``ax.lines[0]`` is the spectrum (NaN at masked pixels),
        ``ax.lines[1]`` the scaled template or the fitted model when one is
        drawn; ``ax.collections[0]`` the error band.
    """
    from .result import Redshift
    from .spectra import as_spectral_data

    plt = _pyplot()
    if model:
        if not isinstance(data, Redshift):
            raise TypeError("model=True draws the correlator's fitted model: pass the "
                            "Redshift result (plot_spectrum(result, y, x, model=True))")
        return _plot_model_spectrum(data, index, template, z, plt.gca() if ax is None else ax,
                                    errors, ylim, kwargs)
    if (template is None) != (z is None):
        raise ValueError("give both template and z to overlay the template, or neither")
    title = _spaxel_label(index)
    if isinstance(data, Redshift):
        title = _title(data, index)
        data = data.data
        if data is None:
            raise RuntimeError("this Redshift was read from a file and has no data to plot")
    data = as_spectral_data(data)
    shape = data.spatial_shape
    if len(index) != len(shape):
        raise IndexError(f"give {len(shape)} spatial indices for this data (spatial shape "
                         f"{shape}), got {len(index)}")
    flat = int(np.ravel_multi_index(tuple(int(i) for i in index), shape)) if shape else 0
    batch = data.spectra(flat, flat + 1)
    valid = batch.valid[0]
    flux = np.where(valid, batch.flux[0], np.nan)
    sigma = np.where(valid, np.sqrt(np.where(valid, batch.variance[0], 0.0)), np.nan)
    wave = data.spectral_axis.to_value(u.AA)
    ax = plt.gca() if ax is None else ax
    _draw_spectrum(ax, wave, flux, sigma, errors, kwargs)
    overlay = ()
    if template is not None:
        shape_ = template.matrix(data.spectral_axis, np.atleast_1d(float(z)),
                                 medium=data.medium)[:, 0]
        amplitude = _ml_amplitude(batch.flux[0], batch.inverse_variance()[0], shape_)
        name = f"{template.name} " if template.name else "template "
        ax.plot(wave, amplitude * shape_, color="C3", lw=1.0,
                label=rf"{name}at $z = {float(z):.5f}$")
        overlay = (amplitude * shape_,)
    _set_robust_ylim(ax, flux, ylim, overlay)
    ax.set_xlabel(f"Wavelength ({data.medium}) [$\\AA$]")
    ax.set_ylabel(_flux_label(data, False))
    ax.set_title(title)
    ax.legend(loc="best", fontsize="small")
    return ax


def _resolve_template(result, template):
    names = result.template_names
    if isinstance(template, str):
        if template not in names:
            raise KeyError(f"no template {template!r} in this result; it has {names}")
        return names.index(template)
    index = int(template)
    if not 0 <= index < len(result.correlator.templates):
        raise IndexError(f"template index {index} out of range for "
                         f"{len(result.correlator.templates)} templates")
    return index


def _plot_model_spectrum(result, index, template, z, ax, errors, ylim, kwargs):
    result.need_data("plot_spectrum(model=True)")
    flat = result.flat_index(*index)
    if template is None:
        if z is not None:
            raise ValueError("with model=True, give z together with template (an index or a "
                             "name), or neither (the best template at z_best)")
        template, z = int(_at(result, "template_index", index)), float(_at(result, "z_best",
                                                                           index))
    else:
        if z is None:
            raise ValueError("with model=True and a template, give z")
        template, z = _resolve_template(result, template), float(z)
    work = result.correlator.working(result.data, np.array([flat]))
    flux, sigma = _working_spectrum(work)
    wave = result.data.spectral_axis.to_value(u.AA)
    _draw_spectrum(ax, wave, flux, sigma, errors, kwargs, label="data - continuum")
    overlay = ()
    if template >= 0:
        model, _, _ = _fitted(result, flat, [template], [z])
        name = result.template_names[template] if template < len(result.template_names) \
            else f"template {template}"
        ax.plot(wave, model[0], color=RANK_COLORS[0], lw=1.0,
                label=rf"fitted model, {name} at $z = {z:.5f}$")
        overlay = (model[0],)
    _set_robust_ylim(ax, flux, ylim, overlay)
    ax.set_xlabel(f"Wavelength ({result.data.medium}) [$\\AA$]")
    ax.set_ylabel(_flux_label(result.data, True))
    ax.set_title(_title(result, index))
    ax.legend(loc="best", fontsize="small")
    return ax


def _ml_amplitude(flux, weights, model):
    """The maximum-likelihood amplitude of ``model`` in the data (science.md section 2)."""
    denominator = np.sum(weights * model * model)
    if not denominator > 0:
        return 0.0
    return float(np.sum(weights * flux * model) / denominator)


def plot_candidates(result, *index, n=3, fig=None, lower="auto", log=True, wave_range=None,
                    rows=3, errors=True, ylim="robust", figsize=(10.0, 6.5)):
    """The inspection plot of one spaxel: its best candidates' models and their p(z) or chi2(z).

    Top: the spaxel's spectrum minus the continuum the correlator subtracted
    (masked pixels are gaps) with its +-1 sigma band, and the fitted model
    (:meth:`Correlator.fitted_model <muse_xcorr.Correlator.fitted_model>`) of
    each of its ``n`` best candidates, best first, each labelled in the
    legend with its template, z and delta_chi2 (the result's, to the best
    candidate); the lines of the best candidate's template (of its
    components with a positive fitted amplitude) at its z are marked and
    labelled with their names (:func:`~muse_xcorr.templates.lines.label_lines`:
    in up to ``rows`` rows, strongest first, never overlapping, those that do
    not fit left out). Bottom: p(z) (:func:`plot_pdf`) or Delta chi2(z)
    (:func:`plot_chi2`), with every shown candidate's z marked in its colour.

    Parameters
    ----------
    result : `~muse_xcorr.Redshift`
        Fresh from :meth:`~muse_xcorr.Correlator.correlate` (it needs the data
        and the correlator).
    *index : int
        Spatial indices of the spaxel; none for a single spectrum.
    n : int
        Candidates to show (fewer when the spaxel has fewer).
    fig : `~matplotlib.figure.Figure`, optional
        Draw into this (empty) figure; default a new one, ``figsize``
        (inches), with a constrained layout. The legends sit to the right of
        the axes: give a figure of your own ``layout="constrained"`` too.
    lower : {"auto", "pdf", "chi2"}
        The bottom panel; ``"auto"``: p(z) for the inverse-variance
        weighting, Delta chi2(z) for the uniform one (which has no p(z)).
    log : bool
        A logarithmic p axis (``lower="pdf"``), where the other candidates'
        peaks show.
    wave_range : (float, float), optional
        Wavelength range of the top panel, Angstrom; default the whole
        spectrum. Set it here, not afterwards: the labels are placed for it.
    rows : int
        Rows of line labels at most.
    errors : bool
        Shade the +-1 sigma band.
    ylim : "robust", (float, float) or None
        The top panel's flux range (see :func:`plot_spectrum`); the models are
        always shown whole, and room is left above for the labels.
    figsize : (float, float)
        Size of a new figure, inches.

    Returns
    -------
    fig : `~matplotlib.figure.Figure`
        ``fig.axes[0]``, the spectrum: ``lines[0]`` the data (flux unit of
        the data, NaN at masked pixels), ``lines[1:1 + k]`` the k models, best
        first, then the line markers; ``collections[0]`` the error band;
        ``texts`` the line labels. ``fig.axes[1]``: as returned by
        :func:`plot_pdf` or :func:`plot_chi2`.

    Notes
    -----
    The labels are placed for the figure's size and layout at the time of
    the call: resizing the figure afterwards may make them overlap.
    """
    from .templates.lines import label_lines

    if lower not in ("auto", "pdf", "chi2"):
        raise ValueError(f"lower must be 'auto', 'pdf' or 'chi2', got {lower!r}")
    if lower == "auto":
        lower = "pdf" if result.meta.get("weighting") == "inverse_variance" else "chi2"
    result.need_data("plot_candidates")
    plt = _pyplot()
    if fig is None:
        fig = plt.figure(figsize=figsize, layout="constrained")
    top, bottom = fig.subplots(2, 1, height_ratios=(3, 2))
    flat = result.flat_index(*index)
    candidates = _candidates_of(result, flat, n)
    k = candidates["rank"].size
    data = result.data
    wave = data.spectral_axis.to_value(u.AA)
    if k:
        models, amplitudes, work = _fitted(result, flat, candidates["template"],
                                           candidates["z"])
    else:
        models, amplitudes = np.zeros((0, wave.size)), None
        work = result.correlator.working(data, np.array([flat]))
    flux, sigma = _working_spectrum(work)
    _draw_spectrum(top, wave, flux, sigma, errors, {}, label="data - continuum")
    for i in range(k):
        rank, template = int(candidates["rank"][i]), int(candidates["template"][i])
        top.plot(wave, models[i], label=_candidate_label(result, template, candidates["z"][i],
                                                         candidates["delta_chi2"][i], rank),
                 **_rank_style(rank))
    if k == 0:
        _no_candidate(top)
    top.set_xlim(*(wave_range if wave_range is not None else (wave[0], wave[-1])))
    top.set_xlabel(f"Wavelength ({data.medium}) [$\\AA$]")
    top.set_ylabel(_flux_label(data, True))
    top.set_title(_title(result, index))
    top.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0,
               fontsize="small")
    if lower == "pdf":
        plot_pdf(result, *index, ax=bottom, n=n, log=log)
    else:
        plot_chi2(result, *index, ax=bottom, n=n)
    bottom.set_title("")
    bottom.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0,
                  fontsize="small")
    _set_robust_ylim(top, flux, ylim, tuple(models))
    if k:
        # room above the data for the rows of labels, then the labels themselves
        fig.draw_without_rendering()
        pitch = 1.15 * 1.2 * 7 * fig.dpi / 72.0  # pixels per row of 7-point labels
        free = 1.0 - min(0.6, (rows * pitch + 6.0) / max(top.get_window_extent().height, 1.0))
        low, high = top.get_ylim()
        top.set_ylim(low, low + (high - low) / free)
        fig.draw_without_rendering()
        template = result.correlator.templates[int(candidates["template"][0])]
        names, strengths = _template_lines(template, amplitudes[0])
        label_lines(top, float(candidates["z"][0]), medium=data.medium, names=names,
                    strengths=strengths, rows=rows)
    return fig


# ---------------------------------------------------------------------- maps
def _categories(result, name, values):
    """Labels and colours of the values of a categorical map."""
    from matplotlib import colormaps

    present = [int(v) for v in np.unique(values)]
    if name == "flags":
        labels = [" + ".join(describe(v)) or "none" for v in present]
        palette = colormaps["tab10" if len(present) <= 10 else "tab20"].colors
        colors, others = [], iter(palette)
        for v in present:
            colors.append("0.85" if v == 0 else next(others, "k"))
    else:
        names = result.template_names
        labels = [names[v] if 0 <= v < len(names) else f"template {v}" for v in present]
        palette = colormaps["tab10"].colors  # one colour per template, in every map
        colors = [palette[v % len(palette)] for v in present]
    return present, labels, colors


def plot_map(result, name="z_best", *, ax=None, mask_flagged=True, colorbar=True, label=None,
             cmap="viridis", **kwargs):
    """Plot a map of a result on the sky.

    Continuous maps get a colour bar. ``flags`` and ``template_index``
    (`CATEGORICAL_MAPS`) are categories: one colour and one legend entry
    per value present, for ``flags`` each combination of bits present
    ("none", "EDGE", "LOW_COVERAGE + AMBIGUOUS", ... in increasing value;
    no flag in light grey), for ``template_index`` each template by name
    (a template keeps its colour from map to map). When no spaxel is left to
    show, the (empty) map says so in the axes.

    Parameters
    ----------
    result : `~muse_xcorr.Redshift`
        A result for a cube (two spatial axes).
    name : str
        The map, one of ``result.map_names`` (``"z_best"``, ``"snr"``,
        ``"sigma_f_best"``, ``"flags"``, ``"template_index"``...).
    ax : `~matplotlib.axes.Axes`, optional
        Default: a new figure with a constrained layout (no label is cut),
        with the result's celestial WCS as projection when it has one (RA/Dec
        axes), pixel axes otherwise. The legend of a categorical map goes to
        the right of the axes: on axes of your own, leave room for it.
    mask_flagged : bool or int
        Spaxels not to show: ``True`` hides every spaxel with a flag set,
        an int (e.g. ``Flag.NO_DATA | Flag.EDGE``) only those with one of
        these bits, ``False`` none. Non-finite values, and
        ``template_index`` -1 (no template), are never shown. Ignored for
        ``name="flags"``.
    colorbar : bool
        Draw a colour bar labelled with ``label`` (a categorical map: a
        legend titled ``label``).
    label : str, optional
        Colour-bar label or legend title; default from `MAP_LABELS`.
    cmap : str or `~matplotlib.colors.Colormap`
        Of a continuous map.
    **kwargs
        Passed to `~matplotlib.axes.Axes.imshow` (``vmin``, ``vmax``...).

    Returns
    -------
    ax : `~matplotlib.axes.Axes`
        ``ax.images[0]`` holds the map's values as a masked array;
        ``ax.get_legend()`` is the legend of a categorical map.
    """
    if name not in result.map_names:
        raise KeyError(f"this result has no map {name!r}; it has {result.map_names}")
    if len(result.spatial_shape) != 2:
        raise ValueError(f"plot_map needs a result with two spatial axes, this one has shape "
                         f"{result.spatial_shape}")
    plt = _pyplot()
    values = np.asarray(getattr(result, name))
    hidden = ~np.isfinite(values.astype(float))
    if name == "template_index":
        hidden |= values < 0
    if name != "flags" and mask_flagged is not False:
        bits = -1 if mask_flagged is True else int(mask_flagged)  # -1: every bit
        hidden |= (np.asarray(result.flags) & bits) != 0
    image = np.ma.masked_array(values, mask=hidden)
    if ax is None:
        figure = plt.figure(layout="constrained")
        ax = figure.add_subplot(projection=result.wcs) if result.wcs is not None \
            else figure.add_subplot()
    label = label or MAP_LABELS.get(name, name)
    empty = bool(hidden.all())
    categorical = name in CATEGORICAL_MAPS and not empty
    if categorical:
        from matplotlib.colors import BoundaryNorm, ListedColormap
        from matplotlib.patches import Patch

        present, names, colors = _categories(result, name, values[~hidden])
        bounds = np.concatenate([[present[0] - 0.5], 0.5 * (np.array(present[1:]) +
                                                            np.array(present[:-1])),
                                 [present[-1] + 0.5]])
        kwargs.update(cmap=ListedColormap(colors), norm=BoundaryNorm(bounds, len(colors)))
    elif empty:
        kwargs.setdefault("vmin", 0.0)
        kwargs.setdefault("vmax", 1.0)
        kwargs.setdefault("cmap", cmap)
    else:
        kwargs.setdefault("cmap", cmap)
    shown = ax.imshow(image, origin="lower", interpolation="nearest", **kwargs)
    if hasattr(ax, "coords"):  # WCSAxes
        ax.coords[0].set_axislabel("Right ascension")
        ax.coords[1].set_axislabel("Declination")
        ax.coords[0].set_ticks(number=3)  # sexagesimal RA labels are wide
        ax.coords[0].set_ticklabel(exclude_overlapping=True)
    else:
        ax.set_xlabel("x (spaxel)")
        ax.set_ylabel("y (spaxel)")
    if empty:
        why = "flagged or NaN" if name != "flags" and mask_flagged is not False else "NaN"
        ax.text(0.5, 0.5, f"no spaxel to show:\nall {values.size} are {why}",
                transform=ax.transAxes, ha="center", va="center", color="0.3")
    elif categorical and colorbar:
        handles = [Patch(facecolor=c, edgecolor="0.3", label=n) for c, n in zip(colors, names)]
        ax.legend(handles=handles, title=label, loc="upper left", bbox_to_anchor=(1.02, 1.0),
                  borderaxespad=0, fontsize="small", title_fontsize="small")
    elif colorbar:
        ax.figure.colorbar(shown, ax=ax, label=label)
    return ax
