"""The ``muse-xcorr`` command: options, provenance, checks before work, and never losing work.

Runs in-process through :func:`muse_xcorr.cli.main` where it can, and in a
child process where a signal must kill it (SIGKILL, SIGTERM). The cube is
small (3 x 4 spaxels, 600 pixels) and the grid short, so that each run takes
a fraction of a second once TensorFlow is warm.
"""
import errno
import hashlib
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from muse_xcorr import Correlator, Redshift, datasets
from muse_xcorr.cli import build_correlator, _parser, main
from muse_xcorr.correlate.correlator import Correlator as CoreCorrelator
from muse_xcorr.io import write_muse_fits
from muse_xcorr.io.provenance import correlator_options

WAVE = datasets.muse_wavelength(600, 6000.0)
GRID = ["--zmin", "0.3", "--zmax", "0.4", "--dlnz", "5e-4"]
#: A checkpointed run in parts of 2 spectra (6 parts for the 12 spaxels).
CHUNKED = GRID + ["--chunk-spectra", "2", "--batch-size", "2"]


def sha256(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A cube (with OBJECT and EXPTIME), a template file, and the reference run's maps."""
    root = tmp_path_factory.mktemp("cli")
    cube, _ = datasets.make_cube((3, 4), z=(0.33, 0.37), snr=30, seed=7, wavelength=WAVE,
                                 empty_spaxels=1)
    write_muse_fits(cube, root / "cube.fits")
    with fits.open(root / "cube.fits", mode="update") as hdul:
        hdul[0].header["OBJECT"] = "UDF-mock"
        hdul[0].header["EXPTIME"] = (3600.0, "[s] total integration time")
    template = datasets.make_template(wave_range=(4000, 5500))
    Table({"wavelength": template.wavelength, "flux": template.flux},
          meta={"MEDIUM": "vacuum"}).write(root / "template.fits")
    reference = root / "reference.fits"
    assert main([str(root / "cube.fits"), "-t", str(root / "template.fits"), *CHUNKED,
                 "-o", str(reference), "--table", str(root / "reference.ecsv"), "-q"]) == 0
    return {"cube": root / "cube.fits", "template": root / "template.fits",
            "reference": reference, "reference_table": root / "reference.ecsv"}


def run(files, *options):
    return main([str(files["cube"]), "-t", str(files["template"]), *options])


def assert_same_maps(a, b):
    """Every extension of two maps files equal (the primary headers differ: date, command)."""
    with fits.open(a) as ha, fits.open(b) as hb:
        assert [h.name for h in ha] == [h.name for h in hb]
        for x, y in zip(ha[1:], hb[1:]):
            if isinstance(x, fits.BinTableHDU):
                for name in x.columns.names:
                    np.testing.assert_array_equal(x.data[name], y.data[name], err_msg=name)
            else:
                np.testing.assert_array_equal(x.data, y.data, err_msg=x.name)


def leftovers(directory):
    return sorted(p.name for p in directory.iterdir() if ".tmp" in p.name)


# -- the options ----------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore:continuum=None with")  # asked for, warned
def test_no_template_is_the_one_line_default():
    args = _parser().parse_args(["cube.fits"])
    cli, api = build_correlator(args), Correlator()
    assert cli.names == api.names
    np.testing.assert_array_equal(cli.z, api.z)
    assert correlator_options(cli) == correlator_options(api)
    partial = build_correlator(_parser().parse_args(["c.fits", "--zmax", "1.5"]))
    assert partial.z[0] == api.z[0] and partial.z[-1] <= 1.5 < partial.z[-1] * 1.001 + 1e-3
    other = build_correlator(_parser().parse_args(["c.fits", "--continuum", "none",
                                                   "--exclusion", "300"]))
    assert other.continuum is None and other.exclusion.value == 300


def test_version_and_usage_errors(capsys):
    from muse_xcorr import __version__

    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0 and __version__ in capsys.readouterr().out
    for argv in (["a.fits", "b.fits", "-o", "x.fits"], ["a.fits", "--resume"],
                 ["a.fits", "b.fits", "--table", "t.ecsv", "--output-dir", "d"],
                 ["a.fits", "-o", "x.fits", "--resume", "--overwrite"], []):
        with pytest.raises(SystemExit) as stop:
            main(argv)
        assert stop.value.code == 2, argv


@pytest.mark.filterwarnings("ignore:continuum=None with")  # asked for, warned
def test_full_run_records_provenance_and_leaves_the_input_alone(files, tmp_path, capsys):
    os.chmod(files["cube"], 0o444)          # read-only input: reading must not need more
    before = (sha256(files["cube"]), os.stat(files["cube"]).st_mtime_ns)
    old = os.umask(0o027)
    try:
        status = run(files, *GRID, "--continuum", "none", "--exclusion", "500",
                     "--error-method", "analytic", "--error-method", "parabolic",
                     "-o", str(tmp_path / "maps.fits"), "--table", str(tmp_path / "maps.ecsv"))
    finally:
        os.umask(old)
        os.chmod(files["cube"], 0o644)
    assert status == 0
    assert (sha256(files["cube"]), os.stat(files["cube"]).st_mtime_ns) == before
    captured = capsys.readouterr()
    assert "11 of 12 spectra unflagged" in captured.out
    assert "12 of 12 spectra (100%" in captured.err      # no terminal: log lines, no bar
    for name in ("maps.fits", "maps.ecsv"):
        assert os.stat(tmp_path / name).st_mode & 0o777 == 0o640
    assert not (tmp_path / "maps.fits.parts").exists() and leftovers(tmp_path) == []
    with fits.open(tmp_path / "maps.fits") as hdul:
        h = hdul[0].header
        assert h["MXVER"] and h["DATE"] and "muse-xcorr" in h["MXCMD"]
        assert h["MXINPUT"] == str(files["cube"]) and h["MXINSHA"] == before[0]
        assert h["OBJECT"] == "UDF-mock" and h["EXPTIME"] == 3600.0
        assert h["NTEMPL"] == 1 and h["TEMPL1"] == "template"
        assert h["TFILE1"] == str(files["template"]) and h["TSHA1"] == sha256(files["template"])
        assert (h["ZMIN"], h["NZ"]) == (0.3, hdul["ZGRID"].data.size)
        assert h["DLNZ"] == pytest.approx(5e-4) and h["ZMAX"] <= 0.4
        assert h["HIERARCH MX EXCLUSION_KMS"] == 500 and h["HIERARCH MX CONTINUUM"] == "none"
        assert h["HIERARCH MX ERROR_METHODS"] == "analytic,parabolic"
        for hdu in hdul[1:]:
            if isinstance(hdu, fits.ImageHDU):
                assert "BUNIT" in hdu.header, hdu.name
        assert hdul["N_VALID"].header["BUNIT"] == "pixel"
        assert hdul["FLAGS"].header["FLAG1"] == "NO_DATA"
        assert hdul["FLAGS"].header["FLAG128"] == "FEW_PIXELS"
        assert "ZERR_ANALYTIC" in hdul and "ZERR_PARABOLIC" in hdul
    back = Redshift.read(tmp_path / "maps.fits")
    assert np.isfinite(back.map("zerr_analytic")[back.flags == 0]).all()
    assert len(Table.read(tmp_path / "maps.ecsv")) == 12


def test_several_cubes_region_and_tables_beside_each(files, tmp_path, capsys):
    os.symlink(files["cube"], tmp_path / "second.fits")
    status = main([str(files["cube"]), str(tmp_path / "second.fits"), "-t",
                   str(files["template"]), *GRID, "--region", "1:3,0:2",
                   "--output-dir", str(tmp_path / "maps"), "--table", "ecsv", "-q"])
    assert status == 0 and capsys.readouterr().out == ""
    assert sorted(os.listdir(tmp_path / "maps")) == ["cube_z.ecsv", "cube_z.fits",
                                                     "second_z.ecsv", "second_z.fits"]
    whole = Redshift.read(files["reference"])
    for name in ("cube_z.fits", "second_z.fits"):
        part = Redshift.read(tmp_path / "maps" / name)
        assert part.z_best.shape == (2, 2)
        np.testing.assert_array_equal(part.z_best, whole.z_best[1:3, 0:2])
        np.testing.assert_array_equal(part.flags, whole.flags[1:3, 0:2])
        assert fits.getheader(tmp_path / "maps" / name)["MXREGION"] == "1:3,0:2"


def test_table_formats_also_with_third_party_identifiers():
    """spectral-cube registers CASA identifiers that index the arguments Table.write gives."""
    from muse_xcorr.io.files import table_format

    pytest.importorskip("spectral_cube")
    import spectral_cube  # noqa: F401
    for name, expected in (("t.ecsv", "ascii.ecsv"), ("t.fits", "fits"), ("t.csv", "ascii.csv"),
                           ("t.fits.gz", "fits")):
        assert table_format(name) == expected
    with pytest.raises(ValueError, match="cannot tell the table format"):
        table_format("t.txt")


# -- checks before any work -----------------------------------------------------------------
@pytest.fixture
def no_work(monkeypatch):
    """Fail loudly if the correlation starts (the checks must come first)."""
    def refuse(self, *args, **kwargs):
        raise AssertionError("the work started before the checks")

    monkeypatch.setattr(CoreCorrelator, "prepare", refuse)
    monkeypatch.setattr(CoreCorrelator, "correlate_rows", refuse)


def one_error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if "error:" in line]
    assert len(errors) == 1, err
    return errors[0]


