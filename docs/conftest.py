"""pytest in docs/: run the doctests of the .rst pages, not the Sphinx machinery."""
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# detection calibrations stored on disk go to a directory of this test session, never to the
# user's astropy cache (muse_xcorr.correlate.calibration_store)
os.environ.setdefault("MUSE_XCORR_CACHE_DIR", tempfile.mkdtemp(prefix="muse_xcorr_cache_"))

try:  # the tutorials draw with matplotlib: no display needed
    import matplotlib
    matplotlib.use("Agg")
except ImportError:  # pragma: no cover
    pass

collect_ignore = ["conf.py", "_ext", "_build", "api", "generated"]
