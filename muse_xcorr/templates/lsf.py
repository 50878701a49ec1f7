"""The line spread function (LSF): MUSE's, or a user-given resolution, and template convolution.

The LSF acts on **observed** wavelengths. A template is a rest-frame
spectrum, so at redshift z a line of observed width FWHM_obs(lambda_obs) has
rest-frame width FWHM_obs(lambda_rest (1 + z)) / (1 + z). A template can only
be convolved for one redshift at a time: :func:`convolve_lsf` convolves it
for a reference redshift ``z``. Away from that redshift the convolved width
is wrong by the factor computed by :func:`width_mismatch`; docs/templates.rst
gives the measured effect on f and z for the MUSE LSF.

The MUSE LSF is the Gaussian approximation fitted to the UDF data by Bacon
et al. (2017, A&A 608, A1, eq. 8):
``FWHM = 5.866e-8 lambda^2 - 9.187e-4 lambda + 6.040`` (Angstrom, lambda in
Angstrom), i.e. 3.00 A at 4750 A, 2.48 A at 7000 A and 2.58 A at 9350 A.
"""
import numpy as np
import astropy.units as u
from scipy.ndimage import gaussian_filter1d

__all__ = ["MUSE_LSF_COEFFICIENTS", "muse_fwhm", "lsf_fwhm", "convolve_lsf", "width_mismatch"]

#: Coefficients (a, b, c) of FWHM = a lambda^2 + b lambda + c in Angstrom (Bacon et al. 2017).
MUSE_LSF_COEFFICIENTS = (5.866e-8, -9.187e-4, 6.040)

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
            fwhm = lam * float((resolution / (299792.458 * u.km / u.s)).decompose())
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


def width_mismatch(wavelength_rest, z, z_reference, resolution="muse"):
    """Ratio of the LSF width a template convolved at ``z_reference`` has at ``z`` to the true one.

    Parameters
    ----------
    wavelength_rest : `~astropy.units.Quantity`
        Rest-frame wavelengths of template features.
    z, z_reference : float or ndarray
    resolution : see :func:`lsf_fwhm`

    Returns
    -------
    ratio : ndarray
        Observed-frame FWHM of the convolution applied, divided by the
        instrument's FWHM at the observed wavelength (1 = exact).
    """
    rest = u.Quantity(wavelength_rest, u.AA)
    z, z_reference = np.asarray(z, float), np.asarray(z_reference, float)
    applied = lsf_fwhm(rest * (1 + z_reference), resolution) / (1 + z_reference) * (1 + z)
    true = lsf_fwhm(rest * (1 + z), resolution)
    return (applied / true).to_value(u.dimensionless_unscaled)


def convolve_lsf(template, z=0.0, resolution="muse", *, oversample=5.0):
    """Convolve a rest-frame template with the LSF the data have at redshift ``z``.

    The Gaussian's rest-frame FWHM at rest wavelength lambda is
    ``FWHM_obs(lambda (1 + z)) / (1 + z)``, with FWHM_obs evaluated at the
    observed vacuum wavelength (MUSE specifies it in air; the 3e-4 relative
    difference changes the MUSE FWHM by less than 1e-4 Angstrom). The wavelength-dependent
    convolution is done exactly for a slowly varying width: the template is
    resampled (linearly, as :class:`~muse_xcorr.Template` interpolates) onto a
    grid uniform in ``u = integral d lambda / sigma(lambda)``, where the kernel
    is a unit Gaussian, convolved there, and returned on that grid.

    Parameters
    ----------
    template : `~muse_xcorr.Template`
    z : float
        The reference redshift (see the module notes for the error elsewhere).
    resolution : see :func:`lsf_fwhm`
    oversample : float
        Samples per LSF sigma on the output grid (at least the template's own
        sampling is kept).

    Returns
    -------
    convolved : `~muse_xcorr.Template`
        In vacuum, named ``<name>+lsf``, with ``meta['lsf_z']`` and
        ``meta['lsf_resolution']``.
    """
    from .template import Template

    z = float(z)
    if not z > -1:
        raise ValueError(f"the reference redshift must be > -1, got {z}")
    rest = template.vacuum_wavelength()
    observed = rest * (1 + z) * u.AA
    sigma = lsf_fwhm(observed, resolution).to_value(u.AA) / _FWHM_PER_SIGMA / (1 + z)
    # u(lambda) = integral of d lambda / sigma: the kernel has unit width in u
    steps = np.diff(rest) * 0.5 * (1 / sigma[1:] + 1 / sigma[:-1])
    u_nodes = np.concatenate([[0.0], np.cumsum(steps)])
    finest = np.min(np.diff(u_nodes))
    step = min(1.0 / oversample, finest)
    margin = 5.0
    u_grid = np.arange(u_nodes[0] - margin, u_nodes[-1] + margin + step, step)
    flux = np.interp(u_grid, u_nodes, template.flux, left=0.0, right=0.0)
    # the template is zero outside its range; pad with the edge values instead so
    # that a continuum is not dimmed near the ends
    flux[u_grid < u_nodes[0]] = template.flux[0]
    flux[u_grid > u_nodes[-1]] = template.flux[-1]
    smoothed = gaussian_filter1d(flux, 1.0 / step, mode="nearest", truncate=6.0)
    inside = (u_grid >= u_nodes[0]) & (u_grid <= u_nodes[-1])
    wave = np.interp(u_grid[inside], u_nodes, rest)
    meta = dict(template.meta, lsf_z=z, lsf_resolution=str(resolution))
    name = f"{template.name}+lsf" if template.name else "lsf"
    return Template(wave * u.AA, smoothed[inside], medium="vacuum", name=name, meta=meta)
