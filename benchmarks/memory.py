"""Peak memory of correlating a simulated MUSE cube read from disk with memory mapping.

    python benchmarks/memory.py                # 100 x 100 and 50 x 50 spaxels (quick)
    python benchmarks/memory.py --side 300     # full MUSE size: 300 x 300 x 3681 channels

For each cube size (``--side`` and half of it) it writes a simulated cube
(DATA and STAT, float32, wavelength first as MUSE does) to a FITS file
channel slab by channel slab, never holding it in memory, then correlates
it in a fresh process that opens it with ``MuseCube.read`` (memory-mapped)
and reports that process's peak resident memory (``ru_maxrss``). Pages of
the mapped file that were read count in the resident memory, so the peak is
compared with the size of the cube: ``peak - cube size`` is the working
memory, which must not grow with the number of spaxels.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

MIB = 2 ** 20


def cube_headers(side):
    """The DATA and STAT headers of a side x side MUSE cube, from the package's writer."""
    from astropy.io import fits

    from muse_xcorr import datasets
    from muse_xcorr.io.muse import write_muse_fits

    tiny, _ = datasets.make_cube(shape=(2, 2), seed=0)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "tiny.fits")
        write_muse_fits(tiny, path)
        with fits.open(path) as hdul:
            headers = {name: hdul[name].header.copy() for name in ("DATA", "STAT")}
    for header in headers.values():
        header["NAXIS1"] = header["NAXIS2"] = side
        header["CRPIX1"] = header["CRPIX2"] = side / 2 + 0.5
    return headers


def write_cube(path, side, seed=1, slab=64):
    """A side x side x 3681 simulated cube: spectra at 64 redshifts, S/N 10-40, noise."""
    from astropy.io import fits

    from muse_xcorr import datasets

    rng = np.random.default_rng(seed)
    wave = datasets.muse_wavelength()
    variance = datasets.muse_variance(wave)
    template = datasets.make_template()
    redshifts = np.linspace(0.3, 1.2, 64)
    models = template.matrix(wave, redshifts, medium="air")
    models *= 1.0 / np.sqrt(np.sum(models ** 2 / variance[:, None], axis=0))
    which = rng.integers(0, redshifts.size, size=(side, side))
    snr = rng.uniform(10, 40, size=(side, side))
    fits.PrimaryHDU().writeto(path, overwrite=True)
    headers = cube_headers(side)
    for name in ("DATA", "STAT"):
        stream = fits.StreamingHDU(path, headers[name])
        for start in range(0, wave.size, slab):
            stop = min(start + slab, wave.size)
            if name == "DATA":
                noise = rng.standard_normal((stop - start, side, side), dtype=np.float32)
                values = models[start:stop][:, which] * snr + \
                    noise * np.sqrt(variance[start:stop])[:, None, None]
            else:
                values = np.broadcast_to(variance[start:stop, None, None],
                                         (stop - start, side, side))
            stream.write(np.ascontiguousarray(values, dtype=np.float32))
        stream.close()


def child(path, n_z, batch_size):
    """Correlate the cube at ``path``; print peak RSS after set-up and at the end (JSON)."""
    from astropy.nddata import VarianceUncertainty

    from muse_xcorr import Correlator, MuseCube, MuseSpectrum, datasets

    cube = MuseCube.read(path)
    z = np.expm1(np.linspace(np.log1p(0.25), np.log1p(1.3), n_z))
    correlator = Correlator(datasets.make_template(), z, batch_size=batch_size)
    first = cube.spectra(0, 1)
    one = MuseSpectrum(cube.spectral_axis, first.flux[0] * cube.flux.unit,
                       VarianceUncertainty(first.variance[0] * cube.flux.unit ** 2),
                       medium=cube.medium)
    correlator.correlate(one, progress=False)  # TensorFlow and the template matrix
    set_up = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    start = time.perf_counter()
    result = correlator.correlate(cube, progress=False)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"set_up": set_up, "peak": peak, "seconds": seconds,
                      "unflagged": int(np.sum(result.flags == 0))}))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=100,
                        help="spaxels per side of the larger cube (300: a full MUSE cube)")
    parser.add_argument("--n-z", type=int, default=2000, help="redshifts of the grid")
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--dir", default=None, help="where to write the cubes (default: a "
                        "temporary folder, removed afterwards)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.n_z, args.batch_size)
        return
    rows = []
    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        for side in (args.side // 2, args.side):
            path = os.path.join(folder, f"cube_{side}.fits")
            start = time.perf_counter()
            write_cube(path, side)
            written = time.perf_counter() - start
            out = subprocess.run([sys.executable, __file__, "--child", path, "--n-z",
                                  str(args.n_z), "--batch-size", str(args.batch_size)],
                                 check=True, capture_output=True, text=True)
            numbers = json.loads(out.stdout.strip().splitlines()[-1])
            numbers.update(side=side, size=os.path.getsize(path), written=written)
            rows.append(numbers)
            os.remove(path)
    print(f"batch_size {args.batch_size}, {args.n_z} redshifts; sizes in MiB")
    print(f"{'spaxels':>9s} {'cube file':>10s} {'RSS set-up':>11s} {'peak RSS':>9s} "
          f"{'peak - cube':>12s} {'correlate s':>12s}")
    for row in rows:
        print(f"{row['side'] ** 2:9d} {row['size'] / MIB:10.0f} {row['set_up'] / MIB:11.0f} "
              f"{row['peak'] / MIB:9.0f} {(row['peak'] - row['size']) / MIB:12.0f} "
              f"{row['seconds']:12.1f}")
    budgets = [row["peak"] - row["size"] for row in rows]
    growth = (budgets[1] - budgets[0]) / MIB
    print(f"working memory (peak - cube) changes by {growth:+.0f} MiB from "
          f"{rows[0]['side'] ** 2} to {rows[1]['side'] ** 2} spaxels")


if __name__ == "__main__":
    main()
