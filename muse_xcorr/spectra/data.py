"""Spectrum and cube wrappers that carry everything the correlator needs.

`MuseSpectrum` (one spectrum) and `MuseCube` (spectra on a spatial grid, a
MUSE cube) hold the spectral axis, flux, uncertainty, mask (True = bad), the
wavelength medium and, for a cube, the celestial WCS. They convert to and from
specutils `~specutils.Spectrum` objects and read MUSE FITS files. The arrays are
kept as given (a memory-mapped FITS cube stays on disk, a cube read with
``chunks=`` is backed by dask arrays): the correlator pulls spectra out a batch
at a time with :meth:`MuseCube.spectra`, which reads only the batch's spaxels.
"""
import numpy as np
import astropy.units as u
from astropy.nddata import InverseVariance, StdDevUncertainty, VarianceUncertainty

from ..units import as_angstrom, check_medium, medium_from_ctype, resolve_medium
from ..io.spectrum1d import zero_run_mask
from ..statistics import row_median

__all__ = ["MuseSpectrum", "MuseCube", "SpectraBatch", "DaskQuantity", "as_spectral_data",
           "VARIANCE_FLOOR"]

_UNCERTAINTY_TYPES = (VarianceUncertainty, StdDevUncertainty, InverseVariance)


def _is_dask(array):
    """True for a dask array (without importing dask)."""
    return type(array).__module__.startswith("dask.") and hasattr(array, "compute")


def _materialise(array):
    """A NumPy array of ``array``: a dask array is computed in this thread.

    The synchronous scheduler, always: inside a Dask worker or next to a
    ``distributed.Client``, the default scheduler would send the pieces of a
    memory-mapped file through the cluster.
    """
    if _is_dask(array):
        return np.asarray(array.compute(scheduler="synchronous"))
    return np.asarray(array)


class DaskQuantity:
    """A dask array with a unit: the flux of a cube read with ``MuseCube.read(chunks=...)``.

    `~astropy.units.Quantity` cannot hold a dask array (it would read the
    whole cube), so a dask-backed cube keeps its flux as this thin pair.
    Slicing keeps it lazy; `compute` (or ``np.asarray``) reads it.

    Attributes
    ----------
    value : `dask.array.Array`
    unit : `~astropy.units.UnitBase`
    """

    def __init__(self, value, unit):
        self.value = value
        self.unit = u.Unit(unit)

    shape = property(lambda self: self.value.shape)
    ndim = property(lambda self: self.value.ndim)
    dtype = property(lambda self: self.value.dtype)
    size = property(lambda self: self.value.size)

    def __getitem__(self, item):
        return DaskQuantity(self.value[item], self.unit)

    def compute(self):
        """The values read into a `~astropy.units.Quantity`."""
        return u.Quantity(_materialise(self.value), self.unit, copy=False)

    def __array__(self, dtype=None, copy=None):
        array = _materialise(self.value)
        return array if dtype is None else array.astype(dtype)

    def __repr__(self):
        return f"<DaskQuantity {self.value!r} {self.unit}>"


