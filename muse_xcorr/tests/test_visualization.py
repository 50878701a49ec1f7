"""The plots draw exactly the numbers of the result and the data they are given."""
import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from muse_xcorr import Correlator, Redshift, Template, zgrid, datasets  # noqa: E402
from muse_xcorr.flags import Flag  # noqa: E402
from muse_xcorr.templates.lines import (LINES, CONFUSION_LINES, LINE_LABELS,  # noqa: E402
                                        label_lines, line_label, line_wavelengths)
from muse_xcorr.visualization import (plot_candidates, plot_ccf, plot_chi2, plot_map,  # noqa: E402
                                      plot_pdf, plot_spectrum, robust_limits)

#: A short MUSE-like grid keeps the template matrix small and the tests fast.
WAVE = datasets.muse_wavelength(n_pixels=1600, start=5500.0)


@pytest.fixture(scope="module")
def template():
    return datasets.make_template()


@pytest.fixture(scope="module")
def cube_result(template):
    cube, truth = datasets.make_cube(shape=(3, 4), template=template, z=(0.35, 0.55),
                                     snr=25.0, seed=7, wavelength=WAVE, empty_spaxels=1)
    result = Correlator(template, zgrid(0.3, 0.6, 3e-4)).correlate(cube, progress=False)
    return cube, truth, result


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_plot_ccf_draws_the_curve_band_and_peaks(cube_result):
    _, truth, result = cube_result
    y, x = np.argwhere(result.flags == 0)[0]
    z, f, sigma_f = result.ccf(y, x)
    fig, ax = plt.subplots()
    assert plot_ccf(result, y, x, ax=ax) is ax
    curve = ax.lines[0]
    np.testing.assert_array_equal(curve.get_xdata(), z)
    np.testing.assert_array_equal(curve.get_ydata(), f)
    # the band is a polygon through every (z, f - sigma_f) and (z, f + sigma_f)
    vertices = ax.collections[0].get_paths()[0].vertices
    for edge in (f - sigma_f, f + sigma_f):
        drawn = {tuple(v) for v in vertices}
        assert all((zi, ei) in drawn for zi, ei in zip(z, edge))
    marked = [line.get_xdata()[0] for line in ax.lines[1:]]
    assert marked[0] == result.z_best[y, x]
    if np.isfinite(result.z_second[y, x]):
        assert marked[1] == result.z_second[y, x]
    assert abs(marked[0] - truth["z"][y, x]) < 1e-3
    assert "f(z)" in ax.get_ylabel() and "z" in ax.get_xlabel()


def test_plot_ccf_of_a_single_spectrum_names_its_flags(template):
    clean, _ = datasets.make_spectrum(template, z=0.42, snr=30.0, seed=3, wavelength=WAVE)
    variance = clean.uncertainty.array.copy()
    variance[200] = 0.0  # one pixel with a zero variance: masked, spectrum flagged
    spectrum = type(clean)(clean.spectral_axis, clean.flux,
                           type(clean.uncertainty)(variance, unit=clean.uncertainty.unit),
                           medium=clean.medium)
    result = Correlator(template, zgrid(0.3, 0.5, 3e-4)).correlate(spectrum, progress=False)
    ax = plot_ccf(result, band=False, ax=plt.figure().add_subplot())
    z, f, _ = result.ccf()
    np.testing.assert_array_equal(ax.lines[0].get_xdata(), z)
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), f)
    assert len(ax.collections) == 0
    assert result.flags & Flag.BAD_VARIANCE
    assert "BAD_VARIANCE" in ax.get_title() and ax.get_title().startswith("spectrum")
    assert ax.lines[1].get_xdata()[0] == result.z_best
    assert abs(result.z_best - 0.42) < 1e-3


