"""The Correlator: one class for one template, a composite, or a set of them.

``Correlator(templates, z).correlate(data)`` returns a
`~muse_xcorr.Redshift`. For every batch of spectra and every template it
searches for seeds on the device (:mod:`.search`), refines them in float64
with the template's fitted model (:mod:`.model`), adds the redshifts at
which the main line would be another line, and keeps the best candidates
across all templates (:mod:`.candidates`). Every reported number of a
spectrum -- z_best, f_best, sigma_f_best, chi2, delta_chi2, the flags, and
later sigma_z by any method, p(z) and the Cramer-Rao bound -- comes from the
same fitted model: the columns of its best template exactly as they were
correlated (continuum-subtracted, spread by the line spread, a composite
with its fitted amplitudes).
"""
import contextlib
import warnings

import numpy as np
import astropy.units as u
from astropy.utils.exceptions import AstropyUserWarning

from ..flags import Flag
from ..grid import as_zgrid, default_zgrid
from ..spectra import as_spectral_data
from ..templates import Template
from ..templates.composite import CompositeTemplate, as_components
from ..templates.continuum import DEFAULT_WINDOW, NothingLeftError, continuum_subtraction
from ..templates.lines import CONFUSION_LINES, LINES
from ..spectra.noise import MAX_LAG, ResidualCorrelation, as_correlation
from ..units import velocity_to_dlnz
from ..backend import _tensorflow as backend
from .candidates import PendingPool, hypothesis_centres, scaled_delta
from .calibration_store import calibration_key, load_null, save_null
from .detection import DetectionCalibration, null_sample_size, null_spectra
from .sky import sky_pixels, sky_share
from .memory import check_memory
from .model import Evaluation, PreparedTemplate, WorkingBatch, evaluate, window_covariance
from .search import SearchGrid, window_best

__all__ = ["Correlator", "Part", "WEIGHTINGS", "SEARCHES"]

#: The weightings the correlator knows.
WEIGHTINGS = ("uniform", "inverse_variance")
#: The searches over the redshift grid.
SEARCHES = ("auto", "full", "coarse-to-fine")
#: ``search="auto"`` searches the full grid up to this many redshifts, coarse-to-fine beyond.
AUTO_FULL_LIMIT = 4000
#: Spectra whose best fits measure the noise correlation of a larger data set first.
NOISE_SAMPLE = 512
#: White-noise spectra of :meth:`Correlator.subtraction_baseline`.
BASELINE_SAMPLE = 256
#: Detection calibrations and subtraction baselines kept per correlator (the most recent).
CALIBRATION_CACHE_SIZE = 16
#: Noise correlations within this step of each other share a detection calibration.
CALIBRATION_RHO_STEP = 0.05


def _entries(templates):
    """The template entries from what users pass: a Template, a composite, or a list."""
    if templates is None:
        from ..templates import default_set

        templates = default_set()
    if isinstance(templates, (Template, CompositeTemplate)):
        templates = [templates]
    entries = []
    for item in templates:
        if isinstance(item, tuple):  # the tuple form of a composite (free amplitudes)
            item = CompositeTemplate(item)
        if not isinstance(item, (Template, CompositeTemplate)):
            raise TypeError(f"a template must be a muse_xcorr.Template or a "
                            f"CompositeTemplate, got {type(item).__name__} (see "
                            "Template.read / Template.from_spectrum)")
        entries.append(item)
    if not entries:
        raise ValueError("no template given")
    return entries


