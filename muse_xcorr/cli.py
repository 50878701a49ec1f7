"""The ``muse-xcorr`` command: redshift maps from MUSE cubes in batch jobs.

``muse-xcorr CUBE [CUBE ...]`` correlates every spaxel of each cube with the
templates (by default the one-line default ``Correlator()``) and writes one
FITS file of maps per cube. Built so that a run never loses work:

* every check that can fail runs before any work (outputs that exist, an
  output that is an input, unwritable directories, a checkpoint of another
  run, options the correlator refuses);
* every output is written atomically (maps and table), with the umask's
  permissions; SIGTERM, SIGINT and SIGHUP are turned into an exception, so
  that no temporary file is left behind;
* long runs are checkpointed per chunk of spectra in ``OUTPUT.parts/``
  (:mod:`muse_xcorr.io.checkpoint`), and ``--resume`` continues a killed run
  with results identical to an uninterrupted one;
* inputs are opened read-only.

Without ``--debug`` an error is one line on stderr and exit status 1;
interrupted runs exit with 128 + the signal number.
"""
import argparse
import contextlib
import hashlib
import json
import logging
import os
import shlex
import shutil
import signal
import sys
import tempfile
import threading
import time
import warnings

import numpy as np

from .grid import DEFAULT_GRID

__all__ = ["main"]

_LOG = logging.getLogger("muse_xcorr.cli")
#: Bare table formats for ``--table``: one table per input, named after its maps file.
TABLE_FORMATS = {"ecsv": ".ecsv", "fits": ".fits", "csv": ".csv", "hdf5": ".hdf5"}
#: Suffix of the maps file made for each input with ``--output-dir``.
OUTPUT_SUFFIX = "_z.fits"


class Interrupted(BaseException):
    """A signal (SIGTERM, SIGINT, SIGHUP) turned into an exception, so that cleanups run."""

    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum

    @property
    def name(self):
        return signal.Signals(self.signum).name


class UsageError(ValueError):
    """Options that do not go together (exit status 2)."""


