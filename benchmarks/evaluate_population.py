"""Evaluate a correlator (default: the one-line ``Correlator()``) on a simulated MUSE deep field.

The population is :func:`muse_xcorr.population.make_population` (LAEs, [OII],
[OIII]/H-alpha and CIII] emitters, UV-absorption and passive galaxies, stars
and empty sky in HUDF-like proportions, built from drawn physical parameters,
not from the default templates' recipes), with the **real variance spectra**
of the MUSE eXtremely Deep Field TDOSE tables in ``../shared/data`` when they
exist (``fluxerror`` squared, on the MUSE grid) and
:func:`muse_xcorr.datasets.muse_variance` otherwise; the output says which.
Noise correlated between neighbouring pixels, sky-line residuals and the AO
notch are on by default, as in real data.

Measured, per class and per bin of the S/N of each object's strongest
feature: success (abs(dz) / (1 + z) < 2e-3), catastrophic (> 1e-2), the
fraction of the wrong ones flagged (any flag except LOW_COVERAGE and
BAD_VARIANCE means "do not trust"), of the right ones left unflagged, and the
fraction right among the unflagged; for ``noise`` the fraction left
unflagged (false detections). Targets at S/N >= 5: >= 97 % right among the
unflagged, >= 95 % of the wrong ones flagged, >= 90 % of the right ones
unflagged. Then which wrong answers happen: true class x winning template,
and the line identifications implied by the wrong redshifts.

Run from the repository root::

    PYTHONPATH=. python benchmarks/evaluate_population.py            # 2000 objects, seed 1
    PYTHONPATH=. python benchmarks/evaluate_population.py --quick    # 300 objects
    PYTHONPATH=. python benchmarks/evaluate_population.py --ambiguity-tolerance 0.1 \\
        --templates mypackage.mytemplates:make_set

``--udf`` also runs the correlator on the real UDF excerpt
(``../shared/data/udf_mosaic_subcube.fits``) and saves maps.
"""
import argparse
import collections
import importlib
import pathlib
import time
import warnings

import numpy as np
import astropy.units as u
from astropy.table import Table

from muse_xcorr import Correlator, MuseCube
from muse_xcorr.confidence import SUCCESS_TOLERANCE
from muse_xcorr.datasets import muse_wavelength
from muse_xcorr.flags import Flag, describe
from muse_xcorr.population import CLASSES, FEATURE_GROUPS, make_population, rest_wavelength

SHARED = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"
TDOSE = SHARED / "real_spectra" / "TDOSE"
UDF_CUBE = SHARED / "udf_mosaic_subcube.fits"

#: Flags that do not say "do not trust this redshift"; every other one (new ones too) does.
HARMLESS = Flag.LOW_COVERAGE | Flag.BAD_VARIANCE | Flag.OUTLIER_PIXELS
SUCCESS, CATASTROPHIC = SUCCESS_TOLERANCE, 1e-2
SNR_BINS = ((3, 5), (5, 8), (8, 15), (15, 50))
TARGETS = (("right among unflagged", "purity", 0.97),
           ("wrong ones flagged", "wrong_flagged", 0.95),
           ("right ones unflagged", "right_unflagged", 0.90))

#: Lines a wrong redshift may have taken the strongest feature for (vacuum rest, Angstrom).
IDENTIFICATIONS = {"Lya": 1215.67, "NV1240": 1240.81, "CIV1549": 1549.48, "HeII1640": 1640.42,
                   "OIII]1663": 1664.6, "CIII]1908": 1907.7, "MgII2800": 2799.1,
                   "[OII]3727": 3728.5, "[NeIII]3869": 3869.86, "Hdelta": 4102.89,
                   "Hgamma": 4341.69, "Hbeta": 4862.69, "[OIII]4959": 4960.30,
                   "[OIII]5007": 5008.24, "HeI5876": 5877.25, "[OI]6300": 6302.05,
                   "[NII]6548": 6549.86, "Halpha": 6564.61, "[NII]6583": 6585.27,
                   "[SII]6724": 6725.5, "[SIII]9069": 9071.1}


