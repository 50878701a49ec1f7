"""The detection significance: its null model, its calibration on noise, featureless data."""
import numpy as np
import pytest
from astropy import units as u
from astropy.nddata import VarianceUncertainty
from scipy import stats

from muse_xcorr import Correlator, MuseCube, datasets, zgrid
from muse_xcorr.correlate.detection import DetectionCalibration, null_spectra
from muse_xcorr.flags import Flag
from muse_xcorr.spectra import SpectraBatch


@pytest.mark.parametrize("dof, n_eff", [(1, 300.0), (2, 2000.0)])
def test_the_null_model_recovers_the_trials_it_was_drawn_from(dof, n_eff):
    """Maxima of n_eff independent chi2_dof draws (NumPy, no package code): the fit finds
    dof and n_eff, and its FAP matches the exact one, 1 - (1 - sf)^n, in the tail."""
    rng = np.random.default_rng(1)
    n = int(n_eff)
    null = np.array([rng.chisquare(dof, n).max() for _ in range(400)])
    calibration = DetectionCalibration(null)
    # dof and n_eff trade off against each other in the tail; what must hold is the FAP
    assert abs(calibration.dof - dof) <= 1
    s = stats.chi2.isf(np.array([1e-2, 1e-3, 1e-5, 1e-7]) / n_eff, dof)
    exact = 1 - (1 - stats.chi2.sf(s, dof)) ** n_eff
    ratio = calibration.fap(s) / exact
    assert np.all((ratio > 0.5) & (ratio < 2.0)), ratio
    # a factor 2 at a FAP of 1e-7 is 0.1 sigma of significance
    np.testing.assert_allclose(calibration.significance(s), stats.norm.isf(exact), atol=0.2)
    assert np.isnan(calibration.fap(np.nan)) and calibration.fap(0.0) == 1.0
    sig = calibration.significance(s)
    np.testing.assert_allclose(sig, stats.norm.isf(calibration.fap(s)), rtol=1e-6)


def test_a_null_with_an_atom_at_zero_keeps_its_tail():
    """15 % of the null clipped to 0 (a continuum-dominated or uniform search), the
    rest maxima of 5 chi2_3 draws: the FAP at the true 10, 1 and 0.1 % points (from
    200 000 draws) is within a factor 3 of them (measured 1.3-2.6x, on the
    conservative side). A fit of the whole sample, the
    atom included, put the 1 % point at a FAP of 0.02 %."""
    rng = np.random.default_rng(3)

    def draw(m):
        x = np.array([rng.chisquare(3, 5).max() for _ in range(m)])
        x[rng.uniform(size=m) < 0.15] = 0.0
        return x

    calibration = DetectionCalibration(draw(256))
    reference = draw(200_000)
    for p in (0.1, 0.01, 0.001):
        fap = float(calibration.fap(np.quantile(reference, 1 - p)))
        assert p / 3 < fap < 3 * p, (p, fap)


def test_null_spectra_keep_the_variance_masks_and_correlation():
    rng = np.random.default_rng(2)
    variance = rng.uniform(1, 4, size=(3, 4000))
    valid = np.ones_like(variance, bool)
    valid[:, 1000:1100] = False
    source = SpectraBatch.from_arrays(0, 3, np.where(valid, 1.0, np.nan), variance)
    null = null_spectra(source, 30, np.array([0.4]), rng)
    assert np.array_equal(null.valid, np.tile(source.valid, (10, 1)))
    z = null.flux / np.sqrt(np.where(null.valid, null.variance, 1.0))
    z = np.where(null.valid, z, 0.0)
    assert abs(np.std(z[null.valid]) - 1) < 0.02
    lag1 = np.mean(z[:, 1:2000] * z[:, :1999]) / np.mean(z[:, :2000] ** 2)
    assert abs(lag1 - 0.4) < 0.03


@pytest.fixture(scope="module")
def noise_run():
    template = datasets.make_template("starforming")
    cube, _ = datasets.make_cube((10, 20), template, z=(0.3, 0.5), snr=0.0, seed=9)
    correlator = Correlator(template, zgrid(0.3, 0.5, 2e-4))
    return correlator.correlate(cube, progress=False)


def test_fap_on_gaussian_noise_is_close_to_its_nominal_rate(noise_run):
    """200 noise-only spectra: the fraction below a FAP threshold is near the threshold
    (measured 1.5x at 0.01-0.1 on 400 spectra; binomial sigma ~0.02 at 0.1 here), and the
    default max_fap flags nearly all of them."""
    fap = np.ravel(noise_run.fap)
    assert 0.03 < np.mean(fap < 0.1) < 0.25
    assert 0.35 < np.mean(fap < 0.5) < 0.7
    flags = np.ravel(noise_run.flags)
    assert np.mean((flags & Flag.LOW_SIGNIFICANCE) != 0) > 0.9
    assert np.sum(flags == 0) <= 4