class SpectraBatch:
    """A batch of spectra as float64 arrays, spectral axis last.

    Attributes
    ----------
    start, stop : int
        Flat spaxel indices (C order over the spatial shape) of the batch.
    flux : ndarray, shape (n, n_pixel)
        Flux in the data's flux unit; 0 where ``valid`` is False.
    variance : ndarray, shape (n, n_pixel)
        Variance in the flux unit squared; 0 where ``valid`` is False.
    valid : ndarray of bool, shape (n, n_pixel)
        True where a pixel enters the sums: not masked, finite flux, finite and
        positive variance.
    bad_variance : ndarray of bool, shape (n,)
        True for spectra where an otherwise valid pixel had a zero, negative or
        non-finite variance (it was dropped from ``valid``).
    outliers : ndarray of bool, shape (n,)
        True for spectra where an otherwise valid pixel had an absurd flux
        (:data:`ABSURD_FLUX`, :data:`OUTLIER_SIGMA`; it was dropped from ``valid``).
    """

    def __init__(self, start, stop, flux, variance, valid, bad_variance, outliers=None):
        self.start, self.stop = start, stop
        self.flux, self.variance, self.valid = flux, variance, valid
        self.bad_variance = bad_variance
        self.outliers = (np.zeros(np.shape(bad_variance), bool) if outliers is None
                         else np.asarray(outliers, bool))

    @classmethod
    def from_arrays(cls, start, stop, flux, variance, mask=None):
        """A batch from raw (n, n_pixel) arrays, with the package's masking rule.

        A pixel is valid where it is not masked, its flux is finite, its
        variance finite, positive and at least :data:`VARIANCE_FLOOR` times
        the median variance of the spectrum's other pixels (a variance a
        thousand times below the median is an artefact, e.g. at the edge of
        the AO notch, and one such pixel would dominate an inverse-variance
        fit), and it is not part of a run of at least
        :data:`~muse_xcorr.io.spectrum1d.DEFAULT_MIN_ZERO_RUN` consecutive
        pixels of exactly zero flux (the AO laser notch of MUSE, zero-padded
        edges), and its flux is not absurd: not at least :data:`ABSURD_FLUX` in
        magnitude (FLT_MAX-like sentinels such as 3e38) and not more than
        :data:`OUTLIER_SIGMA` standard deviations from the spectrum's median
        (real MUSE spectra reach a few hundred at the peak of their brightest
        lines). Invalid pixels get flux and variance 0; a spectrum that lost a
        pixel to its variance is flagged BAD_VARIANCE, one that lost a pixel
        to an absurd flux OUTLIER_PIXELS.

        Parameters
        ----------
        start, stop : int
        flux, variance : ndarray (n, n_pixel)
            Variance in the flux unit squared.
        mask : ndarray of bool (n, n_pixel), optional
            True = bad.
        """
        flux = np.asarray(flux, dtype=float)
        variance = np.asarray(variance, dtype=float)
        usable = np.isfinite(flux) & ~zero_run_mask(flux)
        if mask is not None:
            usable &= ~np.asarray(mask, bool)
        good_variance = np.isfinite(variance) & (variance > 0)
        if good_variance.any():
            typical = row_median(variance, usable & good_variance)
            good_variance &= ~(variance < VARIANCE_FLOOR * np.nan_to_num(typical)[:, None])
        valid = usable & good_variance
        bad_variance = np.any(usable & ~good_variance, axis=1)
        absurd = _absurd_flux(flux, variance, valid)
        valid &= ~absurd
        return cls(start, stop, np.where(valid, flux, 0.0), np.where(valid, variance, 0.0),
                   valid, bad_variance, np.any(absurd, axis=1))

    #: The per-spectrum arrays, in the constructor's order.
    FIELDS = ("flux", "variance", "valid", "bad_variance", "outliers")

    def take(self, pick):
        """The spectra ``pick`` (indices, a boolean mask or a slice) as a batch from 0."""
        arrays = [getattr(self, name)[pick] for name in self.FIELDS]
        return SpectraBatch(0, len(arrays[0]), *arrays)

    @classmethod
    def concatenate(cls, batches):
        """Several batches, one after another, as one batch from 0."""
        arrays = [np.concatenate([getattr(b, name) for b in batches]) for name in cls.FIELDS]
        return cls(0, len(arrays[0]), *arrays)

    def __len__(self):
        return self.stop - self.start

    def inverse_variance(self):
        """Weights 1 / variance on the valid pixels and 0 elsewhere, shape (n, n_pixel)."""
        weights = np.zeros_like(self.variance)
        np.divide(1.0, self.variance, out=weights, where=self.valid)
        return weights


#: Variances below this fraction of a spectrum's median variance are masked (artefacts).
VARIANCE_FLOOR = 1e-3
#: A flux of at least this magnitude (in any unit) is a sentinel, not a measurement.
ABSURD_FLUX = 1e30
#: A flux this many standard deviations from the spectrum's median is masked as an outlier.
OUTLIER_SIGMA = 1e5


def _absurd_flux(flux, variance, valid):
    """Valid pixels whose flux is a sentinel or absurdly many sigma from the median."""
    with np.errstate(invalid="ignore", over="ignore"):
        sentinel = valid & (np.abs(flux) >= ABSURD_FLUX)
        rest = valid & ~sentinel
        centre = row_median(flux, rest)
        far = np.abs(flux - np.nan_to_num(centre)[:, None]) > OUTLIER_SIGMA * np.sqrt(
            np.where(rest, variance, np.inf))
    return sentinel | (rest & far)


def variance_from_uncertainty(values, uncertainty_type):
    """Turn uncertainty values of any astropy.nddata type into a variance.

    Parameters
    ----------
    values : ndarray
        ``uncertainty.array`` (or a part of it).
    uncertainty_type : type
        `~astropy.nddata.VarianceUncertainty`, `~astropy.nddata.StdDevUncertainty`
        or `~astropy.nddata.InverseVariance`.

    Returns
    -------
    variance : ndarray (float64)
        ``inf`` where an inverse variance is 0 (no information).
    """
    values = np.asarray(values, dtype=float)
    if issubclass(uncertainty_type, VarianceUncertainty):
        return values
    if issubclass(uncertainty_type, StdDevUncertainty):
        return values * values
    if issubclass(uncertainty_type, InverseVariance):
        with np.errstate(divide="ignore", invalid="ignore"):
            return 1.0 / values
    raise TypeError(f"unsupported uncertainty type {uncertainty_type.__name__}")