# ---------------------------------------------------------------------------- inputs
def real_variances(wave):
    """Variance shapes (n, n_pixel) from the TDOSE tables on ``wave``, or None if absent."""
    wave = u.Quantity(wave, u.AA).value
    paths = sorted(TDOSE.glob("tdose_spectrum_*.fits"))
    if not paths:
        return None, []
    shapes = []
    for path in paths:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", u.UnitsWarning)
            table = Table.read(path)
        source = np.asarray(table["wave"], float)
        var = np.asarray(table["fluxerror"], float) ** 2
        good = np.isfinite(var) & (var > 0)
        shape = np.interp(wave, source[good], var[good])
        # keep the file's missing pixels missing (the simulator interpolates them)
        nearest = np.clip(np.searchsorted(source, wave), 0, source.size - 1)
        shape[~good[nearest]] = np.nan
        shapes.append(shape)
    return np.array(shapes), [p.name for p in paths]


def blue_end_check(wave, shapes):
    """The UDF excerpt's median STAT and the TDOSE shapes at the blue end (/ 5000-5374 A)."""
    if not UDF_CUBE.is_file() or shapes is None:
        return None
    from astropy.io import fits

    with fits.open(UDF_CUBE) as hdul:
        stat = np.asarray(hdul["STAT"].data, float)
        header = hdul["STAT"].header
    udf_wave = header["CRVAL3"] + header["CD3_3"] * (np.arange(stat.shape[0]) + 1
                                                     - header["CRPIX3"])
    udf = np.median(stat, axis=(1, 2))
    ref_udf = np.median(udf[(udf_wave > 5000) & (udf_wave < 5374)])
    sel = (wave > 5000) & (wave < 5374)
    with warnings.catch_warnings():   # the AO notch is NaN in every shape
        warnings.simplefilter("ignore", RuntimeWarning)
        tdose = np.nanmedian(shapes / np.nanmedian(shapes[:, sel], axis=1)[:, None], axis=0)
    points = (4750, 4760, 4775, 4800, 4850, 4900, 5000, 5200)
    rows = [(p, float(np.interp(p, udf_wave, udf) / ref_udf), float(np.interp(p, wave, tdose)))
            for p in points]
    return Table(rows=rows, names=("wavelength", "udf_stat", "tdose_variance"))


def load_templates(spec):
    """The templates returned by ``MODULE:FUNCTION`` (called with no argument)."""
    module, _, function = spec.partition(":")
    if not function:
        raise SystemExit(f"--templates needs MODULE:FUNCTION, got {spec!r}")
    return getattr(importlib.import_module(module), function)()


def make_correlator(args):
    """``Correlator()`` with exactly the options given on the command line."""
    options = {}
    if args.templates:
        options["templates"] = load_templates(args.templates)
    if args.weighting:
        options["weighting"] = args.weighting
    if args.continuum:
        options["continuum"] = None if args.continuum == "none" else args.continuum
    if args.continuum_window is not None:
        options["continuum_window"] = args.continuum_window * u.km / u.s
    if args.composite_penalty is not None:
        options["composite_penalty"] = args.composite_penalty
    if args.ambiguity_tolerance is not None:
        options["ambiguity_tolerance"] = args.ambiguity_tolerance
    if args.batch_size is not None:
        options["batch_size"] = args.batch_size
    if args.n_seeds is not None:
        options["n_seeds"] = args.n_seeds
    if args.max_fap is not None:
        options["max_fap"] = args.max_fap
    return Correlator(**options), options


def parse_classes(text):
    """``lae,oii`` (equal shares) or ``lae=0.5,oii=0.3``."""
    if not text:
        return None
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if all("=" in p for p in parts):
        return {k.strip(): float(v) for k, v in (p.split("=") for p in parts)}
    return parts


# ---------------------------------------------------------------------------- outcomes
def identification(row):
    """What the wrong redshift made of the strongest feature, in words."""
    z_best = row["z_best"]
    if not np.isfinite(z_best):
        return "no redshift"
    feature = str(row["feature"])
    if row["class"] == "noise":
        return f"noise as {row['template']}"
    if feature == "absorption":
        return f"absorption as {row['template']}"
    members = [name for name, group in FEATURE_GROUPS.items() if group == feature] or [feature]
    rest = np.mean([rest_wavelength(m) for m in members if m != "Lya_blue"])
    implied = rest * (1 + row["z"]) / (1 + z_best)
    name, wave = min(IDENTIFICATIONS.items(), key=lambda item: abs(item[1] - implied))
    if abs(implied / wave - 1) < 3.4e-3:     # within ~1000 km/s
        return f"{feature} as {name}"
    return f"{feature} as ? ({implied:.0f} A rest)"