def test_an_output_that_is_an_input_is_refused(files, tmp_path, capsys, no_work, monkeypatch):
    before = sha256(files["cube"])
    os.symlink(files["cube"], tmp_path / "link.fits")
    os.link(files["cube"], tmp_path / "hard.fits")
    monkeypatch.chdir(files["cube"].parent)
    relative = os.path.join("..", files["cube"].parent.name, "cube.fits")
    for output in (str(files["cube"]), relative, str(tmp_path / "link.fits"),
                   str(tmp_path / "hard.fits"), str(files["template"])):
        assert run(files, *GRID, "-o", output, "--overwrite") == 1
        assert "is the input" in one_error_line(capsys)
    assert run(files, *GRID, "-o", str(tmp_path / "m.fits"), "--table", str(files["cube"]),
               "--overwrite") == 1
    assert "the table" in one_error_line(capsys)
    assert sha256(files["cube"]) == before


def test_existing_outputs_missing_or_unwritable_directories(files, tmp_path, capsys, no_work,
                                                            monkeypatch):
    (tmp_path / "m.fits").write_bytes(b"keep")
    (tmp_path / "t.ecsv").write_text("keep")
    assert run(files, *GRID, "-o", str(tmp_path / "m.fits")) == 1
    assert "exists; pass --overwrite" in one_error_line(capsys)
    assert run(files, *GRID, "-o", str(tmp_path / "new.fits"), "--table",
               str(tmp_path / "t.ecsv")) == 1
    assert "the table" in one_error_line(capsys) and (tmp_path / "t.ecsv").read_text() == "keep"
    assert run(files, *GRID, "-o", str(tmp_path / "m.fits"), "--table",
               str(tmp_path / "m.fits"), "--overwrite") == 1
    assert "written twice" in one_error_line(capsys)
    assert run(files, *GRID, "-o", str(tmp_path / "nowhere" / "m.fits")) == 1
    assert "does not exist" in one_error_line(capsys)
    assert run(files, *GRID, "-o", str(tmp_path / "m.fits"), "--table", "t.txt",
               "--overwrite") == 1
    assert "table format" in one_error_line(capsys)
    real_open = os.open

    def read_only_fs(path, flags, *args):
        if ".muse-xcorr-probe" in os.fspath(path):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), path)
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", read_only_fs)
    assert run(files, *GRID, "-o", str(tmp_path / "new.fits")) == 1
    assert "cannot write in" in one_error_line(capsys)
    assert sorted(os.listdir(tmp_path)) == ["m.fits", "t.ecsv"]


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root writes anywhere: a read-only directory cannot be tested")
def test_unwritable_directory(files, tmp_path, capsys, no_work):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    assert run(files, *GRID, "-o", str(locked / "m.fits")) == 1
    assert "cannot write in" in one_error_line(capsys)


