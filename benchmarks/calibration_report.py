"""Regenerate the calibration tables of the documentation (issue 11, item 6).

One command::

    python benchmarks/calibration_report.py             # ~20 minutes on 2 cores
    python benchmarks/calibration_report.py --quick     # 40 spectra per bin, a few minutes

writes ``docs/tables/calibration.rst``, which ``docs/errors.rst`` includes:
nothing in it is pasted by hand. It runs the simulations of
``benchmarks/calibration.py`` (same simulator, same estimators, same flag
mask) over the configurations users run:

* the simulated template ("truth") and the one-line default
  ``Correlator(templates.default_set())`` over the default redshift grid;
* white noise and noise correlated between neighbouring pixels (lag-1 0.36,
  STAT ignoring it, as in MUSE cubes);
* continuum subtraction on (``"median"``, the default) and off (``None``);
* inverse-variance and uniform weighting; coarse-to-fine and full search;
* the line-rich and the continuum-dominated template;

and, per configuration, per z-error method and per S/N bin, the 1-sigma
coverage, the robust pull width and how many spectra are unflagged, plus the
false-alarm rate (S/N 0: pure noise, every unflagged redshift is false), the
false-flag rate (right redshifts that carry a flag) and the confident wrong
redshifts (wrong and unflagged). ``--only NAME`` runs one configuration and
prints it; ``--output -`` prints the whole report instead of writing it.
"""
import argparse
import datetime
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import calibration  # noqa: E402  (the simulator and estimators of calibration.py)

from muse_xcorr import __version__  # noqa: E402
from muse_xcorr.confidence import SUCCESS_TOLERANCE  # noqa: E402

#: The targets of issue 11 for a calibrated sigma_z.
COVERAGE_TARGET = (63.0, 74.0)
WIDTH_TARGET = (0.85, 1.15)
METHODS = ("analytic", "parabolic", "peakfit", "chi2", "montecarlo", "bootstrap")


class Config:
    """One configuration of the report: what is simulated and how it is correlated."""

    def __init__(self, name, title, kind="starforming", templates="truth", rho1=0.0,
                 continuum="median", weighting="inverse_variance", search="auto",
                 snr_bins=(0, 5, 8, 12, 20, 35, 100)):
        self.name, self.title, self.kind, self.templates = name, title, kind, templates
        self.rho1, self.continuum, self.weighting, self.search = rho1, continuum, weighting, search
        self.snr_bins = snr_bins

    def command(self, n):
        """The calibration.py command that prints the full table of this configuration."""
        options = [f"--kind {self.kind}", f"--n {n}"]
        if self.templates != "truth":
            options.append(f"--templates {self.templates}")
        if self.rho1:
            options.append(f"--rho1 {self.rho1:g}")
        if self.continuum != "median":
            options.append(f"--continuum {self.continuum}")
        if self.weighting != "inverse_variance":
            options.append(f"--weighting {self.weighting}")
        if self.search != "auto":
            options.append(f"--search {self.search}")
        return "python benchmarks/calibration.py " + " ".join(options)


#: The configurations of the report: "default" measures what a user of the one-line
#: default gets (the default set's recipes are not the simulated templates),
#: "truth" the estimators themselves.
CONFIGS = (
    Config("default", "One-line default: templates.default_set(), white noise",
           templates="default"),
    Config("default-correlated", "One-line default, correlated noise (rho1 0.36)",
           templates="default", rho1=0.36),
    Config("default-nocontinuum", "default_set() with continuum=None, white noise",
           templates="default", continuum="none"),
    Config("truth", "Simulated template, white noise", templates="truth"),
    Config("truth-correlated", "Simulated template, correlated noise (rho1 0.36)", rho1=0.36),
    Config("truth-nocontinuum", "Simulated template, continuum=None, white noise",
           continuum="none"),
    Config("truth-nocontinuum-correlated",
           "Simulated template, continuum=None, correlated noise (rho1 0.36)",
           continuum="none", rho1=0.36),
    Config("truth-uniform", "Simulated template, uniform weighting, white noise",
           weighting="uniform"),
    Config("truth-full", "Simulated template, full search (every redshift), white noise",
           search="full"),
    Config("passive", "Continuum-dominated template ('passive'), white noise", kind="passive",
           snr_bins=(0, 35, 100, 200, 400)),
)


