"""Seeded synthetic MUSE data: templates, spectra and cubes with a known redshift.

Everything here is generated (no downloaded data), reproducible from a
seed, and shaped like real MUSE data: the nominal-mode wavelength grid
(4750-9350 Angstrom in 1.25 Angstrom steps, 3681 pixels, **air**), flux in
1e-20 erg/s/cm2/Angstrom, a variance that rises at the bright sky lines, and
a celestial WCS with 0.2 arcsec spaxels.
"""
import numpy as np
import astropy.units as u
from astropy.nddata import VarianceUncertainty
from astropy.wcs import WCS

from .templates.lines import LINES
from .spectra import MuseCube, MuseSpectrum
from .templates import Template
from .templates.resample import generator_for

__all__ = ["muse_wavelength", "muse_variance", "make_template", "make_spectrum", "make_cube",
           "observed_models", "kernel_for_rho", "correlated_noise_sample",
           "SKY_LINES", "FLUX_UNIT"]

#: The flux unit of MUSE DATA extensions.
FLUX_UNIT = u.Unit("1e-20 erg / (s cm2 Angstrom)")

#: Bright night-sky emission lines (air, Angstrom) and their relative variance peak.
SKY_LINES = {5577.34: 30.0, 5889.95: 6.0, 5895.92: 6.0, 6300.30: 12.0, 6363.78: 4.0,
             6863.96: 3.0, 7276.41: 3.0, 7316.28: 4.0, 7340.89: 4.0, 7571.75: 3.0,
             7750.64: 5.0, 7794.11: 5.0, 7821.50: 5.0, 7913.71: 6.0, 7993.33: 6.0,
             8344.60: 8.0, 8399.17: 8.0, 8430.17: 6.0, 8465.36: 6.0, 8505.05: 6.0,
             8791.19: 8.0, 8827.10: 10.0, 8885.85: 9.0, 8919.63: 8.0, 8958.11: 10.0,
             9001.11: 9.0, 9038.00: 8.0, 9306.51: 10.0, 9313.97: 10.0, 9340.00: 9.0}


def muse_wavelength(n_pixels=3681, start=4750.0, step=1.25):
    """The MUSE nominal-mode wavelength grid (air, Angstrom).

    Returns
    -------
    wavelength : `~astropy.units.Quantity`
    """
    return (start + step * np.arange(n_pixels)) * u.AA


def muse_variance(wavelength, level=1.5, sky_fwhm=2.6):
    """A MUSE-like variance: a smooth floor plus bright sky-line residuals.

    Parameters
    ----------
    wavelength : `~astropy.units.Quantity`
        Air wavelengths.
    level : float
        The variance floor at 7000 Angstrom in (1e-20 erg/s/cm2/A)^2; 1.5 is
        typical of the 30-hour MUSE UDF mosaic.
    sky_fwhm : float
        FWHM of the sky lines, Angstrom.

    Returns
    -------
    variance : ndarray
    """
    wave = u.Quantity(wavelength, u.AA).value
    floor = level * (1 + 0.6 * ((wave - 7000) / 2300) ** 2 + 4.0 * np.exp(-(wave - 4750) / 120))
    sigma = sky_fwhm / 2.3548
    sky = np.zeros_like(wave)
    for centre, peak in SKY_LINES.items():
        sky += peak * np.exp(-0.5 * ((wave - centre) / sigma) ** 2)
    return floor * (1 + sky)


def make_template(kind="starforming", *, resolution=0.5, wave_range=(900.0, 10000.0),
                  line_width=60.0, name=None):
    """A noiseless rest-frame galaxy template (vacuum) from the line list.

    The lines are those of :data:`~muse_xcorr.templates.lines.LINES`.

    Parameters
    ----------
    kind : {"starforming", "passive", "lines"}
        ``"starforming"``: a blue continuum with a mild 4000 Angstrom break and
        the usual nebular emission lines. ``"passive"``: a red continuum with a
        strong break and the absorption lines only. ``"lines"``: emission
        lines on zero continuum.
    resolution : float
        Sampling step, Angstrom.
    wave_range : tuple of float
        Rest-frame range, Angstrom.
    line_width : float
        Gaussian sigma of the lines, km/s (intrinsic; the MUSE line spread
        adds about 45 km/s at 7000 Angstrom).
    name : str, optional

    Returns
    -------
    template : `~muse_xcorr.Template`
    """
    wave = np.arange(wave_range[0], wave_range[1], resolution)
    break_step = 0.5 * (1 + np.tanh((wave - 4000.0) / 40.0))
    if kind == "starforming":
        flux = (wave / 5000.0) ** -1.2 * (0.75 + 0.25 * break_step)
    elif kind == "passive":
        flux = (wave / 5000.0) ** 0.8 * (0.45 + 0.55 * break_step)
    elif kind == "lines":
        flux = np.zeros_like(wave)
    else:
        raise ValueError(f"unknown template kind {kind!r}: 'starforming', 'passive' or 'lines'")
    continuum_level = np.interp(5000.0, wave, flux) if kind != "lines" else 1.0
    for line, (centre, line_kind, strength) in LINES.items():
        sigma = centre * line_width / 299792.458
        profile = np.exp(-0.5 * ((wave - centre) / sigma) ** 2)
        if line_kind == "emission" and kind in ("starforming", "lines"):
            # equivalent width ~ 20 A per unit strength for the star-forming template
            flux = flux + strength * continuum_level * 20.0 * profile / (sigma * np.sqrt(2 * np.pi))
        elif line_kind == "absorption" and kind == "passive":
            flux = flux * (1 - 2.5 * strength * profile)
    return Template(wave * u.AA, flux, medium="vacuum", name=name or f"synthetic-{kind}")


