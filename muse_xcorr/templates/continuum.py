"""Continuum subtraction, the same operator on the data and on the template.

With ``continuum="median"`` (the default of :class:`~muse_xcorr.Correlator`)
every spectrum loses a running median over a window of fixed **velocity**
width, and so does the rest-frame template, once, before it is redshifted:
a window in velocity is the same in the rest frame and in the observed
frame, so the redshifted subtracted template is the subtracted redshifted
template, and emission and absorption lines, not continuum shapes, drive the
correlation. (A window in Angstrom would have to be applied to every
redshifted template column again; that cost minutes for the default set.)

The median is evaluated on a lattice of centres a quarter of the window
apart in ln(lambda), over the valid pixels within half a window of each
centre, and interpolated linearly in ln(lambda) in between. The template's
median is taken over its support only (where it is non-zero), so that its
ends do not leave a step that could mimic a line.

**Variance.** The variance is left unchanged: the median of about N
pixels adds about pi / (2 N) of the pixel variance (1-2 % for the default
window on MUSE's grid) and correlates the residuals over the window; both
are neglected. Pixels that are invalid in the data are ignored by the
estimate and stay invalid.
"""
import numpy as np
import astropy.units as u

from ..statistics import row_median
from ..units import C_KMS

__all__ = ["METHODS", "DEFAULT_WINDOW", "ContinuumSubtraction", "continuum_subtraction",
           "NothingLeftError"]

#: Continuum estimators.
METHODS = ("median",)

#: The default window: 6000 km/s (140 Angstrom at 7000 Angstrom).
DEFAULT_WINDOW = 6000 * u.km / u.s


class NothingLeftError(ValueError):
    """A template with no feature narrower than the continuum window: nothing to correlate."""


