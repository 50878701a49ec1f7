"""The bounded amplitudes of a composite template against a brute-force minimisation."""
import numpy as np
import pytest
import astropy.units as u

from muse_xcorr import Template
from muse_xcorr.templates import CompositeTemplate
from muse_xcorr.templates.composite import as_components, fit_amplitudes


def brute_force(a, b, lower, upper):
    """min_s sum b (clip(a/b, lo s, hi s) - a/b)^2 on a dense grid of s (free parts apart)."""
    inside = b > 0
    hat = np.where(inside, a / np.where(inside, b, 1.0), 0.0)
    free = (lower <= 0) & ~np.isfinite(upper)
    bounded = inside & ~free
    s = np.linspace(0, 40, 400001)
    cost = np.zeros_like(s)
    for g in np.flatnonzero(bounded):
        cost += b[g] * (np.clip(hat[g], lower[g] * s, upper[g] * s) - hat[g]) ** 2
    free_cost = np.sum(np.where(free & inside, b * (np.clip(hat, 0, None) - hat) ** 2, 0.0))
    return cost.min() + free_cost


def test_fit_matches_brute_force_and_obeys_the_bounds():
    rng = np.random.default_rng(1)
    lower = np.array([0.3, 1.0, 0.05, 0.0])
    upper = np.array([8.0, 1.0, 12.0, np.inf])
    for _ in range(400):
        a = rng.normal(size=4) * rng.uniform(0.1, 5, 4)
        b = rng.uniform(0.1, 3, 4)
        b[rng.random(4) < 0.2] = 0.0          # components outside the data
        amplitude = fit_amplitudes(a, b, lower, upper)
        hat = np.where(b > 0, a / np.where(b > 0, b, 1.0), 0.0)
        cost = np.sum(np.where(b > 0, b * (amplitude - hat) ** 2, 0.0))
        assert cost <= brute_force(a, b, lower, upper) + 1e-9
        assert np.all(amplitude >= 0) and np.all(amplitude[b == 0] == 0)
        bounded = (b > 0) & (lower > 0)
        if bounded.sum() >= 1:
            scale = amplitude[1] if b[1] > 0 else None
            if scale is not None:  # the reference component fixes s
                assert np.all(amplitude[bounded] >= lower[bounded] * scale - 1e-12)
                assert np.all(amplitude[bounded] <= upper[bounded] * scale + 1e-12)


def test_one_line_cannot_be_a_group_with_the_others_at_zero():
    """Flux in one component only: bounded, the others are forced up; free, they stay at 0."""
    a = np.array([10.0, 0.0, 0.0])
    b = np.ones(3)
    free = fit_amplitudes(a, b, np.zeros(3), np.full(3, np.inf))
    np.testing.assert_allclose(free, [10.0, 0.0, 0.0])
    bounded = fit_amplitudes(a, b, np.array([0.5, 1.0, 0.5]), np.array([4.0, 1.0, 4.0]))
    s = bounded[1]
    assert s > 0 and bounded[2] == pytest.approx(0.5 * s) and bounded[0] == pytest.approx(4 * s)
    # the same with the other components outside the data: nothing to force
    alone = fit_amplitudes(a, np.array([1.0, 0.0, 0.0]), np.array([0.5, 1.0, 0.5]),
                           np.array([4.0, 1.0, 4.0]))
    np.testing.assert_allclose(alone, [10.0, 0.0, 0.0])


def test_vectorised_shapes_and_validation():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 7, 3)), rng.uniform(0.1, 1, (5, 7, 3))
    out = fit_amplitudes(a, b, np.array([0.3, 1, 0.05]), np.array([8, 1, 12.0]))
    assert out.shape == (5, 7, 3)
    line = Template.from_lines(["Hbeta"])
    with pytest.raises(ValueError, match="bounds"):
        CompositeTemplate([line, line], bounds=[(0, 1)])
    with pytest.raises(ValueError, match="lower <= upper"):
        CompositeTemplate([line], bounds=[(2, 1)])
    with pytest.raises(TypeError, match="Templates"):
        CompositeTemplate([line, np.ones(3)])
    components, lower, upper = as_components(line)
    assert components == [line] and lower[0] == 0 and upper[0] == np.inf
    assert repr(CompositeTemplate([line], bounds=[(1, 1)], name="x")) == \
        "<CompositeTemplate 'x': Hbeta [1, 1]>"
    assert u.Quantity(line.wavelength).unit == u.AA


def test_a_component_all_but_outside_the_data_gets_no_amplitude():
    """A component with 1e-318 of the others' norm: amplitude 0, no overflow downstream."""
    import warnings

    a = np.array([[10.0, 3.0, 1e-5]])
    b = np.array([[1.0, 2.0, 1e-318]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        amplitude = fit_amplitudes(a, b, np.zeros(3), np.full(3, np.inf))
        model2 = np.sum(amplitude * amplitude * b, axis=-1)
    # the reference: the fit without the third component
    np.testing.assert_allclose(amplitude, [[10.0, 1.5, 0.0]])
    np.testing.assert_allclose(model2, [100.0 + 2.25 * 2])


def test_many_problems_are_fitted_in_blocks_exactly_as_one_by_one():
    """More problems than one block (`_FIT_BLOCK`): each amplitude as its problem alone."""
    from muse_xcorr.templates.composite import _FIT_BLOCK

    rng = np.random.default_rng(7)
    lower = np.array([0.3, 1.0, 0.05, 0.0])
    upper = np.array([8.0, 1.0, 12.0, np.inf])
    shape = (3, _FIT_BLOCK // 2 + 17, 4)       # 1.5 blocks and a bit, in two leading axes
    b = rng.uniform(0.1, 3, shape)
    b[rng.random(shape) < 0.2] = 0.0
    a = rng.normal(size=shape) * rng.uniform(0.1, 5, shape)
    a[0, :5] = 0.0                             # a problem with nothing bounded to fit
    together = fit_amplitudes(a, b, lower, upper)
    assert together.shape == shape
    alone = np.array([[fit_amplitudes(a[i, j], b[i, j], lower, upper)
                       for j in range(shape[1])] for i in range(shape[0])])
    np.testing.assert_array_equal(together, alone)