def outcomes(truth, result):
    """The per-object table: truth (without the big columns) + what the correlator said."""
    out = truth.copy(copy_data=True)
    z_best = np.ravel(result.z_best).astype(float)
    flags = np.ravel(result.flags).astype(np.int64)
    names = result.template_names
    index = np.ravel(result.template_index).astype(int)
    out["z_best"] = z_best
    with np.errstate(invalid="ignore"):
        out["dz"] = (z_best - out["z"]) / (1 + out["z"])
    bad = np.nan_to_num(np.abs(out["dz"]), nan=np.inf)
    out["template"] = [names[i] if i >= 0 else "none" for i in index]
    out["flags"] = flags
    out["flag_names"] = [",".join(describe(f)) for f in flags]
    out["snr_result"] = np.ravel(result.snr)
    out["delta_chi2"] = np.ravel(result.delta_chi2)
    out["significance"] = np.ravel(result.significance)
    out["fap"] = np.ravel(result.fap)
    out["right"] = bad < SUCCESS
    out["catastrophic"] = bad > CATASTROPHIC
    out["flagged"] = (flags & ~int(HARMLESS)) != 0
    out["identification"] = [identification(row) if not row["right"] else "" for row in out]
    return out


def _fraction(mask, within):
    return float(np.mean(mask[within])) if np.any(within) else np.nan


def scores(t):
    """n, success, catastrophic, wrong flagged, right unflagged, unflagged, right if unflagged."""
    right, flagged = np.asarray(t["right"]), np.asarray(t["flagged"])
    everything = np.ones(len(t), bool)
    return {"n": len(t), "success": _fraction(right, everything),
            "catastrophic": _fraction(np.asarray(t["catastrophic"]), everything),
            "wrong_flagged": _fraction(flagged, ~right),
            "right_unflagged": _fraction(~flagged, right),
            "unflagged": _fraction(~flagged, everything),
            "purity": _fraction(right, ~flagged)}


COLUMNS = ("n", "success", "catastrophic", "wrong_flagged", "right_unflagged", "unflagged",
           "purity")


def score_table(label, subsets):
    rows = [[name] + [scores(t)[c] for c in COLUMNS] for name, t in subsets]
    table = Table(rows=rows, names=(label,) + COLUMNS)
    for name in COLUMNS[1:]:
        table[name].format = ".3f"
    return table


