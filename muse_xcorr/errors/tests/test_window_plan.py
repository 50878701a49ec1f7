"""The window columns of the resampling estimators, shared across chunks of spectra.

`WindowPlan` generates each template's columns once for the union of the
windows of all spectra; the reference is each window sample's columns
generated alone, at its own grid index, with zeros for the components a
template does not have. Sharing nothing (a zero budget) and sharing some
templates only must give the same vectors.
"""
import numpy as np
import pytest

from muse_xcorr import Correlator, datasets, templates, zgrid
from muse_xcorr.errors._resample import WindowPlan, WindowVectors


@pytest.fixture(scope="module")
def result():
    wavelength = datasets.muse_wavelength(1800, 5500.0)
    cube, _ = datasets.make_cube((3, 4), z=(0.3, 0.5), snr=np.linspace(3, 20, 12).reshape(3, 4),
                                 seed=4, wavelength=wavelength)
    return Correlator(templates.default_set(), zgrid(0.25, 0.6, 2e-4)).correlate(
        cube, progress=False)


def reference_vectors(result, plan, part):
    prepared = result.correlator.prepare(result.data)
    n, (slots, w, k_max) = part.size, plan.shape
    out = np.zeros((n, slots, w, k_max, result.data.n_pixels))
    for i, position in enumerate(part):
        for slot in range(slots):
            template = prepared[plan.template[position, slot]]
            for j, index in enumerate(plan.index[position, slot]):
                columns = template.columns(np.array([index]))[:, 0]
                out[i, slot, j, :columns.shape[0]] = columns
    return out.reshape(n, -1, result.data.n_pixels)


@pytest.mark.parametrize("budget", ["all", "one template", "none"])
def test_window_vectors_are_each_samples_own_columns(result, budget):
    rows = result.peak_rows()
    assert rows.size >= 8
    whole = WindowPlan(result, rows, 3)
    assert len(np.unique(whole.template)) > 1          # more than one template to share
    if budget == "all":
        plan = whole
    else:
        t = np.unique(whole.template)[0]
        one = np.unique(whole.index[whole.template == t]).size * \
            result.correlator.prepare(result.data)[t].n_components * result.data.n_pixels
        plan = WindowPlan(result, rows, 3, budget=one if budget == "one template" else 0)
    for part in (np.arange(rows.size), np.array([rows.size - 1, 0, 2])):
        vectors = WindowVectors(plan, part)
        np.testing.assert_array_equal(vectors.index, whole.index[part])
        np.testing.assert_array_equal(vectors.vectors, reference_vectors(result, plan, part))
