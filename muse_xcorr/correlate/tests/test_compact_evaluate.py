"""A composite's float64 model from its components' pieces (`evaluate`).

A composite's line components are exactly zero outside a few dozen pixels
per line; `evaluate` takes their sums and builds the model from those pieces
(`~muse_xcorr.templates.resample.ColumnGenerator.compact_at_indices`) instead
of products over every pixel. Checked here against a float64 NumPy
reference written in the test on the full-width columns of the general
resampling path, and against the full-width evaluation, with continuum
subtraction on and off and on white and correlated noise.
"""
import astropy.units as u
import numpy as np
import pytest

from muse_xcorr import Template, datasets, zgrid
from muse_xcorr.correlate.model import PreparedTemplate, WorkingBatch, evaluate
from muse_xcorr.templates import CompositeTemplate
from muse_xcorr.templates.composite import fit_amplitudes
from muse_xcorr.templates.continuum import ContinuumSubtraction

WIDTH = 80 * u.km / u.s


def _lines(names, name):
    return Template.from_lines(names, width=WIDTH, name=name, wave_range=(3000, 7500))


def _case(rho1, continuum):
    """32 spectra of a star-forming galaxy at 0.05 < z < 0.9, the composite prepared."""
    wave = datasets.muse_wavelength()
    # the Balmer component has two lines far apart: two pieces of one component
    composite = CompositeTemplate([_lines(["[OII]3726", "[OII]3729"], "oii"),
                                   _lines(["Hgamma", "Hbeta"], "balmer"),
                                   _lines(["[OIII]4959", "[OIII]5007"], "oiii")],
                                  bounds=[(0.2, 5.0), (1.0, 1.0), (0.3, 10.0)], name="sf")
    truth = Template.from_lines({"[OII]3726": 1.0, "[OII]3729": 1.4, "Hgamma": 0.5,
                                 "Hbeta": 1.0, "[OIII]4959": 0.9, "[OIII]5007": 2.7},
                                width=WIDTH, wave_range=(3000, 7500))
    rng = np.random.default_rng(4)
    cube, _ = datasets.make_cube(shape=(4, 8), template=truth, z=(0.05, 0.9),
                                 snr=rng.uniform(3, 40, (4, 8)), seed=5, rho1=rho1)
    subtraction = ContinuumSubtraction("median") if continuum else None
    z = zgrid(0.0, 1.0, 1e-4)
    prepared = PreparedTemplate(composite, wave, "air", z, continuum=subtraction, lsf="muse")
    work = WorkingBatch(cube.spectra(0, 32), "inverse_variance", subtraction, wave, 10,
                        rho=(rho1,) if rho1 else ())
    # each spectrum at three neighbouring redshifts, some at the ends of the grid
    centre = np.concatenate([rng.integers(1, z.size - 1, 28), [1, 1, z.size - 2, z.size - 2]])
    index = centre[:, None] + np.arange(-1, 2)
    return prepared, work, index, z


@pytest.mark.parametrize("continuum", [True, False])
@pytest.mark.parametrize("rho1", [0.0, 0.3])
def test_composite_fit_from_pieces_matches_a_full_width_reference(rho1, continuum):
    """f and chi2 against a NumPy reference on the full-width columns of the general path
    (which differ from the fast path's by ~1e-8 of their peak)."""
    prepared, work, index, z = _case(rho1, continuum)
    assert max(len(g.compact_at_indices(index.ravel())) for g in prepared.fine) == 2
    got = evaluate(work, prepared, index)
    columns = np.stack([g.at_redshifts(z[index.ravel()]) for g in prepared.fine])
    columns = columns.reshape(len(prepared.fine), *index.shape, -1)       # (K, n, w, P)
    q, d = work.q, work.flux
    a = np.einsum("knwp,np->nwk", columns, q * d)
    b = np.einsum("knwp,np->nwk", columns ** 2, q)
    amplitude = fit_amplitudes(a, b, prepared.lower, prepared.upper)
    model = np.einsum("knwp,nwk->nwp", columns, amplitude)
    inner = np.einsum("nwp,np->nw", model, q * d)
    model2 = np.einsum("nwp,np->nw", model ** 2, q)
    norm2 = np.sum(q * d * d, axis=1)[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        f = np.where(model2 > 0, inner / np.sqrt(norm2 * model2), 0.0)
    assert np.sum(model2 > 0) > 0.6 * model2.size   # most samples have a fitted model
    np.testing.assert_allclose(got.f, f, rtol=0, atol=1e-7)
    chi2 = norm2 * (1 - np.maximum(f, 0) ** 2)
    np.testing.assert_allclose(got.chi2, chi2, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("continuum", [True, False])
@pytest.mark.parametrize("rho1", [0.0, 0.3])
def test_composite_evaluation_from_pieces_equals_the_full_width_one(rho1, continuum):
    """Every number of `evaluate`, and the unit models, as from the full-width columns
    (the same fast path; only the order of the sums differs)."""
    prepared, work, index, _ = _case(rho1, continuum)
    got = evaluate(work, prepared, index, keep_models=True)
    full = evaluate(work, prepared, index, keep_models=True, columns=prepared.columns)
    for name in ("f", "amplitudes", "chi2", "variance", "kappa", "models"):
        expected = getattr(full, name)
        scale = np.nanmax(np.abs(expected))
        np.testing.assert_allclose(getattr(got, name), expected, rtol=1e-10,
                                   atol=1e-12 * scale, err_msg=name)
    for name in ("failed", "n_active"):
        np.testing.assert_array_equal(getattr(got, name), getattr(full, name), err_msg=name)