def _variance_scale(uncertainty, flux_unit):
    """Factor that turns ``variance_from_uncertainty(uncertainty.array)`` into flux_unit**2.

    The uncertainty's values are first brought to the unit its type implies
    (flux_unit**2 for a variance, flux_unit for a standard deviation,
    flux_unit**-2 for an inverse variance); the variance then scales by that
    factor, its square, or its inverse. No unit on the uncertainty means
    the flux's.
    """
    if uncertainty.unit is None:
        return 1.0
    kind = type(uncertainty)
    if isinstance(uncertainty, VarianceUncertainty):
        expected, power = flux_unit ** 2, 1
    elif isinstance(uncertainty, StdDevUncertainty):
        expected, power = flux_unit, 2
    else:
        expected, power = flux_unit ** -2, -1
    try:
        factor = (1 * uncertainty.unit).to_value(expected)
    except u.UnitConversionError:
        raise u.UnitConversionError(
            f"the {kind.__name__} unit {uncertainty.unit} does not convert to "
            f"{expected} (flux unit {flux_unit})") from None
    return factor ** power


def _as_wavelength(spectral_axis):
    """Spectral axis as a float64 Quantity in Angstrom (wavelength, frequency or energy)."""
    wave = as_angstrom(spectral_axis, "spectral axis") * u.AA
    if wave.ndim != 1:
        raise ValueError(f"the spectral axis must be one-dimensional, got shape {wave.shape}")
    if wave.size < 3:
        raise ValueError("the spectral axis needs at least 3 pixels")
    if not np.all(np.isfinite(wave.value)) or np.any(wave.value <= 0):
        raise ValueError("the spectral axis has non-finite or non-positive wavelengths")
    return wave


