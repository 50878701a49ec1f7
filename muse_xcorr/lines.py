"""Rest-frame wavelengths of the lines that matter for MUSE redshifts, in vacuum.

One table, used to build synthetic templates, to label plots and (with
:func:`~muse_xcorr.medium.convert_medium`) to place lines on MUSE's air grid.
Wavelengths are vacuum values in Angstrom (NIST / SDSS line lists).
"""
import numpy as np
import astropy.units as u
from astropy.table import Table

__all__ = ["LINES", "line_table"]

#: name -> (vacuum wavelength in Angstrom, kind, relative strength in a
#: typical star-forming galaxy (emission) or depth (absorption))
LINES = {
    "Lya": (1215.67, "emission", 0.0),
    "CIV1548": (1548.20, "emission", 0.0),
    "CIV1551": (1550.77, "emission", 0.0),
    "CIII]1907": (1906.68, "emission", 0.0),
    "CIII]1909": (1908.73, "emission", 0.0),
    "MgII2796": (2796.35, "emission", 0.0),
    "MgII2804": (2803.53, "emission", 0.0),
    "[OII]3726": (3727.09, "emission", 1.3),
    "[OII]3729": (3729.88, "emission", 1.7),
    "[NeIII]3869": (3869.86, "emission", 0.25),
    "CaII_K": (3934.78, "absorption", 0.35),
    "CaII_H": (3969.59, "absorption", 0.30),
    "Hdelta": (4102.89, "emission", 0.26),
    "Hgamma": (4341.69, "emission", 0.47),
    "Gband": (4305.61, "absorption", 0.15),
    "Hbeta": (4862.69, "emission", 1.0),
    "[OIII]4959": (4960.30, "emission", 0.7),
    "[OIII]5007": (5008.24, "emission", 2.1),
    "Mgb": (5176.7, "absorption", 0.15),
    "HeI5876": (5877.25, "emission", 0.12),
    "NaD": (5895.6, "absorption", 0.12),
    "[OI]6300": (6302.05, "emission", 0.08),
    "[NII]6548": (6549.86, "emission", 0.12),
    "Halpha": (6564.61, "emission", 3.0),
    "[NII]6583": (6585.27, "emission", 0.35),
    "[SII]6716": (6718.29, "emission", 0.3),
    "[SII]6731": (6732.67, "emission", 0.22),
}


def line_table():
    """The line list as an `~astropy.table.Table` (vacuum wavelengths)."""
    names = list(LINES)
    wave, kind, strength = zip(*(LINES[n] for n in names))
    return Table({"name": names, "wavelength": np.array(wave) * u.AA, "kind": list(kind),
                  "strength": np.array(strength)}, meta={"medium": "vacuum"})