def test_plot_map_shows_the_map_on_the_sky_with_flagged_spaxels_hidden(cube_result):
    _, truth, result = cube_result
    ax = plot_map(result, "z_best")
    image = ax.images[0].get_array()
    flagged = result.flags != 0
    assert flagged.any() and (~flagged).any()
    np.testing.assert_array_equal(image.mask, flagged | ~np.isfinite(result.z_best))
    np.testing.assert_array_equal(image.data[~flagged], result.z_best[~flagged])
    assert hasattr(ax, "coords")  # a WCSAxes: the celestial WCS is the projection
    assert ax.wcs.wcs.ctype[0].startswith("RA")
    colorbar_axes = [a for a in ax.figure.axes if a is not ax]
    assert len(colorbar_axes) == 1 and "z" in colorbar_axes[0].get_ylabel()


def test_plot_map_masks_only_the_requested_bits(cube_result):
    _, truth, result = cube_result
    fig, ax = plt.subplots()
    plot_map(result, "snr", ax=ax, mask_flagged=Flag.EDGE, colorbar=False, label="S/N")
    image = ax.images[0].get_array()
    expected = ((result.flags & Flag.EDGE) != 0) | ~np.isfinite(result.snr)
    np.testing.assert_array_equal(image.mask, expected)
    assert truth["empty"].sum() == 1 and image.mask[truth["empty"]].all()  # NaN there
    assert len(fig.axes) == 1 and ax.get_xlabel() == "x (spaxel)"
    ax = plot_map(result, "flags", ax=plt.figure().add_subplot(), mask_flagged=True)
    np.testing.assert_array_equal(ax.images[0].get_array().data, result.flags)
    assert not ax.images[0].get_array().mask.any()


def test_plot_map_refuses_what_it_cannot_show(cube_result, template):
    _, _, result = cube_result
    with pytest.raises(KeyError, match="no map 'zerr_magic'"):
        plot_map(result, "zerr_magic")
    spectrum, _ = datasets.make_spectrum(template, z=0.4, seed=1, wavelength=WAVE)
    single = Correlator(template, zgrid(0.3, 0.5, 3e-4)).correlate(spectrum, progress=False)
    with pytest.raises(ValueError, match="two spatial axes"):
        plot_map(single)


def test_plot_spectrum_overlays_the_maximum_likelihood_scaled_template(cube_result, template):
    cube, truth, result = cube_result
    y, x = np.argwhere(result.flags == 0)[0]
    z_best = result.z_best[y, x]
    fig, ax = plt.subplots()
    plot_spectrum(cube, y, x, template=template, z=z_best, ax=ax)
    flux = cube.flux.value[:, y, x].astype(float)
    variance = cube.uncertainty.array[:, y, x].astype(float)
    spectrum, overlay = ax.lines[:2]
    np.testing.assert_array_equal(spectrum.get_xdata(), WAVE.value)
    np.testing.assert_array_equal(spectrum.get_ydata(), flux)
    # independent amplitude: weighted least squares of flux = A * model
    model = template.matrix(WAVE, np.array([z_best]), medium="air")[:, 0]
    amplitude = np.sum(flux * model / variance) / np.sum(model ** 2 / variance)
    np.testing.assert_allclose(overlay.get_ydata(), amplitude * model, rtol=1e-10)
    # the fitted model follows the noiseless truth within the noise
    chi2 = np.sum((flux - overlay.get_ydata()) ** 2 / variance)
    assert chi2 / flux.size < 1.2
    assert "air" in ax.get_xlabel()


def test_plot_spectrum_shows_masked_pixels_as_gaps(template):
    spectrum, _ = datasets.make_spectrum(template, z=0.4, seed=2, wavelength=WAVE)
    flux = spectrum.flux.copy()
    flux[100:110] = np.nan
    mask = np.zeros(flux.shape, bool)
    mask[500] = True
    holed = type(spectrum)(spectrum.spectral_axis, flux, spectrum.uncertainty, mask,
                           medium=spectrum.medium)
    ax = plot_spectrum(holed, ax=plt.figure().add_subplot(), errors=False)
    drawn = ax.lines[0].get_ydata()
    assert np.isnan(drawn[100:110]).all() and np.isnan(drawn[500])
    good = np.isfinite(drawn)
    assert good.sum() == flux.size - 11
    np.testing.assert_array_equal(drawn[good], flux.value[good])
    assert len(ax.lines) == 1 and len(ax.collections) == 0
    with pytest.raises(ValueError, match="both template and z"):
        plot_spectrum(holed, template=template)
    with pytest.raises(IndexError, match="give 0 spatial indices"):
        plot_spectrum(holed, 1, 2)