class _SpectralData:
    """What `MuseSpectrum` and `MuseCube` share: validation, batching, specutils."""

    _min_ndim = 1
    _max_ndim = 1
    #: Set by the FITS readers: checks the file still holds the data before a batch is read.
    _read_guard = None

    def __init__(self, spectral_axis, flux, uncertainty=None, mask=None, *, medium,
                 spectral_axis_index=-1, wcs=None, meta=None):
        wave = _as_wavelength(spectral_axis)
        if not isinstance(flux, (u.Quantity, DaskQuantity)):
            raise TypeError("flux must be an astropy Quantity (use u.dimensionless_unscaled "
                            "for unitless data)")
        if not (self._min_ndim <= flux.ndim <= self._max_ndim):
            raise ValueError(f"{type(self).__name__} needs flux with {self._min_ndim} to "
                             f"{self._max_ndim} dimensions, got shape {flux.shape}")
        axis = int(spectral_axis_index)
        if not -flux.ndim <= axis < flux.ndim:
            raise ValueError(f"spectral_axis_index {spectral_axis_index} is out of range "
                             f"for flux of shape {flux.shape}")
        axis %= flux.ndim
        if flux.shape[axis] != wave.size:
            raise ValueError(f"the spectral axis has {wave.size} values but the flux has "
                             f"{flux.shape[axis]} along axis {axis} (shape {flux.shape})")
        if uncertainty is not None:
            if not isinstance(uncertainty, _UNCERTAINTY_TYPES):
                names = ", ".join(t.__name__ for t in _UNCERTAINTY_TYPES)
                raise TypeError(f"uncertainty must be one of {names}; got "
                                f"{type(uncertainty).__name__}")
            if np.shape(uncertainty.array) != flux.shape:
                raise ValueError(f"uncertainty shape {np.shape(uncertainty.array)} does not "
                                 f"match the flux shape {flux.shape}")
            self._variance_scale = _variance_scale(uncertainty, flux.unit)
        if mask is not None:
            mask = mask if _is_dask(mask) else np.asarray(mask)
            if mask.shape != flux.shape:
                raise ValueError(f"mask shape {mask.shape} does not match the flux shape "
                                 f"{flux.shape}")
            if mask.dtype != bool:
                mask = mask != 0
        descending = wave.size > 1 and wave.value[1] < wave.value[0]
        steps = np.diff(wave.value)
        if not (np.all(steps > 0) or np.all(steps < 0)):
            raise ValueError("the spectral axis must be strictly monotonic")
        if descending:  # store increasing wavelengths: views with a negative stride
            flip = [slice(None)] * flux.ndim
            flip[axis] = slice(None, None, -1)
            flip = tuple(flip)
            wave, flux = wave[::-1], flux[flip]
            if uncertainty is not None:
                uncertainty = type(uncertainty)(uncertainty.array[flip], unit=uncertainty.unit)
            if mask is not None:
                mask = mask[flip]
        self.spectral_axis = wave
        self.flux = flux
        self.uncertainty = uncertainty
        self.mask = mask
        self.medium = check_medium(medium)
        self.spectral_axis_index = axis
        self.wcs = wcs
        self.meta = dict(meta or {})

    # -- shapes ---------------------------------------------------------------
    @property
    def n_pixels(self):
        """Number of spectral pixels."""
        return self.spectral_axis.size

    @property
    def spatial_shape(self):
        """Shape of the spatial axes (``()`` for one spectrum)."""
        shape = list(self.flux.shape)
        del shape[self.spectral_axis_index]
        return tuple(shape)

    @property
    def n_spectra(self):
        """Number of spectra (spaxels)."""
        return int(np.prod(self.spatial_shape, dtype=int))

    @property
    def wavelength(self):
        """The spectral axis in Angstrom, in the data's `medium`."""
        return self.spectral_axis

    # -- batches --------------------------------------------------------------
    def _spectral_last(self, array, start, stop):
        """Spectra ``start:stop`` (flat C-order spatial index) of ``array`` as (n, n_pixel).

        Reads only the rows of the first spatial axis that hold the batch, so a
        memory-mapped cube is never loaded whole. A reader that memory-maps a
        file sets ``_read_guard``, called first: it raises `OSError` if the file
        has shrunk since it was opened (reading its lost pages would be SIGBUS).
        """
        guard = getattr(self, "_read_guard", None)
        if guard is not None:
            guard()
        moved = np.moveaxis(array, self.spectral_axis_index, -1)
        spatial = moved.shape[:-1]
        if len(spatial) <= 1:
            return _materialise(moved[start:stop] if spatial else moved[None, :])
        row = int(np.prod(spatial[1:], dtype=int))
        first, last = start // row, (stop - 1) // row + 1
        slab = _materialise(moved[first:last]).reshape(-1, moved.shape[-1])
        return slab[start - first * row:stop - first * row]

    def spectra(self, start=0, stop=None):
        """Spectra ``start:stop`` as a `SpectraBatch` of float64 arrays.

        Parameters
        ----------
        start, stop : int
            Flat spaxel indices in C order over `spatial_shape`.

        Returns
        -------
        batch : `SpectraBatch`
        """
        stop = self.n_spectra if stop is None else min(stop, self.n_spectra)
        return SpectraBatch.from_arrays(start, stop, *self._raw_spectra(start, stop))

    def _raw_spectra(self, start, stop):
        """Flux, variance (flux unit squared) and mask (or None) of spectra ``start:stop``,
        as read: before the masking rule of `SpectraBatch.from_arrays`."""
        if self.uncertainty is None:
            raise ValueError(f"this {type(self).__name__} has no uncertainty: the "
                             "correlation error needs one (pass uncertainty="
                             "VarianceUncertainty(...), StdDevUncertainty(...) or "
                             "InverseVariance(...))")
        flux = self._spectral_last(self.flux.value, start, stop).astype(float)
        variance = variance_from_uncertainty(
            self._spectral_last(self.uncertainty.array, start, stop),
            type(self.uncertainty)) * self._variance_scale
        mask = None if self.mask is None else self._spectral_last(self.mask, start, stop)
        return flux, variance, mask

    def spectra_at(self, rows):
        """The spectra at any flat spaxel indices, in the order given, as a `SpectraBatch`.

        Parameters
        ----------
        rows : array_like of int or slice
            Flat spaxel indices in C order over `spatial_shape`.

        Returns
        -------
        batch : `SpectraBatch`
            Its ``start``/``stop`` span the indices when they are consecutive.
        """
        if isinstance(rows, slice):
            start, stop, _ = rows.indices(self.n_spectra)
            return self.spectra(start, stop)
        rows = np.asarray(rows, dtype=np.int64).ravel()
        if rows.size and (rows.min() < 0 or rows.max() >= self.n_spectra):
            raise IndexError(f"spectrum indices must lie in 0-{self.n_spectra - 1}, got "
                             f"{rows.min()}-{rows.max()}")
        if rows.size and np.all(np.diff(rows) == 1):
            return self.spectra(int(rows[0]), int(rows[-1]) + 1)
        if rows.size == 0:
            return self.spectra(0, 0)
        first, last = int(rows.min()), int(rows.max()) + 1
        if last - first <= 4 * rows.size:  # one read of the span, then a selection
            span = self.spectra(first, last)
            pick = rows - first
        else:
            # scattered rows: read one by one, the masking rule applied once to all of them
            # (it is per row; applied per spectrum it cost ~2 ms each)
            raw = [self._raw_spectra(int(r), int(r) + 1) for r in rows]
            masks = None if raw[0][2] is None else np.concatenate([m for _, _, m in raw])
            batch = SpectraBatch.from_arrays(0, rows.size, np.concatenate([f for f, _, _ in raw]),
                                             np.concatenate([v for _, v, _ in raw]), masks)
            return batch
        return span.take(pick)

    # -- specutils ------------------------------------------------------------
    def to_spectrum(self):
        """This data as a specutils `~specutils.Spectrum`.

        The flux, uncertainty (same type as given) and mask are shared, not
        copied (a dask-backed cube is read into memory: specutils needs
        arrays); the medium goes into ``meta['medium']`` and a cube's celestial
        WCS into ``meta['celestial_wcs']``.
        """
        from specutils import Spectrum

        meta = dict(self.meta, medium=self.medium)
        if self.wcs is not None:
            meta["celestial_wcs"] = self.wcs
        flux, uncertainty, mask = self.flux, self.uncertainty, self.mask
        if isinstance(flux, DaskQuantity):  # specutils needs arrays: read them
            flux = flux.compute()
        if uncertainty is not None and _is_dask(uncertainty.array):
            uncertainty = type(uncertainty)(_materialise(uncertainty.array),
                                            unit=uncertainty.unit)
        if mask is not None and _is_dask(mask):
            mask = _materialise(mask)
        return Spectrum(flux=flux, spectral_axis=self.spectral_axis,
                        spectral_axis_index=self.spectral_axis_index,
                        uncertainty=uncertainty, mask=mask, meta=meta)

    @classmethod
    def from_spectrum(cls, spectrum, medium=None):
        """Wrap a specutils `~specutils.Spectrum` (1D for a spectrum, 2D or 3D for a cube).

        Parameters
        ----------
        spectrum : `~specutils.Spectrum`
            Any spectral axis position (``spectral_axis_index``) and any
            uncertainty type (variance, standard deviation, inverse variance).
        medium : {"air", "vacuum"}, optional
            Needed when the spectrum's WCS does not say: a FITS ``CTYPE`` of
            ``AWAV`` means air and ``WAVE`` vacuum. A keyword that contradicts
            the WCS is an error, and so is a medium that nobody states.

        Returns
        -------
        data : `MuseSpectrum` or `MuseCube`
        """
        wcs_medium, celestial = inspect_spectrum_wcs(spectrum)
        meta_medium = (spectrum.meta or {}).get("medium")
        medium = resolve_medium(wcs_medium, medium if medium is not None else meta_medium)
        axis = getattr(spectrum, "spectral_axis_index", spectrum.flux.ndim - 1)
        spectral_axis = u.Quantity(spectrum.spectral_axis)
        if spectral_axis.ndim != 1:
            raise ValueError("only spectra with a one-dimensional spectral axis are supported")
        wcs = celestial if cls is MuseCube else None
        if wcs is None and cls is MuseCube:
            wcs = (spectrum.meta or {}).get("celestial_wcs")
        meta = {k: v for k, v in (spectrum.meta or {}).items()
                if k not in ("medium", "celestial_wcs")}
        return cls(spectral_axis, u.Quantity(spectrum.flux), spectrum.uncertainty,
                   spectrum.mask, medium=medium, spectral_axis_index=axis, wcs=wcs, meta=meta)

    def __repr__(self):
        shape = "x".join(map(str, self.spatial_shape)) or "1"
        return (f"<{type(self).__name__} {shape} spectra x {self.n_pixels} pixels, "
                f"{self.spectral_axis[0].value:.2f}-{self.spectral_axis[-1].value:.2f} A "
                f"({self.medium}), flux unit {self.flux.unit}>")