def test_errors_are_one_line_and_debug_shows_the_traceback(files, tmp_path, capsys):
    bad = tmp_path / "bad.fits"
    bad.write_bytes(b"not a FITS file at all")
    assert main([str(bad), "-t", str(files["template"]), *GRID]) == 1
    assert "is not a readable FITS file" in one_error_line(capsys)
    with pytest.raises(OSError, match="not a readable FITS file"):
        main([str(bad), "-t", str(files["template"]), *GRID, "--debug"])
    assert run(files, *GRID, "--exclusion", "-5") == 1
    assert "exclusion" in one_error_line(capsys)
    assert run(files, *GRID, "--weighting", "uniform", "--error-method", "chi2") == 1
    assert "inverse_variance" in one_error_line(capsys)
    assert run(files, *GRID, "--region", "2:9,0:2") == 1
    assert "outside" in one_error_line(capsys)


def test_demo_leaves_nothing_behind(tmp_path, monkeypatch, capsys):
    import tempfile

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))

    def left():  # TensorFlow's autograph sources are removed by TensorFlow when Python exits
        return [n for n in os.listdir(scratch) if not n.startswith("__autograph_generated")]

    assert main(["--demo"]) == 0
    assert "largest |z_best - z_true|" in capsys.readouterr().out
    assert left() == []
    assert main(["--demo", "-q", "-o", str(tmp_path / "demo.fits")]) == 0
    assert left() == [] and (tmp_path / "demo.fits").exists()