# ---------------------------------------------------------------------- helpers
def _drawn(fig):
    fig.canvas.draw()
    return fig.canvas.get_renderer()


def _overlap(a, b):
    """Whether two display bounding boxes share more than an edge."""
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def _assert_no_overlap(texts, renderer):
    boxes = [t.get_window_extent(renderer) for t in texts]
    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            assert not _overlap(boxes[i], boxes[j]), (texts[i].get_text(), texts[j].get_text())


def _assert_inside_figure(fig, renderer):
    frame = fig.bbox
    for ax in fig.axes:
        box = ax.get_tightbbox(renderer)
        assert box.x0 >= frame.x0 - 0.5 and box.y0 >= frame.y0 - 0.5, (ax, box)
        assert box.x1 <= frame.x1 + 0.5 and box.y1 <= frame.y1 + 0.5, (ax, box)


def _fake_result(flags, template_index, names=("emission", "passive", "qso")):
    """A Redshift with given flags and template maps (3 x 4 spaxels, no data behind it)."""
    flags = np.asarray(flags, np.int32).ravel()
    template_index = np.asarray(template_index, np.int32).ravel()
    n = flags.size
    z_best = np.where(template_index >= 0, np.linspace(0.3, 0.6, n), np.nan)
    maps = {"z_best": z_best, "f_best": np.full(n, 0.5), "sigma_f_best": np.full(n, 0.1),
            "flags": flags, "template_index": template_index}
    candidates = {"template": template_index[:, None], "z": z_best[:, None],
                  "delta_chi2": np.zeros((n, 1)), "chi2": np.ones((n, 1)),
                  "f": np.full((n, 1), 0.5)}
    return Redshift(maps, candidates, z=np.linspace(0.2, 0.7, 10), spatial_shape=(3, 4),
                    meta={"templates": ",".join(names)})


# ---------------------------------------------------------------------- line labels
def test_every_line_has_a_legible_label():
    for name in list(LINES) + list(CONFUSION_LINES):
        assert name in LINE_LABELS, name
        assert "_" not in LINE_LABELS[name]
    assert [line_label(n) for n in ("CaII_K", "[OIII]5007", "Lya", "Halpha", "CIII]1909")] == \
        ["Ca II K", "[O III] 5007", "Ly α", "Hα", "C III] 1909"]
    # the table follows the one rule that spells out keys it does not list
    assert line_label("[NeV]3426") == "[Ne V] 3426" and line_label("SiIV1394") == "Si IV 1394"
    assert line_label("my line") == "my line"


def test_line_labels_never_overlap_and_stay_on_the_axis():
    fig, ax = plt.subplots(figsize=(6.4, 3.0))
    ax.set_xlim(4750, 9350)
    marked = label_lines(ax, 0.3)  # 21 lines, [O II] and [S II] doublets, Halpha + [N II]
    renderer = _drawn(fig)
    texts = ax.texts
    assert marked == [n for n, (w, _, _) in LINES.items() if 4750 < w * 1.3 / 1.00028 < 9350]
    assert len(ax.lines) == len(marked)  # every line marked, labelled or not
    assert 5 < len(texts) < len(marked)  # some labels left out, many kept
    _assert_no_overlap(texts, renderer)
    frame = ax.get_window_extent(renderer)
    for text in texts:
        box = text.get_window_extent(renderer)
        assert frame.x0 - 0.5 <= box.x0 and box.x1 <= frame.x1 + 0.5
        assert box.y1 <= frame.y1 + 0.5
    labels = [t.get_text() for t in texts]
    legible = set(LINE_LABELS.values())
    for label in labels:  # a line's label, or one ion's doublet: "[O II] 3726,3729"
        assert label in legible or label.rpartition(" ")[0] + " " + \
            label.rpartition(" ")[2].split(",")[0] in legible, label
    assert "Hα" in labels and "[O II] 3726,3729" in labels  # the strongest ones are kept
    # each label stands over its line (the doublet between its two lines)
    observed = dict(zip(marked, line_wavelengths(marked, "air", 0.3).value))
    halpha = texts[labels.index("Hα")]
    assert halpha.get_position()[0] == pytest.approx(observed["Halpha"])
    oii = texts[labels.index("[O II] 3726,3729")].get_position()[0]
    assert observed["[OII]3726"] < oii < observed["[OII]3729"]


