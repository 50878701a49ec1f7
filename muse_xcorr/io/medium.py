"""The wavelength medium a file states, combined with the one a user gives; never a guess.

A file can state its medium through a spectral ``CTYPE`` (``AWAV`` air, ``WAVE``
vacuum; a frequency axis is vacuum), a ``MEDIUM`` or ``AIRORVAC`` keyword
(values ``air``, ``vac`` or ``vacuum``, any case), or, in an ECSV table, a
``medium`` entry in the table's or the wavelength column's meta. Statements
that disagree are an error; a user's ``medium=`` that contradicts the file is
an error; and when nobody says, the reader refuses to guess: a wrong medium
biases cz by about 80 km/s.
"""
from ..units import check_medium

__all__ = ["MEDIUM_KEYWORDS", "media_from_mapping", "decide_medium"]

#: Header keywords (and table meta keys, in any case) that state a wavelength medium.
MEDIUM_KEYWORDS = ("MEDIUM", "AIRORVAC")


def media_from_mapping(mapping, where):
    """``(medium, source)`` pairs for the medium keywords of a header or meta dict.

    Parameters
    ----------
    mapping : `~astropy.io.fits.Header` or dict or None
    where : str
        The header's HDU and file, for the messages.

    Returns
    -------
    list of (str, str)

    Raises
    ------
    ValueError
        For a keyword whose value is not ``air``, ``vac`` or ``vacuum``.
    """
    if not mapping:
        return []
    upper = {str(key).upper(): key for key in mapping.keys()}
    found = []
    for keyword in MEDIUM_KEYWORDS:
        if keyword not in upper:
            continue
        key = upper[keyword]
        value = mapping[key]
        try:
            medium = check_medium(str(value))
        except ValueError:
            raise ValueError(f"{where}: {key} = {value!r} is not a wavelength medium "
                             "('air' or 'vacuum'); fix it, or pass medium=") from None
        found.append((medium, f"{key} = {value!r} in {where}"))
    return found


def decide_medium(sources, given, path):
    """The medium: from the file's statements and the user's ``medium=``.

    Parameters
    ----------
    sources : list of (str or None, str)
        What each place in the file says (None: nothing) and where it is.
    given : str or None
        The user's ``medium=``.
    path : str
        The file, for the messages.

    Returns
    -------
    medium : {"air", "vacuum"}

    Raises
    ------
    ValueError
        If the file contradicts itself, if ``given`` contradicts the file, or
        if neither says anything (the message tells the user to pass
        ``medium="air"``: MUSE data are in air).
    """
    stated = [(m, s) for m, s in sources if m is not None]
    media = {m for m, _ in stated}
    if len(media) > 1:
        said = "; ".join(f"{s} says {m!r}" for m, s in stated)
        raise ValueError(f"{path} contradicts itself about the wavelength medium ({said}); "
                         "fix the file")
    if given is not None:
        given = check_medium(given)
        if media and given not in media:
            medium, source = stated[0]
            raise ValueError(f"medium={given!r} contradicts {source}, which says "
                             f"{medium!r}; leave medium unset or fix the file")
        return given
    if not media:
        raise ValueError(f"the wavelength medium is unknown: {path} does not say whether its "
                         "wavelengths are in air or vacuum (no spectral CTYPE AWAV/WAVE, no "
                         "MEDIUM or AIRORVAC keyword); pass medium='air' (MUSE data are in "
                         "air) or medium='vacuum'")
    return media.pop()
