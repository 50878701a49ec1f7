"""muse_xcorr on a GPU: (a), (d), (e) as ratios on the device, and float32 vs float64.

    python benchmarks/gpu.py            # on a GPU machine (a few minutes)
    python benchmarks/gpu.py --small    # quick run (and the check on a CPU)

One command for a GPU machine (issue #13, item 4). It prints:

- the devices TensorFlow sees, and plainly when there is no GPU (then
  everything runs on the CPU, labelled so, and the script still exits 0);
- (a), (d), (e) and (f) of ``benchmarks/speed.py``, by its own functions, as
  ratios to the bare float32 matmul measured on the same device in the same run;
- the agreement of ``Correlator(dtype="float32")`` with ``dtype="float64"``
  on simulated spectra (S/N 5-40, 0.05 < z < 6): max |dz| / (1 + z) of
  z_best, the fraction of spectra whose best grid index (the argmax) moves,
  max |df| of f_best and the max relative difference of delta_chi2; with
  TF32 as the package leaves it (off: ``muse_xcorr.backend.tf32_enabled()``)
  and again with ``allow_tf32(True)``, to show what TF32 would do (TF32
  exists only on NVIDIA GPUs of compute capability >= 8.0; elsewhere the
  two runs are the same computation).
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import speed  # noqa: E402  (the benchmark functions: reused, not copied)


def agreement(template, z, n, *, search, batch_size, seed=21):
    """float32 against float64 on ``n`` simulated spectra: the figures of the module notes.

    Returns
    -------
    figures : dict
        ``dz`` (max |z32 - z64| / (1 + z64)), ``moved`` (fraction of spectra
        whose best grid index differs), ``df`` (max |f32 - f64| of f_best),
        ``dchi2`` (max |dc32 - dc64| / |dc64| of delta_chi2 where both are
        finite and dc64 > 0), ``n`` (spectra compared).
    """
    from muse_xcorr import Correlator, datasets

    side = 16 if n >= 16 else n
    rows = max(1, n // side)
    rng = np.random.default_rng(seed)
    cube, _ = datasets.make_cube(shape=(rows, side), template=template, z=(0.05, 6.0),
                                 snr=rng.uniform(5, 40, (rows, side)), seed=seed)
    results = {}
    for dtype in ("float32", "float64"):
        correlator = Correlator(template, z, dtype=dtype, search=search, batch_size=batch_size,
                                noise_correlation=None)
        results[dtype] = correlator.correlate(cube, progress=False)
    low, high = results["float32"], results["float64"]
    z32, z64 = np.ravel(low.z_best), np.ravel(high.z_best)
    both = np.isfinite(z32) & np.isfinite(z64)
    dc32, dc64 = np.ravel(low.delta_chi2), np.ravel(high.delta_chi2)
    finite = np.isfinite(dc32) & np.isfinite(dc64) & (dc64 > 0)
    return {"n": int(both.sum()),
            "dz": float(np.max(np.abs(z32 - z64)[both] / (1 + z64[both]), initial=0.0)),
            "moved": float(np.mean(np.ravel(low.best_index)[both] !=
                                   np.ravel(high.best_index)[both])) if both.any() else 0.0,
            "df": float(np.nanmax(np.abs(np.ravel(low.f_best) - np.ravel(high.f_best)),
                                  initial=0.0)),
            "dchi2": float(np.max(np.abs(dc32[finite] - dc64[finite]) / dc64[finite],
                                  initial=0.0))}


def print_agreement(label, figures):
    """One line of agreement figures."""
    print(f"  {label:34s} max |dz|/(1+z) {figures['dz']:.2e}   argmax moved "
          f"{100 * figures['moved']:6.2f}%   max |df| {figures['df']:.2e}   "
          f"max rel. d(delta_chi2) {figures['dchi2']:.2e}   ({figures['n']} spectra)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true",
                        help="quick run: 512 x 1000 for (a), 256 spectra for (d), (e) with one "
                        "template, 64 spectra for the agreement")
    parser.add_argument("--n-agree", type=int, help="spectra of the agreement (default 2048)")
    parser.add_argument("--repeat", type=int, help="best of N rounds (default 3; --small: 1)")
    parser.add_argument("--skip-timings", action="store_true", help="only the agreement")
    args = parser.parse_args(argv)

    from muse_xcorr import datasets, zgrid
    from muse_xcorr.backend import allow_tf32, devices, tf32_enabled

    names = devices()
    gpus = [name for name in names if "GPU" in name.upper()]
    if gpus:
        where = f"GPU ({', '.join(gpus)})"
        print(f"devices: {', '.join(names)}: running on the {where}")
    else:
        where = "CPU"
        print(f"devices: {', '.join(names)}")
        print("NO GPU: TensorFlow sees no GPU on this machine. Everything below ran on the CPU; "
              "these are CPU figures, not GPU figures.")
    print(f"TF32 matrix products: {'ON' if tf32_enabled() else 'off'} "
          f"(muse_xcorr.backend.tf32_enabled(); the package's default is off)")

    template = datasets.make_template()
    if not args.skip_timings:
        options = ["--small"] if args.small else []
        if args.repeat is not None:
            options += ["--repeat", str(args.repeat)]
        timing = speed.parse(options)
        timing.n_pixel = datasets.muse_wavelength().size
        cold = speed.measure_cold(timing)
        times = speed.grid_search(timing, template, measure=("a",))
        rates = speed.whole_range(timing, template)
        default = speed.default_rate(timing)
        cold["matmul"] = speed.full_matmul(timing, timing.n_pixel) or times["matmul"]
        print(f"\n(a), (d), (e), (f) on the {where}:")
        speed.report(timing, times, rates, cold, default)

    n = args.n_agree or (64 if args.small else 2048)
    z = zgrid(0.0, 6.7, 1e-4)
    print(f"\nfloat32 vs float64 on the {where}: {n} simulated spectra, S/N 5-40, "
          f"0.05 < z < 6, {z.size} redshifts, search='full' and 'coarse-to-fine'")
    previous = tf32_enabled()
    try:
        for search in ("full", "coarse-to-fine"):
            for tf32 in (previous, True):
                allow_tf32(tf32)
                label = (f"search={search!r}, TF32 {'on' if tf32 else 'off'}"
                         f"{' (default)' if tf32 == previous else ' (allow_tf32(True))'}")
                print_agreement(label, agreement(template, z, n, search=search,
                                                 batch_size=min(n, 1024)))
    finally:
        allow_tf32(previous)
    if not gpus:
        print("  (no GPU: TF32 does not exist on the CPU, so the two TF32 rows are the same "
              "computation)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
