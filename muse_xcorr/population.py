"""A simulated MUSE deep-field population: the objects of a MUSE Hubble Ultra Deep Field spectrum
list, with MUSE's noise, for measuring how well redshifts are recovered.

:func:`make_population` draws ``n`` independent objects of the classes below,
each a noiseless rest-frame spectrum (emission lines from
:meth:`Template.from_lines <muse_xcorr.Template.from_lines>` with randomly
drawn physical parameters, on continua and absorption spectra written here),
puts it on the MUSE grid with :func:`muse_xcorr.datasets.observed_models`
(redshifted in vacuum, the MUSE line spread at the observed wavelength, air
wavelengths), scales it so that its strongest feature has a drawn S/N and adds
MUSE-like noise: a real (or the default) variance shape, noise correlated
between neighbouring pixels, sky-line residuals beyond the variance, and the
AO laser notch. Nothing here uses the recipes of the package's default
templates (``muse_xcorr/data/templates``): the population is meant to
measure them.

Classes (default mix, roughly that of the MUSE HUDF redshift catalogue,
Inami et al. 2017, A&A 608, A2, and Bacon et al. 2017, A&A 608, A1):

=========== ====== ===============================================================
class       share  what
=========== ====== ===============================================================
``lae``      45 %  Lyman-alpha emitters, 2.9 < z < 6.6 (:func:`lae_spectrum`)
``oii``      25 %  [OII] emitters, 0.3 < z < 1.5 (:func:`nebular_spectrum`)
``oiii_ha``   8 %  low-z galaxies whose main line is [OIII] 5007 or H-alpha, 0.01-0.85
``ciii``      5 %  CIII] 1908 emitters, 1.5 < z < 2.9 (:func:`ciii_spectrum`)
``uv_abs``    4 %  UV continua with interstellar absorption only, 1.5-3.2 (:func:`uv_abs_spectrum`)
``passive``   6 %  early-type galaxies, 0.1-1.3, and nuclei at z < 0.02 (:func:`passive_spectrum`)
``star``      2 %  stars, abs(v) < 300 km/s (:func:`star_spectrum`)
``noise``     5 %  empty sky: noise only, z NaN
=========== ====== ===============================================================

Each class's draws, with their references, are documented in its function.
The **strongest feature** of an object is the one with the largest
matched-filter S/N, ``sqrt(sum_j s_j^2 / v_j)`` over the valid pixels (finite,
positive STAT, outside the AO notch when the object has one), where ``s`` is the
noiseless observed model of that feature alone: one emission line or doublet
(e.g. ``[OII]3727`` = both lines of the doublet, ``Lya`` with its blue bump)
on no continuum, or ``absorption``, the whole absorption-line spectrum (the
model minus the same object's line-free continuum, breaks included in that
continuum). Its S/N is drawn log-uniformly in ``snr``. A feature centred off the grid,
or with less than half its S/N left outside the AO notch, does not count (an
object left with none is drawn again at another redshift). The emission classes
``oii``, ``oiii_ha`` and ``ciii`` are defined, as in the MUSE catalogues, by
their main line: their line ratios are redrawn (within the stated ranges) until
that line is the strongest feature.

Noise (as in MUSE data, Bacon et al. 2017; Weilbacher et al. 2020, A&A 641, A28):

* the variance is a shape drawn from ``variance`` (e.g. real STAT spectra)
  times a per-object level drawn log-uniformly in ``noise_scale``;
* the noise is Gaussian, convolved along wavelength with a symmetric 3-tap
  kernel ``[a, 1, a]`` and scaled back, so that every pixel has exactly the
  variance STAT reports while neighbours are correlated with the lag-1
  coefficient ``rho_1 = 2a / (1 + 2a^2)`` (lag 2: ``a^2 / (1 + 2a^2)``) that
  STAT ignores (science.md section 7; the UDF mosaic excerpt in
  ``shared/data`` has rho_1 ~ 0.16, the MXDF TDOSE spectra 0.3-0.5);
* in a fraction ``sky_residuals`` of the objects, residuals of the bright sky
  lines (:data:`muse_xcorr.datasets.SKY_LINES`), each present with probability
  1/2: a Gaussian of random sign or a P-Cygni-like antisymmetric profile (the
  derivative of a Gaussian: a wavelength-calibration or line-spread mismatch)
  of the LSF width, with a peak amplitude of 2-5 times the STAT sigma there;
* in a fraction ``ao_fraction``, the AO laser notch: the flux is exactly 0 over
  5800-5966 A and the STAT there NaN, 0 or finite (as in the MXDF TDOSE tables
  of ``shared/data``, which have NaN or 0).

Examples
--------
>>> from muse_xcorr.population import make_population
>>> cube, truth = make_population(20, seed=1)
>>> cube.flux.shape
(3681, 1, 20)
>>> [int(sum(truth["class"] == c)) for c in ("lae", "oii", "noise")]
[9, 5, 1]
"""
import functools

import numpy as np
import astropy.units as u
from astropy.nddata import VarianceUncertainty
from astropy.table import Table

from .units import C_KMS, convert_medium
from .spectra import MuseCube
from .templates import Template
from .templates.lines import LINES, gaussian_profile, lya_profile
from .templates.lsf import lsf_fwhm
from .datasets import (FLUX_UNIT, SKY_LINES, correlated_noise_sample, kernel_for_rho,
                       muse_variance, muse_wavelength, observed_models)

__all__ = ["make_population", "CLASSES", "DEFAULT_MIX", "AO_NOTCH", "REST_WAVELENGTHS",
           "ISM_LINES", "lae_spectrum", "nebular_spectrum", "ciii_spectrum", "uv_abs_spectrum",
           "passive_spectrum", "star_spectrum", "igm_transmission", "draw_redshift",
           "kernel_for_rho", "correlated_noise_sample", "ObjectSpectrum"]

#: The classes, in the order of :data:`DEFAULT_MIX`.
CLASSES = ("lae", "oii", "oiii_ha", "ciii", "uv_abs", "passive", "star", "noise")

#: Default class fractions, roughly those of the MUSE HUDF catalogue (Inami et al. 2017).
DEFAULT_MIX = {"lae": 0.45, "oii": 0.25, "oiii_ha": 0.08, "ciii": 0.05, "uv_abs": 0.04,
               "passive": 0.06, "star": 0.02, "noise": 0.05}

#: The AO laser notch of MUSE WFM-AO data (air, Angstrom): flux 0 there.
AO_NOTCH = (5800.0, 5966.0)

_SQRT2PI = np.sqrt(2 * np.pi)


def _vacuum(air):
    """Vacuum wavelength (Angstrom) of an air wavelength (Angstrom)."""
    return float(convert_medium(np.atleast_1d(air) * u.AA, "air", "vacuum").to_value(u.AA)[0])


# ---------------------------------------------------------------------------- line lists
#: Vacuum rest wavelengths (Angstrom) of the lines used here beyond
#: :data:`muse_xcorr.templates.lines.LINES`. UV (< 2000 A and the FeII/MgII
#: resonance lines): Morton (2003, ApJS 149, 205) for the interstellar lines,
#: NIST ASD for the nebular intercombination lines. Optical nebular lines:
#: NIST / the SDSS line list (vacuum). Stellar lines and bands: NIST (or the
#: Lick band centres of Worthey et al. 1994, ApJS 94, 687) in air, converted.
REST_WAVELENGTHS = {
    # interstellar absorption (Morton 2003)
    "SiII1260": 1260.4221, "OI1302": 1302.1685, "SiII1304": 1304.3702, "CII1334": 1334.5323,
    "SiIV1394": 1393.7602, "SiIV1403": 1402.7729, "SiII1527": 1526.7070,
    "CIV1548abs": 1548.204, "CIV1551abs": 1550.781, "FeII1608": 1608.4511,
    "AlII1671": 1670.7886, "AlIII1855": 1854.7184, "AlIII1863": 1862.7910,
    "FeII2344": 2344.2139, "FeII2374": 2374.4612, "FeII2383": 2382.7652,
    "FeII2587": 2586.6500, "FeII2600": 2600.1729, "MgII2796abs": 2796.3543,
    "MgII2804abs": 2803.5315, "MgI2853": 2852.9631, "Lya_abs": 1215.67,
    # UV nebular (NIST)
    "OIII]1661": 1660.809, "OIII]1666": 1666.150, "SiIII]1883": 1882.707,
    "SiIII]1892": 1892.030,
    # optical nebular (NIST / SDSS, vacuum)
    "Hepsilon": 3971.195, "H8": 3890.151, "[OIII]4363": 4364.436, "HeI4471": 4472.735,
    "[OI]6364": 6365.536, "HeI6678": 6679.995, "HeI7065": 7067.138,
    # stellar (air -> vacuum)
    "CaI4227": _vacuum(4226.73), "Fe4383": _vacuum(4383.55), "Fe4531": _vacuum(4531.15),
    "C2_4668": _vacuum(4668.0), "MgI5167": _vacuum(5167.32), "MgI5173": _vacuum(5172.68),
    "MgI5184": _vacuum(5183.60), "Fe5270": _vacuum(5269.54), "Fe5335": _vacuum(5331.5),
    "Fe5406": _vacuum(5405.77), "NaI5890": _vacuum(5889.95), "NaI5896": _vacuum(5895.92),
    "KI7665": _vacuum(7664.90), "KI7699": _vacuum(7698.96), "OI7774": _vacuum(7773.4),
    "NaI8183": _vacuum(8183.26), "NaI8195": _vacuum(8194.82),
    "CaT8498": _vacuum(8498.02), "CaT8542": _vacuum(8542.09), "CaT8662": _vacuum(8662.14),
    "Pa16": _vacuum(8502.48), "Pa15": _vacuum(8545.38), "Pa14": _vacuum(8598.39),
    "Pa13": _vacuum(8665.02), "Pa12": _vacuum(8750.47), "Pa11": _vacuum(8862.78),
    "Pa10": _vacuum(9014.91), "Pa9": _vacuum(9229.01),
    # TiO band heads (air; degraded to the red)
    "TiO6159": _vacuum(6158.8), "TiO6651": _vacuum(6651.0), "TiO7054": _vacuum(7053.6),
    "TiO7589": _vacuum(7589.0), "TiO8432": _vacuum(8432.0), "TiO8859": _vacuum(8859.0),
}

