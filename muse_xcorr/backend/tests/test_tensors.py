"""Tensors of NumPy arrays: shared where TensorFlow allows it, copied otherwise."""
import numpy as np
import pytest

from muse_xcorr.backend import _tensorflow as backend


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_aligned_arrays_become_tensors_with_their_values(dtype):
    tf = backend.tensorflow()
    rng = np.random.default_rng(5)
    array = backend.empty_aligned((37, 101), dtype)
    assert array.ctypes.data % backend.ALIGNMENT == 0 and array.flags.c_contiguous
    array[...] = rng.normal(size=array.shape)
    reference = array.astype(np.float64)
    tensor = backend.constant(array, dtype)
    # a reduction and a product: the kernels that need aligned memory
    np.testing.assert_allclose(float(tf.reduce_sum(tensor)), reference.sum(), rtol=1e-5)
    product = tf.matmul(tensor, tensor, transpose_b=True).numpy()
    np.testing.assert_allclose(product, reference @ reference.T, rtol=1e-4, atol=1e-3)
    assert tensor.dtype == tf.as_dtype(dtype) and tuple(tensor.shape) == array.shape


def test_misaligned_strided_and_other_dtypes_are_copied_with_their_values():
    tf = backend.tensorflow()
    rng = np.random.default_rng(6)
    raw = np.empty(64 * 50 + 1, dtype=np.float32)
    misaligned = raw[1:].reshape(64, 50)     # 4 bytes past the start of raw's buffer
    misaligned[...] = rng.normal(size=misaligned.shape)
    strided = rng.normal(size=(50, 64)).astype(np.float32).T
    wide = rng.normal(size=(8, 9))           # float64 for a float32 tensor
    for array in (misaligned, strided, wide):
        tensor = backend.constant(array, "float32")
        np.testing.assert_array_equal(tensor.numpy(), array.astype(np.float32))
        assert float(tf.reduce_max(tf.abs(tensor))) == pytest.approx(
            float(np.abs(array.astype(np.float32)).max()))
    empty = backend.constant(np.zeros((0, 3), np.float32), "float32")
    assert tuple(empty.shape) == (0, 3)


def test_a_shared_tensor_outlives_the_name_of_its_array():
    tf = backend.tensorflow()
    array = backend.empty_aligned((200, 300), "float32")
    array[...] = 1.5
    tensor = backend.constant(array, "float32")
    del array
    junk = [np.full((200, 300), 7.0, np.float32) for _ in range(20)]  # reuse freed memory
    assert float(tf.reduce_sum(tensor)) == pytest.approx(1.5 * 200 * 300)
    assert junk[0][0, 0] == 7.0
