"""pytest in docs/: run the doctests of the .rst pages, not the Sphinx machinery."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

try:  # the tutorials draw with matplotlib: no display needed
    import matplotlib
    matplotlib.use("Agg")
except ImportError:  # pragma: no cover
    pass

collect_ignore = ["conf.py", "_ext", "_build", "api", "generated"]
