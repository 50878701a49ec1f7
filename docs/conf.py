# Licensed under a 3-clause BSD style license - see licenses/LICENSE.rst
"""Sphinx configuration of the muse_xcorr documentation (sphinx-astropy).

Build with ``cd docs && sphinx-build -W -b html . _build/html`` (or
``tox -e build_docs``). The tutorials' plots are made at build time by the
matplotlib plot directive; their code is also run as doctests by
``pytest docs``.

Offline builds: intersphinx needs the network to fetch the other projects'
inventories, and a failed fetch is a warning (an error under ``-W``). When
``docs.python.org`` cannot be reached within a few seconds, or when the
environment variable ``MUSE_XCORR_DOCS_OFFLINE=1`` is set, intersphinx is
switched off (``intersphinx_mapping = {}``) and cross-references to numpy,
astropy, specutils... are shown as plain text instead of links.
``-D disable_intersphinx=1`` does the same from the command line.
"""
import configparser
import datetime
import os
import socket
import sys
from pathlib import Path

try:
    from sphinx_astropy.conf.v2 import *  # noqa: F401,F403
    from sphinx_astropy.conf.v2 import extensions, intersphinx_mapping  # noqa: F401
except ImportError:
    print("ERROR: the documentation requires the sphinx-astropy package to be installed")
    sys.exit(1)

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # document this checkout, not an installed copy
sys.path.insert(0, str(HERE / "_ext"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# -- Project information -------------------------------------------------------
setup_cfg = configparser.ConfigParser()
setup_cfg.read(HERE.parent / "setup.cfg")
metadata = setup_cfg["metadata"]

project = metadata["name"]
author = metadata["author"]
copyright = f"{datetime.datetime.now().year}, {author}"

import muse_xcorr  # noqa: E402

release = muse_xcorr.__version__
version = release.split("+")[0]

# -- General configuration -------------------------------------------------------
# sphinx-copybutton is optional (sphinx-astropy does not require it)
try:
    import sphinx_copybutton  # noqa: F401
except ImportError:
    extensions.remove("sphinx_copybutton")
extensions += ["muse_xcorr_docs"]  # docs/_ext: the flag table, the optional toctree

exclude_patterns += ["_templates", "generated", "tables", "**.ipynb_checkpoints"]  # noqa: F405
rst_epilog += """
.. |muse_xcorr| replace:: ``muse_xcorr``
"""  # noqa: F405

# The numpydoc parameter types ("ndarray", "float", "optional"...) are text
numpydoc_xref_param_type = False

# -- Intersphinx ------------------------------------------------------------------
intersphinx_mapping.update({
    "specutils": ("https://specutils.readthedocs.io/en/stable/", None),
    "spectral_cube": ("https://spectral-cube.readthedocs.io/en/stable/", None),
})


def _online(host="docs.python.org", port=443, timeout=3.0):
    """Whether the intersphinx inventories can be fetched."""
    if os.environ.get("MUSE_XCORR_DOCS_OFFLINE", "0") not in ("", "0"):
        return False
    try:
        socket.create_connection((host, port), timeout=timeout).close()
        return True
    except OSError:
        return False


if not _online():
    # keep only the inventories that are local files (sphinx-astropy bundles Python's)
    intersphinx_mapping = {name: (url, inventory) for name, (url, inventory)
                           in intersphinx_mapping.items()
                           if isinstance(inventory, str) and os.path.isfile(inventory)}
    print("muse_xcorr docs: offline, intersphinx limited to the local inventories "
          f"{sorted(intersphinx_mapping)}")
    # without their inventories, the other projects' objects cannot resolve: under -n
    # that is one warning per reference, none of them a broken link of these docs
    nitpick_ignore_regex = [
        (r"py:.*", rf"{package}(\..*)?")
        for package in ("astropy", "numpy", "scipy", "matplotlib", "specutils",
                        "spectral_cube", "dask", "distributed", "enum", "logging")
        if package not in intersphinx_mapping]

# -- Plots (matplotlib plot directive) --------------------------------------------
plot_include_source = True
plot_html_show_source_link = False
plot_html_show_formats = False
plot_formats = [("png", 100)]
plot_rcparams = {"figure.figsize": (6.4, 4.0), "savefig.bbox": "tight"}
plot_apply_rcparams = True

# -- HTML output -------------------------------------------------------------------
html_title = f"{project} v{release}"
htmlhelp_basename = project + "doc"
html_theme_options.update({  # noqa: F405
    "github_url": metadata["url"],
    "use_edit_page_button": False,
})
html_static_path = []