def inspect_spectrum_wcs(spectrum):
    """(medium, celestial WCS) from a Spectrum's FITS WCS; None for what it does not say."""
    wcs = getattr(spectrum, "wcs", None)
    fits_wcs = getattr(wcs, "wcs", None)
    ctypes = list(getattr(fits_wcs, "ctype", []) or [])
    media = {medium_from_ctype(c) for c in ctypes} - {None}
    medium = media.pop() if len(media) == 1 else None
    celestial = None
    if fits_wcs is not None and getattr(wcs, "has_celestial", False):
        celestial = wcs.celestial
    return medium, celestial


class MuseSpectrum(_SpectralData):
    """One spectrum with its uncertainty, mask and wavelength medium.

    Parameters
    ----------
    spectral_axis : `~astropy.units.Quantity`
        Wavelength (or frequency/energy), strictly monotonic; stored
        increasing in Angstrom.
    flux : `~astropy.units.Quantity`
        Flux, one-dimensional.
    uncertainty : `~astropy.nddata.NDUncertainty`
        A `~astropy.nddata.VarianceUncertainty`, `~astropy.nddata.StdDevUncertainty`
        or `~astropy.nddata.InverseVariance`.
        The per-pixel error, in units consistent with the flux.
    mask : array_like of bool, optional
        True marks a bad pixel (as in specutils). NaN flux or a non-positive
        variance are masked too.
    medium : {"air", "vacuum"}
        The medium of the wavelengths; MUSE data are in air.
    meta : dict, optional

    Examples
    --------
    >>> import numpy as np, astropy.units as u
    >>> from astropy.nddata import StdDevUncertainty
    >>> from muse_xcorr import MuseSpectrum
    >>> wave = np.linspace(4750, 9350, 3681) * u.AA
    >>> spec = MuseSpectrum(wave, np.ones(3681) * u.Jy,
    ...                     StdDevUncertainty(np.full(3681, 0.1)), medium="air")
    >>> spec.n_pixels, spec.medium
    (3681, 'air')
    """

    def __init__(self, spectral_axis, flux, uncertainty=None, mask=None, *, medium,
                 meta=None, spectral_axis_index=-1, wcs=None):
        super().__init__(spectral_axis, flux, uncertainty, mask, medium=medium,
                         spectral_axis_index=spectral_axis_index, wcs=None, meta=meta)

    @classmethod
    def read(cls, path, *, format=None, medium=None, hdu=None, wavelength=None, flux=None,
             error=None, variance=None, ivar=None, mask=None, flux_unit=None,
             wavelength_unit=None, min_zero_run=3, ext="DATA", stat_ext="STAT"):
        """Read a one-dimensional spectrum from a MUSE, FITS-table, FITS-image or ASCII file.

        With ``format=None`` the reader is chosen from the file's content
        (:func:`muse_xcorr.io.identify_format`):

        * ``"muse"``: MUSE/MPDAF FITS with DATA and STAT (variance) extensions,
          optional DQ (non-zero = bad);
        * ``"fits-table"``: a FITS table with wavelength, flux and error,
          variance or inverse-variance columns under their common names
          (:data:`muse_xcorr.io.columns.COLUMN_NAMES`; TDOSE, ESO one-row
          tables), units from ``TUNITn``;
        * ``"fits-image"``: a 1D image with a linear spectral WCS (``CRVAL1``,
          ``CDELT1`` or ``CD1_1``, ``CTYPE1``) and an error extension named
          ``SIGMA``/``ERR``/``ERROR`` (standard deviation), ``STAT``/``VAR``/
          ``VARIANCE`` (variance) or ``IVAR`` (MUSEpack/PampelMuse);
        * ``"ascii"``: ECSV or text with a header line naming the columns
          (pPXF_wrapper ``.dat``: ``wave NSC_spec NSC_spec_var``, a variance).

        The medium comes from the file (a spectral CTYPE ``AWAV``/``WAVE``, a
        ``MEDIUM`` or ``AIRORVAC`` keyword, ECSV meta) or from ``medium=``; if
        neither says, a `ValueError` asks for ``medium="air"`` (MUSE data are in
        air): it is never guessed. Runs of at least ``min_zero_run`` pixels of
        flux exactly 0 are masked (the AO laser notch, about 5800-5966 Å);
        NaN flux and non-positive or non-finite variances are masked when the
        spectrum is used.

        Parameters
        ----------
        path : str or path-like
        format : {"muse", "fits-table", "fits-image", "ascii"}, optional
            The reader (:data:`muse_xcorr.io.spectrum1d.READERS`); default: identify.
        medium : {"air", "vacuum"}, optional
            Needed when the file does not say; one that contradicts the file
            is an error.
        hdu : int or str, optional
            The table or image HDU holding the spectrum (for ``"muse"``, the
            DATA extension).
        wavelength, flux : str, optional
            Column names (tables), instead of finding them by name.
        error, variance, ivar : str, optional
            The column (tables) or extension (images; for ``"muse"``, ``variance``
            is the STAT extension) with the standard deviation, variance or
            inverse variance. At most one.
        mask : str, optional
            A column or extension whose non-zero values mark bad pixels.
        flux_unit : str or `~astropy.units.UnitBase`, optional
            The flux unit when the file gives none (or one astropy cannot
            parse); one that contradicts the file's is an error.
        wavelength_unit : str or `~astropy.units.UnitBase`, optional
            The wavelength column's unit when the table gives none. Without it,
            values plausible only as Angstrom are read as Angstrom with a
            warning, and others are an error.
        min_zero_run : int or None
            Shortest run of exactly-zero flux that is masked (default 3: a
            single or double zero is kept); None or 0 masks none.
        ext, stat_ext : str
            DATA and STAT extension names of the ``"muse"`` layout.

        Returns
        -------
        spectrum : `MuseSpectrum`
            Spectral axis in Angstrom, increasing; ``meta`` holds
            ``filename``, ``format``, the header(s) and ``zero_runs`` (the
            masked runs as (first, last) wavelengths in Angstrom).

        Raises
        ------
        FileNotFoundError, OSError
            No such file; corrupt or truncated FITS (the message names it).
        ValueError
            No recognisable columns (the message lists them), ambiguous
            columns, no error/variance, unknown or contradictory medium,
            more than one spectrum in the file, or a spectral axis that cannot
            be read.
        """
        from ..io.spectrum1d import read_spectrum_parts

        parts = read_spectrum_parts(path, format=format, medium=medium, hdu=hdu,
                                    wavelength=wavelength, flux=flux, error=error,
                                    variance=variance, ivar=ivar, mask=mask,
                                    flux_unit=flux_unit, wavelength_unit=wavelength_unit,
                                    min_zero_run=min_zero_run, ext=ext, stat_ext=stat_ext)
        return cls(parts.pop("spectral_axis"), parts.pop("flux"), parts.pop("uncertainty"),
                   parts.pop("mask"), medium=parts.pop("medium"), meta=parts.pop("meta"))


