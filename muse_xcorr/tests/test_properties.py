"""Property-based tests (hypothesis): random shapes, masks, variances and values.

Whatever the data, the correlator raises nothing, leaves its input alone, and
keeps its promises: f in [-1, 1], sigma_f >= 0 and finite and z_best inside
the grid wherever a spaxel is unflagged, NaN where there is no data, and the
same answer for data scaled by any power of two (the correlation is
normalised). Bounded to a few seconds: a short grid, 240 pixels, at most 3 x 3
spaxels, and the correlators prepared once. Examples are derandomised (the
same on every run, nothing written to disk); set ``HYPOTHESIS_PROFILE=explore``
for random ones.
"""
import os

import numpy as np
import pytest
import astropy.units as u
from astropy.nddata import VarianceUncertainty

from muse_xcorr import Correlator, MuseCube, datasets, zgrid
from muse_xcorr.flags import Flag
from muse_xcorr.spectra import SpectraBatch

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings, strategies as st  # noqa: E402

settings.register_profile("ci", max_examples=60, deadline=None, database=None,
                          derandomize=True)
settings.register_profile("explore", max_examples=300, deadline=None, database=None)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")

WAVE = datasets.muse_wavelength(240, 6000.0)
TEMPLATE = datasets.make_template(wave_range=(4000, 5500))
Z = zgrid(0.3, 0.4, 1e-3)
CORRELATORS = {w: Correlator(TEMPLATE, Z, weighting=w, batch_size=4)
               for w in ("uniform", "inverse_variance")}
UNIT = datasets.FLUX_UNIT


@st.composite
def hostile_cubes(draw):
    """A cube of random shape whose spaxels each get some damage, and a mask."""
    ny, nx = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    z = rng.uniform(0.31, 0.39, (ny, nx))
    model = datasets.observed_models(TEMPLATE, WAVE, z.ravel(), lsf=None)  # (n, n_pix)
    amplitude = draw(st.sampled_from([0.0, 1.0, -1.0, 30.0]))
    noise = draw(st.floats(0.01, 10.0))
    flux = amplitude * model / np.max(np.abs(model)) + rng.normal(0, noise, model.shape)
    var = np.full(model.shape, noise ** 2) * rng.uniform(0.5, 2.0, model.shape)
    for row in range(ny * nx):
        damage = draw(st.sampled_from(["none", "nan", "inf", "zero var", "negative var",
                                       "nan var", "empty", "one pixel", "constant",
                                       "zeros"]))
        picks = rng.random(WAVE.size) < draw(st.floats(0.0, 0.5))
        if damage == "nan":
            flux[row, picks] = np.nan
        elif damage == "inf":
            flux[row, picks] = rng.choice([np.inf, -np.inf])
        elif damage == "zero var":
            var[row, picks] = 0.0
        elif damage == "negative var":
            var[row, picks] = -var[row, picks]
        elif damage == "nan var":
            var[row, picks] = rng.choice([np.nan, np.inf])
        elif damage == "empty":
            flux[row] = np.nan
        elif damage == "one pixel":
            flux[row] = np.nan
            flux[row, rng.integers(WAVE.size)] = 1.0
        elif damage == "constant":
            flux[row] = 3.0
        elif damage == "zeros":
            flux[row] = 0.0
    mask = None
    if draw(st.booleans()):
        mask = rng.random(model.shape) < draw(st.floats(0.0, 1.0))
    shape = (ny, nx, WAVE.size)
    return (flux.reshape(shape), var.reshape(shape),
            None if mask is None else mask.reshape(shape))


def as_cube(flux, var, mask, scale=1.0):
    return MuseCube(WAVE, flux * scale * UNIT, VarianceUncertainty(var * scale ** 2), mask,
                    medium="air", spectral_axis_index=2)


