"""The Redshift result: maps shaped like the data's spatial axes, and each spaxel's candidates.

A `Redshift` is a read-only container. What the correlator stored (the
best candidate's maps and the candidate list of every spaxel) is returned
as read-only arrays; what derives from it (``snr``, ``delta_chi2``,
``z_second``, ...) is computed when asked for; the error estimators and
:meth:`Redshift.ccf` / :meth:`Redshift.pdf` recompute from the data through
the correlator's public methods, with the spaxel's own fitted model.
"""
import warnings

import numpy as np
from astropy.io import fits
from astropy.table import Table
from astropy.utils.exceptions import AstropyUserWarning

from .confidence import DEFAULT_CONFIDENCE
from .flags import Flag
from .io import atomic_write

__all__ = ["Redshift"]

#: The maps the correlator stores, in the order they are written and tabulated.
STORED_MAPS = ("z_best", "f_best", "sigma_f_best", "chi2_best", "flags", "template_index",
               "significance", "fap", "detection_chi2", "sky_share", "best_index", "coverage",
               "n_valid", "norm2", "f_max", "f_min")
#: The maps computed from the stored ones and the candidates.
DERIVED_MAPS = ("snr", "delta_chi2", "z_second", "f_second", "chi2_second", "z_conf")
#: Per-candidate arrays, (n_spectra, n_candidates) each (``amplitudes``: one more axis).
CANDIDATE_FIELDS = ("template", "index", "z", "f", "chi2", "score", "delta_chi2", "sigma_f",
                    "n_active", "kappa", "failed", "at_edge", "amplitudes")
_CURVES = ("ccf_f", "ccf_sigma")


def _read_only(array):
    view = np.asarray(array).view()
    view.flags.writeable = False
    return view