def observed_models(template, wavelength, z, *, medium="air", lsf="muse"):
    """The noiseless template at redshifts ``z`` on an observed grid, as MUSE records it.

    Redshifted in vacuum, averaged over each observed pixel and spread by the
    line spread (``lsf``: see :func:`muse_xcorr.templates.lsf.lsf_fwhm`; None
    for none), exactly as the correlator models a spectrum.

    Parameters
    ----------
    template : `~muse_xcorr.Template`
    wavelength : `~astropy.units.Quantity`
    z : float or array_like
    medium : {"air", "vacuum"}
        Medium of ``wavelength``.
    lsf : resolution specification or None

    Returns
    -------
    models : ndarray (len(z), n_pixel)
    """
    z = np.atleast_1d(np.asarray(z, dtype=float))
    generator = generator_for(template, wavelength, medium, np.unique(z), lsf=lsf)
    return generator.at_redshifts(z)


def make_spectrum(template=None, z=0.5, snr=30.0, *, seed=None, wavelength=None,
                  variance=None, lsf="muse"):
    """One synthetic MUSE spectrum with a known redshift.

    Parameters
    ----------
    template : `~muse_xcorr.Template`, optional
        Default :func:`make_template`.
    z : float
        The true redshift.
    snr : float
        Matched-filter signal-to-noise ratio, ``sqrt(sum(model**2 / variance))``:
        the S/N of the template's amplitude, to which the Cramer-Rao bound on z
        is inversely proportional.
    seed : int or `numpy.random.Generator`, optional
    wavelength : `~astropy.units.Quantity`, optional
        Observed (air) grid; default :func:`muse_wavelength`.
    variance : ndarray, optional
        Default :func:`muse_variance`.
    lsf : resolution specification or None
        The line spread applied to the model (default MUSE's, as the
        correlator assumes); see :func:`observed_models`.

    Returns
    -------
    spectrum : `~muse_xcorr.MuseSpectrum`
    truth : dict
        ``z``, ``snr``, ``model`` (noiseless flux) and ``amplitude``.
    """
    rng = np.random.default_rng(seed)
    template = template or make_template()
    wave = muse_wavelength() if wavelength is None else wavelength
    var = muse_variance(wave) if variance is None else np.asarray(variance, float)
    shape = observed_models(template, wave, z, lsf=lsf)[0]
    amplitude = snr / np.sqrt(np.sum(shape ** 2 / var))
    model = amplitude * shape
    flux = model + rng.normal(size=wave.size) * np.sqrt(var)
    spectrum = MuseSpectrum(wave, flux * FLUX_UNIT, VarianceUncertainty(var * FLUX_UNIT ** 2),
                            medium="air")
    return spectrum, {"z": float(z), "snr": float(snr), "model": model, "amplitude": amplitude}


def _celestial_wcs(shape, centre=(53.16, -27.78), pixel_arcsec=0.2):
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = list(centre)
    wcs.wcs.crpix = [shape[1] / 2 + 0.5, shape[0] / 2 + 0.5]
    wcs.wcs.cdelt = [-pixel_arcsec / 3600, pixel_arcsec / 3600]
    wcs.wcs.cunit = ["deg", "deg"]
    return wcs


def kernel_for_rho(rho1):
    """The normalised symmetric 3-tap kernel [a, 1, a] / sqrt(1 + 2 a^2) with lag-1 rho1.

    rho1 = 2a / (1 + 2a^2) (at most 1/sqrt(2) for 3 taps); lag 2 is a^2 / (1 + 2a^2).
    """
    rho1 = float(rho1)
    if not 0 <= rho1 < np.sqrt(0.5):
        raise ValueError(f"rho_1 must be in [0, 0.707) for a 3-tap kernel, got {rho1}")
    a = 0.0 if rho1 == 0 else (1 - np.sqrt(1 - 2 * rho1 ** 2)) / (2 * rho1)
    return np.array([a, 1.0, a]) / np.sqrt(1 + 2 * a * a)


