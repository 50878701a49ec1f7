"""Evaluate the default template set on a simulated MUSE deep-field population, and on real data.

Simulation (seeded): emission-line galaxies as found in the MUSE Hubble Ultra
Deep Field (Bacon et al. 2017; Inami et al. 2017): a fraction ``--lae-fraction``
of Lyman-alpha emitters (z uniform in 2.9-6.6, asymmetric Lyman alpha with
asymmetry 0.1-0.4 and width 60-200 km/s, rest EW 15-150 A) and otherwise
star-forming galaxies (z uniform in 0.02-1.5, [OII] doublet ratio 0.8-1.5,
[OIII]/Hbeta 0.3-5, Halpha/Hbeta 2.86-4, [NII]/Halpha 0.05-0.4, widths
40-150 km/s, rest EW([OII]) 10-100 A). Each object is built with
``Template.from_lines`` (so not with the default-set recipes), convolved with
the MUSE LSF at its own redshift, put on the real MUSE grid (air) and given
Gaussian noise from ``muse_xcorr.datasets.muse_variance`` (sky lines
included). The flux is set by the S/N of the brightest observed line
(matched filter over +-2.5 FWHM of that line), drawn log-uniformly in
``--snr``.

Measured: success (|dz| / (1 + z) < 2e-3), catastrophic rate
(|dz| / (1 + z) > 1e-2), and the fraction of failures flagged (any flag but
LOW_COVERAGE and BAD_VARIANCE), per S/N bin and per main line. Targets
(issue 6): >= 95 % correct among unflagged spectra with S/N >= 5 in the
brightest line, and >= 90 % of the wrong ones flagged.

With ``--udf`` the same correlator runs on the real MUSE UDF subcube excerpt
(../shared/data/udf_mosaic_subcube.fits, skipped if absent) and saves maps.

Run from the repository root::

    PYTHONPATH=. python benchmarks/evaluate_population.py --n 600 --seed 1
    PYTHONPATH=. python benchmarks/evaluate_population.py --n 600 --continuum median
    PYTHONPATH=. python benchmarks/evaluate_population.py --n 0 --udf --outdir benchmarks/figures
"""
import argparse
import functools
import pathlib
import time

import numpy as np
import astropy.units as u
from astropy.nddata import VarianceUncertainty
from astropy.table import Table

from muse_xcorr import Correlator, MuseCube, Template, zgrid
from muse_xcorr.datasets import FLUX_UNIT, muse_variance, muse_wavelength
from muse_xcorr.flags import Flag
from muse_xcorr.templates.lines import LINES, lya_profile
from muse_xcorr.templates.lsf import lsf_fwhm
from muse_xcorr.templates import default_set

#: Flags that say "do not trust this redshift" (coverage and variance flags do not).
DISTRUST = (Flag.AMBIGUOUS | Flag.EDGE | Flag.NEGATIVE_PEAK | Flag.ZERR_UNRELIABLE
            | Flag.NO_DATA | Flag.FEW_PIXELS)
SNR_BINS = (2, 3, 5, 8, 15, 50)
SUCCESS, CATASTROPHIC = 2e-3, 1e-2
SHARED_CUBE = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / \
    "udf_mosaic_subcube.fits"


def galaxy_lines(rng):
    """Random but physical nebular line strengths of a star-forming galaxy ([OII] = 1)."""
    ratio = rng.uniform(0.8, 1.5)  # [OII] 3729 / 3726
    hbeta = rng.uniform(0.2, 0.6)
    oiii = hbeta * rng.uniform(0.3, 5.0)
    halpha = hbeta * rng.uniform(2.86, 4.0)
    nii = halpha * rng.uniform(0.05, 0.4)
    return {"[OII]3726": 1 / (1 + ratio), "[OII]3729": ratio / (1 + ratio),
            "[NeIII]3869": 0.1 * oiii, "Hgamma": 0.47 * hbeta, "Hbeta": hbeta,
            "[OIII]4959": oiii / 2.98, "[OIII]5007": oiii, "[NII]6548": nii / 3.05,
            "Halpha": halpha, "[NII]6583": nii, "[SII]6716": 0.15 * halpha,
            "[SII]6731": 0.11 * halpha}


def make_object(rng):
    """(template, z, kind) of one random deep-field emitter."""
    if rng.random() < make_object.lae_fraction:
        z = rng.uniform(2.9, 6.6)
        ew = rng.uniform(15, 150)
        profile = functools.partial(lya_profile, asymmetry=rng.uniform(0.1, 0.4))
        template = Template.from_lines(
            {"Lya": 1.0}, rng.uniform(60, 200) * u.km / u.s, wave_range=(1000, 2500),
            step=0.05, profiles={"Lya": profile},
            continuum=lambda w: np.where(w > 1215.67, 1.0, 0.1) * (w / 1215.67) ** -2 / ew)
        return template, z, "lae"
    z = rng.uniform(0.02, 1.5)
    ew = rng.uniform(10, 100)
    template = Template.from_lines(
        galaxy_lines(rng), rng.uniform(40, 150) * u.km / u.s, wave_range=(3000, 7500),
        step=0.1, continuum=lambda w: (w / 3727) ** -1.0 * (0.8 + 0.2 * (w > 4000)) / ew)
    return template, z, "galaxy"