# ---------------------------------------------------------------------- candidates
@pytest.fixture(scope="module")
def line_templates():
    return [Template.from_lines(["Lya"], name="lae"),
            Template.from_lines(["[OII]3726", "[OII]3729"], name="oii"),
            Template.from_lines(["Hbeta", "[OIII]4959", "[OIII]5007"], name="hb-oiii")]


@pytest.fixture(scope="module")
def ambiguous(line_templates):
    """One faint line at 6040 A: [O II] at z = 0.62, or Lya at z = 3.97, or [O III] at 0.21."""
    spectrum, _ = datasets.make_spectrum(line_templates[1], z=0.62, snr=7.0, seed=3,
                                         wavelength=WAVE)
    mask = np.zeros(WAVE.size, bool)
    mask[1000:1012] = True  # a masked stretch, far from the line
    spectrum = type(spectrum)(spectrum.spectral_axis, spectrum.flux, spectrum.uncertainty,
                              mask, medium=spectrum.medium)
    correlator = Correlator(line_templates, zgrid(0.05, 4.5, 5e-4))
    return correlator.correlate(spectrum, progress=False)


def test_plot_candidates_draws_each_candidates_fitted_model(ambiguous):
    result = ambiguous
    assert result.flags & Flag.AMBIGUOUS
    names = [result.template_names[t] for t in result.candidates("template")[:3]]
    assert names == ["oii", "lae", "hb-oiii"]
    fig = plot_candidates(result, n=3)
    top, bottom = fig.axes[:2]
    renderer = _drawn(fig)
    work = result.correlator.working(result.data, np.array([0]))
    valid = work.valid[0]
    # the data: continuum-subtracted, masked pixels as gaps
    data = top.lines[0].get_ydata()
    assert np.isnan(data[1000:1012]).all() and np.isnan(data).sum() == (~valid).sum()
    np.testing.assert_array_equal(data[valid], work.flux[0][valid])
    np.testing.assert_array_equal(top.lines[0].get_xdata(), WAVE.value)
    weights = np.divide(1.0, work.variance[0], out=np.zeros(WAVE.size), where=valid)
    for rank in range(3):
        template = result.candidates("template")[rank]
        z = result.candidates("z")[rank]
        model = top.lines[1 + rank].get_ydata()
        expected, _, _ = result.correlator.fitted_model(result.data, np.array([0]),
                                                        np.array([template]), np.array([z]))
        np.testing.assert_array_equal(model, expected[0])
        # the maximum-likelihood amplitude: the residual is orthogonal to the model
        residual = np.where(valid, work.flux[0] - model, 0.0)
        assert abs(np.sum(weights * residual * model)) < 1e-9 * np.sum(weights * model ** 2)
        assert np.sum(weights * residual ** 2) == pytest.approx(
            result.candidates("chi2")[rank], abs=3.0)
        label = top.lines[1 + rank].get_label()
        assert label.startswith(f"#{rank + 1} {names[rank]}: z = {z:.5f}")
        if rank:
            assert f"{result.candidates('delta_chi2')[rank]:.1f}" in label
    # the best candidate's lines, by name, and nothing else
    texts = top.texts
    assert [t.get_text() for t in texts] == ["[O II] 3726,3729"]
    wave = texts[0].get_position()[0]
    assert 3726 * (1 + result.z_best) < wave < 3730 * (1 + result.z_best)
    assert "AMBIGUOUS" in top.get_title() and top.get_title().startswith("spectrum")
    # below: p(z) of the best template, every candidate marked
    z, p = result.pdf()
    np.testing.assert_array_equal(bottom.lines[0].get_ydata(), p)
    assert np.trapezoid(bottom.lines[0].get_ydata(), bottom.lines[0].get_xdata()) == \
        pytest.approx(1.0, rel=1e-12)
    marks = [line.get_xdata()[0] for line in bottom.lines[-3:]]
    np.testing.assert_array_equal(marks, result.candidates("z")[:3])
    _assert_inside_figure(fig, renderer)