def correlated_noise_sample(rng, sigma, rho1):
    """Gaussian noise of per-pixel standard deviation ``sigma`` and lag-1 correlation rho1.

    Parameters
    ----------
    rng : `numpy.random.Generator`
    sigma : ndarray (n_pixel, ...)
        Standard deviation of each pixel; the correlation runs along axis 0.
    rho1 : float
        Lag-1 correlation (white noise through :func:`kernel_for_rho`).
    """
    sigma = np.asarray(sigma, dtype=float)
    kernel = kernel_for_rho(rho1)
    white = rng.normal(size=(sigma.shape[0] + 2,) + sigma.shape[1:])
    return sigma * (kernel[0] * white[:-2] + kernel[1] * white[1:-1] + kernel[2] * white[2:])


def make_cube(shape=(10, 10), template=None, *, z=(0.3, 0.7), snr=30.0, seed=None,
              wavelength=None, nan_fraction=0.0, empty_spaxels=0, lsf="muse", rho1=0.0):
    """A synthetic MUSE cube (n_wave, ny, nx) with a known redshift in every spaxel.

    Parameters
    ----------
    shape : tuple of int
        (ny, nx).
    template : `~muse_xcorr.Template`, optional
    z : float, tuple or ndarray
        A redshift for all spaxels, a (low, high) range drawn uniformly per
        spaxel, or a map of shape ``shape``.
    snr : float or ndarray
        Matched-filter S/N per spaxel (see :func:`make_spectrum`).
    seed : int, optional
    wavelength : `~astropy.units.Quantity`, optional
        Default :func:`muse_wavelength` (3681 pixels; pass a shorter grid
        for quick tests).
    nan_fraction : float
        Fraction of pixels set to NaN at random (in DATA and STAT).
    empty_spaxels : int
        Spaxels set to NaN entirely (they come out flagged NO_DATA).
    lsf : resolution specification or None
        The line spread of the models (default MUSE's).
    rho1 : float
        Correlation of the noise of neighbouring pixels (0 <= rho1 < 0.707:
        white noise through the 3-tap kernel of :func:`kernel_for_rho`), as
        the resampling of the MUSE pipeline makes it; STAT stays the true
        per-pixel variance and knows nothing of it, as in real cubes.

    Returns
    -------
    cube : `~muse_xcorr.MuseCube`
        Air wavelengths, flux in `FLUX_UNIT`, variance uncertainty, celestial WCS.
    truth : dict
        ``z`` and ``snr`` maps, the ``empty`` spaxel mask.
    """
    rng = np.random.default_rng(seed)
    template = template or make_template()
    wave = muse_wavelength() if wavelength is None else wavelength
    ny, nx = shape
    if np.ndim(z) == 1 and len(z) == 2:
        z_map = rng.uniform(z[0], z[1], size=shape)
    else:
        z_map = np.broadcast_to(np.asarray(z, float), shape).copy()
    snr_map = np.broadcast_to(np.asarray(snr, float), shape).copy()
    var = muse_variance(wave)
    models = observed_models(template, wave, z_map.ravel(), lsf=lsf).T  # (n_pixel, n_spaxel)
    amplitude = snr_map.ravel() / np.sqrt(np.sum(models ** 2 / var[:, None], axis=0))
    sigma = np.broadcast_to(np.sqrt(var)[:, None], models.shape)
    noise = correlated_noise_sample(rng, sigma, rho1) if rho1 else \
        rng.normal(size=models.shape) * sigma
    data = (models * amplitude + noise).reshape(wave.size, ny, nx)
    stat = np.broadcast_to(var[:, None, None], data.shape).copy()
    if nan_fraction > 0:
        holes = rng.random(data.shape) < nan_fraction
        data[holes] = np.nan
        stat[holes] = np.nan
    empty = np.zeros(shape, bool)
    if empty_spaxels:
        empty.ravel()[rng.choice(ny * nx, size=empty_spaxels, replace=False)] = True
        data[:, empty] = np.nan
    cube = MuseCube(wave, data.astype(np.float32) * FLUX_UNIT,
                    VarianceUncertainty(stat.astype(np.float32) * FLUX_UNIT ** 2),
                    medium="air", spectral_axis_index=0, wcs=_celestial_wcs(shape))
    return cube, {"z": z_map, "snr": snr_map, "empty": empty}
