"""Fit and check the confidence z_conf (muse_xcorr.confidence) on simulated populations.

One command::

    python benchmarks/fit_confidence.py                 # simulate, fit, check (~10 min)
    python benchmarks/fit_confidence.py --train A.ecsv --test B.ecsv

Without ``--train``/``--test`` it runs ``benchmarks/evaluate_population.py``
twice with the one-line default ``Correlator()``: 1500 objects (seed 11) to
fit, 600 objects (seed 12) to check. It prints the fitted coefficients as the
Python line to paste into ``muse_xcorr/confidence.py``, their standard errors,
and on the held-out population the reliability diagram (objects binned in
predicted probability: mean predicted against observed fraction right with
its binomial error), the Brier score against that of a constant, and what
thresholds on z_conf select (fraction right among those kept, fraction of the
right ones kept). ``--reliability FILE`` writes the diagram as ECSV (the docs
plot it). Empty-sky spectra have no right redshift: they count as wrong.
"""
import argparse
import os
import pathlib
import sys

import numpy as np
from astropy.table import Table

from muse_xcorr.confidence import DEFAULT_CONFIDENCE, ConfidenceModel

HERE = pathlib.Path(__file__).resolve().parent
BINS = np.array([0.0, 0.05, 0.2, 0.4, 0.6, 0.8, 0.95, 1.0])
THRESHOLDS = (0.5, 0.7, 0.8, 0.9, 0.95)


def population(path, n, seed):
    """The per-object ECSV of evaluate_population.py, run here when ``path`` is None."""
    if path is None:
        path = f"/tmp/muse_xcorr_population_{seed}_{n}.ecsv"
        if not os.path.exists(path):
            sys.path.insert(0, str(HERE))
            import evaluate_population
            evaluate_population.main(["--n", str(n), "--seed", str(seed), "--out", path])
    return Table.read(path, format="ascii.ecsv")


def inputs(table):
    """delta_chi2, significance, template names and right, per object."""
    names = [str(t) if str(t) != "none" else "" for t in table["template"]]
    return (np.asarray(table["delta_chi2"], float), np.asarray(table["significance"], float),
            np.array(names, dtype=object), np.asarray(table["right"], bool))


def reliability(p, right):
    """The reliability diagram: per bin of predicted p, n, mean p, observed and its error."""
    rows = []
    which = np.clip(np.digitize(p, BINS[1:-1]), 0, len(BINS) - 2)
    for k in range(len(BINS) - 1):
        inside = which == k
        n = int(inside.sum())
        observed = float(right[inside].mean()) if n else np.nan
        error = float(np.sqrt(max(observed * (1 - observed), 0.25 / n) / n)) if n else np.nan
        rows.append((BINS[k], BINS[k + 1], n, float(p[inside].mean()) if n else np.nan,
                     observed, error))
    table = Table(rows=rows, names=("p_low", "p_high", "n", "predicted", "observed",
                                    "observed_error"))
    for name in ("predicted", "observed", "observed_error"):
        table[name].format = ".3f"
    return table


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train", help="per-object ECSV of evaluate_population.py to fit")
    parser.add_argument("--test", help="per-object ECSV to check (another seed)")
    parser.add_argument("--n-train", type=int, default=1500)
    parser.add_argument("--n-test", type=int, default=600)
    parser.add_argument("--reliability", help="write the held-out diagram here (ECSV)")
    args = parser.parse_args(argv)

    train = population(args.train, args.n_train, 11)
    test = population(args.test, args.n_test, 12)
    d, s, names, right = inputs(train)
    has = np.array([bool(n) for n in names])
    model, covariance = ConfidenceModel.fit(d[has], s[has], names[has], right[has])
    errors = np.sqrt(np.diag(covariance))
    print(f"fitted on {int(has.sum())} objects with a candidate "
          f"({int(right[has].sum())} right):")
    print(f"  b0 = {model.intercept:.3f} +- {errors[0]:.3f}, "
          f"b1 (sqrt delta_chi2) = {model.delta_slope:.3f} +- {errors[1]:.3f}, "
          f"b2 (significance) = {model.significance_slope:.3f} +- {errors[2]:.3f}")
    for (name, value), error in zip(sorted(model.template_offsets.items()), errors[3:]):
        print(f"  offset {name:>14s} = {value:+.3f} +- {error:.3f}")
    offsets = ", ".join(f'"{k}": {v:.3f}' for k, v in sorted(model.template_offsets.items()))
    print("\nDEFAULT_CONFIDENCE = ConfidenceModel(\n"
          f"    {model.intercept:.3f}, {model.delta_slope:.3f}, {model.significance_slope:.3f},"
          f"\n    {{{offsets}}})")

    d, s, names, right = inputs(test)
    for label, candidate in (("fitted now", model), ("package default", DEFAULT_CONFIDENCE)):
        p = np.nan_to_num(candidate(d, s, names), nan=0.0)
        brier = float(np.mean((p - right) ** 2))
        constant = float(np.mean((right.mean() - right) ** 2))
        print(f"\nheld-out population ({len(test)} objects, {right.mean():.3f} right), "
              f"{label}: Brier score {brier:.4f} (a constant: {constant:.4f})")
        table = reliability(p, right)
        table.pprint_all()
        for threshold in THRESHOLDS:
            kept = p >= threshold
            print(f"  z_conf >= {threshold:.2f}: keeps {kept.mean():.3f} of all, right among "
                  f"kept {right[kept].mean() if kept.any() else np.nan:.3f}, right kept "
                  f"{kept[right].mean() if right.any() else np.nan:.3f}")
        if args.reliability and label == "package default":
            table.meta["command"] = "python benchmarks/fit_confidence.py"
            table.meta["population"] = f"{len(test)} objects, seed 12, Correlator()"
            table.write(args.reliability, format="ascii.ecsv", overwrite=True)
            print(f"reliability diagram: {args.reliability}")


if __name__ == "__main__":
    main()
