"""Plots of a :class:`~muse_xcorr.Redshift` and of the data it came from.

Three functions, each drawing on a matplotlib `~matplotlib.axes.Axes` and
returning it, with labels ready for a paper:

- :func:`plot_ccf`: one spaxel's correlation f(z) with its 1-sigma band and
  the best and second-best peaks marked;
- :func:`plot_map`: a map of the result (``z_best``, ``snr``, ``flags``...) on
  the sky, in celestial coordinates when the cube has a WCS, with flagged
  spaxels masked; ``flags`` and ``template_index`` as categories with a
  legend of names, in a figure laid out so that no label is cut;
- :func:`plot_spectrum`: one spaxel's spectrum with the template at a
  redshift, scaled by its maximum-likelihood amplitude, overlaid.

matplotlib is imported only when a function is called: it is an optional
dependency (``pip install muse_xcorr[all]``).
"""
import numpy as np
import astropy.units as u

from .flags import describe

__all__ = ["plot_ccf", "plot_map", "plot_spectrum", "MAP_LABELS", "CATEGORICAL_MAPS"]

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
    title = _spaxel_label(index)
    flags = describe(_at(result, "flags", index))
    if flags:
        title += " [" + ", ".join(flags) + "]"
    ax.set_title(title)
    ax.legend(loc="best", fontsize="small")
    return ax


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


def plot_spectrum(data, *index, template=None, z=None, ax=None, errors=True, **kwargs):
    """Plot one spaxel's spectrum, with the template at redshift z overlaid.

    The template is redshifted and resampled onto the data's pixels exactly
    as the correlator does it (in the data's air or vacuum medium), then
    scaled by its maximum-likelihood amplitude
    A = sum(w d T) / sum(w T^2), w = 1 / variance, over the valid pixels.

    Parameters
    ----------
    data : `~muse_xcorr.MuseCube`, `~muse_xcorr.MuseSpectrum` or `~specutils.Spectrum`
    *index : int
        Spatial indices of the spaxel (none for a single spectrum).
    template : `~muse_xcorr.Template`, optional
        Overlay this template; needs ``z``.
    z : float, optional
        Redshift of the overlay, e.g. ``result.z_best[y, x]``.
    ax : `~matplotlib.axes.Axes`, optional
        Default: the current axes.
    errors : bool
        Shade the data's +-1 sigma.
    **kwargs
        Passed to `~matplotlib.axes.Axes.plot` for the spectrum.

    Returns
    -------
    ax : `~matplotlib.axes.Axes`
        ``ax.lines[0]`` is the spectrum (NaN at masked pixels),
        ``ax.lines[1]`` the scaled template when one is drawn.
    """
    from .spectra import as_spectral_data

    if (template is None) != (z is None):
        raise ValueError("give both template and z to overlay the template, or neither")
    data = as_spectral_data(data)
    shape = data.spatial_shape
    if len(index) != len(shape):
        raise IndexError(f"give {len(shape)} spatial indices for this data (spatial shape "
                         f"{shape}), got {len(index)}")
    flat = int(np.ravel_multi_index(tuple(int(i) for i in index), shape)) if shape else 0
    batch = data.spectra(flat, flat + 1)
    valid = batch.valid[0]
    flux = np.where(valid, batch.flux[0], np.nan)
    sigma = np.where(valid, np.sqrt(batch.variance[0]), np.nan)
    wave = data.spectral_axis.to_value(u.AA)
    plt = _pyplot()
    ax = plt.gca() if ax is None else ax
    ax.plot(wave, flux, color=kwargs.pop("color", "0.3"), lw=kwargs.pop("lw", 0.7),
            label=kwargs.pop("label", "data"), **kwargs)
    if errors:
        ax.fill_between(wave, flux - sigma, flux + sigma, color="0.6", alpha=0.4, lw=0,
                        label=r"$\pm 1\,\sigma$")
    if template is not None:
        model = template.matrix(data.spectral_axis, np.atleast_1d(float(z)),
                                medium=data.medium)[:, 0]
        amplitude = _ml_amplitude(batch.flux[0], batch.inverse_variance()[0], model)
        name = f"{template.name} " if template.name else "template "
        ax.plot(wave, amplitude * model, color="C3", lw=1.0,
                label=rf"{name}at $z = {float(z):.5f}$")
    ax.set_xlabel(f"Wavelength ({data.medium}) [$\\AA$]")
    ax.set_ylabel(f"Flux [{data.flux.unit.to_string('latex_inline')}]")
    ax.set_title(_spaxel_label(index))
    ax.legend(loc="best", fontsize="small")
    return ax


def _ml_amplitude(flux, weights, model):
    """The maximum-likelihood amplitude of ``model`` in the data (science.md section 2)."""
    denominator = np.sum(weights * model * model)
    if not denominator > 0:
        return 0.0
    return float(np.sum(weights * flux * model) / denominator)
