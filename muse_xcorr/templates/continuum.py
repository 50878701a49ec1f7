"""Continuum subtraction before correlating, applied identically to data and template.

With ``Correlator(..., continuum="median")`` every spectrum and every
template column T[:, k] (the template already redshifted onto the observed
grid) lose a smooth continuum estimated the same way, on the same observed
pixels, so that emission and absorption lines, not the continuum shape,
drive the correlation.

Methods (``window`` is a length in observed Angstrom):

- ``"median"``: running median over ``window``, evaluated every quarter
  window on the valid pixels and linearly interpolated in between;
- ``"spline"``: least-squares cubic B-spline with knots every ``window``;
- ``"polynomial"``: least-squares Legendre polynomial of degree
  ``span / window`` (at most 15).

**Variance.** The variance is left unchanged. The continuum is a smooth
estimate from about N = window / pixel pixels (80 for 100 A on MUSE's 1.25 A
grid); its own noise adds about pi / (2 N) of the pixel variance for the
median (about 1 / N for the least-squares fits), i.e. 1-2 %, and correlates the
residuals over the window. Both are neglected: sigma_f is then too small by
under 1 %. Data and template go through the same operator, so the model
d = A T + n stays consistent up to the median's non-linearity, whose effect
is measured in docs/templates.rst. Pixels that are invalid in the data are
ignored by the estimate and stay invalid.
"""
import warnings

import numpy as np
import astropy.units as u

from ..spectra import SpectraBatch, _SpectralData

__all__ = ["METHODS", "ContinuumSubtraction", "continuum_subtraction", "subtracted_view"]

#: Continuum estimators.
METHODS = ("median", "spline", "polynomial")


class ContinuumSubtraction:
    """A continuum estimator on a fixed observed grid; see the module notes.

    Parameters
    ----------
    method : {"median", "spline", "polynomial"}
    window : `~astropy.units.Quantity`
        Smoothing length in observed wavelength.
    """

    def __init__(self, method="median", window=150 * u.AA):
        if method not in METHODS:
            raise ValueError(f"continuum must be None or one of {METHODS}, got {method!r}")
        window = u.Quantity(window, u.AA)
        if not window.value > 0:
            raise ValueError(f"the continuum window must be positive, got {window}")
        self.method = method
        self.window = window

    def __repr__(self):
        return f"<ContinuumSubtraction {self.method!r}, window {self.window:.0f}>"

    def __eq__(self, other):
        return (isinstance(other, ContinuumSubtraction) and other.method == self.method
                and other.window == self.window)

    def __hash__(self):
        return hash((self.method, float(self.window.value)))

    def continuum(self, flux, valid, wavelength):
        """The continuum of each row.

        Parameters
        ----------
        flux : ndarray, shape (n, n_pixel)
        valid : ndarray of bool, shape (n, n_pixel) or (n_pixel,)
            Pixels the estimate may use.
        wavelength : `~astropy.units.Quantity`, shape (n_pixel,)

        Returns
        -------
        continuum : ndarray, shape (n, n_pixel)
            Zero for a row without valid pixels.
        """
        flux = np.atleast_2d(np.asarray(flux, float))
        valid = np.broadcast_to(np.asarray(valid, bool), flux.shape)
        wave = u.Quantity(wavelength, u.AA).value
        if self.method == "median":
            return _running_median(flux, valid, wave, self.window.value)
        return _least_squares(flux, valid, self._design(wave))

    def subtract(self, flux, valid, wavelength):
        """``flux - continuum``, zero where invalid (see :meth:`continuum`)."""
        flux = np.atleast_2d(np.asarray(flux, float))
        valid = np.broadcast_to(np.asarray(valid, bool), flux.shape)
        return np.where(valid, flux - self.continuum(flux, valid, wavelength), 0.0)

    def subtract_from_template(self, matrix, wavelength, chunk=2048):
        """Subtract the continuum from every column of a template matrix (n_pixel, n_z).

        Raises
        ------
        ValueError
            If nothing is left (a featureless template, e.g. a pure continuum).
        """
        out = np.empty_like(matrix)
        for start in range(0, matrix.shape[1], chunk):
            block = matrix[:, start:start + chunk].T
            out[:, start:start + chunk] = self.subtract(block, True, wavelength).T
        if not np.any(np.abs(out) > 1e-12 * np.abs(matrix).max()):
            raise ValueError(f"nothing of the template is left after continuum subtraction "
                             f"({self!r}): it has no feature narrower than the window")
        return out

    def _design(self, wave):
        span = wave[-1] - wave[0]
        x = 2 * (wave - wave[0]) / span - 1
        if self.method == "polynomial":
            degree = int(min(15, max(1, round(span / self.window.value))))
            return np.polynomial.legendre.legvander(x, degree)
        from scipy.interpolate import BSpline

        n_inner = max(int(np.floor(span / self.window.value)), 1)
        inner = np.linspace(-1, 1, n_inner + 1)
        knots = np.concatenate([[-1.0] * 3, inner, [1.0] * 3])
        return BSpline.design_matrix(np.clip(x, -1, 1), knots, 3).toarray()


