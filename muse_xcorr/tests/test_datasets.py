"""The simulated cubes of `muse_xcorr.datasets`: the noise they promise."""
import numpy as np
import pytest

from muse_xcorr import datasets


@pytest.mark.parametrize("rho1", [0.0, 0.36, 0.54])
def test_make_cube_noise_has_the_requested_neighbour_correlation(rho1):
    """Noise-only spaxels (S/N 0): variance = STAT, lag-1 correlation rho1, lag 2 a^2/(1+2a^2).

    Tolerances: 300 spaxels x 800 pixels give ~2.4e5 pairs per lag, a
    standard error of ~0.003 on each correlation; 0.015 is five of them.
    """
    wave = datasets.muse_wavelength(800)
    cube, _ = datasets.make_cube((10, 30), z=0.5, snr=0.0, seed=4, wavelength=wave, rho1=rho1)
    data = np.asarray(cube.flux.value, float).reshape(wave.size, -1)
    stat = np.asarray(cube.uncertainty.array, float).reshape(wave.size, -1)
    x = data / np.sqrt(stat)
    assert np.var(x) == pytest.approx(1.0, abs=0.015)
    a = 0.0 if rho1 == 0 else (1 - np.sqrt(1 - 2 * rho1 ** 2)) / (2 * rho1)
    for lag, expected in ((1, rho1), (2, a * a / (1 + 2 * a * a)), (3, 0.0)):
        measured = np.mean(x[lag:] * x[:-lag]) / np.mean(x * x)
        assert measured == pytest.approx(expected, abs=0.015)


def test_make_cube_rejects_an_impossible_correlation():
    with pytest.raises(ValueError, match="rho_1"):
        datasets.make_cube((2, 2), rho1=0.8, wavelength=datasets.muse_wavelength(100))
