"""Refining only the candidates that can enter the list (`PendingPool`).

The float64 refinement of every candidate was the search's largest cost;
`window_best` now bounds what each refinement can find, and `PendingPool`
skips those that cannot enter the list. Here: the bound against a float64
NumPy reference, the bound against the refined chi2, and the settled list
against the list of refining everything, field by field.
"""
import contextlib

import astropy.units as u
import numpy as np
import pytest
from astropy.utils.exceptions import AstropyUserWarning

from muse_xcorr import Correlator, Template, datasets, templates, zgrid
from muse_xcorr.backend import _tensorflow as _tf_backend
from muse_xcorr.correlate.candidates import PendingPool, merge_pools, select_candidates
from muse_xcorr.correlate.search import BOUND_TOLERANCE, SearchGrid, refine, window_best
from muse_xcorr.units import velocity_to_dlnz

HALF = 15  # the windows of the default coarse factor 10
N_SEEDS = 8


def _case(weighting="inverse_variance", rho1=0.3, continuum="median"):
    """64 simulated spectra at S/N 1-30 and the default set on 0 < z < 1.6."""
    rng = np.random.default_rng(21)
    cube, _ = datasets.make_cube(shape=(4, 16), z=(0.05, 1.5), snr=rng.uniform(1, 30, (4, 16)),
                                 seed=22, rho1=rho1)
    # a template set without continuum subtraction warns (tested in test_correlate.py)
    warns = pytest.warns(AstropyUserWarning, match="continuum=None") if continuum is None \
        else contextlib.nullcontext()
    with warns:
        correlator = Correlator(templates.default_set(), zgrid(0.0, 1.6, 1e-4),
                                weighting=weighting, continuum=continuum)
    prepared = correlator.prepare(cube)
    work = correlator.working(cube, np.arange(64), rho=(rho1,) if rho1 else ())
    data, weights, patterns = work.search_arrays("float32")
    tensors = (_tf_backend.as_tensor(data, "float32"), _tf_backend.as_tensor(weights, "float32"),
               patterns)
    windows = []
    for t, p in enumerate(prepared):
        if p is None:
            continue
        seeds, _, _ = SearchGrid(p, correlator.factor, "float32").seeds(
            tensors[0], tensors[1], patterns, N_SEEDS)
        index, _, explained = window_best(tensors, p, seeds, HALF, "float32")
        windows.append((t, p, seeds, index, explained))
    return correlator, work, windows


@pytest.fixture(scope="module", params=[("median", 0.3), (None, 0.3), ("median", 0.0)],
                ids=["median-correlated", "no-continuum-correlated", "median-white"])
def case(request):
    """The default (continuum subtraction, correlated noise), without the continuum
    subtraction, and on white noise."""
    continuum, rho1 = request.param
    return _case(continuum=continuum, rho1=rho1)


def _reference_explained(work, p, centres, half):
    """float64: the largest sum over components of max(<d, m_g>_w, 0)^2 / (|m_g|_w^2 ||d||_w^2)
    over each window (clipped to the template's range), from the template's exact columns."""
    low, high = p.index_range
    out = np.full(centres.shape, np.nan)
    for i, j in zip(*np.nonzero((centres >= 0) & p.in_range(centres))):
        window = np.clip(centres[i, j] + np.arange(-half, half + 1), low, high)
        columns = p.columns(window)                        # (K, w, P) float64
        w, d = work.w[i], work.flux[i]
        a = columns @ (w * d)
        b = (columns ** 2) @ w
        share = np.where(b > 0, np.maximum(a, 0) ** 2 / np.where(b > 0, b, 1.0), 0.0).sum(0)
        out[i, j] = share.max() / np.sum(w * d * d)
    return out


def test_bound_matches_float64_reference(case):
    """`explained` is the float64 bound plus the tolerance, to 1e-5 (10x below it)."""
    correlator, work, windows = case
    checked = 0
    for t, p, seeds, index, explained in windows:
        finite = np.isfinite(explained)
        reference = _reference_explained(work, p, np.where(finite, seeds, -1), HALF)
        difference = explained[finite] - BOUND_TOLERANCE["float32"] - reference[finite]
        assert np.all(np.abs(difference) < 1e-5), (p.name, np.abs(difference).max())
        checked += finite.sum()
    assert checked > 1000