def measure(config, n, n_samples, seed):
    """Run one configuration: per method and S/N bin the calibration figures.

    Returns
    -------
    dict
        ``"cells"``: {method: [per-bin statistics dict]}, ``"bins"``: per-bin
        detection figures (unflagged, right, false flags, confident wrong),
        ``"cost"`` (s per 1000 spectra of the correlation), ``"method_costs"``
        (s per 1000 spectra of each method), ``"z_range"``.
    """
    rng = np.random.default_rng(seed)
    template, grid, cube, truth = calibration.simulate(config.kind, config.snr_bins, n, rng,
                                                       config.rho1)
    correlator = calibration.make_correlator(config.kind, template, grid, config.weighting,
                                             config.continuum, config.templates, config.search)
    start = time.perf_counter()
    result = correlator.correlate(cube, progress=False)
    cost = (time.perf_counter() - start) / result.n_spectra * 1000
    shape = (len(config.snr_bins), n)
    # the detection figures take the flags of the correlation, before any method
    # adds its ZERR_UNRELIABLE (result.flags holds that of the method run last)
    base = np.array(result.flags).reshape(shape)
    methods = [m for m in METHODS if not (m == "chi2" and config.weighting == "uniform")]
    sigmas, flags, costs = calibration.run_methods(result, methods, n_samples, seed)
    z_true = truth["z"].reshape(shape)
    dz = np.asarray(result.z_best).reshape(shape) - z_true
    with np.errstate(divide="ignore", invalid="ignore"):
        crb = calibration.true_crb(result, template, cube, truth).reshape(shape)
    cells = {}
    for method, sigma in sigmas.items():
        sigma, method_flags = sigma.reshape(shape), flags[method].reshape(shape)
        cells[method] = [calibration.statistics(dz[b], sigma[b], method_flags[b], crb[b])
                         for b in range(shape[0])]
    flagged = (base & calibration.FLAGGED) != 0
    right = np.abs(dz) < SUCCESS_TOLERANCE * (1 + z_true)
    fap = np.asarray(result.flat("fap"), float).reshape(shape)
    bins = [{"unflagged": int((~flagged[b]).sum()), "right": int(right[b].sum()),
             "fap01": int(np.sum(fap[b] < 0.01)), "fap05": int(np.sum(fap[b] < 0.05)),
             "false_flags": int((right[b] & flagged[b]).sum()),
             "confident_wrong": int((~right[b] & ~flagged[b]).sum())}
            for b in range(shape[0])]
    return {"cells": cells, "bins": bins, "cost": cost, "method_costs": costs,
            "z_range": (float(result.z[0]), float(result.z[-1]))}


