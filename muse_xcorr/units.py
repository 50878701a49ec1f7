"""Wavelengths: their unit and their medium (air or vacuum), decided and converted here only."""
import numpy as np
import astropy.units as u

__all__ = ["MEDIA", "as_angstrom", "check_medium", "medium_from_ctype", "resolve_medium",
           "convert_medium", "C_KMS", "velocity_to_dlnz"]

#: The wavelength media the package knows.
MEDIA = ("air", "vacuum")

_CTYPE_MEDIUM = {"AWAV": "air", "WAVE": "vacuum"}


def as_angstrom(spectral, what="spectral axis"):
    """A wavelength, frequency or energy Quantity as float64 values in Angstrom.

    Parameters
    ----------
    spectral : `~astropy.units.Quantity`
    what : str
        What it is, for the error messages.

    Returns
    -------
    values : ndarray
        Wavelengths in Angstrom (a copy).
    """
    if not isinstance(spectral, u.Quantity):
        raise TypeError(f"the {what} must be an astropy Quantity with a unit "
                        "(e.g. wavelength * u.AA)")
    try:
        wave = spectral.to(u.AA, equivalencies=u.spectral())
    except u.UnitConversionError:
        raise u.UnitConversionError(f"the {what} unit {spectral.unit} is not a wavelength, "
                                    "frequency or energy") from None
    return np.array(wave.value, dtype=float)


def check_medium(medium):
    """Return ``medium`` normalised to ``"air"`` or ``"vacuum"``, or raise.

    ``"vac"`` is accepted for ``"vacuum"``. ``None`` is an error: the package
    never guesses the medium, since a wrong guess biases cz by about 80 km/s.
    """
    if medium is None:
        raise ValueError("the wavelength medium is unknown: pass medium='air' or "
                         "medium='vacuum' (MUSE cubes are in air, CTYPE3='AWAV')")
    name = str(medium).strip().lower()
    name = {"vac": "vacuum"}.get(name, name)
    if name not in MEDIA:
        raise ValueError(f"unknown wavelength medium {medium!r}; use 'air' or 'vacuum'")
    return name


def medium_from_ctype(ctype):
    """The medium a FITS spectral CTYPE implies (``AWAV`` air, ``WAVE`` vacuum), else None.

    Parameters
    ----------
    ctype : str
        A FITS ``CTYPEn`` value such as ``'AWAV'`` or ``'WAVE-TAB'``.
    """
    if not ctype:
        return None
    return _CTYPE_MEDIUM.get(str(ctype).strip().upper()[:4])


def convert_medium(wavelength, from_medium, to_medium):
    """Convert wavelengths between air and vacuum.

    Uses the Morton (2000) refractive index of air, as implemented in
    :mod:`specutils.utils.wcs_utils`; air to vacuum by iteration, so that the
    two directions are exact inverses (the closed-form inversion is off by
    up to 4e-5 Angstrom, 2 m/s, in the blue).

    Parameters
    ----------
    wavelength : `~astropy.units.Quantity`
        Wavelengths (any length unit).
    from_medium, to_medium : {"air", "vacuum"}

    Returns
    -------
    wavelength : `~astropy.units.Quantity`
        In the unit of the input.
    """
    from specutils.utils.wcs_utils import air_to_vac, vac_to_air  # slow import: on use

    from_medium, to_medium = check_medium(from_medium), check_medium(to_medium)
    if from_medium == to_medium:
        return wavelength
    unit = wavelength.unit
    angstrom = wavelength.to(u.AA)
    converted = (vac_to_air(angstrom) if to_medium == "air"
                 else air_to_vac(angstrom, scheme="iteration"))
    return converted.to(unit)


def resolve_medium(from_wcs, given):
    """Combine the medium a WCS states with the one a user gave; never guess.

    Parameters
    ----------
    from_wcs : str or None
        What the data's spectral WCS says (see :func:`medium_from_ctype`).
    given : str or None
        What the user passed.

    Returns
    -------
    medium : {"air", "vacuum"}

    Raises
    ------
    ValueError
        If the two disagree, or if neither says anything.
    """
    if given is not None:
        given = check_medium(given)
        if from_wcs is not None and from_wcs != given:
            raise ValueError(f"medium={given!r} contradicts the spectral WCS, which says "
                             f"{from_wcs!r}")
        return given
    return check_medium(from_wcs)


def _speed_of_light_kms():
    from astropy.constants import c

    return float(c.to_value(u.km / u.s))


#: The speed of light in km/s (from astropy.constants): the one place the package takes it.
C_KMS = _speed_of_light_kms()


def velocity_to_dlnz(velocity):
    """A velocity (Quantity or km/s) as a step in ln(1 + z) (or ln lambda): v / c."""
    return float(u.Quantity(velocity, u.km / u.s).to_value(u.km / u.s)) / C_KMS