class Redshift:
    """What :meth:`Correlator.correlate <muse_xcorr.Correlator.correlate>` found, per spaxel.

    Every map has the shape of the data's spatial axes (a scalar for one
    spectrum) and is read-only. Maps:

    ``z_best``
        The best candidate's redshift, refined below the grid step by the
        parabola through its three top samples (at the grid edges: the edge
        redshift, flagged EDGE).
    ``f_best``, ``sigma_f_best``
        The correlation with its fitted model and its standard deviation
        (propagated from the variance, second-order corrected).
    ``snr``
        ``f_best / sigma_f_best`` (computed).
    ``chi2_best``
        The weighted chi2 of the best fitted model, sum (d - A m)^2 / v.
    ``delta_chi2``
        The second candidate's score minus the best one's (computed; +inf
        without a second candidate); below the threshold: AMBIGUOUS.
    ``z_second``, ``f_second``, ``chi2_second``
        The second candidate (computed; NaN without one).
    ``z_conf``
        The probability that ``z_best`` is right, within 2e-3 (1 + z)
        (computed from ``delta_chi2``, ``significance`` and the template by
        :data:`~muse_xcorr.confidence.DEFAULT_CONFIDENCE`, calibrated on the
        simulated MUSE deep-field population; NaN without a candidate).
    ``template_index``
        Which template of the correlator won (-1: none); names in
        ``meta["templates"]``.
    ``flags``
        Bit flags, see :class:`~muse_xcorr.flags.Flag`.
    ``best_index``
        Grid index of the best sample (-1: none).
    ``detection_chi2``, ``fap``, ``significance``
        The best candidate's chi2 improvement over no signal (over its noise
        inflation), its false-alarm probability over the whole grid and
        every template, and that as a one-sided Gaussian significance
        (:mod:`muse_xcorr.correlate.detection`); LOW_SIGNIFICANCE above the
        correlator's ``max_fap``.
    ``sky_share``
        The part of the best candidate's chi2 improvement that comes from
        bright sky-line pixels (:mod:`muse_xcorr.correlate.sky`);
        SKY_RESIDUAL where the rest of it is no detection.
    ``coverage``, ``n_valid``, ``norm2``
        Fraction of the valid pixels the best template covers at z_best;
        valid pixels; ``sum d^2 / v`` over them (the chi2 of no model).
    ``f_max``, ``f_min``
        The best template's largest and smallest search score over the grid.

    Each spaxel also has up to ``n_candidates`` candidates (:meth:`candidates`,
    :meth:`candidate_table`), best first.
    """

    def __init__(self, maps, candidates, *, z, spatial_shape, correlator=None, data=None,
                 meta=None, wcs=None, curves=None, noise_correlation=()):
        self._maps = {name: np.asarray(value) for name, value in maps.items()}
        self._candidates = {name: np.asarray(value) for name, value in candidates.items()}
        self._curves = dict(curves) if curves else {}
        self.z = _read_only(np.asarray(z, dtype=float))
        self.spatial_shape = tuple(spatial_shape)
        self.correlator = correlator
        self.data = data
        self.wcs = wcs if wcs is not None else getattr(data, "wcs", None)
        self.meta = dict(meta or {})
        self._z_errors = {}
        self._unreliable = np.zeros(self.n_spectra, bool)
        #: The noise correlation at lags 1, 2, ... its variances were computed with.
        self.noise_correlation = _read_only(np.atleast_1d(np.asarray(noise_correlation,
                                                                     dtype=float)))

    # ------------------------------------------------------------------ access
    @property
    def n_spectra(self):
        """Number of spaxels."""
        return int(np.prod(self.spatial_shape, dtype=int))

    @property
    def n_candidates(self):
        """Candidates kept per spaxel."""
        return self._candidates["z"].shape[1] if "z" in self._candidates else 0

    @property
    def template_names(self):
        """Names of the correlator's templates, in the order of ``template_index``."""
        names = self.meta.get("templates", "")
        return [n for n in str(names).split(",") if n]

    @property
    def map_names(self):
        """Names of the per-spaxel maps (stored, derived, and z errors computed so far)."""
        stored = [n for n in STORED_MAPS if n in self._maps]
        extra = [n for n in self._maps if n not in STORED_MAPS]
        return stored + list(DERIVED_MAPS) + extra + [f"zerr_{m}" for m in self._z_errors] + \
            [name for m in self._z_errors for name in self._z_errors[m]["extra"]]

    def flat(self, name):
        """Map ``name`` as a flat read-only array, one value per spaxel (C order)."""
        if name in self._maps:
            value = self._maps[name]
            if name == "flags":
                unreliable = int(Flag.ZERR_UNRELIABLE)
                value = np.where(self._unreliable, value | unreliable, value).astype(value.dtype)
            return _read_only(value)
        if name in DERIVED_MAPS:
            return _read_only(getattr(self, f"_derive_{name}")())
        if name.startswith("zerr_") and name[5:] in self._z_errors:
            return _read_only(self._z_errors[name[5:]]["sigma"])
        for entry in self._z_errors.values():
            if name in entry["extra"]:
                return _read_only(entry["extra"][name])
        raise KeyError(f"this result has no map {name!r}; it has {self.map_names}")

    def map(self, name):
        """Map ``name`` shaped like the data's spatial axes (a scalar for one spectrum)."""
        flat = self.flat(name)
        shaped = flat.reshape(self.spatial_shape + flat.shape[1:])
        return shaped[()] if shaped.ndim == 0 else shaped

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self.map(name)
        except KeyError:
            raise AttributeError(f"{type(self).__name__} has no attribute or map {name!r}") \
                from None

    def candidates(self, name):
        """Candidate field ``name``, shaped (spatial..., n_candidates), best first.

        Parameters
        ----------
        name : str
            One of ``template``, ``index``, ``z``, ``f``, ``chi2``, ``score``,
            ``delta_chi2``, ``sigma_f``, ``n_active``, ``failed``, ``at_edge``,
            ``amplitudes`` (one more axis: the template's components).
        """
        if name not in self._candidates:
            raise KeyError(f"no candidate field {name!r}; fields: {list(self._candidates)}")
        value = self._candidates[name]
        return _read_only(value.reshape(self.spatial_shape + value.shape[1:]))

    def flat_candidates(self, name):
        """Candidate field ``name`` as a flat (n_spectra, n_candidates) read-only array."""
        return _read_only(self._candidates[name])

    # ------------------------------------------------------------------ derived maps
    def _derive_snr(self):
        f, sigma = self._maps["f_best"], self._maps["sigma_f_best"]
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(sigma > 0, f / sigma, np.nan)

    def _second(self, field):
        values = self._candidates[field]
        return values[:, 1] if values.shape[1] > 1 else np.full(self.n_spectra, np.nan)

    def _derive_delta_chi2(self):
        second = self._second("delta_chi2")
        has_best = self._candidates["template"][:, 0] >= 0
        return np.where(has_best & np.isnan(second), np.inf, second)

    def _derive_z_conf(self):
        names = np.array(self.template_names + [""], dtype=object)
        index = self._maps["template_index"].astype(int)
        winner = names[np.where(index >= 0, index, len(names) - 1)]
        significance = self._maps.get("significance", np.full(self.n_spectra, np.nan))
        return DEFAULT_CONFIDENCE(self._derive_delta_chi2(), significance, winner)

    def _derive_z_second(self):
        return self._second("z")

    def _derive_f_second(self):
        return self._second("f")

    def _derive_chi2_second(self):
        return self._second("chi2")

    def __repr__(self):
        flags, z_best = self.flat("flags"), self._maps["z_best"]
        good = (flags == 0) & np.isfinite(z_best)
        median = np.nanmedian(z_best[good]) if good.any() else np.nan
        shape = "x".join(map(str, self.spatial_shape)) or "1"
        return (f"<Redshift {shape} spectra, {self.z.size} redshifts, "
                f"{int(good.sum())} unflagged, median z_best {median:.5f}>")

    def flat_index(self, *index):
        """The flat spaxel index of spatial indices (``()`` for one spectrum)."""
        if len(index) != len(self.spatial_shape):
            raise IndexError(f"give {len(self.spatial_shape)} spatial indices for this result "
                             f"(shape {self.spatial_shape}), got {len(index)}")
        return int(np.ravel_multi_index(tuple(int(i) for i in index), self.spatial_shape)) \
            if self.spatial_shape else 0

    def peak_rows(self):
        """Flat indices of the spaxels with a best candidate (the others have NaN errors)."""
        flags = self._maps["flags"]
        skip = (flags & (Flag.NO_DATA | Flag.FEW_PIXELS)) != 0
        return np.flatnonzero(~skip & (self._maps["template_index"] >= 0))

    # ------------------------------------------------------------------ curves
    def curve(self, *index):
        """f(z), sigma_f(z) and chi2(z) over the whole grid for one spaxel's best template.

        Each redshift with the template's own fitted model there (a
        composite refits its amplitudes at every z).

        Returns
        -------
        z, f, sigma_f, chi2 : ndarray
        """
        flat = self.flat_index(*index)
        template = int(self._maps["template_index"][flat])
        if template < 0:
            nan = np.full(self.z.size, np.nan)
            return np.asarray(self.z), nan, nan, nan
        self._need_data("curve")
        f, var, chi2 = [], [], []
        for start in range(0, self.z.size, 2048):
            columns = np.arange(start, min(start + 2048, self.z.size))[None]
            ev, _ = self.correlator.evaluate(self.data, [flat], [template], columns,
                                             rho=self.noise_correlation)
            f.append(ev.f[0])
            var.append(ev.variance[0])
            chi2.append(ev.chi2[0])
        return (np.asarray(self.z), np.concatenate(f), np.sqrt(np.concatenate(var)),
                np.concatenate(chi2))

    def kept_curves(self):
        """f(z) and sigma_f(z) of every spaxel kept with ``keep_ccf=True``.

        Returns
        -------
        f, sigma_f : ndarray, shape (spatial..., n_z)

        Raises
        ------
        ValueError
            If the curves were not kept.
        """
        if "ccf_f" not in self._curves:
            raise ValueError("no curves were kept: correlate with keep_ccf=True (or use ccf())")
        return tuple(_read_only(self._curves[name].reshape(self.spatial_shape + (-1,)))
                     for name in _CURVES)

    def ccf(self, *index):
        """f(z) and sigma_f(z) over the whole grid for one spaxel.

        Parameters
        ----------
        *index : int
            The spatial indices, e.g. ``ccf(y, x)`` for a cube, ``ccf()`` for a spectrum.

        Returns
        -------
        z, f, sigma_f : ndarray
            Recomputed exactly in float64 from the data with the spaxel's
            best template (or the curves kept with ``keep_ccf=True``).
        """
        flat = self.flat_index(*index)
        if "ccf_f" in self._curves:
            return (np.asarray(self.z), _read_only(self._curves["ccf_f"][flat]),
                    _read_only(self._curves["ccf_sigma"][flat]))
        z, f, sigma, _ = self.curve(*index)
        return z, f, sigma

    def pdf(self, *index):
        """The redshift probability p(z) of one spaxel from its profile likelihood.

        p(z) is proportional to exp(-chi2(z) / 2), chi2 the weighted chi2 of
        the best template's fitted model at each z (a negative amplitude is
        no fit: chi2 = sum d^2 / v there), normalised to unit integral over
        the grid (a flat prior in z).

        Returns
        -------
        z, p : ndarray
        """
        from .statistics import likelihood_pdf

        if self.meta.get("weighting") != "inverse_variance":
            raise ValueError("pdf() needs the chi2 of the inverse-variance weighted fit (a "
                             "uniformly weighted fit is not a likelihood): correlate with "
                             "weighting='inverse_variance'")
        z, _, _, chi2 = self.curve(*index)
        return z, likelihood_pdf(z, chi2)

    # ------------------------------------------------------------------ errors on z
    def z_error(self, method="analytic", **options):
        """The standard error of z_best, by one of the estimators of :mod:`muse_xcorr.errors`.

        Parameters
        ----------
        method : {"analytic", "parabolic", "peakfit", "montecarlo", "bootstrap", "chi2", \
"tonrydavis"}
            See the errors page of the docs for which one to use and its calibration.
        **options
            The method's options (``window``, ``n_samples``, ``seed``,
            ``block``, ``perturb``), see :func:`muse_xcorr.errors.estimate`.

        Returns
        -------
        sigma_z : ndarray
            Shaped like ``z_best`` (a float for one spectrum), dimensionless.
            NaN where there is no peak or the method failed; those spaxels,
            and those where the estimate is doubtful, get ZERR_UNRELIABLE in
            `flags` (for the method computed last; each call sets it afresh).
            Kept in `z_errors` and written as ``zerr_<method>``.
        """
        from .errors import estimate

        result = estimate(self, method, **options)
        self._z_errors[method] = {"sigma": np.asarray(result.sigma),
                                  "unreliable": np.asarray(result.unreliable),
                                  "extra": dict(result.extra)}
        self._unreliable = np.asarray(result.unreliable, bool)
        return self.map(f"zerr_{method}")

    @property
    def z_errors(self):
        """Every sigma_z computed so far (or read from a file), ``{method: map}``."""
        return {method: self.map(f"zerr_{method}") for method in self._z_errors}

    def zerr_unreliable(self, method):
        """Where a computed method's sigma_z is unreliable (shaped like the maps)."""
        flat = self._z_errors[method]["unreliable"]
        return _read_only(flat.reshape(self.spatial_shape)[()] if self.spatial_shape else
                          flat[0])

    def crb(self):
        """The Cramer-Rao bound on z for each spaxel's fitted model (maths section 3).

        sigma_CRB^2 = 1 / (A^2 (sum w T'^2 - (sum w T' T)^2 / sum w T^2)) at
        z_best, with the model A T of the spaxel's best template as it was
        correlated (continuum-subtracted, line spread, a composite's fitted
        amplitudes), w = 1 / variance on the valid pixels: no unbiased
        estimator of z does better.

        Returns
        -------
        sigma_crb : ndarray
            Shaped like ``z_best``; NaN where there is no peak.
        """
        from .errors.crb import estimate

        self._need_data("crb")
        return _read_only(estimate(self).sigma.reshape(self.spatial_shape)[()]
                          if self.spatial_shape else estimate(self).sigma[0])

    def _need_data(self, what):
        if self.correlator is None or self.data is None:
            raise RuntimeError(f"{what}() needs the data and the correlator; this Redshift "
                               "was read from a file. Correlate the data again to get it.")

    def need_data(self, what):
        """Raise a clear error when this result has no data or correlator to recompute from."""
        self._need_data(what)

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
            table[name] = np.array(self.flat(name))
        table.meta.update({k: v for k, v in self.meta.items() if np.isscalar(v)})
        return table

    def candidate_table(self):
        """The candidates of every spaxel, one row per (spaxel, rank), best first.

        Columns: ``spaxel`` (flat index), ``rank`` (0 = best), ``template``
        (index; ``template_name``), ``z``, ``f``, ``chi2``, ``score``,
        ``delta_chi2``, ``sigma_f``, ``index``, ``n_active``, ``failed``,
        ``at_edge`` and ``amplitudes`` (one value per component). Ranks
        without a candidate are left out.
        """
        n, c = self._candidates["z"].shape
        spaxel, rank = np.meshgrid(np.arange(n), np.arange(c), indexing="ij")
        keep = (self._candidates["template"] >= 0).ravel()
        table = Table({"spaxel": spaxel.ravel()[keep], "rank": rank.ravel()[keep]})
        names = self.template_names
        for name in CANDIDATE_FIELDS:
            if name not in self._candidates:
                continue
            value = self._candidates[name]
            table[name] = value.reshape((n * c,) + value.shape[2:])[keep]
        if names:
            table["template_name"] = [names[t] if 0 <= t < len(names) else ""
                                      for t in table["template"]]
        return table

    def write(self, path, *, overwrite=False, provenance=None):
        """Write the maps and candidates to a FITS file, written atomically.

        One image extension per map (with the celestial WCS, ``BUNIT`` and a
        description), a ``CANDIDATES`` table (one row per spaxel and rank,
        :meth:`candidate_table`), the redshift grid in ``ZGRID``, and the
        curves kept with ``keep_ccf=True`` in ``CCF_F`` and ``CCF_SIGMA``
        cubes (z first). The primary header records where the result comes
        from (:func:`muse_xcorr.io.provenance.provenance_header`: version,
        date, input file with its ``OBJECT`` and ``EXPTIME``, templates, the
        grid as ``ZMIN``/``ZMAX``/``DLNZ``/``NZ``, every correlator option);
        the ``FLAGS`` extension the meaning of each bit.

        Parameters
        ----------
        path : str or path-like
        overwrite : bool
        provenance : dict, optional
            More provenance (the command line, the input's checksum...), see
            :func:`~muse_xcorr.io.provenance.provenance_header`.
        """
        from .io.provenance import describe_map, flag_legend, provenance_header
        from .version import __version__

        primary = fits.PrimaryHDU()
        primary.header["ORIGIN"] = "muse_xcorr"
        primary.header["MXVER"] = (__version__, "muse_xcorr version")
        primary.header["SHAPE"] = (",".join(map(str, self.spatial_shape)), "spatial shape")
        primary.header["NCAND"] = (self.n_candidates, "candidates per spaxel")
        for key, value in self.meta.items():
            if np.isscalar(value):
                primary.header[f"HIERARCH MX {key.upper()}"] = value
        for method in self._z_errors:
            primary.header[f"HIERARCH MX ZERR {method.upper()}"] = True
        primary.header.update(provenance_header(self, provenance))
        hdus = [primary]
        header = self.wcs.to_header() if self.wcs is not None else fits.Header()
        for name in self.map_names:
            image = np.array(self.flat(name)).reshape(self.spatial_shape or (1,))
            if image.dtype == bool:
                image = image.astype(np.uint8)
            hdus.append(fits.ImageHDU(image, header=header, name=name.upper()))
            describe_map(hdus[-1].header, name)
            if name == "flags":
                flag_legend(hdus[-1].header)
        for method, entry in self._z_errors.items():
            image = entry["unreliable"].astype(np.uint8).reshape(self.spatial_shape or (1,))
            hdus.append(fits.ImageHDU(image, header=header, name=f"ZUNREL_{method.upper()}"))
            describe_map(hdus[-1].header, f"zunrel_{method}")
        hdus.append(fits.BinTableHDU(self.candidate_table(), name="CANDIDATES"))
        for name in _CURVES:
            if name in self._curves:
                cube = np.moveaxis(self._curves[name].reshape(self.spatial_shape + (-1,)), -1, 0)
                hdus.append(fits.ImageHDU(cube.astype(np.float32), name=name.upper()))
                describe_map(hdus[-1].header, name)
        hdus.append(fits.BinTableHDU(Table({"z": np.asarray(self.z)}), name="ZGRID"))
        with atomic_write(path, overwrite=overwrite) as tmp:
            fits.HDUList(hdus).writeto(tmp)

    def write_table(self, path, *, overwrite=False, format=None):
        """Write :meth:`to_table` (one row per spaxel) atomically, in the format of its name.

        Like :meth:`write`, a failure (a full disk, a signal turned into an
        exception) leaves neither a partial file nor a temporary one
        (:func:`muse_xcorr.io.files.write_table`).

        Parameters
        ----------
        path : str or path-like
            ``.ecsv``, ``.fits``, ``.csv``, ``.hdf5``... (or give ``format``).
        overwrite : bool
        format : str, optional
            An astropy table format.
        """
        from .io.files import write_table

        write_table(self.to_table(), path, overwrite=overwrite, format=format)

    @classmethod
    def read(cls, path):
        """Read a result written by :meth:`write`.

        The maps, candidates, grid, metadata, WCS and computed z errors come
        back; :meth:`ccf` then works only if the curves were kept, and the
        estimators that need the data are not available.
        """
        from astropy.wcs import WCS

        maps, meta, wcs, curves, errors, unreliable = {}, {}, None, {}, {}, {}
        with fits.open(path) as hdul:
            header = hdul[0].header
            if header.get("ORIGIN") != "muse_xcorr":
                warnings.warn(f"{path} was not written by muse_xcorr", AstropyUserWarning)
            shape = tuple(int(s) for s in str(header.get("SHAPE", "")).split(",") if s)
            n_candidates = int(header.get("NCAND", 1))
            methods = [key[8:].lower() for key in header if key.startswith("MX ZERR ")]
            for key, value in header.items():
                if key.startswith("MX ") and not key.startswith("MX ZERR "):
                    meta[key[3:].lower()] = value
            z = np.asarray(hdul["ZGRID"].data["z"], dtype=float)
            n = int(np.prod(shape, dtype=int))
            for hdu in hdul[1:]:
                if not isinstance(hdu, fits.ImageHDU):
                    continue
                name = hdu.name.lower()
                array = np.asarray(hdu.data)
                array = array.astype(array.dtype.newbyteorder("="))
                if name in _CURVES:
                    curves[name] = np.moveaxis(array, 0, -1).reshape(-1, z.size).astype(float)
                elif name.startswith("zunrel_"):
                    unreliable[name[7:]] = array.reshape(-1).astype(bool)
                elif name in DERIVED_MAPS:
                    continue
                elif name.startswith("zerr_") and name[5:] in methods:
                    errors[name[5:]] = array.reshape(-1).astype(float)
                else:
                    maps[name] = array.reshape(-1)
                if wcs is None and shape and "CTYPE1" in hdu.header:
                    wcs = WCS(hdu.header)
            candidates = _candidates_from_table(Table.read(hdul["CANDIDATES"]), n, n_candidates)
        extras = {m: {} for m in methods}
        for name in list(maps):
            for method in methods:
                if name.startswith(f"zerr_{method}_") or name.startswith(f"{method}_"):
                    extras[method][name] = maps.pop(name).astype(float)
                    break
        rho = [float(r) for r in str(meta.get("noise_rho", "none")).split(",")
               if r and r != "none"]
        result = cls(maps, candidates, z=z, spatial_shape=shape, meta=meta, wcs=wcs,
                     curves=curves, noise_correlation=rho)
        for method in methods:
            result._z_errors[method] = {"sigma": errors.get(method, np.full(n, np.nan)),
                                        "unreliable": unreliable.get(method,
                                                                     np.zeros(n, bool)),
                                        "extra": extras[method]}
        return result


def _candidates_from_table(table, n, n_candidates):
    """Per-candidate (n, n_candidates) arrays from a CANDIDATES table."""
    out = {}
    spaxel, rank = np.asarray(table["spaxel"]), np.asarray(table["rank"])
    for name in CANDIDATE_FIELDS:
        if name not in table.colnames:
            continue
        column = np.asarray(table[name])
        fill = -1 if column.dtype.kind in "iu" else (False if column.dtype.kind == "b"
                                                     else np.nan)
        array = np.full((n, n_candidates) + column.shape[1:], fill, dtype=column.dtype)
        array[spaxel, rank] = column
        out[name] = array
    return out
