"""Redshift grids."""
import numpy as np

__all__ = ["zgrid", "as_zgrid", "default_zgrid", "DEFAULT_GRID"]

#: The default grid: MUSE's whole range (stars near z = 0 to Lyman alpha at 6.7), 30 km/s.
DEFAULT_GRID = {"zmin": -0.002, "zmax": 6.7, "dlnz": 1e-4}


def zgrid(zmin, zmax, dlnz):
    """A redshift grid uniform in ln(1 + z).

    A constant step in ln(1 + z) is a constant step in velocity,
    ``c * dlnz``, so every redshift is sampled with the same resolution
    relative to the width of the template's features.

    Parameters
    ----------
    zmin, zmax : float
        First and last redshift (``-1 < zmin < zmax``). The last grid point
        is the largest one not beyond ``zmax`` (plus a rounding tolerance).
    dlnz : float
        Step in ln(1 + z); ``1e-4`` is 30 km/s.

    Returns
    -------
    z : ndarray
        The grid, increasing, float64.

    Examples
    --------
    >>> from muse_xcorr import zgrid
    >>> z = zgrid(0.0, 1.0, 1e-3)
    >>> len(z), float(z[0]), round(float(z[-1]), 4)
    (694, 0.0, 0.9997)
    """
    zmin, zmax, dlnz = float(zmin), float(zmax), float(dlnz)
    if not zmin > -1:
        raise ValueError(f"zmin must be > -1, got {zmin}")
    if not zmax > zmin:
        raise ValueError(f"zmax ({zmax}) must be larger than zmin ({zmin})")
    if not dlnz > 0:
        raise ValueError(f"dlnz must be positive, got {dlnz}")
    span = np.log1p(zmax) - np.log1p(zmin)
    n = int(np.floor(span / dlnz * (1 + 1e-12))) + 1
    return np.expm1(np.log1p(zmin) + dlnz * np.arange(n))


def as_zgrid(z):
    """Check a user's redshift grid and return it as a float64 array.

    Parameters
    ----------
    z : array_like
        One-dimensional, finite, strictly increasing, all ``> -1``, at least
        three values (the peak refinement needs three samples).

    Returns
    -------
    z : ndarray
    """
    z = np.array(z, dtype=float, copy=True)
    if z.ndim != 1:
        raise ValueError(f"the redshift grid must be one-dimensional, got shape {z.shape}")
    if z.size < 3:
        raise ValueError(f"the redshift grid needs at least 3 values, got {z.size}")
    if not np.all(np.isfinite(z)):
        raise ValueError("the redshift grid has non-finite values")
    if not np.all(z > -1):
        raise ValueError("every redshift of the grid must be > -1")
    if not np.all(np.diff(z) > 0):
        raise ValueError("the redshift grid must be strictly increasing")
    return z


def default_zgrid():
    """The redshift grid of the one-line default: :data:`DEFAULT_GRID`.

    From z = -0.002 (stars, -600 km/s) to 6.7 (Lyman alpha at the red end of
    MUSE) in steps of 1e-4 in ln(1 + z) (30 km/s): about 20 400 redshifts.
    """
    return zgrid(**DEFAULT_GRID)