def test_plot_candidates_labels_do_not_overlap_in_a_crowded_spectrum(template):
    spectrum, _ = datasets.make_spectrum(template, z=0.32, snr=30.0, seed=5)  # 4750-9350 A
    result = Correlator(template, zgrid(0.3, 0.34, 3e-4)).correlate(spectrum, progress=False)
    fig = plot_candidates(result, n=2, figsize=(8, 5))
    renderer = _drawn(fig)
    top = fig.axes[0]
    texts = top.texts
    assert len(texts) >= 8
    _assert_no_overlap(texts, renderer)
    low, high = top.get_xlim()
    assert all(low <= t.get_position()[0] <= high for t in texts)
    # the labels stand above the data: the flux range ends below the lowest row
    lowest = min(t.get_window_extent(renderer).y0 for t in texts)
    _, top_of_data = top.transData.transform((0, np.nanmax(top.lines[1].get_ydata())))
    assert top_of_data < lowest
    _assert_inside_figure(fig, renderer)


def test_plot_pdf_and_chi2_show_every_candidate_on_one_scale(ambiguous):
    result = ambiguous
    ax = plot_pdf(result, ax=plt.figure().add_subplot(), log=True)
    z, p = result.pdf()
    np.testing.assert_array_equal(ax.lines[0].get_xdata(), z)
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), p)
    assert ax.get_yscale() == "log"
    # the other templates' curves on the same scale: their peaks are exp(-delta_chi2 / 2)
    # of the best one's (delta_chi2 between grid samples, as the candidates store it)
    delta = result.candidates("delta_chi2")
    for curve, rank in zip(ax.lines[1:3], (1, 2)):
        assert curve.get_ydata().max() / p.max() == pytest.approx(np.exp(-delta[rank] / 2),
                                                                  rel=1e-6)
    ax = plot_chi2(result, ax=plt.figure().add_subplot())
    _, _, _, chi2 = result.curve()
    best = result.candidates("chi2")[0]
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), chi2 - best)
    for curve, rank in zip(ax.lines[:3], (0, 1, 2)):
        assert np.nanmin(curve.get_ydata()) == pytest.approx(delta[rank], abs=1e-8)
    assert ax.lines[3].get_ydata()[0] == result.meta["ambiguity_threshold"] == 9.0
    assert ax.get_ylim()[1] >= 25


def test_uniform_weighting_has_no_pdf_and_shows_chi2(line_templates):
    spectrum, _ = datasets.make_spectrum(line_templates[1], z=0.62, snr=8.0, seed=4,
                                         wavelength=WAVE)
    result = Correlator(line_templates, zgrid(0.1, 4.2, 1e-3),
                        weighting="uniform").correlate(spectrum, progress=False)
    with pytest.raises(ValueError, match="plot_chi2"):
        plot_pdf(result)
    fig = plot_candidates(result, n=2)
    bottom = fig.axes[1]
    _, _, _, chi2 = result.curve()
    np.testing.assert_array_equal(bottom.lines[0].get_ydata(),
                                  chi2 - result.candidates("chi2")[0])
    assert "chi" in bottom.get_ylabel()
    assert [line.get_label()[:2] for line in fig.axes[0].lines[1:3]] == ["#1", "#2"]


def test_plot_candidates_of_a_spaxel_without_data(cube_result):
    _, truth, result = cube_result
    y, x = np.argwhere(truth["empty"])[0]
    fig = plot_candidates(result, y, x)
    top, bottom = fig.axes[:2]
    assert len(top.lines) == 1 and np.isnan(top.lines[0].get_ydata()).all()
    assert any("no candidate" in t.get_text() for t in top.texts + bottom.texts)
    assert "NO_DATA" in top.get_title()