# -- never lose work ------------------------------------------------------------------------
def test_a_run_that_fails_after_two_parts_resumes_to_the_same_maps(files, tmp_path, capsys,
                                                                   monkeypatch):
    out = tmp_path / "maps.fits"
    original = CoreCorrelator.correlate_rows
    calls = []

    def fails_third(self, data, start, stop, **options):
        calls.append(start)
        if len(calls) == 3:
            raise RuntimeError("the node died")
        return original(self, data, start, stop, **options)

    monkeypatch.setattr(CoreCorrelator, "correlate_rows", fails_third)
    assert run(files, *CHUNKED, "-o", str(out)) == 1
    assert "the node died" in one_error_line(capsys)
    monkeypatch.setattr(CoreCorrelator, "correlate_rows", original)
    parts = sorted(p.name for p in (tmp_path / "maps.fits.parts").iterdir())
    assert parts == ["lock", "manifest.json", "part-0000000000-0000000002.npz",
                     "part-0000000002-0000000004.npz"]
    assert not out.exists() and leftovers(tmp_path) == []
    # without --resume the checkpoint is not thrown away silently
    assert run(files, *CHUNKED, "-o", str(out)) == 1
    assert "--resume" in one_error_line(capsys)
    # other options or another input: refused, naming what differs
    assert run(files, *CHUNKED, "--exclusion", "500", "-o", str(out), "--resume") == 1
    assert "options.exclusion_kms" in one_error_line(capsys)
    other = tmp_path / "other.fits"
    cube, _ = datasets.make_cube((3, 4), z=0.35, snr=30, seed=8, wavelength=WAVE)
    write_muse_fits(cube, other)
    assert main([str(other), "-t", str(files["template"]), *CHUNKED, "-o", str(out),
                 "--resume"]) == 1
    assert "input.sha256" in one_error_line(capsys)
    # the chunk size may change: only the missing spectra are computed
    calls.clear()
    monkeypatch.setattr(CoreCorrelator, "correlate_rows", fails_third)
    assert run(files, *GRID, "--batch-size", "2", "--chunk-spectra", "4", "-o", str(out),
               "--resume", "--table", str(tmp_path / "maps.ecsv")) == 0
    assert calls == [4, 8]
    assert not (tmp_path / "maps.fits.parts").exists() and leftovers(tmp_path) == []
    assert_same_maps(out, files["reference"])
    np.testing.assert_array_equal(Table.read(tmp_path / "maps.ecsv")["z_best"],
                                  Table.read(files["reference_table"])["z_best"])
    # a finished output is skipped by --resume (same run), refused for another one
    capsys.readouterr()
    assert run(files, *CHUNKED, "-o", str(out), "--resume") == 0
    assert "done already" in capsys.readouterr().err
    assert run(files, *CHUNKED, "--exclusion", "400", "-o", str(out), "--resume") == 1
    assert "another input or other options" in one_error_line(capsys)