def report(out, elapsed, args, source, options):
    objects = out[out["class"] != "noise"]
    noise = out[out["class"] == "noise"]
    snr = np.asarray(objects["snr"])
    bright = objects[snr >= 5]

    print("\nPer S/N bin of the strongest feature (all classes but noise):")
    subsets = [(f"{lo}-{hi}", objects[(snr >= lo) & (snr < hi)]) for lo, hi in SNR_BINS]
    subsets += [(">=5", bright), ("all", objects)]
    score_table("snr", subsets).pprint_all()

    print("\nPer class, S/N >= 5:")
    classes = [c for c in CLASSES if c != "noise" and np.any(out["class"] == c)]
    score_table("class", [(c, bright[bright["class"] == c]) for c in classes]).pprint_all()

    print("\nPer class and S/N bin: success / right among unflagged / wrong flagged:")
    rows = []
    for c in classes:
        mine = objects[objects["class"] == c]
        cells = []
        for lo, hi in SNR_BINS:
            s = scores(mine[(mine["snr"] >= lo) & (mine["snr"] < hi)])
            cells.append("{:>3d}: {} / {} / {}".format(s["n"], *(
                "  -  " if np.isnan(s[k]) else f"{s[k]:.2f}"
                for k in ("success", "purity", "wrong_flagged"))))
        rows.append([c] + cells)
    Table(rows=rows, names=["class"] + [f"S/N {lo}-{hi}" for lo, hi in SNR_BINS]).pprint_all()

    if len(noise):
        unflagged = ~np.asarray(noise["flagged"])
        print(f"\nnoise (empty sky): {len(noise)} spectra, {unflagged.sum()} unflagged "
              f"(false detections {np.mean(unflagged):.3f}); S/N of f reported: median "
              f"{np.nanmedian(noise['snr_result']):.1f}, 95 % "
              f"{np.nanpercentile(noise['snr_result'], 95):.1f}; unflagged with reported "
              f"S/N >= 5: {int(np.sum(unflagged & (noise['snr_result'] >= 5)))}")
        kept = np.concatenate([np.asarray(bright["right"])[~np.asarray(bright["flagged"])],
                               np.zeros(int(unflagged.sum()), bool)])
        print(f"  right among unflagged at S/N >= 5 counting the unflagged empty sky as "
              f"wrong: {np.mean(kept) if kept.size else np.nan:.3f}")

    print("\nTargets at S/N >= 5 in the strongest feature (all classes but noise):")
    s = scores(bright)
    for label, key, goal in TARGETS:
        value = s[key]
        state = "met" if value >= goal else "MISSED"
        print(f"  {label:>22s}: {value:6.3f} (target >= {goal:.2f})  {state}")

    print("\nWinning template per true class (S/N >= 5; noise: all):")
    names = sorted(set(out["template"]))
    rows = []
    for c in classes + (["noise"] if len(noise) else []):
        mine = noise if c == "noise" else bright[bright["class"] == c]
        rows.append([c] + [int(np.sum(mine["template"] == n)) for n in names])
    Table(rows=rows, names=["class"] + names).pprint_all()

    print("\nWrong answers at S/N >= 5: what the wrong redshift made of the strongest feature "
          "(flagged / unflagged):")
    wrong = bright[~np.asarray(bright["right"])]
    counts = collections.Counter(zip(wrong["class"], wrong["identification"], wrong["flagged"]))
    keys = sorted({(c, i) for c, i, _ in counts},
                  key=lambda k: (-(counts[k + (True,)] + counts[k + (False,)]), k))
    rows = [[c, i, counts[(c, i, True)], counts[(c, i, False)]] for c, i in keys[:25]]
    if rows:
        table = Table(rows=rows, names=("class", "identification", "flagged", "unflagged"))
        table.pprint_all()
    if len(keys) > 25:
        print(f"  ... and {len(keys) - 25} rarer ones (see the ECSV)")
    print(f"\n{len(out)} spectra ({source}); simulation {elapsed['simulate']:.0f} s, "
          f"correlation {elapsed['correlate']:.0f} s; correlator: "
          f"{'Correlator()' if not options else 'Correlator(' + ', '.join(sorted(options)) + ')'}")


# ---------------------------------------------------------------------------- real UDF
def run_udf(args, corr):
    """Correlate the real UDF excerpt and save maps; print a one-line summary."""
    if not UDF_CUBE.is_file():
        print(f"UDF subcube not found at {UDF_CUBE}: skipped")
        return None
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cube = MuseCube.read(UDF_CUBE)
    result = corr.correlate(cube, progress=False)
    outdir = pathlib.Path(args.outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    trusted = ((result.flags & ~int(HARMLESS)) == 0) & (result.snr >= 5)
    fig, axes = plt.subplots(1, 4, figsize=(16, 4))
    panels = [("z_best", np.where(trusted, result.z_best, np.nan), "viridis"),
              ("snr", result.snr, "magma"),
              ("template_index", result.template_index.astype(float), "tab10"),
              ("AMBIGUOUS", ((result.flags & Flag.AMBIGUOUS) != 0).astype(float), "gray")]
    for ax, (title, image, cmap) in zip(axes, panels):
        shown = ax.imshow(image, origin="lower", cmap=cmap)
        ax.set_title(title + (" (unflagged, S/N>=5)" if title == "z_best" else ""))
        fig.colorbar(shown, ax=ax, shrink=0.8)
    fig.suptitle(f"MUSE UDF excerpt {cube.spatial_shape}, 4750-5374 A")
    path = outdir / "udf_maps.png"
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)
    print(f"UDF: {result.n_spectra} spaxels; S/N>=5: {int(np.sum(result.snr >= 5))}; "
          f"unflagged with S/N>=5: {int(trusted.sum())}; maps in {path}")
    return result


