"""The window sums of the hot path over the pixels a narrow component reaches.

`window_sums` takes each group's products over the pixels its columns reach
(``extent``, from `ColumnGenerator.pixel_extent`) instead of over all of
them; the sums must be those of a float64 NumPy reference, as over all
pixels, and exactly zero where no column reaches the data.
"""
import astropy.units as u
import numpy as np

from muse_xcorr import Template, datasets, zgrid
from muse_xcorr.backend import _tensorflow as backend
from muse_xcorr.templates.resample import generator_for


def _narrow_case(n_spectra=96, half=15, seed=3):
    """A single emission line's columns, random data and weights, windows anywhere on
    a grid that takes the line off both ends of the data."""
    line = Template.from_lines(["Halpha"], width=80 * u.km / u.s, wave_range=(6000, 7000))
    wave = datasets.muse_wavelength()
    z = zgrid(-0.35, 0.5, 1e-4)
    generator = generator_for(line, wave, "air", z, lsf="muse")
    rng = np.random.default_rng(seed)
    data = rng.normal(size=(n_spectra, wave.size))
    weights = rng.uniform(0.5, 2.0, size=(n_spectra, wave.size))
    centres = rng.integers(half, z.size - half, size=(n_spectra, 4))
    window = centres[..., None] + np.arange(-half, half + 1)
    unique = np.unique(window)
    position = np.searchsorted(unique, window)
    return generator, data, weights, unique, position


def test_sums_over_the_reached_pixels_match_the_float64_reference():
    generator, data, weights, unique, position = _narrow_case()
    extent = generator.pixel_extent(unique)
    assert extent is not None
    start, stop = extent
    assert np.median(stop - start) < 0.1 * generator.n_pixel  # narrow: the point of it
    assert np.any(stop == start)                                # and off the data somewhere
    columns64 = generator.at_indices(unique)
    rows = backend.constant(generator.at_indices(unique, np.float32), "float32")
    tensors = backend.as_tensor(data, "float32"), backend.as_tensor(weights, "float32")
    narrow = backend.window_sums(*tensors, None, rows, position, extent=extent)
    full = backend.window_sums(*tensors, None, rows, position)
    # float64 reference of every sample: <d, T> and <w, T^2>
    reference_a = np.einsum("isp,ip->is", columns64[position.reshape(len(data), -1)],
                            data).reshape(position.shape)
    reference_b = np.einsum("isp,ip->is", columns64[position.reshape(len(data), -1)] ** 2,
                            weights).reshape(position.shape)
    scale_a = np.sqrt(reference_b).max()
    for (a, b) in (narrow, full):
        np.testing.assert_allclose(a, reference_a, rtol=0, atol=1e-5 * scale_a)
        np.testing.assert_allclose(b, reference_b, rtol=1e-5, atol=1e-6 * reference_b.max())
    np.testing.assert_allclose(narrow[0], full[0], rtol=0, atol=1e-6 * scale_a)
    np.testing.assert_allclose(narrow[1], full[1], rtol=1e-6, atol=0)
    # columns that reach no pixel: exactly zero sums
    zero = (stop == start)[position]
    assert zero.any() and np.all(narrow[0][zero] == 0.0) and np.all(narrow[1][zero] == 0.0)