#: Interstellar absorption lines of a UV-continuum galaxy: name -> rest EW (Angstrom, > 0
#: for absorption). Lines below 2000 A: the LBG composite of Shapley et al. (2003,
#: ApJ 588, 65, Table 3; the OI+SiII 1303 and CIV blends split 55:45). FeII 2344-2600,
#: MgII and MgI (beyond that composite): approximately the stacks of z ~ 1-1.5
#: star-forming galaxies of Rubin et al. (2010, ApJ 719, 1503) and Martin et al.
#: (2012, ApJ 760, 127).
ISM_LINES = {"SiII1260": 1.63, "OI1302": 1.21, "SiII1304": 0.99, "CII1334": 1.72,
             "SiIV1394": 1.83, "SiIV1403": 0.81, "SiII1527": 1.72, "CIV1548abs": 1.67,
             "CIV1551abs": 1.36, "FeII1608": 0.91, "AlII1671": 1.04, "AlIII1855": 0.61,
             "AlIII1863": 0.34, "FeII2344": 1.6, "FeII2374": 0.9, "FeII2383": 1.8,
             "FeII2587": 1.3, "FeII2600": 1.9, "MgII2796abs": 2.2, "MgII2804abs": 1.9,
             "MgI2853": 0.8}

#: Doublets and blends whose lines form one feature (for the strongest-feature S/N).
FEATURE_GROUPS = {
    "[OII]3726": "[OII]3727", "[OII]3729": "[OII]3727", "[SII]6716": "[SII]6724",
    "[SII]6731": "[SII]6724", "CIII]1907": "CIII]1908", "CIII]1909": "CIII]1908",
    "CIV1548": "CIV1549", "CIV1551": "CIV1549", "MgII2796": "MgII2800", "MgII2804": "MgII2800",
    "OIII]1661": "OIII]1663", "OIII]1666": "OIII]1663", "SiIII]1883": "SiIII]1888",
    "SiIII]1892": "SiIII]1888", "Lya": "Lya", "Lya_blue": "Lya",
}

#: Cardelli, Clayton & Mathis (1989) k(lambda) = A(lambda) / E(B-V), R_V = 3.1, at the
#: Balmer lines (used to redden the higher Balmer lines consistently with H-alpha/H-beta).
_K_BALMER = {"Halpha": 2.53, "Hbeta": 3.61, "Hgamma": 4.17, "Hdelta": 4.44,
             "Hepsilon": 4.60, "H8": 4.66}
#: Case B intrinsic ratios to H-beta (T = 1e4 K, n = 1e2 cm^-3; Osterbrock & Ferland 2006).
_CASE_B = {"Halpha": 2.86, "Hbeta": 1.0, "Hgamma": 0.468, "Hdelta": 0.259,
           "Hepsilon": 0.159, "H8": 0.105}


def rest_wavelength(name):
    """Vacuum rest wavelength (Angstrom) of a line of :data:`REST_WAVELENGTHS` or ``LINES``."""
    if name in REST_WAVELENGTHS:
        return REST_WAVELENGTHS[name]
    if name == "Lya_blue":
        return LINES["Lya"][0]
    return LINES[name][0]


# ---------------------------------------------------------------------------- draws
def _loguniform(rng, low, high):
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def _tabulated(rng, nodes, density):
    """One draw from a piecewise-linear density given at ``nodes``."""
    x = np.linspace(nodes[0], nodes[-1], 2001)
    p = np.interp(x, nodes, density)
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (p[1:] + p[:-1]) * np.diff(x))])
    return float(np.interp(rng.uniform(0, cdf[-1]), cdf, x))


def draw_redshift(cls, rng):
    """The redshift of one object of class ``cls`` (see each class's function).

    * ``lae``: 2.9 + Gamma(shape 1.6, scale 0.75), truncated at 6.6 (mode 3.35, median
      ~3.9, ~60 % at 3-4.5), as the LAE redshift histograms of the MUSE HUDF
      (Inami et al. 2017, fig. 20) and MUSE-Wide (Herenz et al. 2017, A&A 606, A12).
    * ``oii``: 0.3-1.5, density rising from 0.4 at z = 0.3 to 1 at 0.7-1.1 and 0.6
      at 1.5 ([OII] emitters of Inami et al. 2017, fig. 20, approximately).
    * ``oiii_ha``: 0.01-0.85, density 0.1 at z = 0.01 rising to 1 at 0.6 (small volume
      at low z).
    * ``ciii``: uniform 1.5-2.9; ``uv_abs``: uniform 1.5-3.2.
    * ``passive``: 90 % uniform in 0.1-1.3, 10 % uniform in 0.001-0.02 (nuclei of nearby
      galaxies, like the FCC 47 nuclear star cluster in ``shared/data``).
    * ``star``: ``v / c`` with v uniform in -300..300 km/s.
    * ``noise``: NaN.
    """
    if cls == "lae":
        while True:
            z = 2.9 + rng.gamma(1.6, 0.75)
            if z < 6.6:
                return float(z)
    if cls == "oii":
        return _tabulated(rng, [0.3, 0.7, 1.1, 1.5], [0.4, 1.0, 1.0, 0.6])
    if cls == "oiii_ha":
        return _tabulated(rng, [0.01, 0.3, 0.6, 0.85], [0.1, 0.6, 1.0, 1.0])
    if cls == "ciii":
        return float(rng.uniform(1.5, 2.9))
    if cls == "uv_abs":
        return float(rng.uniform(1.5, 3.2))
    if cls == "passive":
        return float(rng.uniform(0.001, 0.02) if rng.random() < 0.1 else rng.uniform(0.1, 1.3))
    if cls == "star":
        return float(rng.uniform(-300.0, 300.0) / C_KMS)
    if cls == "noise":
        return float("nan")
    raise ValueError(f"unknown class {cls!r}; known: {', '.join(CLASSES)}")


# ---------------------------------------------------------------------------- spectra pieces
class ObjectSpectrum:
    """The rest-frame description of one simulated object.

    Attributes
    ----------
    lines : list of (name, vacuum centre, flux, profile)
        Emission lines; ``flux`` in the template's units (continuum x Angstrom),
        ``profile(wave, centre)`` of unit area.
    base : callable
        The line-free continuum (breaks and IGM included), ``f(rest wavelength)``.
    absorption : callable or None
        The absorption-line transmission (0-1) multiplying ``base``.
    info : dict
        The drawn parameters (become truth columns).
    allowed : tuple of str or None
        The features allowed to be the strongest (None: any).
    min_sigma_kms : float
        The narrowest feature (sets the sampling).
    """

    def __init__(self, lines, base, absorption=None, info=None, allowed=None,
                 min_sigma_kms=30.0):
        self.lines = [line for line in lines if line[2] > 0]
        self.base = base
        self.absorption = absorption
        self.info = dict(info or {})
        self.allowed = allowed
        self.min_sigma_kms = float(min_sigma_kms)

    def continuum(self, wave):
        """``base`` times the absorption transmission."""
        flux = self.base(wave)
        return flux if self.absorption is None else flux * self.absorption(wave)

    def groups(self):
        """Feature name -> the lines of that feature."""
        out = {}
        for line in self.lines:
            out.setdefault(FEATURE_GROUPS.get(line[0], line[0]), []).append(line)
        return out


def _gaussian_line(sigma_kms):
    """A unit-area Gaussian of velocity sigma ``sigma_kms`` (ignores the template's width)."""
    def profile(wave, centre, _sigma=None):
        return gaussian_profile(wave, centre, centre * sigma_kms / C_KMS)
    profile.sigma_kms = float(sigma_kms)
    return profile