def _cell(s, n):
    """'in1 % / robust width (N)', starred where both targets of issue 11 are met."""
    if s["N"] < max(5, n // 10):
        return f"-- ({s['N']})"
    met = COVERAGE_TARGET[0] <= s["in1"] <= COVERAGE_TARGET[1] and \
        WIDTH_TARGET[0] <= s["robust"] <= WIDTH_TARGET[1]
    return f"{'**' if met else ''}{s['in1']:.0f} % / {s['robust']:.2f}{'**' if met else ''} " \
           f"({s['N']})"


def _list_table(header, rows):
    lines = [".. list-table::", "   :header-rows: 1", ""]
    for row in [header] + rows:
        lines.append(f"   * - {row[0]}")
        lines += [f"     - {value}" for value in row[1:]]
    return lines


def section(config, measured, n, n_samples):
    """The RST of one configuration."""
    title = f"{config.title}"
    lines = [title, "-" * len(title), ""]
    z0, z1 = measured["z_range"]
    lines += [f"``{config.command(n)}`` prints the full table (pull mean and standard "
              f"deviation, 2-sigma coverage, sigma / CRB, catastrophic failures). Template "
              f"'{config.kind}', weighting ``{config.weighting}``, continuum "
              f"``{config.continuum}``, search ``{config.search}``, redshift grid "
              f"{z0:.3g}-{z1:.3g}, noise rho1 {config.rho1:g}; {n} spectra per S/N bin, "
              f"{n_samples} Monte Carlo / bootstrap copies; the correlation (its set-up "
              f"included: template operators, detection calibration) took "
              f"{measured['cost']:.1f} s per 1000 spectra, the methods "
              + ", ".join(f"``{m}`` {c:.1f}" for m, c in measured["method_costs"].items()
                          if m != "montecarlo_p68")
              + " (the Monte Carlo's 16-84 % half-width comes with it).", ""]
    snrs = config.snr_bins
    header = ["method"] + [f"S/N {s:g}" for s in snrs if s > 0]
    rows = [[f'``"{m}"``'] + [_cell(c, n) for c, s in zip(cells, snrs) if s > 0]
            for m, cells in measured["cells"].items()]
    detection = measured["bins"]
    rows.append(["unflagged / right z"] +
                [f"{d['unflagged']} / {d['right']}" for d, s in zip(detection, snrs) if s > 0])
    rows.append(["right z flagged (false flags)"] +
                [f"{100 * d['false_flags'] / max(d['right'], 1):.0f} %"
                 for d, s in zip(detection, snrs) if s > 0])
    rows.append(["wrong z unflagged (confident wrong)"] +
                [f"{d['confident_wrong']}" for d, s in zip(detection, snrs) if s > 0])
    lines += _list_table(header, rows) + [""]
    if 0 in snrs:
        noise = detection[list(snrs).index(0)]
        lines += [f"Pure noise (S/N 0): {noise['unflagged']} of {n} spectra unflagged, a "
                  f"false-alarm rate of {100 * noise['unflagged'] / n:.1f} %; the false-alarm "
                  f"probability ``fap`` is below 0.01 for {100 * noise['fap01'] / n:.1f} % of "
                  f"them and below 0.05 for {100 * noise['fap05'] / n:.1f} % (exact: 1 and 5 "
                  f"%, +-{100 * np.sqrt(0.01 * 0.99 / n):.1f} and "
                  f"+-{100 * np.sqrt(0.05 * 0.95 / n):.1f} with {n} spectra).", ""]
    return lines


def report(configs, n, n_samples, seed, progress=print):
    """The whole generated RST page as a list of lines."""
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    lines = [".. This file is generated by benchmarks/calibration_report.py: do not edit.", "",
             f"Generated on {now} by ``python benchmarks/calibration_report.py`` "
             f"(muse_xcorr {__version__}, seed {seed}, {os.cpu_count()} CPUs). In each "
             f"cell: the percentage of unflagged spectra with ``|z_best - z_true| < sigma_z`` "
             f"/ the robust pull width (1.4826 x the median absolute deviation of "
             f"``(z_best - z_true) / sigma_z``) (the number of unflagged spectra with a finite "
             f"sigma_z). **Bold**: both targets met (coverage {COVERAGE_TARGET[0]:g}-"
             f"{COVERAGE_TARGET[1]:g} %, robust width {WIDTH_TARGET[0]:g}-{WIDTH_TARGET[1]:g}); "
             f"``--``: fewer than a tenth of the bin unflagged. With {n} spectra the coverage "
             f"carries a sampling error of +-{100 * np.sqrt(0.683 * 0.317 / n):.1f} points "
             f"(less where fewer are unflagged: more). 'Flagged' is any of "
             f"{', '.join(f.name for f in type(calibration.FLAGGED) if f & calibration.FLAGGED)}; "
             f"a 'right' redshift is within {SUCCESS_TOLERANCE:g} (1 + z) of the truth.", ""]
    for config in configs:
        start = time.perf_counter()
        measured = measure(config, n, n_samples, seed)
        lines += section(config, measured, n, n_samples)
        progress(f"{config.name}: {time.perf_counter() - start:.0f} s")
    return lines


def write_atomically(path, text):
    """Write ``text`` to ``path`` through a temporary file in the same directory."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=directory, suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="40 spectra per bin")
    parser.add_argument("--n", type=int, default=None, help="spectra per S/N bin (default 200)")
    parser.add_argument("--samples", type=int, default=100,
                        help="Monte Carlo / bootstrap copies per spectrum")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--only", choices=[c.name for c in CONFIGS], action="append",
                        help="only these configurations (repeatable); printed, not written")
    default_output = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir,
                                  "docs", "tables", "calibration.rst")
    parser.add_argument("--output", default=default_output,
                        help="where to write the RST ('-': print it)")
    args = parser.parse_args(argv)
    n = args.n or (40 if args.quick else 200)
    configs = [c for c in CONFIGS if not args.only or c.name in args.only]
    start = time.perf_counter()
    log = (lambda message: print(message, file=sys.stderr, flush=True))
    text = "\n".join(report(configs, n, args.samples, args.seed, progress=log)) + "\n"
    if args.output == "-" or args.only:
        print(text)
    else:
        write_atomically(args.output, text)
        log(f"wrote {os.path.normpath(args.output)}")
    log(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