@pytest.mark.parametrize("slope", [0.0, 1.5])
def test_a_bright_featureless_continuum_is_no_confident_redshift(slope):
    """A bright flat or sloped continuum without lines, against a line-rich template: it
    was snr ~290 and flags 0; now it must be flagged, and z_conf must stay below what a
    confident redshift gets (it is a population probability, up to ~0.6 for noise whose
    best candidate happens to stand out from the second)."""
    template = datasets.make_template("starforming")
    wave = datasets.muse_wavelength()
    variance = datasets.muse_variance(wave) * 1.0
    rng = np.random.default_rng(5)
    shape = (wave.size, 4)
    level = 50 * np.sqrt(np.median(variance)) * (wave.value / 7000.0)[:, None] ** slope
    flux = level + rng.normal(size=shape) * np.sqrt(variance)[:, None]
    cube = MuseCube(wave, flux * datasets.FLUX_UNIT,
                    VarianceUncertainty(np.broadcast_to(variance[:, None], shape),
                                        unit=datasets.FLUX_UNIT ** 2), medium="air")
    result = Correlator(template, zgrid(0.3, 0.7, 2e-4)).correlate(cube, progress=False)
    assert np.all(result.flags & (Flag.LOW_SIGNIFICANCE | Flag.AMBIGUOUS))
    assert np.all(result.z_conf < 0.9) and np.median(result.z_conf) < 0.5


def test_spectra_of_one_format_share_a_calibration_and_other_masks_do_not():
    template = datasets.make_template("starforming")
    correlator = Correlator(template, zgrid(0.3, 0.4, 5e-4))
    a, _ = datasets.make_spectrum(template, z=0.35, snr=10, seed=1)
    b, _ = datasets.make_spectrum(template, z=0.32, snr=20, seed=2)
    first = correlator.detection_calibration(a, [0.30])
    assert correlator.detection_calibration(b, [0.31]) is first     # same bucket of rho
    assert correlator.detection_calibration(b, [0.50]) is not first
    flux = b.flux.value.copy()
    flux[1000:1400] = np.nan                                        # another mask
    holed = type(b)(b.spectral_axis, flux * b.flux.unit, b.uncertainty, medium=b.medium)
    other = correlator.detection_calibration(holed, [0.30])
    assert other is not first and correlator.detection_calibration(a, [0.30]) is first


@pytest.mark.parametrize("search", ["full", "coarse-to-fine"])
def test_the_calibration_takes_the_best_candidate_whatever_the_list_keeps(search, monkeypatch):
    """The null statistic is the best candidate's: a list of one candidate without
    exclusion gives the same null sample, value for value, as the default list of five
    1000 km/s apart (two templates, so the best is ranked across templates; the store is
    off, so both are computed)."""
    monkeypatch.setenv("MUSE_XCORR_CACHE", "0")
    templates = [datasets.make_template("starforming"), datasets.make_template("passive")]
    spectrum, _ = datasets.make_spectrum(templates[0], z=0.35, snr=10, seed=1)
    z = zgrid(0.3, 0.45, 2e-4)
    default = Correlator(templates, z, search=search).detection_calibration(
        spectrum, [0.3], n=48)
    short = Correlator(templates, z, search=search, n_candidates=1,
                       exclusion=0 * u.km / u.s).detection_calibration(spectrum, [0.3], n=48)
    assert np.all(np.isfinite(default.null)) and np.ptp(default.null) > 0
    np.testing.assert_array_equal(short.null, default.null)


class _CountingCube(MuseCube):
    """A real MuseCube that counts how often each set of scattered rows is read."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.reads = {}

    def spectra_at(self, rows):
        key = np.asarray(rows).tobytes()
        self.reads[key] = self.reads.get(key, 0) + 1
        return super().spectra_at(rows)


def test_one_run_reads_the_calibration_sample_once_and_a_new_run_again(monkeypatch):
    # the noise-correlation baseline and the detection calibration draw the same sample;
    # within one run it is read once, a second run (whose data may have changed) reads
    # it again, and the result is that of a correlator that reads it every time
    monkeypatch.setenv("MUSE_XCORR_CACHE", "0")
    template = datasets.make_template()
    plain, _ = datasets.make_cube((16, 20), template=template, z=(0.3, 0.9), snr=15.0, seed=4)
    cube = _CountingCube(plain.spectral_axis, plain.flux, plain.uncertainty, medium="air")
    z = zgrid(0.25, 1.0, 2e-4)
    first = Correlator(template, z).correlate(cube, progress=False)
    assert max(cube.reads.values()) == 1
    again = Correlator(template, z)
    fresh = again.correlate(plain, progress=False)
    for name in ("z_best", "fap", "flags", "sigma_f_best"):
        np.testing.assert_array_equal(first.map(name), fresh.map(name), err_msg=name)
    cube.reads.clear()
    again.correlate(cube, progress=False)
    assert cube.reads and max(cube.reads.values()) == 1