def _lya_line(fwhm_kms, asymmetry):
    """The asymmetric Lyman-alpha line of FWHM ``fwhm_kms`` with a tapered red wing.

    The skewed Gaussian of Shibuya et al. (2014, ApJ 788, 74),
    :func:`~muse_xcorr.templates.lines.lya_profile`, with ``d`` set so that its FWHM is
    ``fwhm_kms`` (FWHM = 2.3548 d / (1 - (1.1774 a)^2)). Its red side tends to the
    constant exp(-1 / (2 a^2)) far from the peak (8.5 % of the peak at a = 0.45), so
    the red wing is tapered by exp(-x^2 / (2 (2 FWHM)^2)) and the profile normalised
    over +-(1 + 8) FWHM: the line's flux stays in the line.
    """
    factor = 1 - (1.1774 * asymmetry) ** 2

    def profile(wave, centre, _sigma=None):
        fwhm = centre * fwhm_kms / C_KMS
        d = fwhm * factor / 2.3548
        out = np.zeros_like(wave)
        sel = (wave > centre - 2 * fwhm) & (wave < centre + 8 * fwhm)
        w = wave[sel]
        if w.size < 5:
            raise ValueError("the Lyman-alpha line is not resolved by the sampling")
        x = w - centre
        shape = lya_profile(w, centre, d, asymmetry) * np.exp(-0.5 * (np.clip(x, 0, None)
                                                                      / (2 * fwhm)) ** 2)
        out[sel] = shape / np.trapezoid(shape, w)
        return out
    profile.sigma_kms = fwhm_kms / 2.3548 * (1 + 2 * asymmetry)   # roughly, wing included
    return profile


def _line(name, flux, profile):
    return (name, rest_wavelength(name), float(flux), profile)


#: Curve of growth of a Gaussian optical-depth profile: h(tau0) = EW / (sigma sqrt(2 pi)).
_TAU0 = np.logspace(-4, 5, 400)
_X = np.linspace(-12, 12, 2401)
_CURVE = np.trapezoid(1 - np.exp(-_TAU0[:, None] * np.exp(-0.5 * _X[None, :] ** 2)), _X,
                      axis=1) / _SQRT2PI


def _tau0_for(ew, sigma, cover):
    """Central optical depth giving rest equivalent width ``ew`` (covering fraction ``cover``)."""
    h = ew / (cover * sigma * _SQRT2PI)
    return float(np.exp(np.interp(h, _CURVE, np.log(_TAU0), right=np.log(_TAU0[-1]))))


class _Absorption:
    """A product of absorption lines and bands: transmission(wave) in 0-1."""

    def __init__(self):
        self.lines = []   # (centre, sigma_aa, tau0, cover)
        self.bands = []   # (head, depth, length)

    def add_line(self, centre, sigma_aa, ew, cover=1.0):
        """A Gaussian optical-depth line of rest EW ``ew`` (Angstrom, > 0)."""
        if ew > 0:
            self.lines.append((float(centre), float(sigma_aa),
                               _tau0_for(ew, sigma_aa, cover), float(cover)))

    def add_band(self, head, depth, length):
        """A molecular band: depth ``depth`` at the head, decaying redward over ``length`` A."""
        if depth > 0:
            self.bands.append((float(head), float(depth), float(length)))

    def __bool__(self):
        return bool(self.lines or self.bands)

    def __call__(self, wave):
        out = np.ones_like(wave)
        for centre, sigma, tau0, cover in self.lines:
            lo, hi = np.searchsorted(wave, [centre - 10 * sigma, centre + 10 * sigma])
            w = wave[lo:hi]
            tau = tau0 * np.exp(-0.5 * ((w - centre) / sigma) ** 2)
            out[lo:hi] *= 1 - cover * (1 - np.exp(-tau))
        for head, depth, length in self.bands:
            lo = np.searchsorted(wave, head - 10.0)
            w = wave[lo:]
            edge = 1 / (1 + np.exp(-(w - head) / 1.5))   # a sharp (3 A) head
            out[lo:] *= 1 - depth * edge * np.exp(-np.clip(w - head, 0, None) / length)
        return out


def _break(wave, centre, amplitude, width):
    """1 - amplitude below ``centre``, 1 above, a logistic step of ``width`` Angstrom."""
    return 1 - amplitude / (1 + np.exp((wave - centre) / width))


def _planck(wave, temperature):
    """Blackbody f_lambda shape (arbitrary scale)."""
    x = np.clip(1.4388e8 / (wave * temperature), None, 700)
    return (wave / 5000.0) ** -5 / np.expm1(x)


def igm_transmission(wave, z, scale=1.0):
    """Mean IGM transmission blueward of Lyman alpha in the rest frame of a source at z.

    The Lyman-series optical depth of Madau (1995, ApJ 441, 18, eq. 12):
    tau = scale * sum_i A_i (lambda_obs / lambda_i)^3.46 for lambda_obs < lambda_i (1 + z),
    A = (3.6e-3, 1.7e-3, 1.2e-3, 9.3e-4) for Ly alpha-delta; zero transmission below
    the Lyman limit (912 A rest). ``scale`` (drawn lognormal, 0.15 dex, per object) mimics
    the scatter between sight lines. At z = 3, 4, 5, 6 the Lyman-alpha forest
    transmits 0.64, 0.37, 0.17, 0.05.
    """
    wave = np.asarray(wave, float)
    observed = wave * (1 + z)
    tau = np.zeros_like(wave)
    for lam, coefficient in ((1215.67, 3.6e-3), (1025.72, 1.7e-3), (972.54, 1.2e-3),
                             (949.74, 9.3e-4)):
        tau += np.where(wave < lam, coefficient * (observed / lam) ** 3.46, 0.0)
    return np.where(wave < 911.75, 0.0, np.exp(-scale * tau))


# ---------------------------------------------------------------------------- classes
def lae_spectrum(rng, z):
    """A Lyman-alpha emitter at redshift z.

    * Lyman alpha: the skewed Gaussian of Shibuya et al. (2014) (see ``_lya_line``),
      asymmetry uniform 0.1-0.45, intrinsic FWHM log-uniform 80-300 km/s; its peak
      redward of the systemic redshift by 0.9 FWHM - 34 km/s (Verhamme et al. 2018,
      MNRAS 478, L60), so the truth z is systemic and ``z_lya`` the peak's.
    * A blue bump in 10 %: a Gaussian of flux 0.1-0.4 of the red peak's, 300-700 km/s
      blueward of the red peak (peak separations of Verhamme et al. 2018), scaled by
      the IGM transmission there.
    * Rest EW: exponential with scale 70 A, truncated to 10-200 A (the MUSE HUDF
      EW distribution of Hashimoto et al. 2017, A&A 608, A10, roughly).
    * UV continuum f_lambda ~ lambda^beta, beta uniform -2.5..-1.5 (Hashimoto et al.
      2017), times :func:`igm_transmission` blueward of Lyman alpha.
    * In 25 %: CIV 1548,1551 (ratio 2:1..1:1), HeII 1640 and CIII] 1907,1909 (ratio
      1.2-1.6) of 0.01-0.1, 0.01-0.08 and 0.02-0.15 of Lyman alpha (log-uniform;
      MUSE HUDF stacks of Feltre et al. 2020, A&A 641, A118; Maseda et al. 2017,
      A&A 608, A4), sigma 30-100 km/s.
    """
    asym = rng.uniform(0.1, 0.45)
    fwhm = _loguniform(rng, 80, 300)
    offset = max(0.9 * fwhm - 34.0, 0.0)
    ew = 0.0
    while not 10 <= ew <= 200:
        ew = rng.exponential(70.0)
    beta = rng.uniform(-2.5, -1.5)
    igm_scale = float(10 ** rng.normal(0, 0.15))
    lya = rest_wavelength("Lya")
    peak = lya * (1 + offset / C_KMS)

    def base(wave):
        return (wave / 1500.0) ** beta * igm_transmission(wave, z, igm_scale)

    flux = ew * (peak / 1500.0) ** beta            # EW against the continuum at the peak
    lines = [("Lya", peak, flux, _lya_line(fwhm, asym))]
    bump, bump_ratio, bump_dv = False, np.nan, np.nan
    if rng.random() < 0.1:
        bump = True
        bump_ratio = rng.uniform(0.1, 0.4)
        bump_dv = rng.uniform(300, 700)
        centre = peak * (1 - bump_dv / C_KMS)
        transmitted = float(igm_transmission(np.array([centre]), z, igm_scale)[0])
        lines.append(("Lya_blue", centre, flux * bump_ratio * transmitted,
                      _gaussian_line(0.6 * fwhm / 2.3548)))
    info = dict(lya_fwhm_kms=fwhm, lya_asymmetry=asym, lya_offset_kms=offset,
                z_lya=(1 + z) * (1 + offset / C_KMS) - 1, blue_bump=bump,
                blue_bump_ratio=bump_ratio, blue_bump_dv_kms=bump_dv, ew_rest=ew, beta=beta,
                igm_scale=igm_scale, uv_lines=False, width_kms=fwhm / 2.3548)
    if rng.random() < 0.25:
        sigma = rng.uniform(30, 100)
        civ, heii, ciii = (_loguniform(rng, 0.01, 0.1), _loguniform(rng, 0.01, 0.08),
                           _loguniform(rng, 0.02, 0.15))
        civ_ratio, ciii_ratio = rng.uniform(1, 2), rng.uniform(1.2, 1.6)
        g = _gaussian_line(sigma)
        lines += [_line("CIV1548", flux * civ * civ_ratio / (1 + civ_ratio), g),
                  _line("CIV1551", flux * civ / (1 + civ_ratio), g),
                  _line("HeII1640", flux * heii, g),
                  _line("CIII]1907", flux * ciii * ciii_ratio / (1 + ciii_ratio), g),
                  _line("CIII]1909", flux * ciii / (1 + ciii_ratio), g)]
        info.update(uv_lines=True, civ_lya=civ, heii_lya=heii, ciii_lya=ciii,
                    ciii_ratio=ciii_ratio)
    min_sigma = (0.6 if bump else 1.0) * fwhm / 2.3548
    if info["uv_lines"]:
        min_sigma = min(min_sigma, sigma)
    return ObjectSpectrum(lines, base, info=info, allowed=("Lya",), min_sigma_kms=min_sigma)