# ---------------------------------------------------------------------- maps
def test_plot_map_of_flags_is_categorical_with_flag_names():
    flags = np.array([[0, 0, Flag.EDGE, Flag.EDGE],
                      [Flag.LOW_COVERAGE | Flag.AMBIGUOUS, 0, 0, Flag.NO_DATA],
                      [0, Flag.AMBIGUOUS, Flag.LOW_COVERAGE | Flag.AMBIGUOUS, 0]])
    template_index = np.where(flags & Flag.NO_DATA, -1, 0)
    result = _fake_result(flags, template_index)
    ax = plot_map(result, "flags")
    image = ax.images[0]
    np.testing.assert_array_equal(image.get_array().data, flags)
    assert not image.get_array().mask.any()
    legend = ax.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == \
        ["none", "NO_DATA", "EDGE", "AMBIGUOUS", "LOW_COVERAGE + AMBIGUOUS"]
    assert legend.get_title().get_text() == "Flags"
    # each legend patch has the colour the image gives its value; all colours differ
    colours = []
    for value, patch in zip((0, 1, 2, 32, 40), legend.get_patches()):
        drawn = image.cmap(image.norm(value))
        np.testing.assert_allclose(patch.get_facecolor(), drawn)
        colours.append(tuple(drawn))
    assert len(set(colours)) == 5
    assert len(ax.figure.axes) == 1  # no colour bar
    _assert_inside_figure(ax.figure, _drawn(ax.figure))


def test_plot_map_of_templates_is_categorical_with_template_names():
    template_index = np.array([[0, 0, 2, 2], [2, 0, -1, 0], [0, 2, 2, 0]])
    flags = np.where(template_index < 0, Flag.NO_DATA, 0)
    flags[0, 0] = Flag.EDGE
    result = _fake_result(flags, template_index)
    ax = plot_map(result, "template_index")
    image = ax.images[0].get_array()
    np.testing.assert_array_equal(image.mask, flags != 0)
    np.testing.assert_array_equal(image.data, template_index)
    legend = ax.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["emission", "qso"]
    # a template keeps its colour whichever others are present
    only_qso = _fake_result(np.zeros((3, 4)), np.full((3, 4), 2))
    other = plot_map(only_qso, "template_index").get_legend()
    np.testing.assert_allclose(other.get_patches()[0].get_facecolor(),
                               legend.get_patches()[1].get_facecolor())
    _assert_inside_figure(ax.figure, _drawn(ax.figure))


def test_plot_map_default_figure_keeps_its_labels(cube_result):
    _, _, result = cube_result
    for name in ("z_best", "snr", "flags"):
        ax = plot_map(result, name)
        renderer = _drawn(ax.figure)
        _assert_inside_figure(ax.figure, renderer)
        for axis in ax.coords:  # WCSAxes: RA, Dec labels drawn and inside the figure
            assert axis.get_axislabel()
        box = ax.get_tightbbox(renderer)
        assert box.x0 >= 0 and box.y0 >= 0


def test_an_all_masked_map_says_so():
    result = _fake_result(np.full((3, 4), Flag.NO_DATA), np.full((3, 4), -1))
    for name in ("z_best", "template_index"):
        ax = plot_map(result, name)
        assert ax.images[0].get_array().mask.all()
        assert any("no spaxel to show" in t.get_text() for t in ax.texts)
        assert "12" in ax.texts[0].get_text()
        assert len(ax.figure.axes) == 1 and ax.get_legend() is None
        _drawn(ax.figure)  # draws without error