def test_bound_holds_for_every_refined_candidate(case):
    """chi2 of the refined candidate >= norm2_w (1 - explained), wherever a bound is given;
    and the bound is given for most windows and is not vacuous."""
    correlator, work, windows = case
    gaps, n_bounded, n_found = [], 0, 0
    for t, p, seeds, index, explained in windows:
        found = refine(work, p, index)
        has = found["index"] >= 0
        bounded = has & np.isfinite(explained)
        lower = work.norm2_w[:, None] * (1.0 - explained)
        assert np.all(found["chi2"][bounded] >= lower[bounded]), p.name
        gaps.append(((found["chi2"] - lower) / work.norm2_w[:, None])[bounded])
        n_bounded += bounded.sum()
        n_found += has.sum()
    gaps = np.concatenate(gaps)
    assert n_bounded > 0.7 * n_found
    # within a few 1e-3 of ||d||^2 for most: tight enough to tell candidates apart
    assert np.median(gaps) < 5e-3


def _eager_and_lazy(correlator, work, windows, n_candidates):
    """The list of refining every candidate, and `PendingPool`'s, from the same windows."""
    pool = PendingPool(work, correlator.max_components, correction=True)
    eager = []
    for t, p, seeds, index, explained in windows:
        pool.add(t, p, index, explained)
        found = refine(work, p, index)
        found["template"] = np.full(index.shape, t)
        eager.append(found)
    exclusion = velocity_to_dlnz(correlator.exclusion)
    everything = select_candidates(merge_pools(eager, correlator.max_components),
                                   n_candidates, exclusion, correlator.composite_penalty)
    settled = pool.settle(n_candidates, exclusion, correlator.composite_penalty)
    return everything, settled, pool


@pytest.mark.parametrize("n_candidates", [1, 5])
def test_settled_list_is_the_list_of_refining_everything(case, n_candidates):
    """Every field of every candidate identical; and most candidates are never refined."""
    everything, settled, pool = _eager_and_lazy(*case, n_candidates)
    assert set(settled) == set(everything)
    for name in everything:
        np.testing.assert_array_equal(settled[name], everything[name], err_msg=name)
    assert np.all(settled["template"][:, 0] >= 0)
    assert pool.n_refined < 0.6 * pool.n_added


def test_uniform_weights_refine_everything():
    """Without inverse-variance weights the window gives no bound of the chi2: all refined,
    and the list is still that of refining everything."""
    correlator, work, windows = _case(weighting="uniform", rho1=0.0)
    everything, settled, pool = _eager_and_lazy(correlator, work, windows, 5)
    for name in everything:
        np.testing.assert_array_equal(settled[name], everything[name], err_msg=name)
    assert pool.n_refined == pool.n_added


def test_default_composites_have_disjoint_components(case):
    """The default composites' components share no pixel where `disjoint_components` says
    so (everywhere for "emission"): their float64 columns' products vanish."""
    correlator, work, windows = case
    for t, p, seeds, index, explained in windows:
        if p.n_components == 1:
            continue
        low, high = p.index_range
        sample = np.arange(low, high + 1, 97)
        disjoint = p.disjoint_components(sample)
        # uv_emission's C III] touches the table's end on this grid: no claim there
        assert np.all(disjoint) or p.name == "uv_emission", p.name
        columns = p.columns(sample[disjoint])
        for g in range(p.n_components):
            for h in range(g + 1, p.n_components):
                overlap = np.sum(np.abs(columns[g] * columns[h]), axis=-1)
                assert np.all(overlap == 0.0), (p.name, g, h)


def test_overlapping_components_are_not_disjoint():
    """Two components on the same line: no bound (`disjoint_components` False)."""
    narrow = Template.from_lines(["Hbeta"], width=60 * u.km / u.s, name="narrow",
                                 wave_range=(4000, 6000))
    broad = Template.from_lines(["Hbeta"], width=600 * u.km / u.s, name="broad",
                                wave_range=(4000, 6000))
    cube, _ = datasets.make_cube(shape=(1, 2), z=(0.3, 0.4), snr=10, seed=1)
    correlator = Correlator([(narrow, broad)], zgrid(0.1, 0.6, 1e-4), continuum=None)
    p = correlator.prepare(cube)[0]
    low, high = p.index_range
    assert not np.any(p.disjoint_components(np.arange(low, high + 1)))
