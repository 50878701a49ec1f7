"""The line spread function (LSF) of the data: MUSE's, or a resolution the user gives.

The LSF acts on **observed** wavelengths, so the correlator applies it
where it is defined: to every template column on the observed pixel grid
(:class:`~muse_xcorr.templates.resample.ColumnGenerator`), as a band of
Gaussian weights over each pixel's neighbours (:func:`band_kernel`). It is
then right at every redshift, with no reference redshift to choose.

The MUSE LSF is the Gaussian approximation fitted to the UDF data by Bacon
et al. (2017, A&A 608, A1, eq. 8):
``FWHM = 5.866e-8 lambda^2 - 9.187e-4 lambda + 6.040`` (Angstrom, lambda in
Angstrom), i.e. 3.00 A at 4750 A, 2.48 A at 7000 A and 2.58 A at 9350 A. It
was measured on the pixels of the cube, so it includes the pixel width; a
template column is already a mean over each pixel, and the band kernel
supplies the rest: a Gaussian of variance ``sigma_LSF^2 - width^2 / 12``.
"""
import numpy as np
import astropy.units as u

from ..units import C_KMS

__all__ = ["MUSE_LSF_COEFFICIENTS", "muse_fwhm", "lsf_fwhm", "band_kernel", "TRUNCATE"]

#: Coefficients (a, b, c) of FWHM = a lambda^2 + b lambda + c in Angstrom (Bacon et al. 2017).
MUSE_LSF_COEFFICIENTS = (5.866e-8, -9.187e-4, 6.040)

#: Half-width of the band kernel in units of the kernel's sigma.
TRUNCATE = 5.0

_FWHM_PER_SIGMA = np.sqrt(8 * np.log(2))


def muse_fwhm(wavelength):
    """The MUSE line spread FWHM at observed wavelengths (Bacon et al. 2017, eq. 8).

    Parameters
    ----------
    wavelength : `~astropy.units.Quantity`
        Observed wavelengths (the fit is valid over 4750-9350 Angstrom; it is
        evaluated as is outside).

    Returns
    -------
    fwhm : `~astropy.units.Quantity`
        In Angstrom.
    """
    lam = u.Quantity(wavelength).to_value(u.AA, equivalencies=u.spectral())
    a, b, c = MUSE_LSF_COEFFICIENTS
    return (a * lam ** 2 + b * lam + c) * u.AA


def lsf_fwhm(wavelength, resolution="muse"):
    """The line spread FWHM at observed wavelengths for a resolution specification.

    Parameters
    ----------
    wavelength : `~astropy.units.Quantity`
        Observed wavelengths.
    resolution : "muse", `~astropy.units.Quantity` or float
        ``"muse"``: :func:`muse_fwhm`. A length Quantity: a constant FWHM
        (e.g. ``2.5 * u.AA``). A velocity Quantity: a constant velocity FWHM.
        A plain number: the resolving power R = lambda / FWHM.

    Returns
    -------
    fwhm : `~astropy.units.Quantity`
        In Angstrom, the shape of ``wavelength``.
    """
    lam = u.Quantity(wavelength).to(u.AA, equivalencies=u.spectral())
    if isinstance(resolution, str):
        if resolution.lower() != "muse":
            raise ValueError(f"unknown resolution {resolution!r}: 'muse', a FWHM Quantity "
                             "or a resolving power R")
        return muse_fwhm(lam)
    if isinstance(resolution, u.Quantity):
        if resolution.unit.physical_type == "length":
            fwhm = np.broadcast_to(resolution.to_value(u.AA), lam.shape) * u.AA
        elif resolution.unit.physical_type == "speed":
            fwhm = lam * resolution.to_value(u.km / u.s) / C_KMS
        else:
            raise u.UnitTypeError(f"a resolution FWHM must be a length or a velocity, got "
                                  f"{resolution.unit}")
    else:
        power = float(resolution)
        if not power > 0:
            raise ValueError(f"the resolving power R must be positive, got {resolution}")
        fwhm = lam / power
    if not np.all(fwhm.value > 0):
        raise ValueError("the line spread FWHM must be positive")
    return u.Quantity(fwhm, u.AA)


def band_kernel(wavelength, resolution="muse"):
    """Line-spread weights of each observed pixel over its neighbours.

    Parameters
    ----------
    wavelength : `~astropy.units.Quantity`, shape (n_pixel,)
        Observed pixel centres (increasing).
    resolution : see :func:`lsf_fwhm`

    Returns
    -------
    kernel : ndarray, shape (n_pixel, 2 h + 1)
        ``kernel[j, h + o]`` weights pixel ``j + o`` in pixel ``j``; rows sum
        to 1. The Gaussian has the LSF's variance less the pixel's own
        (``width^2 / 12``: the columns are already pixel means), in pixels,
        truncated at :data:`TRUNCATE` of its sigma. A pixel narrower than
        the LSF allows (no variance left) gets the weight 1 on itself.
    """
    lam = u.Quantity(wavelength).to_value(u.AA)
    width = np.gradient(lam)
    sigma = lsf_fwhm(lam * u.AA, resolution).to_value(u.AA) / _FWHM_PER_SIGMA
    variance = np.clip((sigma / width) ** 2 - 1.0 / 12.0, 0.0, None)
    sigma_pixels = np.sqrt(variance)
    half = max(int(np.ceil(TRUNCATE * sigma_pixels.max())), 1)
    offsets = np.arange(-half, half + 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        weights = np.exp(-0.5 * (offsets[None, :] / sigma_pixels[:, None]) ** 2)
    point = ~(sigma_pixels > 0)
    weights[point] = (offsets == 0).astype(float)
    weights[np.abs(offsets)[None, :] > TRUNCATE * sigma_pixels[:, None] + 0.5] = 0.0
    weights[point] = (offsets == 0).astype(float)
    return weights / weights.sum(axis=1, keepdims=True)