def _sf_continuum(rng, info):
    """A star-forming galaxy's optical continuum with a 4000 A break and stellar absorption."""
    slope = rng.uniform(-2.2, -0.5)
    amplitude = rng.uniform(0.05, 0.35)
    width = rng.uniform(20, 60)
    absorption = _Absorption()
    balmer_ew = rng.uniform(0.0, 4.0)
    for name in ("Hbeta", "Hgamma", "Hdelta", "Hepsilon", "H8"):
        absorption.add_line(rest_wavelength(name), rng.uniform(8, 14), balmer_ew)
    cah = rng.uniform(0.0, 3.0)
    for name in ("CaII_K", "CaII_H"):
        absorption.add_line(rest_wavelength(name), 4.0, cah)
    info.update(continuum_slope=slope, break_amplitude=amplitude, balmer_abs_ew=balmer_ew,
                cahk_ew=cah)

    def base(wave):
        return (wave / 4500.0) ** slope * _break(wave, 4000.0, amplitude, width)
    return base, absorption


def nebular_spectrum(rng, z, cls="oii"):
    """A star-forming galaxy: [OII] emitter (``cls="oii"``) or low-z [OIII]/H-alpha galaxy.

    Line ratios (observed, i.e. after dust; uniform in log unless said):

    * [OII] 3729/3726: uniform 0.8-1.5 (electron densities ~10-1000 cm^-3;
      Osterbrock & Ferland 2006; Sanders et al. 2016, ApJ 816, 23).
    * [NII] 6583/H-alpha 0.03-0.5; [OIII] 5007/H-beta 0.2-6 along the star-forming
      BPT sequence of Kauffmann et al. (2003, MNRAS 346, 1055),
      log O3 = 0.61 / (log N2 - 0.05) + 1.3 + N(0, 0.25 dex), redrawn until inside 0.2-6.
    * H-alpha/H-beta uniform 2.86-6 (case B to E(B-V) ~ 0.7); the higher Balmer lines
      follow from case B (Osterbrock & Ferland 2006) reddened by the same E(B-V) with
      the Cardelli et al. (1989) curve.
    * [OII]/H-beta 0.5-5; [NeIII] 3869/[OII] 0.03-0.3 (Levesque & Richardson 2014,
      ApJ 780, 100); [SII] 6716/6731 uniform 0.8-1.4, ([SII] 6716+6731)/H-alpha 0.1-0.4;
      [OI] 6300/H-alpha 0.02-0.1 ([OI] 6364 = 6300 / 3); HeI 5876/H-beta 0.08-0.14;
      [ArIII] 7136/H-beta 0.03-0.15; [SIII] 9069/H-beta 0.1-0.6; [OIII] 4363/5007
      0-0.03 (uniform); fixed atomic ratios [OIII] 5007/4959 = 2.98 and [NII]
      6583/6548 = 3.05 (Storey & Zeippen 2000, MNRAS 312, 813).
    * Line sigma log-uniform 30-120 km/s (one for all lines).
    * Continuum f_lambda ~ (lambda / 4500)^s, s uniform -2.2..-0.5, with a 4000 A
      break of depth 0.05-0.35 (a logistic step 20-60 A wide), stellar Balmer
      absorption of EW 0-4 A (sigma 8-14 A) under H-beta..H8 and CaII H&K of EW 0-3 A;
      the continuum level sets the rest EW of [OII] (3726+3729) to 5-100 A.
    """
    sigma = _loguniform(rng, 30, 120)
    g = _gaussian_line(sigma)
    while True:
        log_n2 = rng.uniform(np.log10(0.03), np.log10(0.5))
        o3 = 10 ** (0.61 / (log_n2 - 0.05) + 1.3 + rng.normal(0, 0.25))
        if 0.2 <= o3 <= 6:
            break
    n2 = 10 ** log_n2
    ha_hb = rng.uniform(2.86, 6.0)
    ebv = 2.5 / (_K_BALMER["Hbeta"] - _K_BALMER["Halpha"]) * np.log10(ha_hb / 2.86)
    oii_hb = _loguniform(rng, 0.5, 5)
    oii_ratio = rng.uniform(0.8, 1.5)
    sii_ratio = rng.uniform(0.8, 1.4)
    sii_ha = _loguniform(rng, 0.1, 0.4)
    neiii_oii = _loguniform(rng, 0.03, 0.3)
    ha = ha_hb
    flux = {"Hbeta": 1.0, "Halpha": ha}
    for name in ("Hgamma", "Hdelta", "Hepsilon", "H8"):
        flux[name] = _CASE_B[name] * 10 ** (-0.4 * ebv * (_K_BALMER[name] - _K_BALMER["Hbeta"]))
    flux.update({
        "[OII]3726": oii_hb / (1 + oii_ratio), "[OII]3729": oii_hb * oii_ratio / (1 + oii_ratio),
        "[NeIII]3869": neiii_oii * oii_hb, "[OIII]5007": o3, "[OIII]4959": o3 / 2.98,
        "[OIII]4363": o3 * rng.uniform(0, 0.03), "HeI5876": rng.uniform(0.08, 0.14),
        "[NII]6583": n2 * ha, "[NII]6548": n2 * ha / 3.05,
        "[SII]6716": sii_ha * ha * sii_ratio / (1 + sii_ratio),
        "[SII]6731": sii_ha * ha / (1 + sii_ratio),
        "[ArIII]7136": _loguniform(rng, 0.03, 0.15), "[SIII]9069": _loguniform(rng, 0.1, 0.6)})
    oi = _loguniform(rng, 0.02, 0.1) * ha
    flux.update({"[OI]6300": oi, "[OI]6364": oi / 3.0})
    info = dict(width_kms=sigma, oii_ratio=oii_ratio, oiii_hb=o3, ha_hb=ha_hb, nii_ha=n2,
                oii_hb=oii_hb, sii_ratio=sii_ratio, sii_ha=sii_ha, neiii_oii=neiii_oii,
                ebv=ebv)
    base, absorption = _sf_continuum(rng, info)
    ew = _loguniform(rng, 5, 100)
    scale = ew * float(base(np.array([3728.0]))[0]) / oii_hb   # continuum -> line units
    lines = [_line(name, scale * value, g) for name, value in flux.items()]
    info["ew_rest"] = ew
    allowed = ("[OII]3727",) if cls == "oii" else ("[OIII]5007", "Halpha")
    return ObjectSpectrum(lines, base, absorption, info=info, allowed=allowed,
                          min_sigma_kms=sigma)


def _ism_absorption(rng, absorption, info, cover_range=(0.6, 1.0)):
    """Interstellar absorption lines of :data:`ISM_LINES` (Shapley et al. 2003 EWs x 0.5-2)."""
    factor = rng.uniform(0.5, 2.0)
    outflow = rng.uniform(0.0, 300.0)
    sigma_kms = rng.uniform(100.0, 250.0)
    cover = rng.uniform(*cover_range)
    for name, ew in ISM_LINES.items():
        centre = rest_wavelength(name) * (1 - outflow / C_KMS)
        scatter = float(np.exp(rng.normal(0, 0.2)))
        absorption.add_line(centre, centre * sigma_kms / C_KMS, ew * factor * scatter, cover)
    info.update(abs_factor=factor, outflow_kms=outflow, abs_sigma_kms=sigma_kms,
                covering=cover)