def main_line(template, z, wave):
    """Name and observed (vacuum) wavelengths of the brightest line inside the grid."""
    names = template.meta["lines"]
    flux = dict(zip(names, template.meta["line_strengths"]))
    groups = {"[OII]3727": ["[OII]3726", "[OII]3729"], "[OIII]5007": ["[OIII]5007"],
              "Halpha": ["Halpha"], "Hbeta": ["Hbeta"], "Lya": ["Lya"]}
    best, best_flux = None, 0.0
    for group, members in groups.items():
        members = [m for m in members if m in flux]
        observed = [LINES[m][0] * (1 + z) for m in members]
        if members and all(wave[0] + 10 < w < wave[-1] - 10 for w in observed):
            total = sum(flux[m] for m in members)
            if total > best_flux:
                best, best_flux = (group, observed), total
    return best


def simulate(n, seed, snr_range):
    """Spectra (n, n_pixel), variance, truth table."""
    rng = np.random.default_rng(seed)
    wave = muse_wavelength()
    var = muse_variance(wave)
    flux, rows = [], []
    while len(rows) < n:
        template, z, kind = make_object(rng)
        line = main_line(template, z, wave.value)
        if line is None:  # no strong line inside MUSE's range: not an emission-line detection
            continue
        convolved = template.convolve_lsf(z)
        model = convolved.matrix(wave, [z], medium="air")[:, 0]
        name, observed = line
        fwhm = lsf_fwhm(np.mean(observed) * u.AA).value
        near = np.zeros(wave.size, bool)
        for centre in observed:
            near |= np.abs(wave.value - centre / 1.000277) < 2.5 * max(fwhm, 2.0)
        snr = np.exp(rng.uniform(*np.log(snr_range)))
        amplitude = snr / np.sqrt(np.sum(model[near] ** 2 / var[near]))
        flux.append(amplitude * model + rng.normal(size=wave.size) * np.sqrt(var))
        rows.append((z, kind, name, snr))
    truth = Table(rows=rows, names=("z_true", "kind", "main_line", "snr_line"))
    return wave, np.array(flux), var, truth


def as_cube(wave, flux, var):
    n = flux.shape[0]
    data = flux.T.reshape(wave.size, 1, n)
    stat = np.broadcast_to(var[:, None, None], data.shape)
    return MuseCube(wave, data * FLUX_UNIT, VarianceUncertainty(stat * FLUX_UNIT ** 2),
                    medium="air", spectral_axis_index=0)


def summarise(truth, result):
    """Add the outcome columns and return per-bin / per-line summary tables."""
    z_best = np.ravel(result.z_best)
    dz = np.abs(z_best - truth["z_true"]) / (1 + truth["z_true"])
    truth["z_best"] = z_best
    truth["template_index"] = np.ravel(result.template_index)
    truth["flags"] = np.ravel(result.flags)
    truth["dchi2_alt"] = np.ravel(result.dchi2_alt)
    truth["ok"] = np.nan_to_num(dz, nan=1.0) < SUCCESS
    truth["catastrophic"] = np.nan_to_num(dz, nan=1.0) > CATASTROPHIC
    truth["flagged"] = (truth["flags"] & int(DISTRUST)) != 0
    bins = []
    edges = list(SNR_BINS)
    for low, high in zip(edges[:-1], edges[1:]):
        in_bin = (truth["snr_line"] >= low) & (truth["snr_line"] < high)
        bins.append(_row(f"{low}-{high}", truth[in_bin]))
    bins.append(_row(">=5", truth[truth["snr_line"] >= 5]))
    bins.append(_row("all", truth))
    per_line = [_row(name, truth[(truth["main_line"] == name) & (truth["snr_line"] >= 5)])
                for name in sorted(set(truth["main_line"]))]
    return Table(rows=bins, names=_COLUMNS), Table(rows=per_line, names=_COLUMNS)


_COLUMNS = ("subset", "n", "success", "catastrophic", "unflagged", "correct_unflagged",
            "wrong_flagged")


def _row(label, t):
    n = len(t)
    if n == 0:
        return (label, 0) + (np.nan,) * 5
    unflagged = ~t["flagged"]
    wrong = ~t["ok"]
    correct_unflagged = np.mean(t["ok"][unflagged]) if unflagged.any() else np.nan
    wrong_flagged = np.mean(t["flagged"][wrong]) if wrong.any() else np.nan
    return (label, n, np.mean(t["ok"]), np.mean(t["catastrophic"]), np.mean(unflagged),
            correct_unflagged, wrong_flagged)