def _parser():
    from .errors import METHODS
    from .version import __version__

    parser = argparse.ArgumentParser(
        prog="muse-xcorr",
        description="Cross-correlate every spaxel of MUSE cubes (or 1D spectra) with "
                    "templates and write redshift maps with their errors to FITS. Without "
                    "options it runs the one-line default of the API, Correlator().")
    parser.add_argument("data", nargs="*", metavar="CUBE",
                        help="MUSE FITS cube (DATA/STAT[/DQ]) or 1D spectrum; several for a "
                             "survey (with --output-dir)")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--demo", action="store_true",
                        help="simulate a small MUSE cube with known redshifts and run on it "
                             "(nothing is left behind unless -o is given)")
    group = parser.add_argument_group("templates and redshift grid")
    group.add_argument("-t", "--template", action="append", metavar="FILE",
                       help="template file (FITS table, 1D FITS, ECSV/ASCII); may repeat; "
                            "default: the default template set, as Correlator()")
    group.add_argument("--template-medium", choices=("air", "vacuum"),
                       help="medium of the template wavelengths, if the file does not say")
    group.add_argument("--zmin", type=float,
                       help=f"first redshift (default {DEFAULT_GRID['zmin']})")
    group.add_argument("--zmax", type=float,
                       help=f"last redshift (default {DEFAULT_GRID['zmax']})")
    group.add_argument("--dlnz", type=float,
                       help=f"grid step in ln(1+z) (default {DEFAULT_GRID['dlnz']:g}, 30 km/s)")
    group = parser.add_argument_group("correlation (defaults: those of Correlator())")
    group.add_argument("--weighting", choices=("uniform", "inverse_variance"),
                       help="default inverse_variance")
    group.add_argument("--continuum", choices=("median", "none"),
                       help="continuum subtraction (default median)")
    group.add_argument("--exclusion", type=float, metavar="KMS",
                       help="minimum velocity between two candidates, km/s (default 1000)")
    group.add_argument("--batch-size", type=int, help="spectra per matrix product (1024)")
    group.add_argument("--dtype", choices=("float32", "float64"),
                       help="precision of the search (float32)")
    group.add_argument("--medium", choices=("air", "vacuum"),
                       help="medium of the data wavelengths if CTYPE does not say")
    group.add_argument("--region", metavar="Y0:Y1,X0:X1",
                       help="only this pixel box of each cube (0-based, stop exclusive, "
                            "numpy order: rows then columns)")
    group = parser.add_argument_group("errors on z")
    group.add_argument("--error-method", action="append", choices=METHODS, metavar="METHOD",
                       help=f"compute sigma_z by METHOD ({', '.join(METHODS)}); may repeat; a "
                            "ZERR_<METHOD> map each")
    group.add_argument("--n-samples", type=int, help="copies for montecarlo/bootstrap (200)")
    group.add_argument("--seed", type=int, default=0,
                       help="random seed of montecarlo/bootstrap (default 0)")
    group = parser.add_argument_group("outputs")
    group.add_argument("-o", "--output", metavar="FILE", help="FITS file of maps (one input)")
    group.add_argument("--output-dir", metavar="DIR",
                       help=f"one maps file per input, DIR/<name>{OUTPUT_SUFFIX}")
    group.add_argument("--table", metavar="FILE|FORMAT",
                       help="also a table, one row per spaxel: a file (one input), or a "
                            f"format ({', '.join(TABLE_FORMATS)}) for one table beside each "
                            "maps file")
    group.add_argument("--overwrite", action="store_true",
                       help="replace existing outputs (and a checkpoint: start again)")
    group = parser.add_argument_group("long runs")
    group.add_argument("--resume", action="store_true",
                       help="continue an interrupted run from its checkpoint (OUTPUT.parts/); "
                            "inputs already done are skipped")
    group.add_argument("--chunk-spectra", type=int, metavar="N",
                       help="spectra per checkpointed part and per Dask task "
                            "(default: up to 4 batches)")
    group.add_argument("--scheduler", metavar="ADDRESS",
                       help="run the chunks on this Dask scheduler (tcp://host:8786)")
    group = parser.add_argument_group("messages")
    group.add_argument("-q", "--quiet", action="store_true",
                       help="only warnings and errors (no summary, no progress)")
    group.add_argument("-v", "--verbose", action="count", default=0,
                       help="more log messages (-v: every part)")
    group.add_argument("--no-progress", action="store_true",
                       help="no progress bar (there is none unless stderr is a terminal)")
    group.add_argument("--debug", action="store_true",
                       help="show tracebacks and TensorFlow's messages")
    return parser


# ------------------------------------------------------------------------- messages
class _Handler(logging.StreamHandler):
    """To the current ``sys.stderr`` (pytest's capture too), ``muse-xcorr: ...``."""

    def __init__(self):
        super().__init__()
        self.setFormatter(logging.Formatter("muse-xcorr: %(message)s"))

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


def _one_line(err):
    text = str(err) if str(err) else type(err).__name__
    if isinstance(err, (KeyError,)) and text.startswith("'"):
        text = text.strip("'\"")
    return " ".join(text.split())


@contextlib.contextmanager
def _messages(args):
    """Logging to stderr at the chosen verbosity, warnings as one log line each."""
    logger = logging.getLogger("muse_xcorr")
    handler = _Handler()
    old_level, old_propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING if args.quiet else
                    logging.DEBUG if args.verbose else logging.INFO)
    logger.propagate = False
    old_show = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        _LOG.warning("warning: %s: %s", category.__name__, _one_line(message))

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = old_show
        logger.removeHandler(handler)
        logger.setLevel(old_level)
        logger.propagate = old_propagate


@contextlib.contextmanager
def _step(what, after=1.0):
    """Say what is being done, and how long it took if that was more than ``after`` seconds.

    (Said before, not after a delay: TensorFlow's start-up holds the GIL, so a
    timer thread could not speak in time.)
    """
    started = time.monotonic()
    _LOG.info("%s ...", what)
    yield
    took = time.monotonic() - started
    if took > after:
        _LOG.info("%s: done in %.1f s", what, took)


