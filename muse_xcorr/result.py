"""The Redshift result: maps shaped like the data's spatial axes, computed on demand."""
import warnings

import numpy as np
from astropy.io import fits
from astropy.table import Table
from astropy.utils.exceptions import AstropyUserWarning

from .flags import Flag
from .io.muse import atomic_write

__all__ = ["Redshift"]

#: Maps every result has, in the order they are written and tabulated.
_CORE_MAPS = ("z_best", "f_best", "sigma_f_best", "snr", "flags", "z_second", "f_second",
              "coverage", "n_valid")
_CURVES = ("ccf_f", "ccf_sigma")


class Redshift:
    """What :meth:`Correlator.correlate` found: redshift, correlation and flags per spaxel.

    Every map has the shape of the data's spatial axes (a scalar for one
    spectrum). Attributes are computed when first asked for.

    Attributes
    ----------
    z : ndarray
        The redshift grid.
    z_best : ndarray
        Maximum of f(z), refined below the grid step by the parabola through
        the three top samples (at the grid edges: the edge redshift, flagged EDGE).
    f_best : ndarray
        f at the best grid sample (float64).
    sigma_f_best : ndarray
        Standard deviation of f there, from the propagated pixel errors (with
        the second-order correction unless the correlator was told otherwise).
    snr : ndarray
        ``f_best / sigma_f_best``.
    flags : ndarray of int
        Bit flags, see :class:`~muse_xcorr.flags.Flag`.
    z_second, f_second : ndarray
        The best local maximum of f outside the exclusion zone (NaN if none).
    coverage : ndarray
        Fraction of the valid pixels that the template covers at z_best.
    n_valid : ndarray of int
        Valid pixels of each spectrum.
    chi2_best, chi2_second : ndarray
        ``||d||_w^2 (1 - f^2)``: the minimum chi2 over the amplitude at z_best
        and at z_second (inverse-variance weighting only).
    f_min : ndarray
        The smallest f over the grid (a strongly negative one sets NEGATIVE_PEAK).
    best_index, second_index : ndarray of int
        Grid indices of the best sample and of the secondary peak (-1: none).
    norm2 : ndarray
        ``sum_j d_j^2`` (uniform) or ``sum_j d_j^2 / var_j`` (inverse
        variance) over the valid pixels, in the data's flux unit squared
        (dimensionless when weighted): the squared S/N of the whole spectrum
        in the weighted mode.
    ccf_f, ccf_sigma : ndarray
        f(z) and sigma_f(z) for every spaxel (last axis: the grid), only with
        ``keep_ccf=True``.
    delta_chi2 : ndarray
        Delta chi2 between the best and the best secondary peak (+inf without
        one); spaxels below 9 are flagged AMBIGUOUS. See
        :mod:`muse_xcorr.errors.ambiguity` (uniform weighting: its
        sigma_f-based equivalent).
    z_errors : dict of ndarray
        Every sigma_z computed so far by :meth:`z_error`, by method.
    """

    def __init__(self, maps, *, z, spatial_shape, correlator=None, data=None, meta=None,
                 wcs=None):
        self._maps = dict(maps)
        self.z = np.asarray(z, dtype=float)
        self.spatial_shape = tuple(spatial_shape)
        self.correlator = correlator
        self.data = data
        self.wcs = wcs if wcs is not None else getattr(data, "wcs", None)
        self.meta = dict(meta or {})
        if correlator is not None:
            self.meta.setdefault("template", correlator.template.name or "")
            self.meta.setdefault("weighting", correlator.weighting)
            self.meta.setdefault("sigma_correction", correlator.sigma_correction)
        if data is not None:
            self.meta.setdefault("medium", data.medium)
        if "snr" not in self._maps and "f_best" in self._maps:
            with np.errstate(divide="ignore", invalid="ignore"):
                self._maps["snr"] = self._maps["f_best"] / self._maps["sigma_f_best"]
        # ZERR_UNRELIABLE as the correlator set it; z_error() adds its own method's
        self._correlate_unreliable = (self._maps["flags"] & int(Flag.ZERR_UNRELIABLE)) != 0 \
            if "flags" in self._maps else None
        weighting = self.meta.get("weighting")
        needed = {"f_best", "f_second", "flags",
                  "norm2" if weighting == "inverse_variance" else "sigma_f_best"}
        if "delta_chi2" not in self._maps and weighting and needed <= set(self._maps):
            from .errors.ambiguity import delta_chi2, flag_ambiguous
            self._maps["delta_chi2"] = delta_chi2(self._maps, weighting)
            self._maps["flags"] = flag_ambiguous(self._maps["flags"], self._maps["delta_chi2"])

    # ------------------------------------------------------------------ maps
    def _shaped(self, name):
        flat = self._maps[name]
        shaped = flat.reshape(self.spatial_shape + flat.shape[1:])
        return shaped[()] if shaped.ndim == 0 else shaped

    def __getattr__(self, name):
        maps = self.__dict__.get("_maps", {})
        if name in maps:
            return self._shaped(name)
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    @property
    def map_names(self):
        """Names of the per-spaxel maps this result holds."""
        return [name for name in self._maps if name not in _CURVES]

    @property
    def n_spectra(self):
        return int(np.prod(self.spatial_shape, dtype=int))

    def __repr__(self):
        good = (self._maps["flags"] == 0) & np.isfinite(self._maps["z_best"])
        median = np.nanmedian(self._maps["z_best"][good]) if good.any() else np.nan
        shape = "x".join(map(str, self.spatial_shape)) or "1"
        return (f"<Redshift {shape} spectra, {self.z.size} redshifts, "
                f"{int(good.sum())} unflagged, median z_best {median:.5f}>")

    def _flat_index(self, index):
        if len(index) != len(self.spatial_shape):
            raise IndexError(f"give {len(self.spatial_shape)} spatial indices for this result "
                             f"(shape {self.spatial_shape}), got {len(index)}")
        return int(np.ravel_multi_index(tuple(int(i) for i in index), self.spatial_shape)) \
            if self.spatial_shape else 0

    # ------------------------------------------------------------------ curves
    def ccf(self, *index):
        """f(z) and sigma_f(z) over the whole grid for one spaxel.

        Parameters
        ----------
        *index : int
            The spatial indices, e.g. ``ccf(y, x)`` for a cube, ``ccf()`` for a spectrum.

        Returns
        -------
        z, f, sigma_f : ndarray
            Recomputed exactly in float64 from the data (or the curves kept
            with ``keep_ccf=True``).
        """
        flat = self._flat_index(index)
        if "ccf_f" in self._maps:
            return self.z, self._maps["ccf_f"][flat], self._maps["ccf_sigma"][flat]
        self._need_data("ccf")
        f, var = [], []
        for start in range(0, self.z.size, 2048):
            columns = np.arange(start, min(start + 2048, self.z.size), dtype=np.int32)[None]
            f_part, var_part = self.correlator.window(self.data, flat, flat + 1, columns,
                                                      full_covariance=False)
            f.append(f_part[0])
            var.append(var_part[0])
        f, var = np.concatenate(f), np.concatenate(var)
        if self._maps["flags"][flat] & (Flag.NO_DATA | Flag.FEW_PIXELS):
            f = var = np.full(self.z.size, np.nan)
        return self.z, f, np.sqrt(np.maximum(var, 0))

    # ------------------------------------------------------------------ errors on z
    def z_error(self, method="analytic", *, window=None, n_samples=200, seed=None, block=4,
                perturb="model"):
        """The standard error of z_best, by one of the estimators of :mod:`muse_xcorr.errors`.

        Parameters
        ----------
        method : {"analytic", "parabolic", "peakfit", "montecarlo", "bootstrap", "chi2", \
"tonrydavis"}
            See ``docs/errors.rst`` for which one to use and its calibration.
        window : int, optional
            Half-width in grid steps of the window where f is recomputed
            (peakfit: fitted; montecarlo/bootstrap: searched around the peak
            and around the best secondary peak; chi2: where the likelihood is
            integrated; tonrydavis: where the antisymmetric part is taken).
            Each method has its own default; analytic and parabolic use a
            fixed stencil and ignore it.
        n_samples : int
            Simulated spectra per spaxel (montecarlo, bootstrap).
        seed : int or None
            Seed of the random draws (montecarlo, bootstrap): the same seed
            gives the same sigma_z.
        block : int
            Block length in pixels of the bootstrap (MUSE noise is correlated
            between neighbouring pixels).
        perturb : {"model", "data"}
            montecarlo: add noise to the best-fit model, or to the data
            itself (see :mod:`muse_xcorr.errors.montecarlo` on the sqrt(2)).

        Returns
        -------
        sigma_z : ndarray
            Shaped like `z_best` (a float for one spectrum); a plain ndarray
            of dimensionless redshift (not a Quantity). NaN where there is
            no peak or the method failed; such spaxels, and those where the
            estimate is doubtful, get the ZERR_UNRELIABLE flag. The flag
            refers to the method computed last (plus what the correlator
            set): each call sets it afresh. The value is also kept in
            `z_errors` (and ``to_table()``/``write()`` as ``zerr_<method>``).
        """
        from .errors import estimate

        options = {"n_samples": n_samples, "seed": seed, "block": block, "perturb": perturb}
        if window is not None:
            options["window"] = window
        result = estimate(self, method, **options)
        self._maps[f"zerr_{method}"] = result.sigma
        for name, values in result.extra.items():
            self._maps[name] = values
        flags = self._maps["flags"]
        unreliable = result.unreliable | self._correlate_unreliable
        self._maps["flags"] = np.where(unreliable, flags | int(Flag.ZERR_UNRELIABLE),
                                       flags & ~int(Flag.ZERR_UNRELIABLE)).astype(flags.dtype)
        return self._shaped(f"zerr_{method}")

    @property
    def z_errors(self):
        """Every sigma_z computed so far (or read from a file), ``{method: map}``."""
        return {name[5:]: self._shaped(name) for name in self._maps if name.startswith("zerr_")}

    def pdf(self, *index):
        """The redshift probability p(z) of one spaxel from the profile likelihood.

        p(z) is proportional to exp(-chi2_min(z) / 2), with
        chi2_min = ||d||_w^2 (1 - f^2) over the whole grid (inverse-variance
        weighting only), normalised so that its integral over z is 1 (a flat
        prior in z on the grid).

        Parameters
        ----------
        *index : int
            The spatial indices, as for :meth:`ccf`.

        Returns
        -------
        z, p : ndarray
        """
        from .errors.chi2 import likelihood_pdf

        if self.meta.get("weighting") != "inverse_variance":
            raise ValueError("pdf() needs the chi2 of the inverse-variance weighted "
                             "correlation: correlate with weighting='inverse_variance'")
        z, f, _ = self.ccf(*index)
        return z, likelihood_pdf(z, self._maps["norm2"][self._flat_index(index)], f)

    def crb(self):
        """The Cramer-Rao bound on z for the best-fit amplitude and template, per spaxel.

        sigma_CRB^2 = 1 / (A^2 (sum w T'^2 - (sum w T' T)^2 / sum w T^2)) at
        z_best, with w = 1 / variance on the valid pixels, T' = dT/dz, and A
        the best-fit amplitude (science.md section 3): no unbiased estimator
        of z does better. Kept as the ``sigma_crb`` map.

        Returns
        -------
        sigma_crb : ndarray
            Shaped like `z_best`; NaN where there is no peak.
        """
        from .errors.crb import estimate

        self._need_data("crb")
        self._maps["sigma_crb"] = estimate(self).sigma
        return self._shaped("sigma_crb")

    def _need_data(self, what):
        if self.correlator is None or self.data is None:
            raise RuntimeError(f"{what}() needs the data and the correlator; this Redshift "
                               "was read from a file. Correlate the data again to get it.")

    # ------------------------------------------------------------------ tables and files
    def to_table(self):
        """One row per spaxel: its indices (and RA/Dec with a celestial WCS) and every map.

        Returns
        -------
        table : `~astropy.table.Table`
        """
        table = Table()
        if self.spatial_shape:
            grids = np.unravel_index(np.arange(self.n_spectra), self.spatial_shape)
            names = ("y", "x") if len(self.spatial_shape) == 2 else \
                tuple(f"i{n}" for n in range(len(self.spatial_shape)))
            for name, values in zip(names, grids):
                table[name] = values
            if self.wcs is not None and len(self.spatial_shape) == 2:
                world = self.wcs.pixel_to_world(grids[1], grids[0])
                table["ra"], table["dec"] = world.ra.deg, world.dec.deg
                table["ra"].unit = table["dec"].unit = "deg"
        for name in self.map_names:
            table[name] = self._maps[name]
        table.meta.update({k: v for k, v in self.meta.items() if np.isscalar(v)})
        return table

    def write(self, path, *, overwrite=False):
        """Write the maps to a FITS file, one image extension per map, with the celestial WCS.

        The redshift grid goes in a ``ZGRID`` table; curves kept with
        ``keep_ccf=True`` go in ``CCF_F`` and ``CCF_SIGMA`` cubes (z first).
        The file is written atomically.

        Parameters
        ----------
        path : str or path-like
        overwrite : bool
        """
        from . import __version__

        primary = fits.PrimaryHDU()
        primary.header["ORIGIN"] = "muse_xcorr"
        primary.header["MXVER"] = (__version__, "muse_xcorr version")
        primary.header["SHAPE"] = (",".join(map(str, self.spatial_shape)), "spatial shape")
        for key, value in self.meta.items():
            if np.isscalar(value):
                primary.header[f"HIERARCH MX {key.upper()}"] = value
        hdus = [primary]
        header = self.wcs.to_header() if self.wcs is not None else fits.Header()
        for name in self.map_names:
            image = self._maps[name].reshape(self.spatial_shape or (1,))
            if image.dtype == bool:
                image = image.astype(np.uint8)
            hdus.append(fits.ImageHDU(image, header=header, name=name.upper()))
        for name in _CURVES:
            if name in self._maps:
                cube = np.moveaxis(self._maps[name].reshape(self.spatial_shape + (-1,)), -1, 0)
                hdus.append(fits.ImageHDU(cube.astype(np.float32), name=name.upper()))
        hdus.append(fits.BinTableHDU(Table({"z": self.z}), name="ZGRID"))
        with atomic_write(path, overwrite=overwrite) as tmp:
            fits.HDUList(hdus).writeto(tmp)

    @classmethod
    def read(cls, path):
        """Read a result written by :meth:`write`.

        The maps, grid, metadata and WCS come back; :meth:`ccf` then works
        only if the curves were kept, and the error estimators that need the
        data are not available.
        """
        from astropy.wcs import WCS

        maps, meta, wcs = {}, {}, None
        with fits.open(path) as hdul:
            header = hdul[0].header
            if header.get("ORIGIN") != "muse_xcorr":
                warnings.warn(f"{path} was not written by muse_xcorr", AstropyUserWarning)
            shape = tuple(int(s) for s in str(header.get("SHAPE", "")).split(",") if s)
            for key, value in header.items():
                if key.startswith("MX "):
                    meta[key[3:].lower()] = value
            z = np.asarray(hdul["ZGRID"].data["z"], dtype=float)
            for hdu in hdul[1:]:
                if not isinstance(hdu, fits.ImageHDU):
                    continue
                name = hdu.name.lower()
                array = np.asarray(hdu.data)
                if name in _CURVES:
                    maps[name] = np.moveaxis(array, 0, -1).reshape(-1, z.size).astype(float)
                else:
                    maps[name] = array.reshape(-1).astype(array.dtype.newbyteorder("="))
                    if wcs is None and shape and "CTYPE1" in hdu.header:
                        wcs = WCS(hdu.header)
        return cls(maps, z=z, spatial_shape=shape, meta=meta, wcs=wcs)
