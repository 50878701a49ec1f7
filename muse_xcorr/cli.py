"""The ``muse-xcorr`` command: redshift maps from MUSE cubes in batch jobs."""
import argparse
import os
import sys
import tempfile

import numpy as np

from .grid import DEFAULT_GRID

__all__ = ["main"]


def _parser():
    parser = argparse.ArgumentParser(
        prog="muse-xcorr",
        description="Cross-correlate every spaxel of a MUSE cube (or a 1D spectrum) with a "
                    "template and write redshift maps with their errors to FITS.")
    parser.add_argument("data", nargs="?", help="MUSE FITS cube (DATA/STAT) or 1D spectrum")
    parser.add_argument("--demo", action="store_true",
                        help="simulate a small MUSE cube with known redshifts and run on it")
    parser.add_argument("-t", "--template", action="append",
                        help="template file (FITS table, 1D FITS, ECSV/ASCII); may repeat; "
                             "default: the default template set (the API's one-line default)")
    parser.add_argument("--template-medium", choices=("air", "vacuum"),
                        help="medium of the template wavelengths, if the file does not say")
    parser.add_argument("--zmin", type=float, default=DEFAULT_GRID["zmin"],
                        help=f"default {DEFAULT_GRID['zmin']}")
    parser.add_argument("--zmax", type=float, default=DEFAULT_GRID["zmax"],
                        help=f"default {DEFAULT_GRID['zmax']}")
    parser.add_argument("--dlnz", type=float, default=DEFAULT_GRID["dlnz"],
                        help="grid step in ln(1+z); default 1e-4 (30 km/s)")
    parser.add_argument("--weighting", choices=("uniform", "inverse_variance"),
                        default="inverse_variance")
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--medium", choices=("air", "vacuum"),
                        help="medium of the data wavelengths if CTYPE does not say")
    parser.add_argument("-o", "--output", help="output FITS file of maps")
    parser.add_argument("--table", help="also write an ECSV/FITS table, one row per spaxel")
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def _read_data(path, medium):
    from astropy.io import fits

    from .spectra import MuseCube, MuseSpectrum

    with fits.open(path) as hdul:
        name = "DATA" if "DATA" in hdul else 0
        ndim = hdul[name].header.get("NAXIS", 0)
    reader = MuseCube if ndim == 3 else MuseSpectrum
    return reader.read(path, medium=medium)


def main(argv=None):
    """Run the command line; returns the exit status."""
    from . import datasets
    from .correlate import Correlator
    from .grid import zgrid
    from .templates import Template
    from .flags import Flag

    args = _parser().parse_args(argv)
    if not args.demo and not args.data:
        _parser().error("give a cube or spectrum, or --demo")
    truth = None
    if args.demo:
        cube, truth = datasets.make_cube(shape=(12, 12), z=(0.3, 0.7), snr=25.0, seed=2026,
                                         empty_spaxels=2)
        workdir = tempfile.mkdtemp(prefix="muse-xcorr-demo-")
        path = os.path.join(workdir, "demo_cube.fits")
        from .io import write_muse_fits
        write_muse_fits(cube, path)
        print(f"simulated a 12x12 MUSE cube with z in [0.3, 0.7]: {path}")
        args.data, args.zmin, args.zmax = path, 0.2, 0.8
        args.output = args.output or os.path.join(workdir, "demo_redshift.fits")
    data = _read_data(args.data, args.medium)
    templates = ([Template.read(t, medium=args.template_medium) for t in args.template]
                 if args.template else (datasets.make_template() if args.demo else None))
    grid = zgrid(args.zmin, args.zmax, args.dlnz)
    correlator = Correlator(templates, grid, weighting=args.weighting,
                            batch_size=args.batch_size, dtype=args.dtype)
    print(f"{data}\n{correlator}")
    result = correlator.correlate(data, progress=not args.no_progress)
    good = np.ravel(result.flags == 0)
    z_best = np.ravel(result.z_best)
    print(f"{good.sum()} of {good.size} spectra unflagged; median z_best = "
          f"{np.nanmedian(z_best[good]) if good.any() else float('nan'):.5f}")
    if result.spatial_shape == ():
        print(f"z_best = {float(result.z_best):.6f}, f_best = {float(result.f_best):.4f} "
              f"+- {float(result.sigma_f_best):.4f}, flags = {int(result.flags)}")
    if truth is not None:
        error = np.abs(np.ravel(result.z_best) - np.ravel(truth["z"]))[good]
        print(f"demo: largest |z_best - z_true| over unflagged spaxels = {error.max():.2e}; "
              f"{int(np.sum(np.ravel(result.flags) & Flag.NO_DATA > 0))} empty spaxels flagged "
              "NO_DATA")
    if args.output:
        result.write(args.output, overwrite=args.overwrite or args.demo)
        print(f"wrote {args.output}")
    if args.table:
        result.to_table().write(args.table, overwrite=args.overwrite)
        print(f"wrote {args.table}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