def ciii_spectrum(rng, z):
    """A CIII] 1907,1909 emitter at 1.5 < z < 2.9 (Lyman alpha below MUSE's range).

    * CIII] 1907/1909 uniform 1.2-1.6 (densities below ~1e4 cm^-3; Maseda et al.
      2017); rest EW(CIII]) log-uniform 2-30 A (Maseda et al. 2017: 2-20 A).
    * Relative to CIII] (log-uniform unless said): CIV 1548+1551 0.1-1 in 60 %
      (ratio 1548/1551 1-2), else none; HeII 1640 0.05-0.5 in 60 %; OIII] 1661+1666
      0.1-0.6 (1666/1661 = 2.5); SiIII] 1883+1892 0.05-0.4 (1883/1892 1.0-1.6);
      MgII 2796,2803 in emission (0.1-1, ratio 1-2) in 50 %, otherwise in absorption
      only (Stark et al. 2014, MNRAS 445, 3200; Feltre et al. 2020; Maseda et al. 2017).
    * Line sigma log-uniform 30-120 km/s.
    * Continuum f_lambda ~ lambda^beta, beta uniform -2.5..-1.5, with the interstellar
      absorption of :func:`uv_abs_spectrum` (covering fraction 0.4-0.8).
    """
    sigma = _loguniform(rng, 30, 120)
    g = _gaussian_line(sigma)
    beta = rng.uniform(-2.5, -1.5)
    ew = _loguniform(rng, 2, 30)

    def base(wave):
        return (wave / 1500.0) ** beta * igm_transmission(wave, z)

    ciii = ew * (1908.0 / 1500.0) ** beta
    ratio = rng.uniform(1.2, 1.6)
    info = dict(width_kms=sigma, beta=beta, ew_rest=ew, ciii_ratio=ratio)
    lines = [_line("CIII]1907", ciii * ratio / (1 + ratio), g),
             _line("CIII]1909", ciii / (1 + ratio), g)]
    civ = _loguniform(rng, 0.1, 1.0) if rng.random() < 0.6 else 0.0
    civ_ratio = rng.uniform(1, 2)
    heii = _loguniform(rng, 0.05, 0.5) if rng.random() < 0.6 else 0.0
    oiii = _loguniform(rng, 0.1, 0.6)
    siiii = _loguniform(rng, 0.05, 0.4)
    siiii_ratio = rng.uniform(1.0, 1.6)
    mgii = _loguniform(rng, 0.1, 1.0) if rng.random() < 0.5 else 0.0
    mgii_ratio = rng.uniform(1, 2)
    lines += [_line("CIV1548", ciii * civ * civ_ratio / (1 + civ_ratio), g),
              _line("CIV1551", ciii * civ / (1 + civ_ratio), g),
              _line("HeII1640", ciii * heii, g),
              _line("OIII]1661", ciii * oiii / 3.5, g),
              _line("OIII]1666", ciii * oiii * 2.5 / 3.5, g),
              _line("SiIII]1883", ciii * siiii * siiii_ratio / (1 + siiii_ratio), g),
              _line("SiIII]1892", ciii * siiii / (1 + siiii_ratio), g),
              _line("MgII2796", ciii * mgii * mgii_ratio / (1 + mgii_ratio), g),
              _line("MgII2804", ciii * mgii / (1 + mgii_ratio), g)]
    info.update(civ_ciii=civ, heii_ciii=heii, oiii1663_ciii=oiii, siiii_ciii=siiii,
                mgii_ciii=mgii, mgii_emission=mgii > 0)
    absorption = _Absorption()
    _ism_absorption(rng, absorption, info, cover_range=(0.4, 0.8))
    return ObjectSpectrum(lines, base, absorption, info=info, allowed=("CIII]1908",),
                          min_sigma_kms=sigma)


def uv_abs_spectrum(rng, z):
    """A UV-continuum galaxy with interstellar absorption lines and no emission line.

    * Continuum f_lambda ~ lambda^beta, beta uniform -2.5..-1.0 (Shapley et al. 2003),
      times :func:`igm_transmission`.
    * The interstellar lines of :data:`ISM_LINES` (SiII 1260 ... MgI 2852) with the
      rest EWs of Shapley et al. (2003) times one factor uniform 0.5-2 per object (and
      a 0.2 dex scatter per line), blueshifted by one outflow velocity uniform 0-300 km/s
      (Shapley et al. 2003; Steidel et al. 2010, ApJ 717, 289), Gaussian
      optical-depth profiles of sigma 100-250 km/s with a covering fraction 0.6-1
      (saturated lines keep residual flux, as observed).
    * Lyman alpha in absorption (rest EW 5-20 A, sigma 1000 km/s) in half of them
      (those at z > 2.9 show it).
    """
    beta = rng.uniform(-2.5, -1.0)

    def base(wave):
        return (wave / 1500.0) ** beta * igm_transmission(wave, z)

    info = dict(beta=beta)
    absorption = _Absorption()
    _ism_absorption(rng, absorption, info)
    if rng.random() < 0.5:
        lya_ew = rng.uniform(5, 20)
        absorption.add_line(rest_wavelength("Lya_abs"), 1215.67 * 1000 / C_KMS, lya_ew)
        info["lya_abs_ew"] = lya_ew
    info["width_kms"] = info["abs_sigma_kms"]
    return ObjectSpectrum([], base, absorption, info=info, allowed=("absorption",),
                          min_sigma_kms=info["abs_sigma_kms"])


def passive_spectrum(rng, z):
    """An early-type galaxy (or a galaxy nucleus at z < 0.02).

    * Continuum: a blackbody of T uniform 4300-5200 K (f_lambda(8000)/f_lambda(5000)
      0.7-1.2, and the steep UV fall of old populations) times a 4000 A break of depth
      0.35-0.6 (D_n(4000) ~ 1.5-2.5; Kauffmann et al. 2003, MNRAS 341, 33), a logistic
      step 15-40 A wide, and a 2640/2900 A break of depth 0-0.3.
    * Absorption (rest EW, Angstrom, times one factor uniform 0.7-1.3 for the metal
      lines; Lick-index strengths of old populations, Worthey et al. 1994;
      Trager et al. 1998, ApJS 116, 1): CaII K 6-10 and H 6-10, G band 3-6,
      CaI 4227 1-1.5, Fe4383 3-5, Fe4531 2-3.5, C2 4668 3-6, Mg b (5167, 5173, 5184)
      3-5 in all, Fe5270 2-3.5, Fe5335 1.5-3, Fe5406 1-2, NaD 3-5, the Ca triplet
      8498/8542/8662 0.8-1.3/2.5-3.5/2-3, MgII 2796,2803 3-6 and MgI 2852 1-3,
      with intrinsic widths 1.5-15 A (blends); Balmer H-beta..H-delta 0.5-2.5
      (4-8 in the 10 % post-starbursts, which have a break of 0.2-0.35); TiO bands
      (6159, 7054, 7589, 8432) 1-5 % deep.
    * Velocity dispersion uniform 80-300 km/s (added in quadrature to the widths).
    * In 30 %: weak [OII] 3726,3729 emission, rest EW 1-5 A (Yan et al. 2006,
      ApJ 648, 281), sigma 100 km/s.
    """
    dispersion = rng.uniform(80, 300)
    post_starburst = rng.random() < 0.1
    temperature = rng.uniform(4300, 5200)
    amplitude = rng.uniform(0.2, 0.35) if post_starburst else rng.uniform(0.35, 0.6)
    width = rng.uniform(15, 40)
    uv_break = rng.uniform(0, 0.3)

    def base(wave):
        return (_planck(wave, temperature) * _break(wave, 4000.0, amplitude, width)
                * _break(wave, 2700.0, uv_break, 60.0))

    metals = rng.uniform(0.7, 1.3)
    absorption = _Absorption()

    def add(name, ew, sigma_int):
        centre = rest_wavelength(name)
        sigma = np.hypot(sigma_int, centre * dispersion / C_KMS)
        absorption.add_line(centre, sigma, ew)

    for name, (low, high), sigma_int in (
            ("CaII_K", (6, 10), 5.0), ("CaII_H", (6, 10), 5.0), ("Gband", (3, 6), 8.0),
            ("CaI4227", (1, 1.5), 3.0), ("Fe4383", (3, 5), 10.0), ("Fe4531", (2, 3.5), 10.0),
            ("C2_4668", (3, 6), 15.0), ("Fe5270", (2, 3.5), 5.0), ("Fe5335", (1.5, 3), 5.0),
            ("Fe5406", (1, 2), 4.0), ("CaT8498", (0.8, 1.3), 1.5),
            ("CaT8542", (2.5, 3.5), 1.5), ("CaT8662", (2, 3), 1.5), ("MgI2853", (1, 3), 3.0)):
        add(name, metals * rng.uniform(low, high), sigma_int)
    mgb = metals * rng.uniform(3, 5)
    for name, share in (("MgI5167", 0.3), ("MgI5173", 0.35), ("MgI5184", 0.35)):
        add(name, mgb * share, 1.5)
    nad = metals * rng.uniform(3, 5)
    add("NaI5890", 0.55 * nad, 1.5)
    add("NaI5896", 0.45 * nad, 1.5)
    mgii = metals * rng.uniform(3, 6)
    add("MgII2796abs", 0.55 * mgii, 3.0)
    add("MgII2804abs", 0.45 * mgii, 3.0)
    balmer = rng.uniform(4, 8) if post_starburst else rng.uniform(0.5, 2.5)
    for name in ("Hbeta", "Hgamma", "Hdelta"):
        add(name, balmer, 6.0)
    tio = rng.uniform(0.01, 0.05)
    for name in ("TiO6159", "TiO7054", "TiO7589", "TiO8432"):
        absorption.add_band(rest_wavelength(name), tio, 80.0)
    info = dict(width_kms=dispersion, t_eff=temperature, break_amplitude=amplitude,
                post_starburst=post_starburst, metal_factor=metals, balmer_abs_ew=balmer,
                oii_emission=False)
    lines = []
    if rng.random() < 0.3:
        ew = rng.uniform(1, 5)
        ratio = rng.uniform(0.8, 1.5)
        flux = ew * float(base(np.array([3728.0]))[0] * absorption(np.array([3728.0]))[0])
        g = _gaussian_line(100.0)
        lines = [_line("[OII]3726", flux / (1 + ratio), g),
                 _line("[OII]3729", flux * ratio / (1 + ratio), g)]
        info.update(oii_emission=True, ew_rest=ew, oii_ratio=ratio)
    return ObjectSpectrum(lines, base, absorption, info=info, allowed=("absorption",),
                          min_sigma_kms=60.0)


