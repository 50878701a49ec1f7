"""Test configuration: the pytest-astropy header, and the path to ../shared/data."""
import os
import tempfile
import pathlib

import pytest

try:
    from pytest_astropy_header.display import PYTEST_HEADER_MODULES, TESTED_VERSIONS
except ImportError:  # pragma: no cover
    PYTEST_HEADER_MODULES, TESTED_VERSIONS = {}, {}

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# detection calibrations stored on disk go to a directory of this test session, never to the
# user's astropy cache (muse_xcorr.correlate.calibration_store)
os.environ.setdefault("MUSE_XCORR_CACHE_DIR", tempfile.mkdtemp(prefix="muse_xcorr_cache_"))


def pytest_configure(config):
    config.option.astropy_header = True
    PYTEST_HEADER_MODULES.clear()
    for name in ("NumPy", "SciPy", "Astropy", "specutils", "tensorflow"):
        PYTEST_HEADER_MODULES[name] = name.lower() if name != "NumPy" else "numpy"
    from muse_xcorr.version import __version__
    TESTED_VERSIONS["muse_xcorr"] = __version__


#: Where the project's shared test data lives (beside the checkout); users do not have it.
SHARED_DATA = pathlib.Path(os.environ.get(
    "MUSE_XCORR_SHARED_DATA", pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.fixture
def shared_data():
    """Path to ../shared/data, or skip the test with a reason when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared test data not found at {SHARED_DATA}: set MUSE_XCORR_SHARED_DATA "
                    "to the folder that holds udf_mosaic_subcube.fits (the project's "
                    "../shared/data; users do not have it)")
    return SHARED_DATA


def pytest_collection_modifyitems(config, items):
    """Tests marked ``slow`` run with MUSE_XCORR_SLOW=1 (or pytest-skip-slow's --slow)."""
    try:
        asked = bool(config.getoption("--slow"))
    except ValueError:
        asked = False
    if asked or os.environ.get("MUSE_XCORR_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow statistical test (minutes): set MUSE_XCORR_SLOW=1 "
                                   "to run it")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