def _running_median(flux, valid, wave, window):
    """Running median over ``window`` Angstrom, on a quarter-window lattice, interpolated."""
    step = np.median(np.diff(wave))
    width = max(int(round(window / step)), 3)
    stride = max(width // 4, 1)
    padded = np.where(valid, flux, np.nan)
    half = width // 2
    padded = np.pad(padded, ((0, 0), (half, half)), constant_values=np.nan)
    windows = np.lib.stride_tricks.sliding_window_view(padded, width, axis=1)[:, ::stride]
    centres = np.arange(0, flux.shape[1] + 1, stride)[:windows.shape[1]]
    medians = np.median(windows, axis=2)  # fast path; NaN where a window has a gap
    gaps = np.isnan(medians)
    if gaps.any():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows stay NaN
            medians[gaps] = np.nanmedian(windows[gaps], axis=1)
    out = np.zeros_like(flux)
    pixels = np.arange(flux.shape[1])
    for row in range(flux.shape[0]):
        good = np.isfinite(medians[row])
        if good.any():
            out[row] = np.interp(pixels, centres[good], medians[row, good])
    return out


def _least_squares(flux, valid, design):
    """Row-wise least-squares fit of ``design`` to the valid pixels."""
    out = np.zeros_like(flux)
    same = np.all(valid == valid[:1], axis=1)
    if same.all():  # one shared mask: one solve for every row
        cols = valid[0]
        if cols.sum() >= design.shape[1]:
            coef, *_ = np.linalg.lstsq(design[cols], flux[:, cols].T, rcond=None)
            out = (design @ coef).T
        return out
    for row in range(flux.shape[0]):
        cols = valid[row]
        if cols.sum() >= design.shape[1]:
            coef, *_ = np.linalg.lstsq(design[cols], flux[row, cols], rcond=None)
            out[row] = design @ coef
    return out


def continuum_subtraction(continuum, window=150 * u.AA):
    """A `ContinuumSubtraction` from the Correlator's keywords, or None.

    Parameters
    ----------
    continuum : None, str or `ContinuumSubtraction`
    window : `~astropy.units.Quantity`
    """
    if continuum is None or isinstance(continuum, ContinuumSubtraction):
        return continuum
    return ContinuumSubtraction(continuum, window)


class _Subtracted(_SpectralData):
    """A view of a cube or spectrum whose batches have their continuum subtracted."""

    def __init__(self, data, subtraction):  # noqa: super().__init__ is not called: a view
        self.__dict__["_parent"] = data
        self.__dict__["subtraction"] = subtraction

    def __getattr__(self, name):
        return getattr(self.__dict__["_parent"], name)

    def spectra(self, start=0, stop=None):
        batch = self._parent.spectra(start, stop)
        flux = self.subtraction.subtract(batch.flux, batch.valid, self._parent.spectral_axis)
        return SpectraBatch(batch.start, batch.stop, flux, batch.variance, batch.valid,
                            batch.bad_variance)

    def __repr__(self):
        return f"{self._parent!r} ({self.subtraction!r})"


def subtracted_view(data, subtraction):
    """``data`` with every batch continuum-subtracted (``data`` itself when nothing to do).

    Idempotent: a view made with the same subtraction is returned unchanged.
    """
    if subtraction is None:
        return data
    if isinstance(data, _Subtracted):
        if data.subtraction == subtraction:
            return data
        data = data._parent
    return _Subtracted(data, subtraction)
