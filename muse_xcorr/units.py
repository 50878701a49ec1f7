"""Wavelengths: their unit and their medium (air or vacuum), decided and converted here only."""
import re

import numpy as np
import astropy.units as u

__all__ = ["MEDIA", "AIR_MIN_WAVELENGTH", "as_angstrom", "check_medium", "medium_from_ctype",
           "resolve_medium", "convert_medium", "parse_wavelength_unit", "C_KMS",
           "velocity_to_dlnz"]

#: The wavelength media the package knows.
MEDIA = ("air", "vacuum")

#: Air wavelengths are defined only above this wavelength (Angstrom); below it,
#: "air" wavelengths are by convention vacuum wavelengths (IAU; Morton 1991, 2000).
AIR_MIN_WAVELENGTH = 2000.0

# the FITS spectral CTYPE codes (WCS Paper III) and the medium their wavelengths are in:
# air and vacuum wavelengths, and the frequency-like axes, which have no medium and so
# convert to vacuum wavelengths (lambda = c / nu). Velocity axes are not wavelengths.
_CTYPE_MEDIUM = {"AWAV": "air", "WAVE": "vacuum", "FREQ": "vacuum", "AFRQ": "vacuum",
                 "ENER": "vacuum", "WAVN": "vacuum"}
_CTYPE_CODE = re.compile(r"^(?P<code>[A-Z]{4})(-[A-Z0-9]{1,3})?$")

# spellings of length units met in wavelength columns (TUNIT, ASCII headers) that the
# FITS and generic unit parsers do not take, or take as something else ("A" is the ampere)
_WAVELENGTH_ALIASES = {
    "a": "Angstrom", "aa": "Angstrom", "ang": "Angstrom", "angs": "Angstrom",
    "angstrom": "Angstrom", "angstroms": "Angstrom", "angstroem": "Angstrom",
    "angstroems": "Angstrom", "\u00c5": "Angstrom", "nm": "nm", "nanometer": "nm",
    "nanometers": "nm", "nanometre": "nm", "nanometres": "nm", "um": "um", "micron": "um",
    "microns": "um", "micrometer": "um", "micrometers": "um", "m": "m", "meter": "m",
    "meters": "m", "metre": "m", "metres": "m"}


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
    """The medium a FITS spectral CTYPE implies, else None.

    ``AWAV`` is air and ``WAVE`` vacuum; the frequency-like axes ``FREQ``,
    ``AFRQ``, ``ENER`` and ``WAVN`` have no medium, so their wavelengths
    (:math:`\\lambda = c / \\nu`) are vacuum wavelengths. Anything else
    (``LINEAR``, a velocity axis, a non-standard ``WAVELENGTH``) says nothing.

    Parameters
    ----------
    ctype : str
        A FITS ``CTYPEn`` value such as ``'AWAV'`` or ``'WAVE-TAB'`` (the four-letter
        code, optionally followed by ``-`` and an algorithm code).

    Returns
    -------
    medium : {"air", "vacuum"} or None
    """
    if not ctype:
        return None
    match = _CTYPE_CODE.match(str(ctype).strip().upper())
    return _CTYPE_MEDIUM.get(match["code"]) if match else None