class MuseCube(_SpectralData):
    """Spectra on a spatial grid (a MUSE cube), with uncertainty, mask, medium and WCS.

    Parameters
    ----------
    spectral_axis : `~astropy.units.Quantity`
        Wavelength (or frequency/energy), strictly monotonic.
    flux : `~astropy.units.Quantity`
        Two or three dimensions; ``spectral_axis_index`` says where the
        spectral axis is (0 for a FITS cube read as (n_wave, ny, nx)).
    uncertainty : `~astropy.nddata.NDUncertainty`
        A `~astropy.nddata.VarianceUncertainty`, `~astropy.nddata.StdDevUncertainty`
        or `~astropy.nddata.InverseVariance`.
        Same shape as the flux.
    mask : array_like of bool, optional
        True = bad, same shape as the flux.
    medium : {"air", "vacuum"}
    spectral_axis_index : int
        Position of the spectral axis in ``flux.shape``. Default 0.
    wcs : `~astropy.wcs.WCS`, optional
        The celestial WCS of the spatial axes; copied to the result maps.
    meta : dict, optional
    """

    _min_ndim = 2
    _max_ndim = 3

    def __init__(self, spectral_axis, flux, uncertainty=None, mask=None, *, medium,
                 spectral_axis_index=0, wcs=None, meta=None):
        super().__init__(spectral_axis, flux, uncertainty, mask, medium=medium,
                         spectral_axis_index=spectral_axis_index, wcs=wcs, meta=meta)

    @classmethod
    def read(cls, path, *, medium=None, memmap=True, ext="DATA", stat_ext="STAT", chunks=None):
        """Read a MUSE FITS cube: DATA, STAT (variance) and, if present, DQ extensions.

        NaN pixels are masked; the medium comes from CTYPE3 (``AWAV`` air,
        ``WAVE`` vacuum, a frequency axis vacuum) or a MEDIUM keyword; the
        flux unit from BUNIT; the celestial WCS from the DATA header. With
        ``memmap=True`` (default) the arrays stay on disk and are read a batch
        at a time; each batch first checks that the file still has all its
        bytes. Compressed files and scaled integer data (BSCALE/BZERO/BLANK,
        BLANK pixels masked) are read into memory. The headers are checked
        before they are believed (see :mod:`muse_xcorr.io.wcs`), and the file
        is opened read-only. See :func:`muse_xcorr.io.read_muse_fits`.

        Parameters
        ----------
        path : str or path-like
        medium : {"air", "vacuum"}, optional
            Needed only when the file does not say; a contradiction is an error.
        memmap : bool
        ext, stat_ext : str
            The DATA and STAT (variance) extension names.
        chunks : int, tuple, dict or "auto", optional
            Back the flux, variance and mask by `dask.array` arrays with
            these chunks (:func:`dask.array.from_array`; numpy axis order
            (wavelength, y, x), e.g. ``(-1, 32, 32)``: whole spectra in
            spatial tiles). The arrays stay memory-mapped and are read lazily:
            ``cube.flux`` is a `DaskQuantity` (``cube.flux.value`` the dask
            array, for dask reductions), and :meth:`spectra` reads only the
            rows of spaxels a batch needs, with dask's synchronous scheduler.
            Default None: plain (memory-mapped) NumPy arrays.

        Returns
        -------
        cube : `MuseCube`
            ``meta`` holds ``filename``, ``header``, ``primary_header`` and
            ``read_options`` (what a Dask worker needs to open it again).
        """
        from ..io.muse import read_muse_fits

        parts = read_muse_fits(path, ndim=3, medium=medium, memmap=memmap, ext=ext,
                               stat_ext=stat_ext)
        flux, uncertainty, mask = parts.pop("flux"), parts.pop("uncertainty"), parts.pop("mask")
        if chunks is not None:
            flux, uncertainty, mask = _as_dask(path, chunks, flux, uncertainty, mask)
        meta = parts.pop("meta")
        meta["read_options"] = {"medium": parts["medium"], "memmap": bool(memmap), "ext": ext,
                                "stat_ext": stat_ext}
        cube = cls(parts.pop("spectral_axis"), flux, uncertainty, mask,
                   medium=parts.pop("medium"), spectral_axis_index=0, wcs=parts.pop("wcs"),
                   meta=meta)
        cube._read_guard = parts.pop("guard")
        return cube

    def cutout(self, y=slice(None), x=slice(None)):
        """The sub-cube of the spaxels ``y, x``: a pixel box that shares the data (no copy).

        Parameters
        ----------
        y, x : slice or (start, stop)
            0-based pixel ranges along the first and second spatial axes of
            the arrays (numpy order: rows, then columns), stop exclusive, as
            ``cube.flux[:, y0:y1, x0:x1]`` for a cube read from FITS.
            ``None`` bounds mean the edges; negative bounds and steps are not
            allowed.

        Returns
        -------
        cube : `MuseCube`
            With the celestial WCS of the box (its ``CRPIX`` shifted), the
            same memory map or dask arrays, and ``meta['region']``, the box
            in the original cube as ``"Y0:Y1,X0:X1"``.

        Raises
        ------
        ValueError
            For an empty box, a box outside the cube, or a cube with fewer
            than two spatial axes.
        """
        if len(self.spatial_shape) != 2:
            raise ValueError(f"a cutout needs two spatial axes; this cube has shape "
                             f"{self.spatial_shape}")
        boxes = []
        for name, value, size in (("y", y, self.spatial_shape[0]),
                                  ("x", x, self.spatial_shape[1])):
            if not isinstance(value, slice):
                value = slice(*value)
            if value.step not in (None, 1):
                raise ValueError(f"the {name} range of a cutout cannot have a step "
                                 f"({value.step})")
            start = 0 if value.start is None else int(value.start)
            stop = size if value.stop is None else int(value.stop)
            if start < 0 or stop > size or start >= stop:
                raise ValueError(f"the {name} range {start}:{stop} of the cutout is empty or "
                                 f"outside the cube's 0:{size}")
            boxes.append(slice(start, stop))
        index = [slice(None)] * self.flux.ndim
        spatial_axes = [a for a in range(self.flux.ndim) if a != self.spectral_axis_index]
        for axis, box in zip(spatial_axes, boxes):
            index[axis] = box
        index = tuple(index)
        uncertainty = None
        if self.uncertainty is not None:
            uncertainty = type(self.uncertainty)(self.uncertainty.array[index],
                                                 unit=self.uncertainty.unit, copy=False)
        wcs = None if self.wcs is None else self.wcs.slice(tuple(boxes))
        meta = dict(self.meta)
        outer = meta.get("region")
        if outer:  # a cutout of a cutout: the box in the original cube
            (oy, _), (ox, _) = _parse_box(outer)
            boxes = [slice(b.start + o, b.stop + o) for b, o in zip(boxes, (oy, ox))]
        meta["region"] = f"{boxes[0].start}:{boxes[0].stop},{boxes[1].start}:{boxes[1].stop}"
        cube = type(self)(self.spectral_axis, self.flux[index], uncertainty,
                          None if self.mask is None else self.mask[index], medium=self.medium,
                          spectral_axis_index=self.spectral_axis_index, wcs=wcs, meta=meta)
        cube._read_guard = self._read_guard
        return cube

    @classmethod
    def from_spectral_cube(cls, cube, variance, *, medium=None):
        """Build a cube from a `spectral_cube.SpectralCube` and its variance cube.

        Parameters
        ----------
        cube : `spectral_cube.SpectralCube`
            The data; its WCS gives the spectral axis, the celestial WCS and,
            through CTYPE3, the medium.
        variance : `spectral_cube.SpectralCube`, `~astropy.units.Quantity` or ndarray
            The variance, same shape as ``cube``, in the flux unit squared.
        medium : {"air", "vacuum"}, optional
            Needed when the WCS does not say.
        """
        wcs_medium = medium_from_ctype(cube.wcs.wcs.ctype[2])
        medium = resolve_medium(wcs_medium, medium)
        flux = u.Quantity(cube.unmasked_data[:])
        var = variance.unmasked_data[:] if hasattr(variance, "unmasked_data") else variance
        var_unit = getattr(var, "unit", None)
        var = VarianceUncertainty(np.asarray(getattr(var, "value", var)),
                                  unit=var_unit if var_unit not in (None, u.one) else None)
        mask = None if cube.mask is None else ~cube.mask.include()
        return cls(cube.spectral_axis, flux, var, mask, medium=medium, spectral_axis_index=0,
                   wcs=cube.wcs.celestial, meta=dict(cube.meta))