@contextlib.contextmanager
def _signals_raise():
    """SIGTERM, SIGINT and SIGHUP raise `Interrupted` in the main thread (then restored)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    names = ("SIGTERM", "SIGINT", "SIGHUP")
    numbers = [getattr(signal, n) for n in names if hasattr(signal, n)]
    previous = {}

    def handler(signum, frame):
        for number in numbers:  # a second signal during the cleanup does not interrupt it
            signal.signal(number, signal.SIG_IGN)
        raise Interrupted(signum)

    for number in numbers:
        try:
            previous[number] = signal.signal(number, handler)
        except (OSError, ValueError):  # pragma: no cover
            pass
    try:
        yield
    finally:
        for number, old in previous.items():
            signal.signal(number, old)


class _Progress:
    """A tqdm bar on a terminal; otherwise a log line at every tenth (every part with -v)."""

    def __init__(self, total, label, *, bar):
        from tqdm.auto import tqdm

        self.total, self.label, self.done = max(int(total), 1), label, 0
        self.bar = tqdm(total=total, unit="spec", desc=label, leave=False, dynamic_ncols=True,
                        file=sys.stderr) if bar else None
        self.next_tenth = 1
        self.started = time.monotonic()

    def update(self, n):
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
            return
        tenth = int(10 * self.done / self.total)
        if _LOG.isEnabledFor(logging.DEBUG) or tenth >= self.next_tenth:
            self.next_tenth = tenth + 1
            _LOG.info("%s: %d of %d spectra (%d%%, %.0f s)", self.label, self.done, self.total,
                      100 * self.done // self.total, time.monotonic() - self.started)

    def close(self):
        if self.bar is not None:
            self.bar.close()


# ------------------------------------------------------------------------- set-up
def _read_data(path, medium):
    from .io.fitsfile import open_fits
    from .spectra import MuseCube, MuseSpectrum

    with open_fits(path) as hdul:
        name = "DATA" if "DATA" in hdul else 0
        ndim = hdul[name].header.get("NAXIS", 0)
    reader = MuseCube if ndim == 3 else MuseSpectrum
    return reader.read(path, medium=medium)


def _zgrid(args):
    """The grid the options give, or None (the Correlator's default) if none is given."""
    from .grid import zgrid

    if args.zmin is None and args.zmax is None and args.dlnz is None:
        return None
    value = {key: getattr(args, key) if getattr(args, key) is not None else DEFAULT_GRID[key]
             for key in ("zmin", "zmax", "dlnz")}
    return zgrid(value["zmin"], value["zmax"], value["dlnz"])


def build_correlator(args, templates=None):
    """The `~muse_xcorr.Correlator` the options describe: only what they set is passed.

    With no option this is exactly ``Correlator()``, the API's one-line default.
    """
    import astropy.units as u

    from .correlate import Correlator

    options = {}
    for name in ("weighting", "batch_size", "dtype"):
        if getattr(args, name, None) is not None:
            options[name] = getattr(args, name)
    if getattr(args, "continuum", None) is not None:
        options["continuum"] = None if args.continuum == "none" else args.continuum
    if getattr(args, "exclusion", None) is not None:
        options["exclusion"] = args.exclusion * u.km / u.s
    return Correlator(templates, _zgrid(args), **options)


def _default_name(path):
    base = os.path.basename(os.fspath(path))
    for ext in (".fits.gz", ".fits.bz2", ".fits.fz", ".fits", ".fit", ".fts"):
        if base.lower().endswith(ext):
            return base[:-len(ext)]
    return os.path.splitext(base)[0]


class _Job:
    """One input, its outputs, and its checkpoint."""

    def __init__(self, source, output, table):
        self.source, self.output, self.table = source, output, table
        self.data = None
        self.checkpoint = None
        self.fingerprint = None
        self.done = False

    @property
    def label(self):
        return os.path.basename(self.source)


def _jobs(args, parser):
    """The inputs with their output and table names (usage errors exit with status 2)."""
    inputs = list(args.data)
    if args.output and len(inputs) > 1:
        parser.error(f"--output names one file, for one input; use --output-dir DIR for "
                     f"{len(inputs)} inputs")
    if args.output and args.output_dir:
        parser.error("give --output or --output-dir, not both")
    if args.resume and not (args.output or args.output_dir):
        parser.error("--resume needs --output or --output-dir (the checkpoint is beside the "
                     "maps file)")
    if args.resume and args.overwrite:
        parser.error("--resume continues a run and --overwrite starts it again: give one")
    bare = args.table is not None and args.table.lower() in TABLE_FORMATS
    if args.table and not bare and len(inputs) > 1:
        parser.error(f"--table FILE is for one input; give a format ({', '.join(TABLE_FORMATS)}"
                     ") for one table beside each maps file")
    if bare and not (args.output or args.output_dir):
        parser.error(f"--table {args.table} names the table after the maps file: give "
                     "--output or --output-dir")
    if args.chunk_spectra is not None and args.chunk_spectra < 1:
        parser.error(f"--chunk-spectra must be a positive integer, got {args.chunk_spectra}")
    jobs = []
    for source in inputs:
        output = args.output
        if args.output_dir:
            output = os.path.join(args.output_dir, _default_name(source) + OUTPUT_SUFFIX)
        table = args.table
        if bare:
            stem = output[:-5] if output.lower().endswith(".fits") else output
            table = stem + TABLE_FORMATS[args.table.lower()]
        jobs.append(_Job(source, output, table))
    return jobs


def _check_jobs(jobs, args, template_files, correlator):
    """Every check that can fail, before any work (see the module docstring)."""
    from .correlate.correlator import Part
    from .io.checkpoint import Checkpoint
    from .io.files import check_output, probe_directory, same_file, table_format

    inputs = [job.source for job in jobs] + list(template_files)
    make = bool(args.output_dir)  # --output-dir is created if missing
    if args.output_dir:
        if os.path.exists(args.output_dir) and not os.path.isdir(args.output_dir):
            raise NotADirectoryError(f"--output-dir {args.output_dir} is not a directory")
        parent = args.output_dir if os.path.isdir(args.output_dir) else \
            os.path.dirname(os.path.abspath(args.output_dir))
        probe_directory(parent)
    resampling = {"montecarlo", "bootstrap"} & set(args.error_method or [])
    if args.n_samples is not None and resampling:
        from .errors import MIN_SAMPLES  # the estimators' own minimum

        if args.n_samples < MIN_SAMPLES:
            raise ValueError(f"--n-samples must be at least {MIN_SAMPLES} for "
                             f"{', '.join(sorted(resampling))}, got {args.n_samples}")
    if "chi2" in (args.error_method or []) and correlator.weighting != "inverse_variance":
        raise ValueError("--error-method chi2 needs --weighting inverse_variance (a uniformly "
                         "weighted fit has no likelihood)")
    seen = {}
    for job in jobs:
        for path in (job.output, job.table):
            if path is None:
                continue
            for other, owner in seen.items():
                if same_file(path, other) or os.path.abspath(path) == os.path.abspath(other):
                    raise ValueError(f"{path} would be written twice (for {owner} and "
                                     f"{job.label}); give the inputs different names")
            seen[path] = job.label
    for job in jobs:
        with _step(f"reading {job.source}"):
            job.data = _read_data(job.source, args.medium)
        if args.region:
            from .distributed import parse_region

            if len(job.data.spatial_shape) != 2:
                raise ValueError(f"--region needs a cube; {job.source} is a spectrum")
            job.data = job.data.cutout(*parse_region(args.region))
        if job.table is not None:
            table_format(job.table)
        if job.output is None:
            if job.table is not None:
                check_output(job.table, inputs=inputs, overwrite=args.overwrite, what="table",
                             make_directory=make)
            continue
        job.checkpoint = Checkpoint.for_output(job.output, part_type=Part)
        if args.resume and job.checkpoint.exists():
            stored = job.checkpoint.stored_manifest()
            ours = [os.path.realpath(p) for p in stored.get("outputs", {}).values() if p]
            _LOG.info("%s: checking the checkpoint %s", job.label, job.checkpoint.directory)
            job.checkpoint.manifest = _manifest(job, args, correlator, template_files)
            job.checkpoint.check(resume=True, overwrite=False)
            for path, what in ((job.output, "output"), (job.table, "table")):
                if path is not None:
                    mine = os.path.realpath(path) in ours
                    check_output(path, inputs=inputs, overwrite=args.overwrite or mine,
                                 what=what, make_directory=make)
            continue
        if args.resume and os.path.exists(job.output):
            job.checkpoint.manifest = _manifest(job, args, correlator, template_files)
            if _run_id_of(job.output) == _run_id(job.checkpoint.manifest):
                job.done = True
                if job.table is not None and not os.path.exists(job.table):
                    check_output(job.table, inputs=inputs, what="table",
                                 make_directory=make)
                continue
            raise FileExistsError(f"{job.output} exists from a run with another input or "
                                  "other options; pass --overwrite to replace it")
        job.checkpoint.check(resume=args.resume, overwrite=args.overwrite)
        check_output(job.output, inputs=inputs, overwrite=args.overwrite, make_directory=make)
        if job.table is not None:
            check_output(job.table, inputs=inputs, overwrite=args.overwrite, what="table",
                         make_directory=make)


def _manifest(job, args, correlator, template_files):
    """What the parts of ``job`` depend on (see :mod:`muse_xcorr.io.checkpoint`)."""
    from .io.files import fingerprint, file_checksum
    from .io.provenance import correlator_options
    from .version import __version__

    if job.fingerprint is None:
        size = os.path.getsize(job.source)
        with _step(f"checksumming {job.source} ({size / 2 ** 20:.0f} MiB)"):
            job.fingerprint = fingerprint(job.source)
    options = correlator_options(correlator)
    options.pop("batch_size")  # the parts do not depend on it
    z = np.ascontiguousarray(correlator.z, dtype="<f8")
    return {
        "version": __version__,
        "input": job.fingerprint,
        "n_spectra": int(job.data.n_spectra),
        "spatial_shape": list(job.data.spatial_shape),
        "region": args.region,
        "medium": job.data.medium,
        "options": options,
        "zgrid": {"nz": int(z.size), "zmin": float(z[0]), "zmax": float(z[-1]),
                  "sha256": hashlib.sha256(z.tobytes()).hexdigest()},
        "template_sha256": [file_checksum(p) for p in template_files],
        "template_medium": args.template_medium,
        "outputs": {"maps": os.path.abspath(job.output) if job.output else None,
                    "table": os.path.abspath(job.table) if job.table else None},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def _run_id(manifest):
    """A digest of what a result depends on (``MX RUN`` in the maps header)."""
    from .io.checkpoint import comparable

    keep = comparable(manifest)
    return hashlib.sha256(json.dumps(keep, sort_keys=True).encode()).hexdigest()[:32]


def _run_id_of(path):
    from astropy.io import fits

    try:
        return fits.getheader(path).get("HIERARCH MX RUN")
    except (OSError, ValueError):
        return None


# ------------------------------------------------------------------------- the work
def _run_job(job, args, correlator, client, template_files, command, show_bar):
    """Correlate one input (from its checkpoint), then write its outputs."""
    from .distributed import CubeSource, correlate_distributed, default_chunk
    from .io.checkpoint import missing_ranges
    from .io.files import remove_stale_temporaries

    data = job.data
    chunk = args.chunk_spectra  # None on a cluster: correlate_distributed picks it
    if chunk is None and client is None:
        chunk = default_chunk(correlator.batch_size, data.n_spectra)
    parts = []
    if job.checkpoint is not None:
        if not job.checkpoint.manifest:
            job.checkpoint.manifest = _manifest(job, args, correlator, template_files)
        job.checkpoint.manifest["command"] = command
        if args.resume:
            for path in (job.output, job.table):
                if path is not None:
                    for removed in remove_stale_temporaries(path):
                        _LOG.info("removed %s, left by a killed run", removed)
        parts = job.checkpoint.open(resume=args.resume, overwrite=args.overwrite)
        if parts:
            _LOG.info("%s: resuming, %d of %d spectra done in %d parts", job.label,
                      sum(p.stop - p.start for p in parts), data.n_spectra, len(parts))
    save = job.checkpoint.save if job.checkpoint is not None else (lambda part: None)
    args.current_checkpoint = None if job.checkpoint is None else job.checkpoint.directory
    try:
        if client is not None:
            source = CubeSource.of(data)
            _LOG.info("%s: %d spectra on the Dask cluster (each worker prepares the "
                      "templates once)", job.label, data.n_spectra)
            result = correlate_distributed(correlator, source if source else data, client,
                                           chunk_spectra=chunk, progress=show_bar, parts=parts,
                                           on_part=lambda i, part: save(part))
        else:
            with _step(f"preparing {len(correlator.templates)} template(s) on the data grid "
                       f"({correlator.z.size} redshifts)"):
                correlator.prepare(data)
            with _step("measuring the noise correlation"):
                noise = correlator.noise_for(data)
            progress = _Progress(data.n_spectra, job.label, bar=show_bar)
            progress.done = sum(p.stop - p.start for p in parts)
            try:
                for start, stop in missing_ranges(data.n_spectra, chunk, parts):
                    part = correlator.correlate_rows(data, start, stop,
                                                     rho=() if noise is None else noise)
                    save(part)
                    parts.append(part)
                    _LOG.debug("%s: spectra %d:%d done", job.label, start, stop)
                    progress.update(stop - start)
            finally:
                progress.close()
            result = correlator.assemble(data, correlator.complete(data, parts, noise))
        for method in args.error_method or []:
            options = {}
            if method in ("montecarlo", "bootstrap"):
                options["seed"] = args.seed
                if args.n_samples is not None:
                    options["n_samples"] = args.n_samples
            with _step(f"{job.label}: sigma_z by {method}"):
                result.z_error(method, **options)
        _summary(job, result, args)
        provenance = _provenance(job, args, template_files, command)
        if job.output is not None:
            mine = job.checkpoint is not None and args.resume
            result.write(job.output, overwrite=args.overwrite or (mine and os.path.exists(
                job.output)), provenance=provenance)
            _LOG.info("wrote %s", job.output)
            _say(args, f"wrote {job.output}")
        if job.table is not None:
            result.write_table(job.table, overwrite=args.overwrite or (
                job.checkpoint is not None and args.resume and os.path.exists(job.table)))
            _LOG.info("wrote %s", job.table)
            _say(args, f"wrote {job.table}")
    except BaseException:
        if job.checkpoint is not None:
            job.checkpoint.release()
        raise
    if job.checkpoint is not None:
        job.checkpoint.remove()
    return result


def _provenance(job, args, template_files, command):
    manifest = job.checkpoint.manifest if job.checkpoint is not None else {}
    fp = job.fingerprint or {}
    options = {"error_methods": ",".join(args.error_method or []) or None,
               "error_seed": args.seed if args.error_method else None,
               "error_n_samples": args.n_samples, "template_medium": args.template_medium,
               "run": _run_id(manifest) if manifest else None}
    return {"command": command, "input": job.source, "input_size": fp.get("size"),
            "input_sha256": fp.get("sha256"),
            "template_files": list(template_files) or None,
            "template_sha256": manifest.get("template_sha256"), "region": args.region,
            "options": options}


def _say(args, text):
    if not args.quiet:
        print(text)


def _summary(job, result, args, truth=None):
    flags = np.ravel(result.flags)
    good = flags == 0
    z_best = np.ravel(result.z_best)
    prefix = f"{job.label}: " if len(args.data) > 1 else ""
    median = np.nanmedian(z_best[good]) if good.any() else float("nan")
    _say(args, f"{prefix}{good.sum()} of {good.size} spectra unflagged; median z_best = "
               f"{median:.5f}")
    if result.spatial_shape == ():
        _say(args, f"z_best = {float(result.z_best):.6f}, f_best = {float(result.f_best):.4f} "
                   f"+- {float(result.sigma_f_best):.4f}, flags = {int(result.flags)}")


# ------------------------------------------------------------------------- entry point
def main(argv=None):
    """Run the command line; returns the exit status.

    Parameters
    ----------
    argv : list of str, optional
        The arguments (default ``sys.argv[1:]``).

    Returns
    -------
    status : int
        0: every input done; 1: an error (one line on stderr, or a traceback
        with ``--debug``); 2: wrong usage; 128 + N: interrupted by signal N
        (130 for SIGINT, 143 for SIGTERM), the checkpoint kept for ``--resume``.
    """
    parser = _parser()
    args = parser.parse_args(argv)
    if not args.debug:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if not args.demo and not args.data:
        parser.error("give a cube or spectrum, or --demo")
    if args.demo and args.data:
        parser.error("--demo simulates its own cube: give no input")
    command = shlex.join(["muse-xcorr"] + (list(sys.argv[1:]) if argv is None else list(argv)))
    with _messages(args), _signals_raise():
        try:
            return _main(args, parser, command)
        except (Interrupted, KeyboardInterrupt) as stop:
            signum = getattr(stop, "signum", signal.SIGINT)
            kept = getattr(args, "current_checkpoint", None)
            _LOG.error("interrupted by %s; %s", signal.Signals(signum).name,
                       f"what was computed is kept in {kept}: run again with --resume to "
                       "continue" if kept else "nothing was checkpointed")
            return 128 + signum
        except Exception as err:
            if args.debug:
                raise
            _LOG.error("error: %s", _one_line(err))
            return 1


def _main(args, parser, command):
    from . import datasets
    from .templates import Template

    workdir = truth = None
    try:
        if args.demo:
            from .io import write_muse_fits

            cube, truth = datasets.make_cube(shape=(12, 12), z=(0.3, 0.7), snr=25.0, seed=2026,
                                             empty_spaxels=2)
            workdir = tempfile.mkdtemp(prefix="muse-xcorr-demo-")
            path = os.path.join(workdir, "demo_cube.fits")
            write_muse_fits(cube, path)
            _say(args, "simulated a 12x12 MUSE cube with z in [0.3, 0.7]")
            args.data = [path]
            if args.zmin is None and args.zmax is None:
                args.zmin, args.zmax = 0.2, 0.8
        jobs = _jobs(args, parser)
        template_files = list(args.template or [])
        with _step(f"reading {len(template_files)} template file(s)" if template_files else
                   "building the default template set"):
            templates = [Template.read(t, medium=args.template_medium) for t in template_files] \
                if template_files else (datasets.make_template() if args.demo else None)
        correlator = build_correlator(args, templates)
        _LOG.info("%s", correlator)
        _check_jobs(jobs, args, template_files, correlator)
        todo = [job for job in jobs if not job.done]
        for job in jobs:
            if job.done:
                _LOG.info("%s: done already (%s)", job.label, job.output)
                if job.table is not None and not os.path.exists(job.table):
                    from .result import Redshift

                    Redshift.read(job.output).write_table(job.table)
                    _say(args, f"wrote {job.table}")
        if args.output_dir and todo:
            os.makedirs(args.output_dir, exist_ok=True)
        show_bar = not (args.quiet or args.no_progress) and sys.stderr.isatty()
        failed = 0
        with _client(args.scheduler) as client:
            for job in todo:
                _LOG.info("%s: %s", job.label, job.data)
                try:
                    result = _run_job(job, args, correlator, client, template_files, command,
                                      show_bar)
                except Exception as err:
                    if args.debug or len(todo) == 1:
                        raise
                    failed += 1
                    _LOG.error("error: %s: %s", job.label, _one_line(err))
                    continue
                if truth is not None:
                    _demo_report(result, truth, args)
        if failed:
            _LOG.error("error: %d of %d inputs failed", failed, len(todo))
            return 1
        return 0
    finally:
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)


@contextlib.contextmanager
def _client(address):
    if not address:
        yield None
        return
    from distributed import Client

    with _step(f"connecting to the Dask scheduler {address}"):
        try:
            client = Client(address, timeout="20s")
        except (OSError, TimeoutError) as err:
            raise OSError(f"cannot connect to the Dask scheduler {address} ({err})") from None
    try:
        yield client
    finally:
        client.close()


def _demo_report(result, truth, args):
    from .flags import Flag

    good = np.ravel(result.flags == 0)
    error = np.abs(np.ravel(result.z_best) - np.ravel(truth["z"]))[good]
    _say(args, f"demo: largest |z_best - z_true| over unflagged spaxels = {error.max():.2e}; "
               f"{int(np.sum(np.ravel(result.flags) & Flag.NO_DATA > 0))} empty spaxels "
               "flagged NO_DATA")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