def correlator(args):
    templates = default_set(lsf_z=None if args.lsf == "none" else "auto",
                            composite=args.composite)
    return Correlator(templates, zgrid(0.0, 6.7, args.dlnz), weighting="inverse_variance",
                      continuum=None if args.continuum == "none" else args.continuum,
                      continuum_window=args.window * u.AA, batch_size=256,
                      confusion_tolerance=args.tolerance)


def run_udf(args, corr):
    """Correlate the real UDF excerpt and save maps; return a one-line summary."""
    if not SHARED_CUBE.is_file():
        print(f"UDF subcube not found at {SHARED_CUBE}: skipped")
        return None
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cube = MuseCube.read(SHARED_CUBE)
    result = corr.correlate(cube, progress=False)
    outdir = pathlib.Path(args.outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    trusted = ((result.flags & int(DISTRUST)) == 0) & (result.snr >= 5)
    fig, axes = plt.subplots(1, 4, figsize=(16, 4))
    panels = [("z_best", np.where(trusted, result.z_best, np.nan), "viridis"),
              ("snr", result.snr, "magma"),
              ("template_index", result.template_index.astype(float), "tab10"),
              ("AMBIGUOUS", ((result.flags & Flag.AMBIGUOUS) != 0).astype(float), "gray")]
    for ax, (title, image, cmap) in zip(axes, panels):
        shown = ax.imshow(image, origin="lower", cmap=cmap)
        ax.set_title(title + (" (unflagged, S/N>=5)" if title == "z_best" else ""))
        fig.colorbar(shown, ax=ax, shrink=0.8)
    fig.suptitle(f"MUSE UDF excerpt {cube.spatial_shape}, 4750-5374 A, default set, "
                 f"continuum={args.continuum}")
    path = outdir / "udf_maps.png"
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)
    names = result.meta["templates"].split(",")
    counts = {names[i]: int(np.sum(result.template_index == i)) for i in range(len(names))}
    summary = (f"UDF: {result.n_spectra} spaxels; S/N>=5: {int(np.sum(result.snr >= 5))}; "
               f"unflagged with S/N>=5: {int(trusted.sum())}, z of those: "
               f"{np.round(np.unique(np.round(result.z_best[trusted], 3)), 3)}; "
               f"AMBIGUOUS: {int(np.sum((result.flags & Flag.AMBIGUOUS) != 0))}; "
               f"best template counts {counts}; maps in {path}")
    print(summary)
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=600, help="simulated spectra")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--snr", type=float, nargs=2, default=(2.0, 50.0),
                        help="range of the brightest line's S/N (log-uniform)")
    parser.add_argument("--lae-fraction", type=float, default=0.45)
    parser.add_argument("--continuum", default="median",
                        choices=("none", "median", "spline", "polynomial"))
    parser.add_argument("--window", type=float, default=150.0, help="continuum window, A")
    parser.add_argument("--lsf", default="auto", choices=("auto", "none"),
                        help="convolve the default set with the MUSE LSF ('auto' reference z)")
    parser.add_argument("--dlnz", type=float, default=1.5e-4)
    parser.add_argument("--tolerance", type=float, default=0.1,
                        help="confusion tolerance (fraction of the best fit's chi2 gain)")
    parser.add_argument("--composite", action="store_true",
                        help="emission template as a composite of line groups")
    parser.add_argument("--udf", action="store_true", help="also run on the real UDF excerpt")
    parser.add_argument("--outdir", default="benchmarks/figures")
    args = parser.parse_args(argv)
    make_object.lae_fraction = args.lae_fraction
    corr = correlator(args)
    if args.n > 0:
        start = time.time()
        wave, flux, var, truth = simulate(args.n, args.seed, args.snr)
        result = corr.correlate(as_cube(wave, flux, var), progress=False)
        bins, lines = summarise(truth, result)
        for table in (bins, lines):
            for name in _COLUMNS[2:]:
                table[name].format = ".3f"
            table.pprint_all()
            print()
        print(f"{args.n} spectra, continuum={args.continuum}, lsf={args.lsf}, "
              f"composite={args.composite}, dlnz={args.dlnz}: {time.time() - start:.0f} s")
        pathlib.Path(args.outdir).mkdir(parents=True, exist_ok=True)
        label = f"{args.continuum}_{args.lsf}_{'composite' if args.composite else 'single'}"
        truth.write(pathlib.Path(args.outdir) / f"population_{label}.ecsv", overwrite=True)
    if args.udf:
        run_udf(args, corr)


if __name__ == "__main__":
    main()
