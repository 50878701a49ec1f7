"""Continuum subtraction: the lattice median against NumPy, and data and template alike."""
import numpy as np
import pytest
import astropy.units as u

from muse_xcorr import Template, datasets
from muse_xcorr.templates.continuum import (ContinuumSubtraction, continuum_subtraction,
                                            lattice_median)
from muse_xcorr.templates.resample import generator_for

WAVE = datasets.muse_wavelength(801)


def test_running_median_matches_numpy_reference_on_its_lattice():
    """At the lattice centres the estimate is the median of the valid samples within W/2."""
    rng = np.random.default_rng(3)
    x = np.arange(401) * 1e-4                   # centres every W/4 = 10 samples
    flux = rng.normal(size=(2, x.size)) + np.linspace(0, 5, x.size)
    valid = rng.random(flux.shape) > 0.1
    estimate = lattice_median(flux, valid, x, 41e-4)  # window edges between samples
    for row in range(2):
        for c in range(0, x.size, 10):
            inside = np.abs(x - x[c]) <= 20.5e-4
            expected = np.median(flux[row, inside & valid[row]])
            assert estimate[row, c] == pytest.approx(expected, abs=1e-12)
    # between centres it is linear
    assert estimate[0, 15] == pytest.approx(0.5 * (estimate[0, 10] + estimate[0, 20]))


def test_median_keeps_a_narrow_line_and_bad_input_raises():
    flux = 10 + np.exp(-0.5 * ((WAVE.value - 5000) / 1.2) ** 2)[None]
    out = ContinuumSubtraction("median", 5000 * u.km / u.s).subtract(flux, True, WAVE)
    assert out.max() == pytest.approx(1.0, abs=0.02)
    assert np.abs(out[0, np.abs(WAVE.value - 5000) > 20]).max() < 1e-9
    with pytest.raises(ValueError, match="one of"):
        ContinuumSubtraction("savgol")
    with pytest.raises(ValueError, match="positive"):
        ContinuumSubtraction("median", -3 * u.km / u.s)
    with pytest.raises(u.UnitTypeError, match="velocity"):
        ContinuumSubtraction("median", 150 * u.AA)
    assert continuum_subtraction(None) is None


def test_featureless_template_is_an_error():
    flat = Template(np.arange(3000.0, 9000.0, 2.0) * u.AA, np.full(3000, 2.0))
    with pytest.raises(ValueError, match="nothing of the template"):
        generator_for(flat, WAVE, "air", [0.1], continuum=ContinuumSubtraction())


def test_rest_frame_subtraction_equals_subtracting_the_redshifted_template():
    """A window in velocity commutes with redshifting: the subtracted columns agree.

    The template's continuum is taken once, in its rest frame; the data's on
    the observed pixels. For a redshifted template the two differ only by the
    lattices' positions and the pixel sampling: here by < 1 % of the line peaks.
    """
    template = datasets.make_template()
    operator = ContinuumSubtraction("median", 6000 * u.km / u.s)
    wave = datasets.muse_wavelength()
    z = np.array([0.3, 0.61, 1.02])
    rest_subtracted = generator_for(template, wave, "air", z, continuum=operator).at_redshifts(z)
    plain = generator_for(template, wave, "air", z).at_redshifts(z)
    observed_subtracted = operator.subtract(plain, True, wave)
    scale = np.abs(rest_subtracted).max(axis=1, keepdims=True)
    assert np.max(np.abs(rest_subtracted - observed_subtracted) / scale) < 0.01
    # and both keep the lines: the correlation between them is ~1
    f = np.sum(rest_subtracted * observed_subtracted, axis=1) / (
        np.linalg.norm(rest_subtracted, axis=1) * np.linalg.norm(observed_subtracted, axis=1))
    assert np.all(f > 0.999)


def test_template_ends_leave_no_step():
    """The median is taken over the template's support: its ends do not mimic a line."""
    rest = np.arange(3500.0, 5500.0, 0.5)
    template = Template(rest * u.AA, np.full(rest.size, 5.0) + np.exp(
        -0.5 * ((rest - 4500) / 1.0) ** 2))
    wave = datasets.muse_wavelength()
    column = generator_for(template, wave, "air", [0.5], continuum=ContinuumSubtraction(),
                           lsf=None).at_redshifts([0.5])[0]
    edges = (np.abs(wave.value - 3500 * 1.5) < 30) | (np.abs(wave.value - 5500 * 1.5) < 30)
    assert np.abs(column[edges]).max() < 1e-3 * column.max()


def test_running_median_of_few_and_of_many_spectra_agree_exactly():
    # few rows take the windows of one width together, many one window at a time (the
    # medians themselves: test_running_median_matches_numpy_reference_on_its_lattice)
    from muse_xcorr.templates.continuum import lattice_median

    rng = np.random.default_rng(4)
    x = np.log(np.linspace(4750.0, 9350.0, 900))
    values = rng.normal(5.0, 1.0, size=(3, x.size))
    valid = rng.random(values.shape) > 0.1
    valid[1] = True
    many = lattice_median(np.repeat(values, 30, axis=0), np.repeat(valid, 30, axis=0), x, 0.02)
    few = lattice_median(values, valid, x, 0.02)
    np.testing.assert_array_equal(few, many[::30])
