"""The banded quadratic forms of the noise correlation and the row median, against
independent float64 references (a dense correlation matrix, numpy.median, a loop over
pixel pairs)."""
import numpy as np
import pytest

from muse_xcorr.spectra.noise import ResidualCorrelation, banded_inner


def _dense_band(n_pixel, rho):
    """R with 1 on the diagonal and rho_l on the l-th off-diagonals, as a dense matrix."""
    matrix = np.eye(n_pixel)
    for lag, coefficient in enumerate(rho, start=1):
        matrix += coefficient * (np.eye(n_pixel, k=lag) + np.eye(n_pixel, k=-lag))
    return matrix


@pytest.mark.parametrize("shapes", [((4, 3, 40), (4, 3, 40)),   # same shape
                                    ((4, 3, 40), (4, 1, 40)),   # y broadcast
                                    ((4, 1, 40), (4, 3, 40)),   # x broadcast
                                    ((1, 3, 40), (4, 1, 40))])  # both broadcast
@pytest.mark.parametrize("rho", [[], [0.4], [0.35, 0.1, 0.0, 0.02]])
def test_banded_inner_matches_dense_correlation_matrix(shapes, rho):
    rng = np.random.default_rng(5)
    x = rng.normal(size=shapes[0])
    y = rng.normal(size=shapes[1])
    x[..., 7] = 0.0   # an invalid pixel drops out of every pair
    dense = np.einsum("...j,jk,...k->...", *np.broadcast_arrays(x, y)[:1],
                      _dense_band(40, rho), np.broadcast_arrays(x, y)[1])
    got = banded_inner(x, y, np.asarray(rho, dtype=float))
    assert got.shape == np.broadcast_shapes(shapes[0][:-1], shapes[1][:-1])
    np.testing.assert_allclose(got, dense, rtol=1e-12, atol=1e-12)


def test_banded_inner_leaves_its_inputs_alone():
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(3, 2, 30)), rng.normal(size=(3, 1, 30))
    x0, y0 = x.copy(), y.copy()
    banded_inner(x, y, np.array([0.3, 0.1]))
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(y, y0)


def test_row_median_of_kept_values_matches_numpy():
    from muse_xcorr.statistics import row_median

    rng = np.random.default_rng(3)
    values = rng.normal(size=(60, 41))
    keep = rng.random(values.shape) < 0.6
    keep[0] = False                   # nothing kept: NaN
    keep[1] = False
    keep[1, 5] = True                 # one value
    keep[2] = True                    # all, odd count
    keep[3, :40] = True               # even count
    keep[3, 40] = False
    expected = np.array([np.median(v[k]) if k.any() else np.nan for v, k in zip(values, keep)])
    np.testing.assert_allclose(row_median(values, keep), expected, rtol=0, atol=0)
    with_nan = np.where(keep, values, np.nan)   # default: the non-NaN values
    np.testing.assert_allclose(row_median(with_nan), expected, rtol=0, atol=0)


@pytest.mark.parametrize("rho", [[], [0.45, 0.12, 0.0, 0.01]])
def test_noise_gram_is_u_r_u_transpose(rho):
    from muse_xcorr.correlate.model import noise_gram

    rng = np.random.default_rng(8)
    u = rng.normal(size=(3, 5, 50))
    dense = np.einsum("rkp,pq,rlq->rkl", u, _dense_band(50, rho), u)
    np.testing.assert_allclose(noise_gram(u, np.asarray(rho, dtype=float)), dense,
                               rtol=1e-12, atol=1e-12)


def test_residual_correlation_sums_match_a_loop_over_spectra_and_pairs():
    # the pooled sums against a plain loop: outliers (> 5) and their neighbours up to
    # max_lag left out, including at the ends of a row, NaN residuals and invalid pixels
    rng = np.random.default_rng(7)
    n, n_pixel, max_lag = 9, 60, 3
    residuals = rng.normal(size=(n, n_pixel))
    residuals[:, 1:] += 0.5 * residuals[:, :-1]
    residuals[0, 0] = 8.0
    residuals[1, -1] = -9.0
    residuals[2, 30] = 6.0
    residuals[3, 10] = np.nan
    valid = rng.random((n, n_pixel)) > 0.1
    valid[4] = False
    pooled = ResidualCorrelation(max_lag=max_lag, outlier=5.0)
    pooled.add(residuals[:5], valid[:5]).add(residuals[5:], valid[5:])
    pairs, products, norms = np.zeros(max_lag), np.zeros(max_lag), np.zeros(max_lag)
    squares, count = 0.0, 0
    for row, keep in zip(residuals, valid):
        use = [bool(keep[j]) and np.isfinite(row[j]) for j in range(n_pixel)]
        outliers = [j for j in range(n_pixel) if use[j] and abs(row[j]) > 5.0]
        for j in outliers:
            for k in range(max(j - max_lag, 0), min(j + max_lag + 1, n_pixel)):
                use[k] = False
        for j in range(n_pixel):
            if use[j]:
                squares += row[j] ** 2
                count += 1
            for lag in range(1, max_lag + 1):
                if j + lag < n_pixel and use[j] and use[j + lag]:
                    pairs[lag - 1] += 1
                    products[lag - 1] += row[j] * row[j + lag]
                    norms[lag - 1] += 0.5 * (row[j] ** 2 + row[j + lag] ** 2)
    np.testing.assert_array_equal(pooled.pairs, pairs)
    np.testing.assert_allclose(pooled.products, products, rtol=1e-12)
    np.testing.assert_allclose(pooled.norms, norms, rtol=1e-12)
    np.testing.assert_allclose(pooled.squares, squares, rtol=1e-12)
    assert pooled.count == count
    assert np.isnan(residuals[3, 10]) and residuals[0, 0] == 8.0  # inputs untouched
