"""Which table column is the wavelength, the flux, its error, variance or inverse variance.

Names are matched without regard to case, in two tiers. First the common
names exactly (:data:`COLUMN_NAMES`); for a role that no column has exactly,
then patterns: a name's words (split at ``_``, ``-``, spaces and dots) or its
ending. Each column takes one role, the first that fits in the order inverse
variance, variance, error, mask, flux (the word ``flux``), wavelength, flux
(``spec``, ``data``...), so that ``NSC_spec_var`` (pPXF) is a variance, not a
flux, ``fluxerror`` (TDOSE) an error and ``flux_lambda`` a flux.

Two candidates for a role, or two uncertainty columns of different kinds, are
ambiguous: the reader says which, and the user names the column
(``flux="..."``, ``variance="..."``). Nothing is guessed from position.
"""
import re

__all__ = ["COLUMN_NAMES", "UNCERTAINTY_ROLES", "role_of", "find_columns"]

#: Exact names (lower case) of each role's columns.
COLUMN_NAMES = {
    "wavelength": ("wave", "wavelength", "wavelengths", "lambda", "lam", "wavelen", "wl",
                   "awav", "wave_air", "wave_vac", "lambda_air", "lambda_vac"),
    "flux": ("flux", "data", "spec", "spectrum", "f_lambda", "flam", "fluxdens", "sci"),
    "error": ("error", "err", "sigma", "sig", "fluxerror", "flux_error", "flux_err", "fluxerr",
              "err_flux", "error_flux", "e_flux", "noise", "stddev", "std", "uncertainty",
              "unc", "ferr"),
    "variance": ("var", "variance", "stat", "flux_var", "fluxvar", "var_flux", "variance_flux",
                 "flux_variance"),
    "ivar": ("ivar", "invvar", "inverse_variance", "inv_var", "flux_ivar", "ivar_flux"),
    "mask": ("mask", "dq", "quality", "qual", "badpix"),
}

#: The roles that can carry the uncertainty, and what each means.
UNCERTAINTY_ROLES = {"error": "standard deviation", "variance": "variance",
                     "ivar": "inverse variance"}

# word (or ending) patterns of the second tier, in the order a column takes its role
_PATTERNS = (
    ("ivar", {"ivar", "invvar"}, ("ivar", "invvar")),
    ("variance", {"var", "variance", "stat"}, ("var", "variance")),
    ("error", {"err", "error", "errors", "sigma", "sig", "unc", "uncertainty", "noise",
               "std", "stddev"}, ("err", "error", "sigma")),
    ("mask", {"mask", "dq", "quality", "qual"}, ("mask",)),
    ("flux", {"flux"}, ("flux",)),  # before wavelength: flux_lambda is a flux
    ("wavelength", {"wave", "wavelength", "lambda", "lam", "wl", "awav"}, ("wave",
                                                                           "wavelength")),
    ("flux", {"spec", "spectrum", "data", "flam", "sci"}, ("spec",)),
)
_WORDS = re.compile(r"[^a-z0-9]+")


def role_of(name):
    """The role a column name suggests, and whether it is an exact (first-tier) match.

    Parameters
    ----------
    name : str

    Returns
    -------
    (role, exact) : (str or None, bool)
    """
    lower = str(name).strip().lower()
    for role, names in COLUMN_NAMES.items():
        if lower in names:
            return role, True
    words = set(filter(None, _WORDS.split(lower)))
    for role, tokens, endings in _PATTERNS:
        if words & tokens or lower.endswith(endings):
            return role, False
    return None, False


def _pick(colnames, name, what, path):
    """The column called ``name`` (exactly, else the one that matches without case)."""
    if name in colnames:
        return name
    folded = [c for c in colnames if c.lower() == str(name).lower()]
    if len(folded) == 1:
        return folded[0]
    raise ValueError(f"{path} has no column {name!r} (given as {what}=); its columns are "
                     f"{list(colnames)}")


def find_columns(colnames, path, *, wavelength=None, flux=None, error=None, variance=None,
                 ivar=None, mask=None, need_uncertainty=True):
    """Assign the columns of a table to their roles.

    Parameters
    ----------
    colnames : list of str
    path : str
        The file, for the messages.
    wavelength, flux, error, variance, ivar, mask : str, optional
        Column names the user gives; at most one of ``error``, ``variance``
        and ``ivar``. The others are found by name.
    need_uncertainty : bool
        Whether a missing uncertainty column is an error.

    Returns
    -------
    columns : dict
        ``wavelength``, ``flux``, ``mask`` (or None) and ``uncertainty``:
        ``(kind, name)`` with kind in :data:`UNCERTAINTY_ROLES`, or None.

    Raises
    ------
    ValueError
        No recognisable wavelength or flux column (the message lists the
        columns), two candidates for one role, or no uncertainty.
    """
    colnames = list(colnames)
    given_uncertainty = {k: v for k, v in
                         (("error", error), ("variance", variance), ("ivar", ivar))
                         if v is not None}
    if len(given_uncertainty) > 1:
        raise ValueError(f"give one of error=, variance= and ivar=, not "
                         f"{' and '.join(k + '=' for k in given_uncertainty)}")
    given = {"wavelength": wavelength, "flux": flux, "mask": mask, **given_uncertainty}
    chosen = {role: _pick(colnames, name, role, path)
              for role, name in given.items() if name is not None}
    taken = set(chosen.values())
    exact, pattern = {}, {}
    for name in colnames:
        if name in taken:
            continue
        role, is_exact = role_of(name)
        if role is not None:
            (exact if is_exact else pattern).setdefault(role, []).append(name)
    candidates = {role: exact.get(role) or pattern.get(role, [])
                  for role in set(exact) | set(pattern)}

    def single(role, label):
        found = candidates.get(role, [])
        if len(found) > 1:
            raise ValueError(f"{path}: the {label} column is ambiguous: {found} all fit; "
                             f"name it, e.g. {role}={found[0]!r}")
        return found[0] if found else None

    result = {}
    for role, label in (("wavelength", "wavelength"), ("flux", "flux")):
        result[role] = chosen.get(role) or single(role, label)
        if result[role] is None:
            raise ValueError(f"{path}: no recognisable {label} column among {colnames}; name "
                             f"it with {role}='...' (recognised: "
                             f"{', '.join(COLUMN_NAMES[role][:6])}...)")
    result["mask"] = chosen.get("mask") or single("mask", "mask")
    if given_uncertainty:
        (kind, _), = given_uncertainty.items()
        result["uncertainty"] = (kind, chosen[kind])
        return result
    found = [(kind, name) for kind in UNCERTAINTY_ROLES for name in candidates.get(kind, [])]
    if len(found) > 1:
        listed = ", ".join(f"{name!r} ({UNCERTAINTY_ROLES[kind]})" for kind, name in found)
        raise ValueError(f"{path}: the uncertainty column is ambiguous: {listed}; name one "
                         f"with error=, variance= or ivar=")
    if not found and need_uncertainty:
        raise ValueError(f"{path}: no error, variance or inverse-variance column among "
                         f"{colnames}: the correlation error needs one; name it with "
                         "error='...' (standard deviation), variance='...' or ivar='...'")
    result["uncertainty"] = found[0] if found else None
    return result
