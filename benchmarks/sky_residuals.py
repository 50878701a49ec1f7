"""How often do sky-line residuals pass for a detection, and what does SKY_RESIDUAL catch?

    python benchmarks/sky_residuals.py            # 300 empty-sky spectra (~3 min)
    python benchmarks/sky_residuals.py --n 100

Empty-sky spectra of the simulated deep field (``muse_xcorr.population``,
class ``noise``: real MXDF variance shapes when ../shared is there, noise
correlation 0.1-0.45), half of them with sky-line residuals at half of the
bright night-sky lines (2-5 local sigma, Gaussian or P-Cygni), correlated
with exactly ``Correlator()``. Printed: the fraction below each
false-alarm threshold, with and without residuals, and what the flags make
of those below ``max_fap``: SKY_RESIDUAL, any flag, none.
"""
import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    from evaluate_population import HARMLESS, real_variances
    from muse_xcorr import Correlator, datasets
    from muse_xcorr.flags import Flag
    from muse_xcorr.population import make_population

    wave = datasets.muse_wavelength()
    found = real_variances(wave)
    shapes = found[0] if isinstance(found, tuple) else found
    cube, truth = make_population(args.n, seed=args.seed, classes="noise", variance=shapes,
                                  sky_residuals=0.5)[:2]
    correlator = Correlator()
    table = correlator.correlate(cube, progress=False).to_table()
    fap = np.asarray(table["fap"])
    flags = np.asarray(table["flags"])
    residuals = np.asarray(truth["n_sky_residuals"]) > 0
    print(f"{args.n} empty-sky spectra, {residuals.sum()} with sky-line residuals; "
          f"variance: {'real MXDF shapes' if shapes is not None else 'synthetic'}")
    print("fraction with fap below:   " + "  ".join(f"{t:>6}" for t in (0.01, 0.05, 0.1, 0.3)))
    for label, rows in (("without residuals", ~residuals), ("with residuals", residuals),
                        ("all", np.ones(args.n, bool))):
        print(f"  {label:22s}  " + "  ".join(f"{np.mean(fap[rows] < t):6.3f}"
                                             for t in (0.01, 0.05, 0.1, 0.3)))
    detected = fap <= correlator.max_fap
    sky = (flags & Flag.SKY_RESIDUAL) != 0
    doubt = (flags & ~int(HARMLESS)) != 0
    print(f"below max_fap={correlator.max_fap}: {detected.sum()}; of them SKY_RESIDUAL "
          f"{np.sum(detected & sky)}, any doubting flag {np.sum(detected & doubt)}, "
          f"no doubting flag {np.sum(detected & ~doubt)} (false detections "
          f"{np.mean(detected & ~doubt):.3f} of all)")
    other = (flags & ~int(HARMLESS | Flag.SKY_RESIDUAL)) != 0
    print(f"  without SKY_RESIDUAL, {np.sum(detected & ~other)} of them would have had no "
          f"doubting flag")


if __name__ == "__main__":
    main()