class ContinuumSubtraction:
    """A running-median continuum over a window of fixed velocity width.

    Parameters
    ----------
    method : {"median"}
    window : `~astropy.units.Quantity`
        Full width of the window, a velocity (e.g. ``6000 * u.km / u.s``).
    """

    def __init__(self, method="median", window=DEFAULT_WINDOW):
        if method not in METHODS:
            raise ValueError(f"continuum must be None or one of {METHODS}, got {method!r}")
        window = u.Quantity(window)
        if window.unit.physical_type != "speed":
            raise u.UnitTypeError(f"the continuum window is a velocity (it is applied in the "
                                  f"rest frame of the template too), got {window}")
        if not window.value > 0:
            raise ValueError(f"the continuum window must be positive, got {window}")
        self.method = method
        self.window = window.to(u.km / u.s)

    def __repr__(self):
        return f"<ContinuumSubtraction {self.method!r}, window {self.window:.0f}>"

    def __eq__(self, other):
        return (isinstance(other, ContinuumSubtraction) and other.method == self.method
                and other.window == self.window)

    def __hash__(self):
        return hash((self.method, float(self.window.value)))

    @property
    def width(self):
        """The window as a width in ln(lambda)."""
        return float(self.window.value) / C_KMS

    def continuum(self, flux, valid, wavelength):
        """The continuum of each row of ``flux`` on an observed grid.

        Parameters
        ----------
        flux : ndarray, shape (n, n_pixel)
        valid : ndarray of bool, shape (n, n_pixel) or (n_pixel,)
            Pixels the estimate may use.
        wavelength : `~astropy.units.Quantity` or ndarray (Angstrom), shape (n_pixel,)

        Returns
        -------
        continuum : ndarray, shape (n, n_pixel)
            Zero for a row without valid pixels.
        """
        flux = np.atleast_2d(np.asarray(flux, float))
        valid = np.broadcast_to(np.asarray(valid, bool), flux.shape)
        x = np.log(u.Quantity(wavelength, u.AA).value)
        return lattice_median(flux, valid, x, self.width)

    def subtract(self, flux, valid, wavelength):
        """``flux - continuum``, zero where invalid (see :meth:`continuum`)."""
        flux = np.atleast_2d(np.asarray(flux, float))
        valid = np.broadcast_to(np.asarray(valid, bool), flux.shape)
        return np.where(valid, flux - self.continuum(flux, valid, wavelength), 0.0)

    def subtract_from_table(self, table):
        """A rest-frame `~muse_xcorr.templates.resample.LogTable` minus its continuum.

        Raises
        ------
        NothingLeftError
            If nothing is left (a featureless template, e.g. a pure continuum).
        """
        low, high = table.support
        inside = (table.wavelength >= low) & (table.wavelength <= high)
        x = table.x0 + table.step * np.arange(len(table))
        # the medians from every few nodes: the table is far finer than any window
        # (4 km/s against thousands), and the continuum is interpolated between centres
        every = max(1, int(self.width / table.step) // 256)
        smooth = lattice_median(table.values[None, ::every], inside[None, ::every], x[::every],
                                self.width, at=x)[0]
        # the nodes next to the support carry the continuum of its end (for the partial cells)
        first, last = np.flatnonzero(inside)[[0, -1]] if inside.any() else (0, len(table) - 1)
        smooth[:first] = smooth[first]
        smooth[last + 1:] = smooth[last]
        out = table.minus(smooth)
        scale = np.abs(table.values).max()
        if not np.any(np.abs(out.values) > 1e-9 * scale):
            raise NothingLeftError(f"nothing of the template is left after continuum subtraction "
                                   f"({self!r}): it has no feature narrower than the window")
        return out


def lattice_median(values, valid, x, width, at=None):
    """Running median over a window of ``width`` in x, on a lattice, interpolated.

    Parameters
    ----------
    values : ndarray (n, m)
    valid : ndarray of bool (n, m)
    x : ndarray (m,)
        Increasing sample coordinates (ln lambda).
    width : float
        Full window width in x.
    at : ndarray, optional
        Where to evaluate the interpolated median (default ``x``).

    Returns
    -------
    median : ndarray (n, len(at))
        0 for rows without valid samples.
    """
    n, m = values.shape
    span = x[-1] - x[0]
    n_centres = max(int(np.ceil(span / (width / 4))), 1) + 1
    centres = np.linspace(x[0], x[-1], n_centres)
    low = np.searchsorted(x, centres - width / 2, side="left")
    high = np.searchsorted(x, centres + width / 2, side="right")
    medians = _window_medians(np.where(valid, values, np.nan), valid, low, high)
    at = x if at is None else np.asarray(at, dtype=float)
    out = np.zeros((n, at.size))
    good = np.isfinite(medians)
    complete = good.all(axis=1)
    if complete.any():  # shared lattice: one set of interpolation weights
        right = np.clip(np.searchsorted(centres, at, side="right"), 1, n_centres - 1)
        left = right - 1
        t = np.clip((at - centres[left]) / (centres[right] - centres[left]), 0.0, 1.0)
        rows = medians[complete]
        out[complete] = rows[:, left] * (1 - t) + rows[:, right] * t
    for row in np.flatnonzero(~complete & good.any(axis=1)):
        out[row] = np.interp(at, centres[good[row]], medians[row, good[row]])
    return out


#: Values one pass of `_window_medians` copies at most (32 MB of float64).
_WINDOW_VALUES = 4_000_000
#: Above this many spectra `_window_medians` takes one window at a time (measured on 4096
#: MUSE spectra: 0.9-1.6 s, against 1.2-1.9 s for the windows of one width together).
_FEW_ROWS = 64


def _window_medians(masked, valid, low, high):
    """The median of ``masked[:, low[c]:high[c]]`` for every window c (NaN: not valid).

    For a few spectra (a template table, one spectrum) the windows of one
    width are taken together, as a (spectra, windows, width) copy: one call
    instead of one per window (hundreds, each a few microseconds of work
    and tens of overhead). A
    window valid in every spectrum gets ``np.median``, another the median
    of its valid values (`~muse_xcorr.statistics.row_median`).
    """
    from numpy.lib.stride_tricks import sliding_window_view

    n = masked.shape[0]
    medians = np.full((n, low.size), np.nan)
    width = high - low
    complete = np.array([valid[:, a:b].all() for a, b in zip(low, high)], dtype=bool)
    if n > _FEW_ROWS:  # many spectra: a window at a time is as fast, and lighter on memory
        for c in np.flatnonzero(width > 0):
            slab = masked[:, low[c]:high[c]]
            medians[:, c] = np.median(slab, axis=1) if complete[c] else row_median(slab)
        return medians
    for size in np.unique(width[width > 0]):
        view = sliding_window_view(masked, int(size), axis=1)
        per_pass = max(1, _WINDOW_VALUES // max(n * int(size), 1))
        for full in (True, False):
            windows = np.flatnonzero((width == size) & (complete == full))
            for first in range(0, windows.size, per_pass):
                part = windows[first:first + per_pass]
                slabs = view[:, low[part]]                      # (n, len(part), size)
                if full:
                    medians[:, part] = np.median(slabs, axis=2, overwrite_input=True)
                else:
                    medians[:, part] = row_median(slabs.reshape(-1, int(size))).reshape(
                        n, part.size)
    return medians


def continuum_subtraction(continuum, window=DEFAULT_WINDOW):
    """A `ContinuumSubtraction` from the Correlator's keywords, or None.

    Parameters
    ----------
    continuum : None, str or `ContinuumSubtraction`
    window : `~astropy.units.Quantity`
    """
    if continuum is None or isinstance(continuum, ContinuumSubtraction):
        return continuum
    return ContinuumSubtraction(continuum, window)