def _parse_box(text):
    """``"Y0:Y1,X0:X1"`` as ((y0, y1), (x0, x1))."""
    return tuple(tuple(int(v) for v in part.split(":")) for part in str(text).split(","))


def _as_dask(path, chunks, flux, uncertainty, mask):
    """The flux, uncertainty and mask of a cube as lazy dask arrays over the same memory."""
    import os

    import dask.array as da
    from dask.base import tokenize

    stat = os.stat(path)
    token = tokenize(os.path.realpath(path), stat.st_size, stat.st_mtime_ns)

    def lazy(array, what):  # named by the file, not by hashing its contents
        return da.from_array(array, chunks=chunks, name=f"muse-{what}-{token}", lock=False,
                             asarray=True)

    flux = DaskQuantity(lazy(flux.value, "data"), flux.unit)
    uncertainty = type(uncertainty)(lazy(uncertainty.array, "stat"), unit=uncertainty.unit,
                                    copy=False)
    if mask is not None:
        mask = lazy(mask, "mask")
    return flux, uncertainty, mask


def as_spectral_data(data):
    """A `MuseSpectrum` or `MuseCube` from what users pass to the correlator.

    Parameters
    ----------
    data : `MuseSpectrum`, `MuseCube` or `~specutils.Spectrum`

    Raises
    ------
    TypeError
        For anything else.
    """
    if isinstance(data, _SpectralData):
        return data
    try:
        from specutils import Spectrum
    except ImportError:  # pragma: no cover - specutils is a dependency
        Spectrum = ()
    if isinstance(data, Spectrum):
        cls = MuseSpectrum if data.flux.ndim == 1 else MuseCube
        return cls.from_spectrum(data)
    raise TypeError(f"cannot correlate a {type(data).__name__}: pass a MuseCube, a "
                    "MuseSpectrum or a specutils Spectrum")
