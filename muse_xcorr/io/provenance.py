"""Where a result comes from, in its FITS headers: what :meth:`Redshift.write` records.

`provenance_header` gives the primary-header cards: the package version, the
date, the input file (path, size, SHA-256 when known) and its ``OBJECT`` and
``EXPTIME``, the templates (names, files), the redshift grid (``ZMIN``,
``ZMAX``, ``DLNZ``, ``NZ``, besides the ``ZGRID`` table), every option of the
correlator, and what the caller adds (the command line of ``muse-xcorr``).
`describe_map` gives each map extension its ``BUNIT`` and a description;
`flag_legend` writes the meaning of every flag bit into the ``FLAGS``
extension. `correlator_options` is the one list of the settings that change a
result (also what a checkpoint manifest compares).
"""
import datetime
import os

import numpy as np
from astropy.io import fits

__all__ = ["provenance_header", "describe_map", "flag_legend", "correlator_options",
           "MAP_DESCRIPTIONS"]

#: BUNIT and a description of every map :meth:`Redshift.write` writes. All are
#: dimensionless (redshifts, correlations, chi2, indices, flags) except ``n_valid``.
MAP_DESCRIPTIONS = {
    "z_best": ("", "redshift of the best candidate"),
    "f_best": ("", "normalised cross-correlation at z_best"),
    "sigma_f_best": ("", "standard deviation of f_best"),
    "snr": ("", "f_best / sigma_f_best"),
    "chi2_best": ("", "weighted chi2 of the best fitted model"),
    "delta_chi2": ("", "chi2 of the second candidate minus the best"),
    "z_second": ("", "redshift of the second candidate"),
    "f_second": ("", "correlation of the second candidate"),
    "chi2_second": ("", "weighted chi2 of the second candidate"),
    "z_conf": ("", "probability that z_best is right (within 2e-3 (1 + z))"),
    "fap": ("", "false-alarm probability of the best candidate, whole grid"),
    "significance": ("", "fap as a one-sided Gaussian significance (sigma)"),
    "detection_chi2": ("", "chi2 gain of the best candidate over no signal"),
    "sky_share": ("", "part of detection_chi2 from bright sky-line pixels"),
    "flags": ("", "bit flags, see the FLAGn keywords"),
    "template_index": ("", "index of the best template (TEMPLn), -1: none"),
    "best_index": ("", "grid index of the best sample (ZGRID), -1: none"),
    "coverage": ("", "fraction of the valid pixels the template covers"),
    "n_valid": ("pixel", "number of valid pixels"),
    "norm2": ("", "sum d^2 / v over the valid pixels"),
    "f_max": ("", "largest search score of the best template"),
    "f_min": ("", "smallest search score of the best template"),
    "ccf_f": ("", "f(z) of the best template, z first"),
    "ccf_sigma": ("", "sigma_f(z) of the best template, z first"),
}


def _text(value):
    """Printable ASCII for a FITS card (non-ASCII escaped, control characters as spaces)."""
    text = str(value).encode("ascii", "backslashreplace").decode("ascii")
    return "".join(c if 32 <= ord(c) < 127 else " " for c in text)