class Correlator:
    """Normalised cross-correlation of spectra with templates over a redshift grid.

    Configure it once, then call :meth:`correlate` on a cube or a spectrum.
    With no argument it is the package's measured best configuration for
    MUSE spectra of unknown type (docs: "The one-line default").

    Parameters
    ----------
    templates : `~muse_xcorr.Template`, `~muse_xcorr.templates.CompositeTemplate` or list
        One template, or several: every spectrum gets the candidates of all
        of them and the best one wins (``template_index``). Default
        :func:`muse_xcorr.templates.default_set`.
    z : array_like, optional
        The redshift grid, e.g. from :func:`~muse_xcorr.zgrid`: increasing,
        at least three values. Default :func:`~muse_xcorr.grid.default_zgrid`
        (MUSE's whole range at 30 km/s).
    weighting : {"inverse_variance", "uniform"}
        ``"inverse_variance"`` (default): the correlation of spectra whitened
        by their error; its maximum is the maximum-likelihood redshift
        (chi2 = ||d||_w^2 (1 - f^2)) and it down-weights sky-line residuals.
        ``"uniform"``: the plain f = sum(S T) / sqrt(sum S^2 sum T^2); its
        chi2 and delta_chi2 are still the weighted chi2 of the model it fitted.
    continuum : {"median", None}
        Subtract a running median over ``continuum_window`` from the data
        and, in its rest frame, from every template (default ``"median"``).
    continuum_window : `~astropy.units.Quantity`
        A velocity; default 6000 km/s.
    lsf : "muse", `~astropy.units.Quantity`, float or None
        The line spread applied to the template columns on the observed
        grid (see :func:`muse_xcorr.templates.lsf.lsf_fwhm`); default the MUSE
        LSF. None for templates already at the data's resolution.
    search : {"auto", "full", "coarse-to-fine"}
        ``"full"``: f over every redshift of ``z``. ``"coarse-to-fine"``:
        over every ``coarse_factor``-th redshift with the template averaged
        over each coarse step, then ``z`` itself in windows around the best
        coarse maxima. ``"auto"`` (default): full up to 4000 redshifts.
    coarse_factor : int
        Fine steps per coarse step. Default 10.
    n_seeds : int
        Local maxima of each template's search score followed up. Default 8.
    n_candidates : int
        Candidates kept per spectrum (across templates). Default 5.
    exclusion : `~astropy.units.Quantity`
        Minimum velocity between two candidates. Default 1000 km/s.
    composite_penalty : float
        chi2 added to a candidate per free amplitude beyond the first.
    ambiguity_threshold : float
        AMBIGUOUS where delta_chi2 of the second candidate is below this
        (Redrock's 9) ...
    ambiguity_tolerance : float
        ... or below this fraction of the best fit's chi2 improvement over
        no signal (template mismatch at high S/N). Default 0.
    batch_size : int
        Spectra per matrix product; memory grows as batch_size x n_z.
    dtype : {"float32", "float64"}
        Precision of the search; reported values are always float64.
    sigma_correction : bool
        Apply the second-order correction to sigma_f (maths section 1b).
    keep_ccf : bool
        Keep f(z) and sigma_f(z) of every spectrum's best template over the
        whole grid (float64, n_spectra x n_z each).
    min_pixels : int
        Spectra with fewer valid pixels are skipped (FEW_PIXELS).
    min_coverage : float
        LOW_COVERAGE where the best template covers less than this fraction
        of the valid pixels at z_best.
    noise_correlation : "auto", None, float or sequence of float
        The correlation of the noise between neighbouring pixels, which
        MUSE's STAT ignores: carried into sigma_f, the covariance of f, every
        sigma_z, delta_chi2 and the significance. ``"auto"`` (default):
        measured from the whitened residuals of the best fits (of a sample
        of the spectra of a cube, or of the data themselves when they are
        few; :meth:`noise_correlation_of`). A number is rho at lag 1, a
        sequence rho at lags 1, 2, ...; None: white noise.
    max_fap : float
        LOW_SIGNIFICANCE where the false-alarm probability of the best
        candidate (over the whole grid and every template, calibrated on
        noise-only spectra with the data's variance, masks and correlation:
        :mod:`muse_xcorr.correlate.detection`) is above this. Default 0.01.
    """

    def __init__(self, templates=None, z=None, *, weighting="inverse_variance",
                 continuum="median", continuum_window=DEFAULT_WINDOW, lsf="muse",
                 search="auto", coarse_factor=10, n_seeds=8, n_candidates=5,
                 exclusion=1000 * u.km / u.s, composite_penalty=2.0, ambiguity_threshold=9.0,
                 ambiguity_tolerance=0.0, batch_size=1024, dtype="float32",
                 sigma_correction=True, keep_ccf=False, min_pixels=10, min_coverage=0.5,
                 noise_correlation="auto", max_fap=0.01):
        self.templates = _entries(templates)
        self.z = as_zgrid(default_zgrid() if z is None else z)
        if weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
        if str(dtype) not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
        if search not in SEARCHES:
            raise ValueError(f"search must be one of {SEARCHES}, got {search!r}")
        for name, value, low in (("batch_size", batch_size, 1), ("coarse_factor", coarse_factor, 2),
                                 ("n_seeds", n_seeds, 1), ("n_candidates", n_candidates, 1),
                                 ("min_pixels", min_pixels, 0)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        exclusion = u.Quantity(exclusion, u.km / u.s)
        if not exclusion.value >= 0:
            raise ValueError(f"exclusion must be a non-negative velocity, got {exclusion}")
        if not 0 < float(max_fap) <= 1:
            raise ValueError(f"max_fap must be in (0, 1], got {max_fap!r}")
        self.max_fap = float(max_fap)
        for name, value in (("min_coverage", min_coverage), ("composite_penalty",
                                                             composite_penalty),
                            ("ambiguity_threshold", ambiguity_threshold),
                            ("ambiguity_tolerance", ambiguity_tolerance)):
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise ValueError(f"{name} must be a finite non-negative number, got "
                                 f"{value!r}") from None
            if not np.isfinite(number) or number < 0:
                raise ValueError(f"{name} must be a finite non-negative number, got {value!r}")
        if float(min_coverage) > 1:
            raise ValueError(f"min_coverage is a fraction of the template's features, at most 1, "
                             f"got {min_coverage!r}")
        self.weighting = weighting
        self.continuum = continuum_subtraction(continuum, continuum_window)
        if self.continuum is None and len(self.templates) > 1:
            warnings.warn(
                f"continuum=None with {len(self.templates)} templates: the templates' "
                "continua, not their lines, then decide which template and redshift win. On "
                "simulated star-forming galaxies, the default set without "
                "continuum subtraction puts the QSO template at wrong redshifts that carry no "
                "flag (measured in docs/errors.rst, 'Calibration'). Keep "
                "continuum='median' with a template set, or correlate with one template "
                "whose continuum is the galaxy's.", AstropyUserWarning, stacklevel=2)
        self.lsf = lsf
        self.search = search
        self.coarse_factor = int(coarse_factor)
        self.n_seeds = int(n_seeds)
        self.n_candidates = int(n_candidates)
        self.exclusion = exclusion
        self.composite_penalty = float(composite_penalty)
        self.ambiguity_threshold = float(ambiguity_threshold)
        self.ambiguity_tolerance = float(ambiguity_tolerance)
        self.batch_size = int(batch_size)
        self.dtype = str(dtype)
        self.sigma_correction = bool(sigma_correction)
        self.keep_ccf = bool(keep_ccf)
        self.min_pixels = int(min_pixels)
        self.min_coverage = float(min_coverage)
        if isinstance(noise_correlation, str):
            if noise_correlation != "auto":
                raise ValueError(f"noise_correlation must be 'auto', None, a number or a "
                                 f"sequence of them, got {noise_correlation!r}")
            self.noise_correlation = "auto"
        else:
            self.noise_correlation = as_correlation(noise_correlation)
        self._prepared = {}
        self._calibrations = {}
        #: The random samples of spectra read during one run (`_one_reading`), or None.
        self._sample_reads = None

    def __repr__(self):
        names = ", ".join(self.names)
        return (f"<Correlator [{names}], {self.z.size} redshifts {self.z[0]:.4f}-"
                f"{self.z[-1]:.4f}, weighting={self.weighting!r}, continuum="
                f"{None if self.continuum is None else self.continuum.method!r}, "
                f"search={self.search_mode!r}>")

    @property
    def names(self):
        """Template names in the order of ``template_index``."""
        return [t.name or f"t{i}" for i, t in enumerate(self.templates)]

    @property
    def search_mode(self):
        """The search actually used: ``"full"`` or ``"coarse-to-fine"``."""
        if self.search == "auto":
            return "full" if self.z.size <= AUTO_FULL_LIMIT else "coarse-to-fine"
        return self.search

    @property
    def factor(self):
        """Fine steps per step of the search grid (1 for the full search)."""
        if self.search_mode == "full":
            return 1
        return min(self.coarse_factor, max(self.z.size // 3, 1))

    @property
    def max_components(self):
        """The largest number of components of a template of the set."""
        return max(len(as_components(t)[0]) for t in self.templates)

    # ------------------------------------------------------------------ set-up
    def prepare(self, data):
        """The templates prepared on the data's grid (cached per grid and medium).

        Returns
        -------
        prepared : list of `~muse_xcorr.correlate.model.PreparedTemplate` or None
            None for a template that covers none of the data at any redshift.
        """
        data = as_spectral_data(data)
        wave = data.spectral_axis
        key = (wave.value.tobytes(), data.medium)
        if key not in self._prepared:
            prepared, featureless = [], []
            for template in self.templates:
                try:
                    p = PreparedTemplate(template, wave, data.medium, self.z, self.continuum,
                                         self.lsf)
                except NothingLeftError:
                    # e.g. a UV template on a low-redshift grid: only its continuum is seen
                    featureless.append(template.name)
                    p = None
                prepared.append(p if p is not None and p.covers_data() else None)
            if all(p is None for p in prepared):
                ranges = ", ".join(f"{t.name}" for t in self.templates)
                why = (f"; after continuum subtraction nothing is left of "
                       f"{', '.join(featureless)} at the wavelengths the grid reaches"
                       if featureless else "")
                raise ValueError(f"no template ({ranges}) covers the data's wavelengths "
                                 f"({wave[0].value:.0f}-{wave[-1].value:.0f} A) at any "
                                 f"redshift of the grid ({self.z[0]:.4f}-{self.z[-1]:.4f})"
                                 f"{why}")
            # a clear MemoryError now rather than a crash in the allocations below
            check_memory(self, prepared, wave.size, data.n_spectra)
            grids = [None if p is None else SearchGrid(p, self.factor, self.dtype)
                     for p in prepared]
            self._prepared = {key: (prepared, grids)}  # one data grid at a time
        return self._prepared[key][0]

    def search_devices(self, data):
        """The devices that hold the template columns of the search for ``data``'s grid."""
        self.prepare(data)
        grids = self._prepared[(as_spectral_data(data).spectral_axis.value.tobytes(),
                                as_spectral_data(data).medium)][1]
        return {block.rows.device for grid in grids if grid is not None
                for *_, block in grid.blocks}

    def working(self, data, rows, *, rho=()):
        """The spectra ``rows`` of ``data`` in the fit metric, continuum subtracted.

        Parameters
        ----------
        data : `~muse_xcorr.MuseCube` or `~muse_xcorr.MuseSpectrum`
        rows : ndarray of int or slice
            Flat spaxel indices.
        rho : array_like
            The noise correlation (a result's ``noise_correlation``).

        Returns
        -------
        work : `~muse_xcorr.correlate.model.WorkingBatch`
        """
        data = as_spectral_data(data)
        batch = data.spectra_at(rows)
        return WorkingBatch(batch, self.weighting, self.continuum, data.spectral_axis,
                            self.min_pixels, rho=rho)

    # ------------------------------------------------------------------ public
    def correlate(self, data, *, progress=True, client=None, chunk_spectra=None):
        """Correlate every spectrum of ``data`` with the templates.

        Parameters
        ----------
        data : `~muse_xcorr.MuseCube`, `~muse_xcorr.MuseSpectrum` or `~specutils.Spectrum`
            A specutils spectrum must state its medium (WCS CTYPE or
            ``meta['medium']``) and carry an uncertainty.
        progress : bool
            Show a progress bar (tqdm) over the spectra.
        client : `distributed.Client`, optional
            Run on a Dask cluster, chunks of spaxels as tasks
            (:func:`muse_xcorr.distributed.correlate_distributed`; the same
            result).
        chunk_spectra : int, optional
            Spaxels per task on a cluster.

        Returns
        -------
        result : `~muse_xcorr.Redshift`
        """
        if client is not None:
            from ..distributed import correlate_distributed

            return correlate_distributed(self, data, client, chunk_spectra=chunk_spectra,
                                         progress=progress)
        data = as_spectral_data(data)
        with self._one_reading():
            self.prepare(data)
            noise = self.noise_for(data)
            parts = []
            bar = _progress_bar(data.n_spectra, progress)
            try:
                for start in range(0, data.n_spectra, self.batch_size):
                    # without a noise correlation yet (few spectra), the parts keep their
                    # working batches for finish (not read and continuum-subtracted twice)
                    parts.append(self.correlate_rows(data, start, start + self.batch_size,
                                                     rho=() if noise is None else noise,
                                                     keep_work=noise is None))
                    bar.update(parts[-1].stop - parts[-1].start)
            finally:
                bar.close()
            return self.assemble(data, self.complete(data, parts, noise))

    def noise_for(self, data):
        """The noise correlation the parts of ``data`` are computed with, or None.

        The first step of every run (:meth:`correlate`, a distributed or a
        resumed one), deterministic for given data: the correlator's own
        ``noise_correlation`` when it is given; with ``"auto"``, that
        measured from a random sample of the spectra
        (:meth:`noise_correlation_of`, seed 0) when ``data`` has more than
        512 spectra, else None: measured afterwards from the residuals of
        all the parts (:meth:`complete`).

        Returns
        -------
        rho : ndarray or None
            Coefficients at lags 1, 2, ... (empty: white noise).
        """
        if not isinstance(self.noise_correlation, str):
            return as_correlation(self.noise_correlation)
        data = as_spectral_data(data)
        return self.noise_correlation_of(data) if data.n_spectra > NOISE_SAMPLE else None

    def complete(self, data, parts, noise):
        """The parts of ``data`` finished for the noise correlation of the run.

        Parameters
        ----------
        data : `~muse_xcorr.MuseCube` or `~muse_xcorr.MuseSpectrum`
        parts : list of `Part`
            From :meth:`correlate_rows` with ``rho=noise`` (``()`` where
            ``noise`` is None).
        noise : ndarray or None
            What :meth:`noise_for` gave. None: the correlation is pooled from
            the residuals of all ``parts`` and every part is finished with it
            (:meth:`finish`).

        Returns
        -------
        parts : list of `Part`
        """
        if noise is not None:
            return list(parts)
        pooled = ResidualCorrelation()
        for part in parts:
            pooled.merge(part.residuals)
        rho = self._noise_correlation(data, pooled)
        if not rho.size:
            return list(parts)
        return [self.finish(data, part, rho) for part in parts]

    def __getstate__(self):
        """Pickled without the templates prepared for a data grid (large; rebuilt on use)."""
        state = self.__dict__.copy()
        state["_prepared"] = {}
        state["_calibrations"] = {}
        state["_sample_reads"] = None
        return state

    def __setstate__(self, state):
        state.setdefault("_sample_reads", None)
        self.__dict__.update(state)

    @contextlib.contextmanager
    def _one_reading(self):
        """Within it, a random sample of a data's spectra is read once however often drawn.

        The noise-correlation baseline (once or twice) and the detection
        calibration draw the same sample (seed 0) to key their caches; each
        read of 256 scattered spectra cost ~0.1 s of every run. Only within
        one run, so that data changed between runs are read again.
        """
        outer = self._sample_reads is None
        if outer:
            self._sample_reads = {}
        try:
            yield
        finally:
            if outer:
                self._sample_reads = None

    def noise_correlation_of(self, data, *, sample=None, seed=0):
        """The noise correlation measured from the best fits of a sample of the spectra.

        The whitened residuals ``(d - model) / sigma`` of the best candidate
        of up to ``sample`` spectra (drawn at random among those with data),
        pooled (:class:`~muse_xcorr.spectra.noise.ResidualCorrelation`).

        Parameters
        ----------
        data : `~muse_xcorr.MuseCube` or `~muse_xcorr.MuseSpectrum`
        sample : int, optional
            Default 512.
        seed : int
            Of the draw of the sample.

        Returns
        -------
        rho : ndarray
            Coefficients at lags 1, 2, ... (empty: none measured).
        """
        data = as_spectral_data(data)
        prepared = self.prepare(data)
        grids = self._prepared[(data.spectral_axis.value.tobytes(), data.medium)][1]
        sample = NOISE_SAMPLE if sample is None else int(sample)
        n = data.n_spectra
        rows = np.arange(n) if n <= sample else \
            np.sort(np.random.default_rng(seed).choice(n, sample, replace=False))
        pooled = ResidualCorrelation()
        for first in range(0, rows.size, self.batch_size):
            chunk = rows[first:first + self.batch_size]
            work = WorkingBatch(data.spectra_at(chunk), self.weighting, self.continuum,
                                data.spectral_axis, self.min_pixels)
            candidates, _ = self._candidates(work, prepared, grids)
            pooled.add(*_best_residuals(work, prepared, candidates))
        return self._noise_correlation(data, pooled)

    def _noise_correlation(self, data, pooled):
        """The correlation of the noise before continuum subtraction, from pooled residuals.

        What the continuum subtraction puts into the residuals depends on the
        noise's own correlation (a running median takes more of correlated
        noise: -0.0055 at lags 2-5 for white noise, -0.014 at rho_1 = 0.36),
        so it is measured twice: on white noise, then on noise with the
        correlation that the first correction gives.
        """
        if self.continuum is None:
            return pooled.rho()
        measured = pooled.coefficients()
        baseline = self.subtraction_baseline(data)
        first = np.clip(measured - baseline, -0.95, 0.95)
        if np.any(np.abs(first) > 0.02):
            baseline = self.subtraction_baseline(data, rho=first)
        return pooled.rho(baseline=baseline)

    def subtraction_baseline(self, data, rho=(), *, n=BASELINE_SAMPLE, seed=0):
        """What the continuum subtraction alone adds to the residual correlation of noise.

        The running median takes a smooth part of the noise with the
        continuum, which leaves the whitened residuals correlated by about
        -1 / (the window in pixels) at every short lag: -0.0055 at lags 1-5
        for white noise and the default 6000 km/s on the MUSE grid, -0.009
        (lag 1) and -0.014 (lags 2-5) for noise of lag-1 correlation 0.36.
        Left in the measured correlation, it made the null spectra of the
        detection calibration too quiet (3.5 % of noise-only spectra below a
        FAP of 1 %) and sigma_f about 3 % too small. It is measured on ``n``
        noise spectra of correlation ``rho`` with the variance and masks of
        spectra of ``data`` (no template fit), as the coefficients after the
        subtraction minus those before, on the same draws, and
        :meth:`noise_correlation_of` subtracts it: the correlation reported is
        that of the noise before the subtraction.

        Parameters
        ----------
        data : `~muse_xcorr.MuseCube` or `~muse_xcorr.MuseSpectrum`
        rho : sequence of float
            Correlation of the simulated noise at lags 1, 2, ... (default white).
        n : int
            Noise spectra (256: a sampling error of about 1e-3 per lag).
        seed : int

        Returns
        -------
        baseline : ndarray (MAX_LAG,)
            Zero without continuum subtraction or without spectra with data.
        """
        baseline = np.zeros(MAX_LAG)
        if self.continuum is None:
            return baseline
        data = as_spectral_data(data)
        rng = np.random.default_rng(seed)
        source, keep, data_key = self._noise_sources(data, int(n), rng)
        keep &= source.valid.any(axis=1)
        if not keep.any():
            return baseline
        # simulated at the correlation rounded as the detection calibrations round it
        # (the baseline moves by ~1e-4 over one step), and cached with them
        steps = tuple(np.round(as_correlation(rho) / CALIBRATION_RHO_STEP).astype(int))
        key = ("subtraction_baseline",) + data_key + (int(n), seed, steps)
        if key in self._calibrations:
            return self._calibrations[key].copy()
        rho = np.asarray(steps, dtype=float) * CALIBRATION_RHO_STEP
        noise = null_spectra(source.take(keep), int(n), rho, rng)
        work = WorkingBatch(noise, self.weighting, self.continuum, data.spectral_axis,
                            self.min_pixels)
        use = work.valid & ~work.skipped[:, None]
        scale = np.sqrt(work.w)
        after = ResidualCorrelation(MAX_LAG).add(work.flux * scale, use).coefficients()
        before = ResidualCorrelation(MAX_LAG).add(np.nan_to_num(noise.flux) * scale, use)
        return self._remember(key, after - before.coefficients()).copy()

    def correlate_rows(self, data, start, stop, *, rho=None, keep_work=False):
        """Correlate the spectra ``start:stop`` (flat spaxel indices) of ``data``.

        The unit of work of a distributed or resumable run: parts computed
        anywhere (another process, another machine, an earlier run) are put
        together by :meth:`assemble`, and give the same result as
        :meth:`correlate` on the whole data.

        Parameters
        ----------
        data : `~muse_xcorr.MuseCube`, `~muse_xcorr.MuseSpectrum` or `~specutils.Spectrum`
        start, stop : int
        rho : array_like, optional
            The noise correlation (:meth:`noise_correlation_of`); default the
            correlator's own when it is given, else white noise. A
            distributed run measures it once and gives it to every part.
        keep_work : bool
            Keep the working batches on the part (``Part.work``, not part of
            :meth:`Part.to_arrays`), so that :meth:`finish` does not read and
            prepare the spectra again.

        Returns
        -------
        part : `Part`
        """
        data = as_spectral_data(data)
        prepared = self.prepare(data)
        grids = self._prepared[(data.spectral_axis.value.tobytes(), data.medium)][1]
        stop = min(int(stop), data.n_spectra)
        start = int(start)
        if not 0 <= start <= stop:
            raise ValueError(f"rows {start}:{stop} are outside the data's {data.n_spectra} spectra")
        if rho is None:
            rho = () if isinstance(self.noise_correlation, str) else self.noise_correlation
        rho = as_correlation(rho)
        out = _Outputs(start, stop, self.n_candidates, self.max_components,
                       self.z.size if self.keep_ccf else 0)
        residuals = ResidualCorrelation()
        kept = {}
        for first in range(start, stop, self.batch_size):
            batch = data.spectra(first, min(first + self.batch_size, stop))
            work = WorkingBatch(batch, self.weighting, self.continuum, data.spectral_axis,
                                self.min_pixels, rho=rho)
            if keep_work:
                kept[first] = work
            candidates, extrema = self._candidates(work, prepared, grids)
            whitened, fitted = _best_residuals(work, prepared, candidates)
            share = sky_share(work.flux * np.sqrt(work.w), whitened, fitted,
                              sky_pixels(work.variance, work.valid, work.flux))
            out.store(work, candidates, extrema, prepared, self, sky=share)
            if out.curves is not None:
                out.store_curves(work, prepared, self)
            residuals.add(whitened, fitted)
        return Part(start, stop, out.maps, out.candidates, out.curves, rho=rho,
                    residuals=residuals, work=kept or None)

    def finish(self, data, part, rho):
        """A part with its variances, delta_chi2 and flags recomputed for a noise correlation.

        The candidates (their redshifts, fits and chi2) do not depend on the
        noise correlation; their sigma_f, the noise inflation kappa, the
        delta_chi2 and the flags that follow from them do.

        Parameters
        ----------
        data : `~muse_xcorr.MuseCube` or `~muse_xcorr.MuseSpectrum`
        part : `Part`
        rho : array_like

        Returns
        -------
        part : `Part`
        """
        data = as_spectral_data(data)
        prepared = self.prepare(data)
        rho = as_correlation(rho)
        candidates = {name: value.copy() for name, value in part.candidates.items()}
        maps = part.maps
        out = _Outputs(part.start, part.stop, self.n_candidates, self.max_components, 0)
        for first in range(part.start, part.stop, self.batch_size):
            stop = min(first + self.batch_size, part.stop)
            rows = slice(first - part.start, stop - part.start)
            kept = (part.work or {}).get(first)
            work = kept.with_correlation(rho) if kept is not None and kept.stop == stop else \
                WorkingBatch(data.spectra(first, stop), self.weighting, self.continuum,
                             data.spectral_axis, self.min_pixels, rho=rho)
            chosen = {name: value[rows] for name, value in candidates.items()}
            template, index = chosen["template"], chosen["index"]
            for t in np.unique(template[template >= 0]):
                members = template == t
                spectra = np.flatnonzero(members.any(axis=1))
                start = prepared[t].index_range[0]
                ev = evaluate(work.subset(spectra), prepared[t],
                              np.where(members[spectra], index[spectra], start),
                              correction=self.sigma_correction)
                pick = members[spectra]
                for field, value in (("sigma_f", np.sqrt(ev.variance)), ("kappa", ev.kappa),
                                     ("failed", ev.failed)):
                    target = chosen[field][spectra]
                    chosen[field][spectra] = np.where(pick, value, target)
            chosen["delta_chi2"] = scaled_delta(chosen["score"], chosen["kappa"])
            for name, value in chosen.items():
                candidates[name][rows] = value
            extrema = np.broadcast_to(np.stack([maps["f_max"][rows], maps["f_min"][rows]],
                                               axis=1), (len(prepared), stop - first, 2))
            out.store(work, chosen, extrema, prepared, self, sky=maps["sky_share"][rows])
        return Part(part.start, part.stop, out.maps, out.candidates, part.curves, rho=rho,
                    residuals=part.residuals)

    def detection_calibration(self, data, rho=(), *, n=None, seed=0):
        """The null distribution of the detection statistic for ``data``'s grid and noise.

        The search run on ``n`` noise-only spectra (default
        :func:`~muse_xcorr.correlate.detection.null_sample_size`) with the
        variance and valid pixels of spectra of ``data`` and the noise
        correlation ``rho`` (:mod:`muse_xcorr.correlate.detection`), without
        the line-confusion hypotheses (they move the statistic of ~4 % of
        noise spectra, the fitted number of trials by ~2 %, and cost as much
        as the rest of the search); stored on disk for later processes
        (:mod:`muse_xcorr.correlate.calibration_store`) and cached (the last
        :data:`CALIBRATION_CACHE_SIZE`) per data grid, typical mask (pixels
        valid in most spectra) and noise correlation rounded to
        :data:`CALIBRATION_RHO_STEP`, so that spectra of one format
        correlated one after another are calibrated once.

        Returns
        -------
        calibration : `~muse_xcorr.correlate.detection.DetectionCalibration` or None
            None when no spectrum of ``data`` has ``min_pixels`` valid pixels.
        """
        data = as_spectral_data(data)
        prepared = self.prepare(data)
        grids = self._prepared[(data.spectral_axis.value.tobytes(), data.medium)][1]
        rho = as_correlation(rho)
        n = null_sample_size(data.n_spectra) if n is None else int(n)
        rng = np.random.default_rng(seed)
        # The null distribution depends on the grid, the masks and the noise correlation;
        # the statistic is a chi2 in units of the variance, so spectra of one grid with
        # the same typical mask and a correlation within CALIBRATION_RHO_STEP share it
        # (a catalogue of spectra read one by one is calibrated once).
        source, keep, data_key = self._noise_sources(data, n, rng)
        key = data_key + (n, seed, tuple(np.round(rho / CALIBRATION_RHO_STEP).astype(int)))
        if key in self._calibrations:
            return self._calibrations[key]
        if not keep.any():
            return self._remember(key, None)
        digest = calibration_key(self, key)
        statistic = load_null(digest)   # an earlier process's (calibration_store)
        if statistic is None:
            null = null_spectra(source.take(keep), n, rho, rng)
            parts = []
            for first in range(0, n, self.batch_size):
                part = null.take(slice(first, first + self.batch_size))
                work = WorkingBatch(part, self.weighting, self.continuum, data.spectral_axis,
                                    self.min_pixels, rho=rho)
                candidates, _ = self._candidates(work, prepared, grids, hypotheses=False,
                                                 best_only=True)
                parts.append(_detection_statistic(work, candidates))
            statistic = np.concatenate(parts)
            save_null(digest, statistic)
        return self._remember(key, DetectionCalibration(statistic))

    def _noise_sources(self, data, n, rng):
        """Up to ``n`` spectra of ``data`` drawn by ``rng``, whose variance and masks
        simulated noise reuses; which of them have ``min_pixels`` valid pixels; and the
        key of what that noise depends on (grid, medium, typical mask: the pixels valid
        in most of them)."""
        rows = np.sort(rng.choice(data.n_spectra, min(data.n_spectra, n), replace=False))
        reads = self._sample_reads
        read = (id(data), rows.tobytes())
        # the entry holds the data too: its id cannot be another object's while it lives
        kept = reads.get(read) if reads is not None else None
        source = kept[1] if kept is not None and kept[0] is data else None
        if source is None:
            source = data.spectra_at(rows)
            if reads is not None:
                reads[read] = (data, source)
        keep = source.valid.sum(axis=1) >= self.min_pixels
        typical_mask = np.packbits(source.valid[keep].mean(axis=0) > 0.5).tobytes() \
            if keep.any() else b""
        return source, keep, (data.spectral_axis.value.tobytes(), data.medium, typical_mask)

    def _remember(self, key, value):
        """Cache ``value`` under ``key`` beside the last CALIBRATION_CACHE_SIZE ones."""
        if len(self._calibrations) >= CALIBRATION_CACHE_SIZE:
            self._calibrations.pop(next(iter(self._calibrations)))
        self._calibrations[key] = value
        return value

    def assemble(self, data, parts, *, calibration=None):
        """The `~muse_xcorr.Redshift` of ``data`` from parts of :meth:`correlate_rows`.

        Parameters
        ----------
        data : `~muse_xcorr.MuseCube` or `~muse_xcorr.MuseSpectrum`
        parts : list of `Part`
            Covering every spectrum exactly once, in any order.
        calibration : `~muse_xcorr.correlate.detection.DetectionCalibration`, optional
            Default :meth:`detection_calibration` of ``data``.

        Returns
        -------
        result : `~muse_xcorr.Redshift`
        """
        from ..result import Redshift

        data = as_spectral_data(data)
        parts = sorted(parts, key=lambda p: p.start)
        edges = [p.start for p in parts] + [parts[-1].stop if parts else 0]
        covered = all(a.stop == b.start for a, b in zip(parts[:-1], parts[1:]))
        if not parts or edges[0] != 0 or edges[-1] != data.n_spectra or not covered:
            spans = ", ".join(f"{p.start}:{p.stop}" for p in parts)
            raise ValueError(f"the parts ({spans or 'none'}) do not cover the data's "
                             f"{data.n_spectra} spectra exactly once")

        def joined(name):
            stores = [getattr(p, name) or {} for p in parts]
            keys = stores[0].keys()
            return {key: np.concatenate([s[key] for s in stores]) for key in keys}

        rho = parts[0].rho
        if any(p.rho.shape != rho.shape or not np.allclose(p.rho, rho) for p in parts):
            raise ValueError("the parts were computed with different noise correlations")
        meta = {"templates": ",".join(self.names), "weighting": self.weighting,
                "noise_rho": ",".join(f"{r:.4f}" for r in rho) or "none",
                "continuum": "none" if self.continuum is None else
                f"{self.continuum.method} {self.continuum.window.value:g} km/s",
                "lsf": str(self.lsf), "search": self.search_mode,
                "sigma_correction": self.sigma_correction, "medium": data.medium,
                "exclusion_kms": float(self.exclusion.value),
                "composite_penalty": self.composite_penalty,
                "ambiguity_threshold": self.ambiguity_threshold,
                "ambiguity_tolerance": self.ambiguity_tolerance}
        curves = joined("curves") if parts[0].curves else None
        maps = joined("maps")
        if calibration is None:
            calibration = self.detection_calibration(data, rho)
        if calibration is None:
            # no spectrum with enough valid pixels: nothing to calibrate, nothing detected
            maps["fap"] = np.full(maps["detection_chi2"].shape, np.nan)
            maps["significance"] = np.full(maps["detection_chi2"].shape, np.nan)
        else:
            maps["fap"] = calibration.fap(maps["detection_chi2"])
            maps["significance"] = calibration.significance(maps["detection_chi2"])
            meta.update(detection_n_eff=float(calibration.n_eff),
                        detection_dof=int(calibration.dof))
        has = maps["template_index"] >= 0
        weak = has & ~(maps["fap"] <= self.max_fap)
        flags = np.where(weak, maps["flags"] | int(Flag.LOW_SIGNIFICANCE), maps["flags"])
        if calibration is not None:
            # the improvement without the bright sky-line pixels must be a detection too
            clean = maps["detection_chi2"] * (1.0 - np.nan_to_num(maps["sky_share"]))
            on_sky = has & ~weak & ~(calibration.fap(clean) <= self.max_fap)
            flags = np.where(on_sky, flags | int(Flag.SKY_RESIDUAL), flags)
        maps["flags"] = flags.astype(maps["flags"].dtype)
        meta.update(max_fap=self.max_fap)
        return Redshift(maps, joined("candidates"), z=self.z,
                        spatial_shape=data.spatial_shape, correlator=self, data=data, meta=meta,
                        curves=curves, noise_correlation=rho)

    def evaluate(self, data, rows, template_index, index, *, keep_models=False, work=None,
                 rho=()):
        """The fitted model of each spectrum's template at grid indices (float64).

        Parameters
        ----------
        data : `~muse_xcorr.MuseCube` or `~muse_xcorr.MuseSpectrum`
        rows : ndarray of int (n,)
            Flat spaxel indices.
        template_index : ndarray of int (n,)
            The template of each spectrum (e.g. ``result.template_index``).
        index : ndarray of int (n, w)
            Grid indices per spectrum.
        keep_models : bool
            Also return the unit model columns (for covariances).
        work : `~muse_xcorr.correlate.model.WorkingBatch`, optional
            The spectra (e.g. simulated copies); default those of ``data``.
        rho : array_like
            The noise correlation (with ``work=None``).

        Returns
        -------
        evaluation : `~muse_xcorr.correlate.model.Evaluation`
        work : `~muse_xcorr.correlate.model.WorkingBatch`
        """
        prepared = self.prepare(data)
        rows = np.asarray(rows, dtype=np.int64)
        work = self.working(data, rows, rho=rho) if work is None else work
        template_index = np.broadcast_to(np.asarray(template_index, dtype=np.int64),
                                         rows.shape)
        index = np.asarray(index, dtype=np.int64)
        bad = (template_index < -1) | (template_index >= len(prepared))
        if np.any(bad):
            raise ValueError(f"template_index must be -1 (none) or one of the correlator's "
                             f"{len(prepared)} templates (0-{len(prepared) - 1}), got "
                             f"{np.unique(template_index[bad]).tolist()}")
        if index.ndim != 2 or index.shape[0] != rows.size:
            raise ValueError(f"index must hold one row of grid indices per spectrum "
                             f"({rows.size}, w), got shape {index.shape}")
        if np.any((index < 0) | (index >= self.z.size)):
            raise ValueError(f"grid indices must lie in 0-{self.z.size - 1}")
        return _by_template(work, prepared, template_index, index, keep_models,
                            self.sigma_correction), work

    def window(self, data, rows, template_index, index, *, full_covariance=True, rho=()):
        """Exact float64 f and its covariance at grid indices, per spectrum's template.

        The one place where the covariance of f is computed; the error
        estimators call it (maths sections 1, 1b, 6).

        Parameters
        ----------
        data : `~muse_xcorr.MuseCube` or `~muse_xcorr.MuseSpectrum`
        rows, template_index, index
            As :meth:`evaluate`.
        full_covariance : bool
            Covariance matrices (n, w, w), or only variances (n, w).
        rho : array_like
            The noise correlation (a result's ``noise_correlation``).

        Returns
        -------
        f : ndarray (n, w)
        cov : ndarray (n, w, w) or (n, w)
        failed : ndarray of bool (n,)
            The second-order correction did not apply (ZERR_UNRELIABLE).
        """
        evaluation, work = self.evaluate(data, rows, template_index, index,
                                         keep_models=full_covariance, rho=rho)
        if not full_covariance:
            return evaluation.f, evaluation.variance, np.any(evaluation.failed, axis=1)
        cov, failed = window_covariance(work, evaluation, correction=self.sigma_correction)
        return evaluation.f, cov, failed

    def fitted_model(self, data, rows, template_index, z, *, work=None, rho=()):
        """Each spectrum's fitted model at any redshift, in the working space of the fit.

        Parameters
        ----------
        data, rows, template_index
            As :meth:`evaluate`.
        z : ndarray (n,)
            A redshift per spectrum (e.g. z_best).
        work : `~muse_xcorr.correlate.model.WorkingBatch`, optional
        rho : array_like
            The noise correlation (with ``work=None``).

        Returns
        -------
        flux : ndarray (n, n_pixel)
            The model A m(z) (continuum-subtracted space, the data's unit).
        amplitudes : ndarray (n, K_max)
            The fitted amplitude of each component (NaN beyond a template's own).
        work : `~muse_xcorr.correlate.model.WorkingBatch`
        """
        prepared = self.prepare(data)
        rows = np.asarray(rows, dtype=np.int64)
        work = self.working(data, rows, rho=rho) if work is None else work
        z = np.asarray(z, dtype=float)
        template_index = np.broadcast_to(np.asarray(template_index, dtype=np.int64),
                                         rows.shape)
        flux = np.zeros(work.flux.shape)
        amplitudes = np.full((rows.size, self.max_components), np.nan)
        for t in np.unique(template_index[template_index >= 0]):
            members = np.flatnonzero(template_index == t)
            p = prepared[t]
            if p is None:
                continue
            columns = p.columns_at(z[members])            # (K, m, P)
            ev = evaluate(work.subset(members), p, np.arange(members.size)[:, None],
                          columns=lambda unique: columns[:, unique])
            fitted = ev.amplitudes[:, 0]
            flux[members] = np.einsum("gmp,mg->mp", columns, fitted)
            amplitudes[members, :p.n_components] = fitted
        return flux, amplitudes, work

    # ------------------------------------------------------------------ internals
    def _candidates(self, work, prepared, grids, *, hypotheses=True, best_only=False):
        """Search, refine and rank the candidates of one batch.

        Only the candidates that can enter the list are refined
        (:class:`~muse_xcorr.correlate.candidates.PendingPool`); the list is
        the one of refining them all. ``hypotheses=False`` skips the
        line-confusion hypotheses (the null spectra of the detection
        calibration: on noise they change the best candidate of ~4 % of the
        spectra, and the fitted number of trials by ~2 %, for half the cost;
        see :meth:`detection_calibration`). ``best_only=True`` settles only
        the best candidate (what the detection statistic takes; the same best
        candidate, with fewer of the others refined).

        Returns
        -------
        candidates : dict of ndarray (n, n_candidates), or (n, 1) with ``best_only``
        extrema : ndarray (n_templates, n, 2)
            Each template's largest and smallest search score.
        """
        n = len(work)
        data32, weights32, patterns = work.search_arrays(self.dtype)
        tensors = (backend.as_tensor(data32, self.dtype), backend.as_tensor(weights32, self.dtype),
                   patterns)
        half = int(np.ceil(1.5 * self.factor)) if self.factor > 1 else 0
        extrema = np.full((len(prepared), n, 2), np.nan)
        pool = PendingPool(work, self.max_components, self.sigma_correction)
        n_refine = min(self.n_seeds, 3)
        for t, (p, grid) in enumerate(zip(prepared, grids)):
            if p is None:
                continue
            seeds, score, extrema[t] = grid.seeds(tensors[0], tensors[1], patterns,
                                                  self.n_seeds)
            explained = None
            if half:
                seeds, score, explained = window_best(tensors, p, seeds, half, self.dtype)
                order = np.argsort(-np.where(seeds >= 0, score, -np.inf), axis=1,
                                   kind="stable")
                seeds = np.take_along_axis(seeds, order, axis=1)
                explained = np.take_along_axis(explained, order, axis=1)[:, :n_refine]
            seeds = np.where(work.skipped[:, None], -1, seeds[:, :n_refine])
            pool.add(t, p, seeds, explained)
        if hypotheses:
            best = pool.settle(1, 0.0, self.composite_penalty)
            self._hypotheses(work, prepared, tensors, best, pool)
        if best_only:   # the first of a ranked list, whatever the exclusion
            return pool.settle(1, 0.0, self.composite_penalty), extrema
        exclusion = velocity_to_dlnz(self.exclusion)
        return pool.settle(self.n_candidates, exclusion, self.composite_penalty), extrema

    def _hypotheses(self, work, prepared, tensors, best, pool):
        """Add to ``pool`` the candidates at the redshifts where the best candidate's main
        line is another line."""
        n = len(work)
        template = best["template"][:, 0]
        main = np.full(n, np.nan)
        for t in np.unique(template[template >= 0]):
            rows = template == t
            main[rows] = prepared[t].main_line_wavelength(best["amplitudes"][rows, 0],
                                                          best["z"][rows, 0])
        centres, names = hypothesis_centres(main, best["z"][:, 0], self.z)
        # +-2e-3 (1 + z) around each hypothesis, in grid steps
        step = np.median(np.diff(np.log1p(self.z)))
        half = max(int(np.ceil(np.log1p(2e-3) / step)), 1)
        for t, p in enumerate(prepared):
            if p is None:
                continue
            # a hypothesis "the main line is L" is searched with the templates that have L
            relevant = np.array([p.has_emission_line([LINES[m][0] for m in CONFUSION_LINES[name]])
                                 for name in names])
            mine = np.where(relevant[None, :], centres, -1)
            if not np.any(mine >= 0):
                continue
            index, _, explained = window_best(tensors, p, mine, half, self.dtype)
            pool.add(t, p, np.where(work.skipped[:, None], -1, index), explained)


def _detection_statistic(work, candidates):
    """The best candidate's chi2 improvement over no signal, over its noise inflation."""
    kappa = np.nan_to_num(candidates["kappa"][:, 0], nan=1.0)
    statistic = (work.norm2_w - candidates["score"][:, 0]) / np.maximum(kappa, 1e-12)
    return np.where(candidates["template"][:, 0] >= 0, np.clip(statistic, 0.0, None), np.nan)


def _best_residuals(work, prepared, candidates):
    """Whitened residuals ``(d - m) / sigma`` of every spectrum's best candidate, and validity."""
    residuals = np.zeros(work.flux.shape)
    template, index = candidates["template"][:, 0], candidates["index"][:, 0]
    amplitudes = candidates["amplitudes"][:, 0]
    has = template >= 0
    for t in np.unique(template[has]):
        rows = np.flatnonzero(template == t)
        p = prepared[t]
        unique, position = np.unique(index[rows], return_inverse=True)
        columns = p.columns(unique)[:, position]                    # (K, m, P)
        model = np.einsum("gmp,mg->mp", columns,
                          np.nan_to_num(amplitudes[rows, :p.n_components]))
        residuals[rows] = work.flux[rows] - model
    residuals = residuals * np.sqrt(work.w)
    return residuals, work.valid & has[:, None] & ~work.skipped[:, None]


def _by_template(work, prepared, template_index, index, keep_models, correction):
    """`evaluate` with each spectrum's own template; results in the spectra's order."""
    n, w = index.shape
    k_max = max(p.n_components for p in prepared if p is not None)
    out = Evaluation()
    out.f = np.full((n, w), np.nan)
    out.amplitudes = np.full((n, w, k_max), np.nan)
    out.chi2 = np.full((n, w), np.nan)
    out.variance = np.full((n, w), np.nan)
    out.failed = np.zeros((n, w), bool)
    out.n_active = np.zeros((n, w), np.int64)
    out.models = np.zeros((n, w, work.flux.shape[1])) if keep_models else None
    for t in np.unique(template_index[template_index >= 0]):
        if prepared[t] is None:
            continue
        members = np.flatnonzero(template_index == t)
        ev = evaluate(work.subset(members), prepared[t], index[members],
                      keep_models=keep_models, correction=correction)
        for name in ("f", "chi2", "variance", "failed", "n_active"):
            getattr(out, name)[members] = getattr(ev, name)
        out.amplitudes[members, :, :ev.amplitudes.shape[-1]] = ev.amplitudes
        if keep_models:
            out.models[members] = ev.models
    return out


class Part:
    """The maps and candidates of spectra ``start:stop`` (:meth:`Correlator.correlate_rows`).

    Attributes
    ----------
    start, stop : int
    maps, candidates : dict of ndarray
        Flat arrays, one row per spectrum of the part.
    curves : dict of ndarray or None
        f and sigma_f over the grid (``keep_ccf=True``).
    rho : ndarray
        The noise correlation its variances were computed with.
    residuals : `~muse_xcorr.spectra.noise.ResidualCorrelation`
        The autocorrelation sums of its best fits' residuals.
    work : dict or None
        Its working batches by first row (``correlate_rows(keep_work=True)``),
        for :meth:`Correlator.finish`; never saved or sent.
    """

    def __init__(self, start, stop, maps, candidates, curves=None, *, rho=(), residuals=None,
                 work=None):
        self.start, self.stop = int(start), int(stop)
        self.maps, self.candidates, self.curves = maps, candidates, curves
        self.rho = as_correlation(rho)
        self.residuals = residuals if residuals is not None else ResidualCorrelation()
        self.work = work

    def __repr__(self):
        return f"<Part of spectra {self.start}:{self.stop}>"

    def to_arrays(self):
        """Every array of the part, flat in one dict of plain NumPy arrays (lossless).

        For checkpoints (:mod:`muse_xcorr.io.checkpoint`); :meth:`from_arrays`
        reads it back.
        """
        arrays = {"start": np.int64(self.start), "stop": np.int64(self.stop),
                  "rho": np.asarray(self.rho, dtype=float)}
        for store in ("maps", "candidates", "curves"):
            for name, value in (getattr(self, store) or {}).items():
                arrays[f"{store}.{name}"] = np.asarray(value)
        r = self.residuals
        arrays.update({"residuals.max_lag": np.int64(r.max_lag),
                       "residuals.outlier": np.float64(r.outlier),
                       "residuals.products": r.products, "residuals.norms": r.norms,
                       "residuals.pairs": r.pairs, "residuals.squares": np.float64(r.squares),
                       "residuals.count": np.int64(r.count)})
        return arrays

    @classmethod
    def from_arrays(cls, arrays):
        """The part that :meth:`to_arrays` gave ``arrays``.

        Raises
        ------
        ValueError
            Where an array is missing or does not fit the part's span.
        """
        try:
            start, stop = int(arrays["start"]), int(arrays["stop"])
            stores = {store: {} for store in ("maps", "candidates", "curves")}
            for key, value in arrays.items():
                store, _, name = key.partition(".")
                if store in stores and name:
                    if np.ndim(value) == 0 or np.shape(value)[0] != stop - start:
                        raise ValueError(f"{key} has {np.shape(value)} rows for spectra "
                                         f"{start}:{stop}")
                    stores[store][name] = np.asarray(value)
            residuals = ResidualCorrelation(int(arrays["residuals.max_lag"]),
                                            float(arrays["residuals.outlier"]))
            residuals.products = np.asarray(arrays["residuals.products"], dtype=float)
            residuals.norms = np.asarray(arrays["residuals.norms"], dtype=float)
            residuals.pairs = np.asarray(arrays["residuals.pairs"], dtype=np.int64)
            residuals.squares = float(arrays["residuals.squares"])
            residuals.count = int(arrays["residuals.count"])
            rho = np.asarray(arrays["rho"], dtype=float)
        except KeyError as err:
            raise ValueError(f"a part's arrays lack {err}") from None
        if not stores["maps"]:
            raise ValueError("a part's arrays hold no maps")
        return cls(start, stop, stores["maps"], stores["candidates"], stores["curves"] or None,
                   rho=rho, residuals=residuals)


class _Outputs:
    """The flat per-spectrum maps and candidate arrays of a part, filled batch by batch."""

    def __init__(self, start, stop, n_candidates, k_max, n_z):
        self.offset = start
        n = stop - start
        self.n = n
        self.maps = {}
        self.candidates = {}
        self.shapes = (n_candidates, k_max)
        self.curves = None if not n_z else {"ccf_f": np.full((n, n_z), np.nan),
                                            "ccf_sigma": np.full((n, n_z), np.nan)}

    def _put(self, store, name, rows, value):
        value = np.asarray(value)
        if name not in store:
            shape = (self.n,) + value.shape[1:]
            fill = np.nan if value.dtype.kind == "f" else (False if value.dtype.kind == "b"
                                                           else -1)
            store[name] = np.full(shape, fill, dtype=value.dtype)
        store[name][rows] = value

    def store(self, work, candidates, extrema, prepared, correlator, sky):
        rows = slice(work.start - self.offset, work.stop - self.offset)
        n = len(work)
        best = candidates["template"][:, 0]
        has = best >= 0
        index = candidates["index"][:, 0]
        z_best = candidates["z"][:, 0]
        coverage = np.zeros(n)
        lowest = np.full(n, np.nan)
        highest = np.full(n, np.nan)
        for t in np.unique(best[has]):
            members = best == t
            coverage[members] = prepared[t].coverage(z_best[members], work.valid[members])
            highest[members], lowest[members] = extrema[t, members, 0], extrema[t, members, 1]
        no_data = (work.n_valid == 0) | ~(work.norm2 > 0)
        flags = np.zeros(n, dtype=np.int32)
        flags[no_data] |= Flag.NO_DATA
        flags[work.skipped & ~no_data] |= Flag.FEW_PIXELS
        flags[~has & ~work.skipped] |= Flag.NO_DATA  # no template gave a candidate
        flags[work.bad_variance] |= Flag.BAD_VARIANCE
        flags[work.outliers] |= Flag.OUTLIER_PIXELS
        flags[has & candidates["at_edge"][:, 0]] |= Flag.EDGE
        single = np.array([p is not None and p.n_components == 1 for p in prepared])
        negative = has & single[np.maximum(best, 0)] & (-lowest > highest)
        flags[negative] |= Flag.NEGATIVE_PEAK
        flags[has & (coverage < correlator.min_coverage)] |= Flag.LOW_COVERAGE
        sigma = candidates["sigma_f"][:, 0]
        flags[has & (candidates["failed"][:, 0] | ~(sigma > 0))] |= Flag.ZERR_UNRELIABLE
        second = candidates["delta_chi2"][:, 1] if candidates["delta_chi2"].shape[1] > 1 \
            else np.full(n, np.nan)
        delta = np.where(has & np.isnan(second), np.inf, second)
        improvement = work.norm2_w - candidates["chi2"][:, 0]
        limit = np.maximum(correlator.ambiguity_threshold,
                           correlator.ambiguity_tolerance * np.nan_to_num(improvement))
        flags[has & (delta < limit)] |= Flag.AMBIGUOUS
        maps = {"template_index": np.where(has, best, -1).astype(np.int32),
                "best_index": np.where(has, index, -1).astype(np.int64),
                "z_best": z_best, "f_best": candidates["f"][:, 0], "sigma_f_best": sigma,
                "chi2_best": candidates["chi2"][:, 0], "norm2": work.norm2_w,
                "coverage": np.where(has, coverage, np.nan), "n_valid": work.n_valid,
                "f_max": highest, "f_min": lowest, "flags": flags,
                "detection_chi2": _detection_statistic(work, candidates),
                "sky_share": np.asarray(sky, float)}
        for name, value in maps.items():
            self._put(self.maps, name, rows, value)
        for name, value in candidates.items():
            self._put(self.candidates, name, rows, value)

    def store_curves(self, work, prepared, correlator):
        rows = np.arange(work.start, work.stop) - self.offset
        best = self.maps["template_index"][rows]
        n_z = correlator.z.size
        for start in range(0, n_z, 2048):
            index = np.broadcast_to(np.arange(start, min(start + 2048, n_z)),
                                    (rows.size, min(2048, n_z - start)))
            ev = _by_template(work, prepared, best, index, False, correlator.sigma_correction)
            self.curves["ccf_f"][rows, start:start + index.shape[1]] = ev.f
            self.curves["ccf_sigma"][rows, start:start + index.shape[1]] = np.sqrt(ev.variance)


def _progress_bar(total, enabled):
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="spec", desc="muse-xcorr", disable=not enabled,
                leave=False, dynamic_ncols=True)
