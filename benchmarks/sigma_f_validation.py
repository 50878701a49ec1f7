"""sigma_f against the Monte Carlo scatter of f, with and without the second-order term.

    python benchmarks/sigma_f_validation.py [--realisations 2000]

For each weighting and a range of f (set by the amplitude of a noiseless
template on the full MUSE grid with a sky-line variance), it draws noise
realisations, correlates them, and prints the ratio of the mean predicted
sigma_f to the standard deviation of f at the true redshift: first-order
propagation alone, and with the correction of science.md section 1b.
"""
import argparse

import numpy as np
from astropy.nddata import VarianceUncertainty

from muse_xcorr import Correlator, MuseCube, datasets, zgrid


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--realisations", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    wave = datasets.muse_wavelength()
    variance = datasets.muse_variance(wave)
    template = datasets.make_template()
    z = zgrid(0.4, 0.401, 1e-4)
    k0 = 5
    shape = template.matrix(wave, z, medium="air")[:, k0]
    rng = np.random.default_rng(args.seed)
    unit = datasets.FLUX_UNIT
    print(f"{'weighting':17s} {'mean f':>7s} {'first-order/MC':>15s} {'corrected/MC':>13s}")
    for weighting in ("uniform", "inverse_variance"):
        if weighting == "uniform":
            signal, noise = np.sum(shape ** 2), np.sum(variance)
        else:
            signal, noise = np.sum(shape ** 2 / variance), wave.size
        for target in (0.1, 0.3, 0.6, 0.9, 0.97, 0.995):
            amplitude = np.sqrt(noise * target ** 2 / (1 - target ** 2) / signal)
            flux = amplitude * shape + rng.normal(size=(args.realisations, wave.size)) * \
                np.sqrt(variance)
            cube = MuseCube(wave, flux * unit,
                            VarianceUncertainty(np.broadcast_to(variance, flux.shape),
                                                unit=unit ** 2),
                            medium="air", spectral_axis_index=1)
            ratios = []
            for correction in (False, True):
                result = Correlator(template, z, weighting=weighting, keep_ccf=True,
                                    sigma_correction=correction).correlate(cube, progress=False)
                scatter = np.std(result.ccf_f[:, k0], ddof=1)
                ratios.append(np.mean(result.ccf_sigma[:, k0]) / scatter)
            print(f"{weighting:17s} {np.mean(result.ccf_f[:, k0]):7.3f} {ratios[0]:15.3f} "
                  f"{ratios[1]:13.3f}")


if __name__ == "__main__":
    main()