def _scalar(value):
    """A FITS-card value: bool, int, float or ASCII text."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if np.isfinite(value) else _text(value)
    return _text(value)


def correlator_options(correlator):
    """Every setting of a `~muse_xcorr.Correlator` that changes a result, as plain values.

    Parameters
    ----------
    correlator : `~muse_xcorr.Correlator`

    Returns
    -------
    options : dict
        ``templates`` (names), ``weighting``, ``continuum``,
        ``continuum_window_kms``, ``lsf``, ``search``, ``coarse_factor``,
        ``n_seeds``, ``n_candidates``, ``exclusion_kms``, ``composite_penalty``,
        ``ambiguity_threshold``, ``ambiguity_tolerance``, ``dtype``,
        ``sigma_correction``, ``keep_ccf``, ``min_pixels``, ``min_coverage``
        and ``batch_size`` (which does not change the results).
    """
    continuum = correlator.continuum
    window = getattr(continuum, "window", None)
    return {
        "templates": ",".join(correlator.names),
        "weighting": correlator.weighting,
        "continuum": "none" if continuum is None else str(continuum.method),
        "continuum_window_kms": None if window is None else float(window.to_value("km/s")),
        "lsf": str(correlator.lsf),
        "search": correlator.search_mode,
        "coarse_factor": int(correlator.coarse_factor),
        "n_seeds": int(correlator.n_seeds),
        "n_candidates": int(correlator.n_candidates),
        "exclusion_kms": float(correlator.exclusion.to_value("km/s")),
        "composite_penalty": float(correlator.composite_penalty),
        "ambiguity_threshold": float(correlator.ambiguity_threshold),
        "ambiguity_tolerance": float(correlator.ambiguity_tolerance),
        "dtype": str(correlator.dtype),
        "sigma_correction": bool(correlator.sigma_correction),
        "keep_ccf": bool(correlator.keep_ccf),
        "min_pixels": int(correlator.min_pixels),
        "min_coverage": float(correlator.min_coverage),
        "batch_size": int(correlator.batch_size),
        **_later_options(correlator),
    }


def _later_options(correlator):
    """Options of newer correlators, when they have them (the noise correlation)."""
    out = {}
    rho = getattr(correlator, "noise_correlation", None)
    if rho is not None:
        out["noise_correlation"] = rho if isinstance(rho, str) else \
            ",".join(f"{float(r):.6g}" for r in np.atleast_1d(rho)) or "none"
    return out


def grid_summary(z):
    """``ZMIN``, ``ZMAX``, ``DLNZ`` (the median step in ln(1+z)), ``NZ`` and ``ZUNIFORM``."""
    z = np.asarray(z, dtype=float)
    steps = np.diff(np.log1p(z))
    dlnz = float(np.median(steps)) if steps.size else float("nan")
    uniform = bool(steps.size and np.allclose(steps, dlnz, rtol=1e-6, atol=0))
    return {"ZMIN": float(z[0]), "ZMAX": float(z[-1]), "DLNZ": dlnz, "NZ": int(z.size),
            "ZUNIFORM": uniform}


def _copied_keywords(data):
    """OBJECT and EXPTIME of the input (primary header first, then the DATA header)."""
    meta = getattr(data, "meta", None) or {}
    out = {}
    for name in ("primary_header", "header"):
        header = meta.get(name)
        if header is None:
            continue
        for key in ("OBJECT", "EXPTIME"):
            if key not in out and key in header:
                out[key] = (header[key], header.comments[key] if hasattr(header, "comments")
                            else "")
    return out


def provenance_header(result, extra=None):
    """The primary-header cards that say where ``result`` comes from.

    Parameters
    ----------
    result : `~muse_xcorr.Redshift`
    extra : dict, optional
        What only the caller knows: ``command`` (the command line), ``cwd``,
        ``input`` (path), ``input_size``, ``input_sha256``, ``template_files``
        (a path or None per template), ``template_sha256``, ``region``,
        ``options`` (more name: value pairs, written as ``HIERARCH MX NAME``).

    Returns
    -------
    header : `~astropy.io.fits.Header`
    """
    from ..version import __version__

    extra = dict(extra or {})
    header = fits.Header()
    header["CREATOR"] = (_text(f"muse_xcorr {__version__}"), "software that wrote this file")
    header["DATE"] = (datetime.datetime.now(datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S"), "UTC date this file was written")
    if extra.get("command"):
        header["MXCMD"] = (_text(extra["command"]), "command line")
        header["MXCWD"] = (_text(extra.get("cwd", os.getcwd())), "working directory")
    data = getattr(result, "data", None)
    source = extra.get("input") or (getattr(data, "meta", None) or {}).get("filename")
    if source:
        header["MXINPUT"] = (_text(os.path.abspath(os.fspath(source))), "input file")
    if extra.get("input_size") is not None:
        header["MXINSIZE"] = (int(extra["input_size"]), "[byte] size of the input file")
    if extra.get("input_sha256"):
        header["MXINSHA"] = _text(extra["input_sha256"])  # SHA-256 of the input file
    region = extra.get("region") or (getattr(data, "meta", None) or {}).get("region")
    if region:
        header["MXREGION"] = (_text(region), "pixel box Y0:Y1,X0:X1 of the input (0-based)")
    for key, (value, comment) in _copied_keywords(data).items():
        header[key] = (_scalar(value), _text(comment) or "copied from the input")
    names = result.template_names or list(getattr(result.correlator, "names", []))
    files = list(extra.get("template_files") or [])
    checksums = list(extra.get("template_sha256") or [])
    header["NTEMPL"] = (len(names), "number of templates")
    for i, name in enumerate(names, start=1):
        header[f"TEMPL{i}"] = (_text(name), f"template {i - 1} (template_index)")
        if i - 1 < len(files) and files[i - 1]:
            header[f"TFILE{i}"] = (_text(os.path.abspath(files[i - 1])), f"file of TEMPL{i}")
        if i - 1 < len(checksums) and checksums[i - 1]:
            header[f"TSHA{i}"] = _text(checksums[i - 1])  # SHA-256 of TFILE{i}
    grid = grid_summary(result.z)
    comments = {"ZMIN": "first redshift of the grid", "ZMAX": "last redshift of the grid",
                "DLNZ": "grid step in ln(1+z) (median)", "NZ": "number of redshifts",
                "ZUNIFORM": "grid uniform in ln(1+z)"}
    for key, value in grid.items():
        header[key] = (value, comments[key])
    options = {}
    if getattr(result, "correlator", None) is not None:
        options.update(correlator_options(result.correlator))
    options.update(extra.get("options") or {})
    for name, value in options.items():
        if value is None or name in result.meta or name == "templates":
            continue
        header[f"HIERARCH MX {name.upper()}"] = _scalar(value)
    return header


def describe_map(header, name):
    """Add ``BUNIT`` and a description of map ``name`` to an extension header (in place)."""
    name = name.lower()
    if name in MAP_DESCRIPTIONS:
        unit, text = MAP_DESCRIPTIONS[name]
    elif name.startswith("zerr_"):
        unit, text = "", f"standard error of z_best ({name[5:]})"
    elif name.startswith("zunrel_"):
        unit, text = "", f"1 where the {name[7:]} sigma_z is unreliable"
    else:
        unit, text = "", "dimensionless"
    header["BUNIT"] = (unit, "dimensionless" if not unit else "unit of the values")
    header["MXMAP"] = _text(text)[:68]  # what this map is
    return header


def flag_legend(header):
    """Write ``FLAGn = NAME`` (n the bit value) and the meaning of every flag (in place)."""
    from ..flags import MEANING, Flag

    for flag in Flag:
        header[f"FLAG{int(flag)}"] = (flag.name, f"flag bit {int(flag)}")
    for flag in Flag:
        header.add_comment(_text(f"{flag.name} ({int(flag)}): {MEANING[flag]}"))
    return header