def star_spectrum(rng, z):
    """A Milky Way star (z = v / c, abs(v) < 300 km/s): 70 % cool, 30 % hot.

    * Cool (late K - M dwarfs, the commonest stars at high Galactic latitude):
      blackbody T uniform 3200-4500 K; TiO bands (6159, 6651, 7054, 7589, 8432, 8859)
      of depth (4300 - T) / 1000 clipped to 0.02-0.6 (x 0.5 for the weaker bands),
      decaying redward over 60-150 A; NaD 2-8 A, Mg b 3-6 A, KI 7665,7699 1-3 A,
      NaI 8183,8195 1-4 A, the Ca triplet 1.5-4 A (8542; 0.6 and 0.8 of it for 8498
      and 8662), H-alpha 0.3-1.5 A (intrinsic widths 1-2 A; Gray & Corbally 2009,
      "Stellar Spectral Classification"; Cenarro et al. 2001, MNRAS 326, 959).
    * Hot (A-F): blackbody T uniform 6500-10000 K; H-alpha and H-beta 4-14 A
      (sigma 6-12 A), the Paschen lines P9-P16 1-4 A (sigma 3-5 A), the Ca triplet
      0-1.5 A, OI 7774 0.2-1 A, Mg b and NaD 0-1 A.
    """
    absorption = _Absorption()
    cool = rng.random() < 0.7
    if cool:
        temperature = rng.uniform(3200, 4500)
        depth = float(np.clip((4300 - temperature) / 1000, 0.02, 0.6))
        length = rng.uniform(60, 150)
        for name, share in (("TiO6159", 0.5), ("TiO6651", 0.5), ("TiO7054", 1.0),
                            ("TiO7589", 0.8), ("TiO8432", 0.5), ("TiO8859", 0.5)):
            absorption.add_band(rest_wavelength(name), depth * share, length)
        nad = rng.uniform(2, 8)
        mgb = rng.uniform(3, 6)
        ki = rng.uniform(1, 3)
        nai = rng.uniform(1, 4)
        cat = rng.uniform(1.5, 4)
        for name, ew, sigma in (("NaI5890", 0.55 * nad, 1.5), ("NaI5896", 0.45 * nad, 1.5),
                                ("MgI5167", 0.3 * mgb, 1.0), ("MgI5173", 0.35 * mgb, 1.0),
                                ("MgI5184", 0.35 * mgb, 1.0), ("KI7665", 0.55 * ki, 1.5),
                                ("KI7699", 0.45 * ki, 1.5), ("NaI8183", 0.45 * nai, 1.5),
                                ("NaI8195", 0.55 * nai, 1.5), ("CaT8498", 0.6 * cat, 1.5),
                                ("CaT8542", cat, 1.5), ("CaT8662", 0.8 * cat, 1.5),
                                ("Halpha", rng.uniform(0.3, 1.5), 1.5)):
            absorption.add_line(rest_wavelength(name), sigma, ew)
        info = dict(star_type="cool", t_eff=temperature, tio_depth=depth)
    else:
        temperature = rng.uniform(6500, 10000)
        for name in ("Halpha", "Hbeta"):
            absorption.add_line(rest_wavelength(name), rng.uniform(6, 12), rng.uniform(4, 14))
        for number in range(9, 17):
            absorption.add_line(rest_wavelength(f"Pa{number}"), rng.uniform(3, 5),
                                rng.uniform(1, 4))
        cat = rng.uniform(0, 1.5)
        for name, ew, sigma in (("CaT8498", 0.6 * cat, 1.5), ("CaT8542", cat, 1.5),
                                ("CaT8662", 0.8 * cat, 1.5), ("OI7774", rng.uniform(0.2, 1), 2),
                                ("MgI5173", rng.uniform(0, 1), 1.5),
                                ("NaI5890", rng.uniform(0, 1), 1.5)):
            absorption.add_line(rest_wavelength(name), sigma, ew)
        info = dict(star_type="hot", t_eff=temperature)
    info["width_kms"] = 0.0

    def base(wave):
        return _planck(wave, temperature)
    return ObjectSpectrum([], base, absorption, info=info, allowed=("absorption",),
                          min_sigma_kms=40.0)


_BUILDERS = {"lae": lae_spectrum, "oii": functools.partial(nebular_spectrum, cls="oii"),
             "oiii_ha": functools.partial(nebular_spectrum, cls="oiii_ha"),
             "ciii": ciii_spectrum, "uv_abs": uv_abs_spectrum, "passive": passive_spectrum,
             "star": star_spectrum}


# ---------------------------------------------------------------------------- noise
def _fill_variance(shape):
    """A variance shape with its non-finite or non-positive pixels interpolated (in log)."""
    shape = np.asarray(shape, float)
    good = np.isfinite(shape) & (shape > 0)
    if not good.any():
        raise ValueError("a variance shape has no finite positive pixel")
    if good.all():
        return shape
    index = np.arange(shape.size)
    out = shape.copy()
    out[~good] = np.exp(np.interp(index[~good], index[good], np.log(shape[good])))
    return out


def _sky_residual(rng, wave, sigma, fwhm, fraction_lines=0.5):
    """Residual flux at the bright sky lines, and how many lines got one."""
    out = np.zeros_like(wave)
    amplitudes = []
    for centre in SKY_LINES:
        if not wave[0] < centre < wave[-1] or rng.random() >= fraction_lines:
            continue
        j = int(np.argmin(np.abs(wave - centre)))
        s = fwhm[j] / 2.3548
        amplitude = rng.uniform(2.0, 5.0) * sigma[j]
        lo, hi = np.searchsorted(wave, [centre - 6 * s, centre + 6 * s])
        x = (wave[lo:hi] - centre) / s
        if rng.random() < 0.5:
            shape = rng.choice([-1.0, 1.0]) * np.exp(-0.5 * x ** 2)
        else:   # P-Cygni-like: peak 1 at x = -+1
            shape = rng.choice([-1.0, 1.0]) * x * np.exp(0.5 - 0.5 * x ** 2)
        out[lo:hi] += amplitude * shape
        amplitudes.append(amplitude / sigma[j])
    return out, amplitudes


# ---------------------------------------------------------------------------- assembly
def _class_counts(n, classes):
    """Exact counts per class (largest remainder) for the requested mix."""
    if classes is None:
        mix = dict(DEFAULT_MIX)
    elif isinstance(classes, str):
        mix = {classes: 1.0}
    elif isinstance(classes, dict):
        mix = {k: float(v) for k, v in classes.items()}
    else:
        mix = {k: 1.0 for k in classes}
    unknown = [k for k in mix if k not in CLASSES]
    if unknown:
        raise ValueError(f"unknown class(es) {unknown}; known: {', '.join(CLASSES)}")
    if any(v < 0 for v in mix.values()) or not sum(mix.values()) > 0:
        raise ValueError(f"class fractions must be non-negative with a positive sum: {mix}")
    total = sum(mix.values())
    names = list(mix)
    exact = np.array([mix[k] / total * n for k in names])
    counts = np.floor(exact).astype(int)
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[:n - counts.sum()]] += 1
    return dict(zip(names, counts.tolist())), {k: mix[k] / total for k in names}


def _draw_range(rng, spec):
    """A value from a fixed number or a (low, high) uniform range."""
    if np.ndim(spec) == 0:
        return float(spec)
    return float(rng.uniform(*spec))


class _Grid:
    """The observed grid and its derived quantities, shared by all objects."""

    def __init__(self, wavelength, lsf):
        self.wave = u.Quantity(wavelength, u.AA)
        self.value = self.wave.value
        self.vacuum = convert_medium(self.wave, "air", "vacuum").to_value(u.AA)
        self.lsf = lsf
        self.fwhm = lsf_fwhm(self.wave, "muse" if lsf is None else lsf).to_value(u.AA)
        self.notch = (self.value >= AO_NOTCH[0]) & (self.value <= AO_NOTCH[1])
        self.step = float(np.median(np.diff(self.value)))