def convert_medium(wavelength, from_medium, to_medium):
    """Convert wavelengths between air and vacuum.

    Uses the Morton (2000) refractive index of air, as implemented in
    :mod:`specutils.utils.wcs_utils`; air to vacuum by iteration, so that the
    two directions are exact inverses (the closed-form inversion is off by
    up to 4e-5 Angstrom, 2 m/s, in the blue).

    Air wavelengths are defined only above :data:`AIR_MIN_WAVELENGTH` (2000 Å);
    below it, "air" wavelengths are by convention vacuum wavelengths (the IAU
    convention followed by line lists and template atlases, e.g. Morton 1991),
    so the conversion leaves them unchanged in both directions. This is the
    only place in the package where that convention is applied.

    The convention makes the conversion jump at 2000 Å: air 2000 Å is vacuum
    2000.648 Å (the refraction there is 3.24e-4, 97 km/s), while air
    1999.999 Å stays 1999.999 Å. So:

    * air to vacuum is strictly increasing (the jump is upwards): an air grid
      crossing 2000 Å stays strictly increasing in vacuum, with one step
      0.648 Å wider than in air;
    * vacuum wavelengths from 2000 Å to 2000.648 Å have no air counterpart
      (no air wavelength converts to them); vacuum to air maps them to
      2000 Å exactly, so a vacuum grid crossing 2000 Å converts to an air grid
      that never decreases (without the clamp, vacuum 2000.0 Å would become air
      1999.35 Å, below air 1999.9 Å). It is strictly increasing unless two or
      more samples fall in that 0.648 Å gap.

    Every air wavelength converts to vacuum and back exactly (to 1e-9 Å).

    Parameters
    ----------
    wavelength : `~astropy.units.Quantity`
        Wavelengths (any length unit), a scalar or an array.
    from_medium, to_medium : {"air", "vacuum"}

    Returns
    -------
    wavelength : `~astropy.units.Quantity`
        In the unit of the input, of the same shape.
    """
    from_medium, to_medium = check_medium(from_medium), check_medium(to_medium)
    if from_medium == to_medium:
        return wavelength
    from specutils.utils.wcs_utils import air_to_vac, vac_to_air  # slow import: on use

    unit = wavelength.unit
    angstrom = np.array(wavelength.to_value(u.AA), dtype=float, ndmin=1)
    converted = np.full(angstrom.shape, np.nan)
    if to_medium == "vacuum":
        defined = angstrom >= AIR_MIN_WAVELENGTH
        if np.any(defined):
            converted[defined] = air_to_vac(angstrom[defined] * u.AA,
                                            scheme="iteration").to_value(u.AA)
    else:
        # the vacuum wavelength of air AIR_MIN_WAVELENGTH: below 2000 A nothing changes;
        # from 2000 A to there, no air wavelength exists (the gap: clamped to 2000 A)
        gap_end = air_to_vac(np.array([AIR_MIN_WAVELENGTH]) * u.AA,
                             scheme="iteration").to_value(u.AA)[0]
        defined = angstrom >= AIR_MIN_WAVELENGTH
        above = angstrom >= gap_end
        if np.any(above):
            converted[above] = vac_to_air(angstrom[above] * u.AA).to_value(u.AA)
        # the gap, and rounding at its end, must not step below 2000 A either
        converted[defined] = np.maximum(np.nan_to_num(converted[defined],
                                                      nan=AIR_MIN_WAVELENGTH),
                                        AIR_MIN_WAVELENGTH)
    # values left unchanged keep their exact input value, in the input unit
    out = np.array(wavelength.value, dtype=float, ndmin=1, copy=True)
    out[defined] = (converted[defined] * u.AA).to_value(unit)
    return u.Quantity(out.reshape(np.shape(wavelength)), unit, copy=False)


def resolve_medium(from_wcs, given, *, source=None):
    """Combine the medium a file or WCS states with the one a user gave; never guess.

    Parameters
    ----------
    from_wcs : str or None
        What the data's spectral WCS (or file) says (see :func:`medium_from_ctype`).
    given : str or None
        What the user passed.
    source : str, optional
        Where ``from_wcs`` comes from (e.g. ``"CTYPE3='FREQ' in cube.fits"``),
        for the error messages.

    Returns
    -------
    medium : {"air", "vacuum"}

    Raises
    ------
    ValueError
        If the two disagree, or if neither says anything.
    """
    where = source or "the spectral WCS"
    if given is not None:
        given = check_medium(given)
        if from_wcs is not None and from_wcs != given:
            raise ValueError(f"medium={given!r} contradicts {where}, which says "
                             f"{from_wcs!r}")
        return given
    return check_medium(from_wcs)


def parse_wavelength_unit(text):
    """The length (or frequency/energy) unit of a wavelength column or axis.

    Takes the FITS and generic astropy spellings and the ones met in the wild
    that those parsers refuse or misread: ``ANGSTROMS``, ``Angstroem``, ``AA``,
    ``A`` (the ampere to astropy; in a wavelength column it is the Angstrom),
    ``microns``...

    Parameters
    ----------
    text : str or `~astropy.units.UnitBase` or None

    Returns
    -------
    unit : `~astropy.units.UnitBase` or None
        None when ``text`` is empty or None.

    Raises
    ------
    ValueError
        If the text is no unit, or not a length, frequency or energy.
    """
    if text is None:
        return None
    if isinstance(text, u.UnitBase) and not isinstance(text, u.UnrecognizedUnit):
        unit = text
    else:
        raw = str(text).strip()
        if not raw:
            return None
        alias = _WAVELENGTH_ALIASES.get(raw.lower())
        unit = None
        for candidate, fmt in ((alias, "generic"), (raw, "fits"), (raw, "generic")):
            if candidate is None:
                continue
            try:
                unit = u.Unit(candidate, format=fmt)
                break
            except ValueError:
                continue
        if unit is None:
            raise ValueError(f"cannot parse the wavelength unit {raw!r}")
    if unit == u.A:  # a bare 'A' already parsed: the ampere is no wavelength
        unit = u.AA
    if not (1 * unit).unit.is_equivalent(u.AA, equivalencies=u.spectral()):
        raise ValueError(f"the wavelength unit {unit} is not a length, frequency or energy")
    return unit


def _speed_of_light_kms():
    from astropy.constants import c

    return float(c.to_value(u.km / u.s))


#: The speed of light in km/s (from astropy.constants): the one place the package takes it.
C_KMS = _speed_of_light_kms()


def velocity_to_dlnz(velocity):
    """A velocity (Quantity or km/s) as a step in ln(1 + z) (or ln lambda): v / c."""
    return float(u.Quantity(velocity, u.km / u.s).to_value(u.km / u.s)) / C_KMS