# ---------------------------------------------------------------------------- main
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="simulated spectra (default 2000)")
    parser.add_argument("--quick", action="store_true", help="300 spectra")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--snr", type=float, nargs=2, default=(3.0, 50.0),
                        help="range of the strongest feature's S/N (log-uniform)")
    parser.add_argument("--classes", default=None,
                        help="class mix, e.g. 'lae,oii' or 'lae=0.6,oii=0.4' (default HUDF-like)")
    parser.add_argument("--variance", choices=("auto", "real", "synthetic"), default="auto",
                        help="real TDOSE variance shapes (auto: when ../shared/data exists)")
    parser.add_argument("--rho", type=float, nargs="+", default=None,
                        help="lag-1 noise correlation: a value or a range (default 0.1 0.45)")
    parser.add_argument("--sky-residuals", type=float, default=None,
                        help="fraction of spectra with sky-line residuals (default 0.3)")
    parser.add_argument("--ao-fraction", type=float, default=None,
                        help="fraction of spectra with the AO notch (default 0.5)")
    group = parser.add_argument_group("correlator (default: exactly Correlator())")
    group.add_argument("--templates", help="MODULE:FUNCTION returning the template list")
    group.add_argument("--weighting", choices=("inverse_variance", "uniform"))
    group.add_argument("--continuum", choices=("median", "none"))
    group.add_argument("--continuum-window", type=float, help="km/s")
    group.add_argument("--composite-penalty", type=float)
    group.add_argument("--ambiguity-tolerance", type=float)
    group.add_argument("--batch-size", type=int)
    group.add_argument("--n-seeds", type=int)
    group.add_argument("--max-fap", type=float)
    parser.add_argument("--out", default="benchmarks/figures/population.ecsv",
                        help="per-object results (ECSV)")
    parser.add_argument("--udf", action="store_true", help="also run on the real UDF excerpt")
    parser.add_argument("--outdir", default="benchmarks/figures", help="for --udf maps")
    args = parser.parse_args(argv)
    n = 300 if args.quick else args.n

    corr, options = make_correlator(args)
    print(corr)
    if n > 0:
        wave = muse_wavelength()
        shapes, files = (None, []) if args.variance == "synthetic" else real_variances(wave)
        if shapes is None and args.variance == "real":
            raise SystemExit(f"no TDOSE tables in {TDOSE}")
        if shapes is None:
            source = "variance: datasets.muse_variance " + (
                "(--variance synthetic)" if args.variance == "synthetic"
                else f"(no real spectra in {TDOSE})")
        else:
            source = f"variance: {len(files)} real MXDF TDOSE fluxerror^2 shapes"
            check = blue_end_check(wave.value, shapes)
            if check is not None:
                print("Blue end of the variance, each / its median over 5000-5374 A "
                      "(UDF excerpt median STAT vs the TDOSE shapes' median):")
                check["udf_stat"].format = check["tdose_variance"].format = ".2f"
                check.pprint_all()
        print(source)
        kwargs = {}
        if args.rho is not None:
            kwargs["correlated_noise"] = args.rho[0] if len(args.rho) == 1 else tuple(args.rho)
        if args.sky_residuals is not None:
            kwargs["sky_residuals"] = args.sky_residuals
        if args.ao_fraction is not None:
            kwargs["ao_fraction"] = args.ao_fraction
        elapsed = {}
        start = time.time()
        cube, truth = make_population(n, seed=args.seed, classes=parse_classes(args.classes),
                                      snr=tuple(args.snr), variance=shapes, **kwargs)
        elapsed["simulate"] = time.time() - start
        start = time.time()
        result = corr.correlate(cube, progress=False)
        elapsed["correlate"] = time.time() - start
        out = outcomes(truth, result)
        out.meta.update(variance_source=source, correlator=repr(corr),
                        correlator_options=sorted(options), seed=args.seed)
        report(out, elapsed, args, source, options)
        if args.out:
            path = pathlib.Path(args.out)
            path.parent.mkdir(parents=True, exist_ok=True)
            out.write(path, overwrite=True, format="ascii.ecsv")
            print(f"per-object results: {path}")
    if args.udf:
        run_udf(args, corr)


if __name__ == "__main__":
    main()