def _template(obj, lines, wave_range, step, *, continuum=True, name=None):
    """The rest-frame template of ``lines`` (on the object's continuum if ``continuum``)."""
    if lines:
        table = Table({"name": [ln[0] for ln in lines],
                       "wavelength": np.array([ln[1] for ln in lines]) * u.AA,
                       "strength": np.array([ln[2] for ln in lines])})
        profiles = {ln[0]: ln[3] for ln in lines}
        return Template.from_lines(table, 100 * u.km / u.s, wave_range=wave_range, step=step,
                                   profiles=profiles, name=name,
                                   continuum=obj.continuum if continuum else None)
    wave = np.arange(wave_range[0], wave_range[1] + step, step)
    return Template(wave * u.AA, obj.continuum(wave), name=name)


def _observed(template, grid, z, rows=None):
    """The template at z on the grid (or on the pixels ``rows`` only), zero elsewhere."""
    if rows is None:
        return observed_models(template, grid.wave, z, lsf=grid.lsf)[0]
    out = np.zeros(grid.value.size)
    out[rows] = observed_models(template, grid.wave[rows], z, lsf=grid.lsf)[0]
    return out


def _approximate_snr(lines, z, grid, variance, valid):
    """A quick estimate (Gaussian lines sampled at the pixel centres) of a feature's S/N."""
    parts = []
    for _, centre, flux, profile in lines:
        observed = centre * (1 + z)
        j = int(np.searchsorted(grid.vacuum, observed))
        if not 0 < j < grid.vacuum.size:
            continue
        sigma = np.hypot(observed * getattr(profile, "sigma_kms", 100.0) / C_KMS,
                         grid.fwhm[j] / 2.3548)
        half = int(5 * sigma / grid.step) + 2
        lo, hi = max(j - half, 0), min(j + half, grid.vacuum.size)
        x = grid.vacuum[lo:hi]
        parts.append((lo, hi, flux * (1 + z) * gaussian_profile(x, observed, sigma)))
    if not parts:
        return 0.0
    lo, hi = min(p[0] for p in parts), max(p[1] for p in parts)
    model = np.zeros(hi - lo)
    for a, b, values in parts:
        model[a - lo:b - lo] += values
    ok = valid[lo:hi]
    return float(np.sqrt(np.sum(model[ok] ** 2 / variance[lo:hi][ok])))


def _features(obj, z, grid, rest_range, step, variance, valid):
    """Per candidate feature: its observed model at unit amplitude and its matched-filter S/N.

    The candidates: the absorption pattern, and the emission features whose quick
    Gaussian estimate of the S/N is at least 0.4 of the largest estimate (the
    others cannot be the strongest); the S/N of a candidate is exact.
    """
    out = {}
    groups = obj.groups()
    estimate = {g: _approximate_snr(lines, z, grid, variance, valid)
                for g, lines in groups.items()}
    threshold = 0.4 * max(estimate.values(), default=0.0)
    for group, lines in groups.items():
        if estimate[group] <= 0 or estimate[group] < threshold:
            continue
        centres = np.array([ln[1] for ln in lines])
        if obj.info.get("lya_fwhm_kms") and group == "Lya":
            half = centres.max() * obj.info["lya_fwhm_kms"] / C_KMS * 10 + 5
        else:
            half = centres.max() * max(obj.info.get("width_kms", 100.0), 60.0) / C_KMS * 12 + 5
        low, high = centres.min() - half, centres.max() + half
        observed_low, observed_high = low * (1 + z), high * (1 + z)
        pad = 8 * grid.fwhm.max() + 2 * grid.step
        rows = np.flatnonzero((grid.vacuum > observed_low - pad) & (grid.vacuum < observed_high
                                                                    + pad))
        if rows.size < 3 or observed_high < grid.vacuum[0] or observed_low > grid.vacuum[-1]:
            continue
        template = _template(obj, lines, (low, high), step, continuum=False)
        model = np.zeros(grid.value.size)
        sub = slice(rows[0], rows[-1] + 1)
        model[sub] = observed_models(template, grid.wave[sub], z, lsf=grid.lsf)[0]
        centre = np.sum([ln[1] * ln[2] for ln in lines]) / np.sum([ln[2] for ln in lines])
        out[group] = (model, centre)
    if obj.absorption:
        wave = np.arange(rest_range[0], rest_range[1] + step, step)
        pattern = obj.base(wave) * (obj.absorption(wave) - 1)
        if np.any(pattern != 0):
            model = _observed(Template(wave * u.AA, pattern), grid, z)
            out["absorption"] = (model, np.nan)
    kept = {}
    for name, (model, centre) in out.items():
        snr = np.sqrt(np.sum(model[valid] ** 2 / variance[valid]))
        # a feature centred off the grid, or mostly lost in the AO notch, is no feature
        # (its S/N would set an absurd amplitude on the rest of the object)
        if np.isfinite(centre):
            observed = centre * (1 + z)
            margin = grid.fwhm[[0, -1]]
            if not grid.vacuum[0] + margin[0] < observed < grid.vacuum[-1] - margin[1]:
                continue
        if snr > 0 and snr >= 0.5 * np.sqrt(np.sum(model ** 2 / variance)):
            kept[name] = (model, centre, snr)
    return kept


def make_population(n, *, seed, classes=None, snr=(3.0, 50.0), variance=None, wavelength=None,
                    correlated_noise=(0.1, 0.45), sky_residuals=0.3, lsf="muse",
                    ao_fraction=0.5, noise_scale=(0.5, 2.0), keep_models=False):
    """A simulated MUSE deep-field population: a (1, n) cube and its truth table.

    Parameters
    ----------
    n : int
        Number of objects.
    seed : int or `numpy.random.Generator`
        Everything is drawn from it: the same seed gives the same cube and truth.
    classes : None, str, sequence or dict
        The class mix: None for :data:`DEFAULT_MIX`, one class, a list (equal
        shares) or a dict class -> share (normalised). The counts are exact
        (largest remainder) and the order shuffled.
    snr : (float, float)
        Range of the matched-filter S/N of each object's strongest feature,
        drawn log-uniformly.
    variance : ndarray (n_var, n_pixel) or (n_pixel,), optional
        Variance shapes (e.g. real STAT spectra) on ``wavelength``; each object
        draws one, times a level log-uniform in ``noise_scale``. Non-finite or
        non-positive pixels are interpolated. Default
        :func:`muse_xcorr.datasets.muse_variance`.
    wavelength : `~astropy.units.Quantity`, optional
        The observed grid (air); default :func:`~muse_xcorr.datasets.muse_wavelength`.
    correlated_noise : (float, float), float, True or False
        The lag-1 correlation rho_1 of the noise: a uniform range per object
        (default 0.1-0.45), one value, True for the default range, or
        False / 0 for white noise.
    sky_residuals : float or bool
        Fraction of objects with sky-line residuals (default 0.3; True: 0.3,
        False: none).
    lsf : resolution specification or None
        The line spread of the models (default MUSE's), see
        :func:`muse_xcorr.datasets.observed_models`.
    ao_fraction : float
        Fraction of objects with the AO notch (flux 0 over :data:`AO_NOTCH`;
        STAT there NaN, 0 or finite, one third each).
    noise_scale : (float, float)
        Range of the per-object variance level (log-uniform), times the shape.
    keep_models : bool
        Add the columns ``model`` (noiseless flux), ``feature_model`` (the strongest
        feature alone), ``noise``, ``sky`` (residual flux) and ``variance`` (STAT
        before the notch) to the truth, each (n, n_pixel): for tests, small n.

    Returns
    -------
    cube : `~muse_xcorr.MuseCube`
        Flux (n_pixel, 1, n) float32 in :data:`~muse_xcorr.datasets.FLUX_UNIT`,
        `~astropy.nddata.VarianceUncertainty`, air wavelengths.
    truth : `~astropy.table.Table`
        One row per object: ``class``, ``z`` (systemic, vacuum convention; NaN for
        ``noise``), ``snr`` (the drawn S/N of the strongest feature), ``feature``
        (its name), ``feature_wave`` (its flux-weighted centre, observed, air; NaN
        for ``absorption``), ``snr_corr`` (that S/N with the noise correlation taken
        into account), ``snr_total`` and ``snr_continuum`` (matched filters of the
        whole model and of its line-free continuum), ``amplitude``, the noise
        (``variance_index``, ``noise_scale``, ``rho1``, ``rho2``, ``ao``,
        ``ao_stat`` = nan/zero/finite/none, ``n_sky_residuals``), the drawn
        parameters of each class (line ratios, widths ``width_kms``, EWs, slopes;
        NaN where they do not apply) and ``flux_<line>``, the observed flux of each
        emission line in 1e-20 erg/s/cm2. ``meta`` records the options.
    """
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    n = int(n)
    if n < 1:
        raise ValueError(f"n must be a positive integer, got {n}")
    low_snr, high_snr = (float(s) for s in snr)
    if not 0 < low_snr <= high_snr:
        raise ValueError(f"snr must be a range (low, high) with 0 < low <= high, got {snr}")
    grid = _Grid(muse_wavelength() if wavelength is None else wavelength, lsf)
    n_pixel = grid.value.size
    shapes = np.atleast_2d(muse_variance(grid.wave) if variance is None
                           else np.asarray(variance, float))
    if shapes.shape[1] != n_pixel:
        raise ValueError(f"variance shapes have {shapes.shape[1]} pixels, the grid {n_pixel}")
    shapes = np.array([_fill_variance(s) for s in shapes])
    if correlated_noise is True:
        correlated_noise = (0.1, 0.45)
    elif correlated_noise is False or correlated_noise is None:
        correlated_noise = 0.0
    sky_fraction = 0.3 if sky_residuals is True else float(sky_residuals or 0.0)
    counts, shares = _class_counts(n, classes)
    labels = np.array([c for c, k in counts.items() for _ in range(k)], dtype=object)
    labels = labels[rng.permutation(n)]

    flux = np.zeros((n, n_pixel), np.float32)
    stat = np.zeros((n, n_pixel), np.float32)
    rows, extras = [], {}
    for i, cls in enumerate(labels):
        row, arrays = _simulate_one(rng, str(cls), grid, shapes, (low_snr, high_snr),
                                    correlated_noise, sky_fraction, ao_fraction, noise_scale)
        flux[i], stat[i] = arrays["data"], arrays["stat"]
        row["id"] = i
        rows.append(row)
        if keep_models:
            for name in ("model", "feature_model", "noise", "sky", "variance"):
                extras.setdefault(name, []).append(arrays[name])
    truth = _truth_table(rows)
    for name, values in extras.items():
        truth[name] = np.array(values)
    truth.meta.update({"seed": seed if not isinstance(seed, np.random.Generator) else "generator",
                       "mix": shares, "snr": [low_snr, high_snr],
                       "correlated_noise": correlated_noise, "sky_residuals": sky_fraction,
                       "ao_fraction": float(ao_fraction), "ao_notch": list(AO_NOTCH),
                       "noise_scale": list(noise_scale), "lsf": str(lsf),
                       "n_variance_shapes": int(shapes.shape[0]),
                       "variance": "given" if variance is not None else "muse_variance"})
    data = flux.T.reshape(n_pixel, 1, n)
    var = stat.T.reshape(n_pixel, 1, n)
    cube = MuseCube(grid.wave, data * FLUX_UNIT, VarianceUncertainty(var * FLUX_UNIT ** 2),
                    medium="air", spectral_axis_index=0,
                    meta={"origin": "muse_xcorr.population.make_population"})
    return cube, truth