@settings(settings.get_profile(PROFILE))
@given(hostile_cubes(), st.sampled_from(sorted(CORRELATORS)))
def test_any_cube_gives_documented_maps_and_stays_unchanged(cube, weighting):
    flux, var, mask = cube
    copies = [None if a is None else a.copy() for a in cube]
    result = CORRELATORS[weighting].correlate(as_cube(flux, var, mask), progress=False)
    for before, after in zip(copies, cube):
        if before is not None:
            np.testing.assert_array_equal(before, after)         # the input is untouched
    f, sigma, z = result.f_best, result.sigma_f_best, result.z_best
    flags = result.flags
    assert f.shape == sigma.shape == z.shape == flags.shape == flux.shape[:2]
    for extreme in (f, result.f_max, result.f_min):
        finite = np.isfinite(extreme)
        assert np.all(np.abs(extreme[finite]) <= 1 + 1e-9)
    good = flags == 0
    assert np.all(np.isfinite(sigma[good]) & (sigma[good] >= 0))
    assert np.all(np.isfinite(z[good]))
    inside = np.isfinite(z)
    assert np.all((z[inside] >= Z[0]) & (z[inside] <= Z[-1]))
    empty = (flags & (Flag.NO_DATA | Flag.FEW_PIXELS)) != 0
    assert np.all(np.isnan(z[empty]) & np.isnan(f[empty]))
    assert np.all(result.n_valid <= WAVE.size) and np.all(result.n_valid >= 0)
    assert np.all((flags >= 0) & (flags < 2 * max(Flag)))


@settings(settings.get_profile(PROFILE),
          max_examples=settings.get_profile(PROFILE).max_examples // 2)
@given(hostile_cubes(), st.integers(-40, 40))
def test_the_answer_does_not_depend_on_the_flux_scale(cube, power):
    """Flux times 2**k and variance times 4**k (exact in floating point): the same maps."""
    flux, var, mask = cube
    correlator = CORRELATORS["inverse_variance"]
    one = correlator.correlate(as_cube(flux, var, mask), progress=False)
    scaled = correlator.correlate(as_cube(flux, var, mask, scale=2.0 ** power), progress=False)
    np.testing.assert_array_equal(one.flags, scaled.flags)
    for name in ("z_best", "f_best", "sigma_f_best", "chi2_best"):
        np.testing.assert_allclose(scaled.map(name), one.map(name), rtol=1e-9, atol=0,
                                   err_msg=name)


@settings(settings.get_profile(PROFILE),
          max_examples=2 * settings.get_profile(PROFILE).max_examples)
@given(st.integers(1, 4), st.integers(3, 40), st.integers(0, 2 ** 32 - 1),
       st.floats(0, 1), st.booleans())
def test_the_masking_rule_keeps_only_usable_pixels(n, n_pixel, seed, bad, with_mask):
    rng = np.random.default_rng(seed)
    flux = rng.normal(size=(n, n_pixel))
    var = rng.uniform(0.1, 2.0, (n, n_pixel))
    hits = rng.random((n, n_pixel)) < bad
    flux[hits & (rng.random((n, n_pixel)) < 0.3)] = np.nan
    var[hits & (rng.random((n, n_pixel)) < 0.3)] = rng.choice([0.0, -1.0, np.inf, np.nan])
    flux[hits & (rng.random((n, n_pixel)) < 0.2)] = 0.0
    mask = rng.random((n, n_pixel)) < 0.2 if with_mask else None
    before = (flux.copy(), var.copy())
    batch = SpectraBatch.from_arrays(0, n, flux, var, mask)
    np.testing.assert_array_equal(flux, before[0])
    np.testing.assert_array_equal(var, before[1])
    valid = batch.valid
    assert np.all(np.isfinite(flux[valid]) & (var[valid] > 0) & np.isfinite(var[valid]))
    if mask is not None:
        assert not np.any(valid & mask)
    assert np.all(batch.flux[~valid] == 0) and np.all(batch.variance[~valid] == 0)
    np.testing.assert_array_equal(batch.flux[valid], flux[valid])
    assert np.all(np.isfinite(batch.inverse_variance()))
    lost = ~(np.isfinite(var) & (var > 0)) & np.isfinite(flux)
    if mask is not None:
        lost &= ~mask
    assert np.all(batch.bad_variance[np.any(lost & (flux != 0), axis=1)])


def test_a_unit_change_is_not_a_scale_change():
    """The same cube in another flux unit (and its variance): identical maps."""
    cube, _ = datasets.make_cube((1, 2), TEMPLATE, z=0.35, snr=20, seed=3, wavelength=WAVE)
    correlator = CORRELATORS["inverse_variance"]
    first = correlator.correlate(cube, progress=False)
    other = MuseCube(cube.spectral_axis, cube.flux.to(u.Unit("1e-19 erg / (s cm2 Angstrom)")),
                     VarianceUncertainty(cube.uncertainty.array / 100.0), medium="air",
                     wcs=cube.wcs)
    second = correlator.correlate(other, progress=False)
    np.testing.assert_allclose(second.z_best, first.z_best, rtol=1e-9)
    np.testing.assert_array_equal(second.flags, first.flags)