# ---------------------------------------------------------------------- spectra
def test_plot_spectrum_y_range_ignores_a_sky_spike(template):
    spectrum, truth = datasets.make_spectrum(template, z=0.4, snr=20.0, seed=8, wavelength=WAVE)
    flux = spectrum.flux.value.copy()
    flux[700] = 1e4  # one sky-line residual, ~1e4 sigma
    spiked = type(spectrum)(spectrum.spectral_axis, flux * spectrum.flux.unit,
                            spectrum.uncertainty, medium=spectrum.medium)
    ax = plot_spectrum(spiked, ax=plt.figure().add_subplot())
    low, high = ax.get_ylim()
    others = np.delete(flux, 700)
    assert high < 100 < 1e4  # the spike does not set the range ...
    assert np.mean((others >= low) & (others <= high)) > 0.99  # ... the other pixels do
    assert low < np.percentile(others, 1) and high > np.percentile(others, 99)
    ax = plot_spectrum(spiked, ax=plt.figure().add_subplot(), ylim=None)
    assert ax.get_ylim()[1] > 1e4  # matplotlib's own range: what the spike did before
    assert robust_limits([np.nan]) is None
    assert robust_limits([1.0, 1.0]) == pytest.approx((0.92, 1.08))
    # an overlay is always shown whole
    ax = plot_spectrum(spiked, template=template, z=0.4, ax=plt.figure().add_subplot())
    model = ax.lines[1].get_ydata()
    assert ax.get_ylim()[0] <= model.min() and ax.get_ylim()[1] >= model.max()


def test_plot_spectrum_error_band_is_visible(cube_result):
    cube, _, result = cube_result
    y, x = np.argwhere(result.flags == 0)[0]
    ax = plot_spectrum(cube, y, x, ax=plt.figure().add_subplot())
    band = ax.collections[0]
    face = matplotlib.colors.to_rgba(band.get_facecolor()[0])
    line = matplotlib.colors.to_rgba(ax.lines[0].get_color())
    assert face[3] >= 0.25  # opaque enough to see ...
    assert np.ptp(face[:3]) > 0.3  # ... coloured, not grey ...
    assert np.linalg.norm(np.subtract(face[:3], line[:3])) > 0.3  # ... unlike the data
    sigma = np.sqrt(cube.uncertainty.array[:, y, x].astype(float))
    vertices = band.get_paths()[0].vertices
    flux = cube.flux.value[:, y, x].astype(float)
    assert (WAVE.value[5], flux[5] + sigma[5]) in {tuple(v) for v in vertices}


def test_plot_spectrum_with_the_fitted_model(cube_result, ambiguous):
    cube, _, result = cube_result
    y, x = np.argwhere(result.flags == 0)[1]
    ax = plot_spectrum(result, y, x, model=True, ax=plt.figure().add_subplot())
    flat = result.flat_index(y, x)
    expected, _, work = result.correlator.fitted_model(
        result.data, np.array([flat]), np.array([result.template_index[y, x]]),
        np.array([result.z_best[y, x]]))
    np.testing.assert_array_equal(ax.lines[1].get_ydata(), expected[0])
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), work.flux[0])  # no pixel masked
    # the continuum is gone: the data scatter around zero, unlike the raw spectrum
    raw = cube.flux.value[:, y, x].astype(float)
    assert abs(np.median(work.flux[0])) < 0.1 * abs(np.median(raw))
    assert "continuum" in ax.get_ylabel() and "fitted model" in ax.lines[1].get_label()
    assert ax.get_title() == f"spaxel ({y}, {x})"
    # another template of a set, by name, at a redshift of one's choosing
    ax = plot_spectrum(ambiguous, model=True, template="lae", z=3.9677,
                       ax=plt.figure().add_subplot())
    expected, _, _ = ambiguous.correlator.fitted_model(
        ambiguous.data, np.array([0]), np.array([0]), np.array([3.9677]))
    np.testing.assert_array_equal(ax.lines[1].get_ydata(), expected[0])
    assert "lae" in ax.lines[1].get_label() and "AMBIGUOUS" in ax.get_title()
    with pytest.raises(TypeError, match="Redshift"):
        plot_spectrum(cube, y, x, model=True)
    with pytest.raises(ValueError, match="give z"):
        plot_spectrum(ambiguous, model=True, template="lae")
    with pytest.raises(KeyError, match="no template 'qso'"):
        plot_spectrum(ambiguous, model=True, template="qso", z=1.0)
