"""Detection calibrations stored on disk: reused by a fresh correlator, keyed by what matters."""
import numpy as np
import pytest

from muse_xcorr import Correlator, datasets, zgrid
from muse_xcorr.correlate import calibration_store


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("MUSE_XCORR_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("MUSE_XCORR_CACHE", raising=False)
    return tmp_path


@pytest.fixture(scope="module")
def cube():
    template = datasets.make_template("starforming")
    cube, _ = datasets.make_cube((1, 3), template, z=(0.4, 0.5), snr=10.0, seed=4)
    return template, cube


def test_a_fresh_correlator_reads_the_stored_calibration(store, cube):
    template, data = cube
    first = Correlator(template, zgrid(0.35, 0.55, 5e-4)).detection_calibration(data, (0.3,))
    files = list(store.glob("*.npy"))
    assert len(files) == 1
    # the file is the null sample itself, and a new correlator (a new process) uses it
    np.testing.assert_array_equal(np.sort(np.load(files[0])), first.null)
    again = Correlator(template, zgrid(0.35, 0.55, 5e-4)).detection_calibration(data, (0.3,))
    assert again.n_eff == first.n_eff and again.dof == first.dof
    # settings that change the null statistic give another file; others do not
    Correlator(template, zgrid(0.35, 0.55, 5e-4), batch_size=7, max_fap=0.05,
               n_candidates=2).detection_calibration(data, (0.3,))
    assert len(list(store.glob("*.npy"))) == 1
    Correlator(template, zgrid(0.35, 0.55, 5e-4), continuum=None).detection_calibration(
        data, (0.3,))
    Correlator(template, zgrid(0.35, 0.55, 5e-4)).detection_calibration(data, (0.0,))
    assert len(list(store.glob("*.npy"))) == 3


def test_a_damaged_file_is_recomputed_not_trusted(store, cube):
    template, data = cube
    first = Correlator(template, zgrid(0.35, 0.55, 5e-4)).detection_calibration(data)
    (path,) = store.glob("*.npy")
    path.write_bytes(b"not a numpy file")
    again = Correlator(template, zgrid(0.35, 0.55, 5e-4)).detection_calibration(data)
    np.testing.assert_array_equal(again.null, first.null)
    assert np.load(path).size == first.null.size     # rewritten


def test_the_store_can_be_switched_off(store, cube, monkeypatch):
    monkeypatch.setenv("MUSE_XCORR_CACHE", "0")
    template, data = cube
    Correlator(template, zgrid(0.35, 0.55, 5e-4)).detection_calibration(data)
    assert calibration_store.store_directory() is None
    assert not list(store.glob("*.npy"))