def test_a_table_writer_that_fails_midway_leaves_no_file_and_resumes(files, tmp_path, capsys,
                                                                     monkeypatch):
    out, table = tmp_path / "maps.fits", tmp_path / "maps.ecsv"

    def disk_full(self, path, *args, **kwargs):
        with open(path, "w") as handle:
            handle.write("# %ECSV 1.0\n# half a tab")
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    with monkeypatch.context() as patch:
        patch.setattr(Table, "write", disk_full)
        assert run(files, *CHUNKED, "-o", str(out), "--table", str(table)) == 1
    assert "No space left on device" in one_error_line(capsys)
    assert not table.exists() and leftovers(tmp_path) == []
    assert (tmp_path / "maps.fits.parts").is_dir()          # the work is kept
    assert run(files, *CHUNKED, "-o", str(out), "--table", str(table), "--resume") == 0
    assert_same_maps(out, files["reference"])
    assert table.exists() and not (tmp_path / "maps.fits.parts").exists()


def test_two_runs_on_one_checkpoint(files, tmp_path, capsys):
    from muse_xcorr.io.checkpoint import Checkpoint

    out = tmp_path / "maps.fits"
    holder = Checkpoint.for_output(out, {"input": "a run in progress"})
    holder.open(resume=False, overwrite=False)         # holds the lock, as a running run does
    try:
        for options in (["--overwrite"], ["--resume"]):
            assert run(files, *CHUNKED, "-o", str(out), *options) == 1
            assert "another muse-xcorr run is using" in one_error_line(capsys)
        assert (tmp_path / "maps.fits.parts" / "manifest.json").exists()   # left alone
    finally:
        holder.release()


CHILD = textwrap.dedent("""
    import os, sys, time
    import muse_xcorr.correlate.correlator as core
    from astropy.io import fits

    original = core.Correlator.correlate_rows
    calls = []

    def slow(self, data, start, stop, **options):   # parts after the first take a while
        calls.append(start)
        if len(calls) > 1:
            time.sleep(float(os.environ["PART_SECONDS"]))
        return original(self, data, start, stop, **options)

    def stuck_writer(self, name, *args, **kwargs):   # writes half the maps, then hangs
        with open(name, "wb") as handle:
            handle.write(b"SIMPLE  =                    T" + b" " * 4000)
        open(os.environ["WRITING"], "w").close()
        time.sleep(120)

    core.Correlator.correlate_rows = slow
    if os.environ.get("WRITING"):
        fits.HDUList.writeto = stuck_writer
    from muse_xcorr.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def child(files, out, env_extra):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), **env_extra)
    return subprocess.Popen([sys.executable, "-c", CHILD, str(files["cube"]), "-t",
                             str(files["template"]), *CHUNKED, "-o", str(out)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(condition, process, timeout=90):
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"the child ended early: {process.communicate()}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError("timed out waiting for the child")
        time.sleep(0.02)


def test_a_run_killed_by_sigkill_resumes_to_identical_maps(files, tmp_path):
    out = tmp_path / "maps.fits"
    process = child(files, out, {"PART_SECONDS": "30"})
    parts = tmp_path / "maps.fits.parts"
    wait_for(lambda: parts.is_dir() and any(p.suffix == ".npz" for p in parts.iterdir()),
             process)
    process.kill()                          # SIGKILL: no handler runs
    process.communicate(timeout=30)
    assert not out.exists()
    assert main([str(files["cube"]), "-t", str(files["template"]), *CHUNKED, "-o", str(out),
                 "--resume", "-q"]) == 0
    assert_same_maps(out, files["reference"])
    assert leftovers(tmp_path) == [] and not parts.exists()


def test_sigterm_during_the_write_leaves_no_temporary_file(files, tmp_path):
    out, writing = tmp_path / "maps.fits", tmp_path / "writing"
    process = child(files, out, {"PART_SECONDS": "0", "WRITING": str(writing)})
    wait_for(writing.exists, process)
    assert leftovers(tmp_path)                  # the half-written temporary file is there
    process.terminate()                         # SIGTERM
    _, err = process.communicate(timeout=60)
    assert process.returncode == 128 + 15, err
    assert "interrupted by SIGTERM" in err and "--resume" in err
    assert leftovers(tmp_path) == [] and not out.exists()
    assert len([p for p in (tmp_path / "maps.fits.parts").iterdir() if p.suffix == ".npz"]) == 6
    writing.unlink()
    assert main([str(files["cube"]), "-t", str(files["template"]), *CHUNKED, "-o", str(out),
                 "--resume", "-q"]) == 0
    assert_same_maps(out, files["reference"])