def _simulate_one(rng, cls, grid, shapes, snr_range, correlated_noise, sky_fraction,
                  ao_fraction, noise_scale):
    """One object: its truth row and its arrays (data, stat, model, ...)."""
    n_pixel = grid.value.size
    k = int(rng.integers(shapes.shape[0]))
    level = _loguniform(rng, *noise_scale)
    variance = level * shapes[k]
    ao = bool(rng.random() < ao_fraction)
    ao_stat = str(rng.choice(["nan", "zero", "finite"])) if ao else "none"
    valid = ~grid.notch if ao else np.ones(n_pixel, bool)
    target = float(np.exp(rng.uniform(np.log(snr_range[0]), np.log(snr_range[1]))))
    row = {"class": cls, "variance_index": k, "noise_scale": level, "ao": ao,
           "ao_stat": ao_stat}
    model = np.zeros(n_pixel)
    feature_model = np.zeros(n_pixel)
    if cls == "noise":
        row.update(z=np.nan, snr=np.nan, feature="none", feature_wave=np.nan)
    else:
        obj, z, best, features, template_model, amplitude = _draw_object(
            rng, cls, grid, variance, valid, target)
        shape, centre, unit_snr = features[best]
        model = amplitude * template_model
        feature_model = amplitude * shape
        row.update(obj.info, z=z, snr=target, feature=best, amplitude=amplitude)
        row["feature_wave"] = (float(convert_medium(centre * (1 + z) * u.AA, "vacuum", "air")
                                     .to_value(u.AA)) if np.isfinite(centre) else np.nan)
        row["snr_total"] = float(np.sqrt(np.sum(model[valid] ** 2 / variance[valid])))
        cont = _observed(Template(*_rest_samples(obj.base, grid, z, obj.min_sigma_kms)),
                         grid, z)
        row["snr_continuum"] = float(amplitude * np.sqrt(np.sum(cont[valid] ** 2
                                                                / variance[valid])))
        row["features"] = ",".join(f"{name}:{amplitude * f[2]:.2f}"   # the candidates
                                   for name, f in sorted(features.items(),
                                                         key=lambda item: -item[1][2]))
        for line in obj.lines:
            row[f"flux_{line[0]}"] = amplitude * line[2] * (1 + z)
    rho1 = _draw_range(rng, correlated_noise)
    kernel = kernel_for_rho(rho1)
    row["rho1"] = rho1
    row["rho2"] = float(kernel[0] ** 2)
    sigma = np.sqrt(variance)
    noise = correlated_noise_sample(rng, sigma, rho1)
    if cls != "noise":
        weights = feature_model / variance * sigma * valid     # u = sigma V^-1 s
        corr = np.sum(weights ** 2) + 2 * rho1 * np.sum(weights[1:] * weights[:-1]) \
            + 2 * row["rho2"] * np.sum(weights[2:] * weights[:-2])
        row["snr_corr"] = float(row["snr"] ** 2 / np.sqrt(corr))
    sky = np.zeros(n_pixel)
    amplitudes = []
    if rng.random() < sky_fraction:
        sky, amplitudes = _sky_residual(rng, grid.value, sigma, grid.fwhm)
    row["n_sky_residuals"] = len(amplitudes)
    row["sky_residual_amp"] = float(np.median(amplitudes)) if amplitudes else np.nan
    data = model + noise + sky
    stat = variance.copy()
    if ao:
        data[grid.notch] = 0.0
        if ao_stat != "finite":
            stat[grid.notch] = np.nan if ao_stat == "nan" else 0.0
    return row, {"data": data, "stat": stat, "model": model, "feature_model": feature_model,
                 "noise": noise, "sky": sky, "variance": variance}


def _rest_samples(function, grid, z, min_sigma_kms):
    """Rest wavelengths covering the grid at z (2 % margins) and ``function`` on them."""
    rest_range, step = _rest_range(grid, z, min_sigma_kms)
    wave = np.arange(rest_range[0], rest_range[1] + step, step)
    return wave * u.AA, function(wave)


def _rest_range(grid, z, min_sigma_kms):
    low = grid.vacuum[0] / (1 + z) * 0.98
    high = grid.vacuum[-1] / (1 + z) * 1.02
    step = low * max(min(min_sigma_kms, 100.0), 10.0) / C_KMS / 3
    return (low, high), step


def _draw_object(rng, cls, grid, variance, valid, target):
    """An object of class ``cls`` whose strongest feature is allowed, scaled to S/N ``target``."""
    for _ in range(20):                       # redshifts
        z = draw_redshift(cls, rng)
        for _ in range(30):                   # parameters at that redshift
            obj = _BUILDERS[cls](rng, z)
            rest_range, step = _rest_range(grid, z, obj.min_sigma_kms)
            features = _features(obj, z, grid, rest_range, step, variance, valid)
            if not features:
                break
            best = max(features, key=lambda name: features[name][2])
            if obj.allowed is None or best in obj.allowed:
                template = _template(obj, obj.lines, rest_range, step, name=cls)
                model = _observed(template, grid, z)
                return obj, z, best, features, model, target / features[best][2]
    raise RuntimeError(f"could not draw a {cls!r} object whose strongest feature is allowed")


def _truth_table(rows):
    """The truth table from the rows (missing values: NaN, False or '')."""
    first = ["id", "class", "z", "snr", "feature", "feature_wave", "snr_corr", "snr_total",
             "snr_continuum", "amplitude", "variance_index", "noise_scale", "rho1", "rho2",
             "ao", "ao_stat", "n_sky_residuals", "sky_residual_amp", "width_kms", "ew_rest"]
    names = list(first)
    for row in rows:
        for key in row:
            if key not in names and not key.startswith("flux_"):
                names.append(key)
    flux_names = sorted({k for row in rows for k in row if k.startswith("flux_")},
                        key=lambda k: rest_wavelength(k[5:]))
    names += flux_names
    columns = {}
    for name in names:
        values = [row.get(name) for row in rows]
        sample = next((v for v in values if v is not None), None)
        if isinstance(sample, (bool, np.bool_)):
            columns[name] = np.array([bool(v) if v is not None else False for v in values])
        elif isinstance(sample, str):
            columns[name] = np.array([v if v is not None else "" for v in values], dtype=str)
        elif isinstance(sample, (int, np.integer)) and name in ("id", "variance_index",
                                                                "n_sky_residuals"):
            columns[name] = np.array([int(v) for v in values])
        else:
            columns[name] = np.array([float(v) if v is not None else np.nan for v in values])
    table = Table(columns)
    table["z"].description = "systemic redshift (vacuum convention); NaN for noise"
    table["snr"].description = "matched-filter S/N of the strongest feature (STAT, valid pixels)"
    return table
