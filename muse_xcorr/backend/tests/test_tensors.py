"""Tensors of NumPy arrays: shared where asked and TensorFlow allows it, copied otherwise."""
import numpy as np
import pytest

from muse_xcorr.backend import _tensorflow as backend


def _gpu():
    return bool(backend.tensorflow().config.list_logical_devices("GPU"))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_aligned_arrays_become_tensors_with_their_values(dtype):
    tf = backend.tensorflow()
    rng = np.random.default_rng(5)
    array = backend.empty_aligned((37, 101), dtype)
    assert array.ctypes.data % backend.ALIGNMENT == 0 and array.flags.c_contiguous
    array[...] = rng.normal(size=array.shape)
    reference = array.astype(np.float64)
    tensor = backend.constant(array, dtype, share=True)
    # a reduction and a product: the kernels that need aligned memory
    np.testing.assert_allclose(float(tf.reduce_sum(tensor)), reference.sum(), rtol=1e-5)
    product = tf.matmul(tensor, tensor, transpose_b=True).numpy()
    np.testing.assert_allclose(product, reference @ reference.T, rtol=1e-4, atol=1e-3)
    assert tensor.dtype == tf.as_dtype(dtype) and tuple(tensor.shape) == array.shape


@pytest.mark.skipif(_gpu(), reason="on a GPU every tensor is copied to the device")
def test_a_shared_tensor_is_the_array_and_a_default_one_a_copy():
    tf = backend.tensorflow()
    array = backend.empty_aligned((16, 64), "float32")
    array[...] = 1.0
    shared = backend.constant(array, "float32", share=True)
    copied = backend.constant(array, "float32")
    array[0, 0] = 99.0  # what share=True callers promise never to do
    assert float(tf.reduce_max(shared)) == 99.0
    assert float(tf.reduce_max(copied)) == 1.0


def test_misaligned_read_only_strided_and_other_dtypes_are_copied_with_their_values():
    tf = backend.tensorflow()
    rng = np.random.default_rng(6)
    raw = backend.empty_aligned((64 * 50 + 1,), "float32")
    misaligned = raw[1:].reshape(64, 50)     # 4 bytes past a 64-byte boundary
    assert misaligned.ctypes.data % backend.ALIGNMENT == 4
    misaligned[...] = rng.normal(size=misaligned.shape)
    read_only = backend.empty_aligned((8, 16), "float32")
    read_only[...] = rng.normal(size=read_only.shape)
    read_only.flags.writeable = False        # NumPy will not export it through DLPack
    strided = rng.normal(size=(50, 64)).astype(np.float32).T
    wide = rng.normal(size=(8, 9))           # float64 for a float32 tensor
    for array in (misaligned, read_only, strided, wide):
        tensor = backend.constant(array, "float32", share=True)
        np.testing.assert_array_equal(tensor.numpy(), array.astype(np.float32))
        assert float(tf.reduce_max(tf.abs(tensor))) == pytest.approx(
            float(np.abs(array.astype(np.float32)).max()))
    empty = backend.constant(np.zeros((0, 3), np.float32), "float32", share=True)
    assert tuple(empty.shape) == (0, 3)


def test_a_shared_tensor_outlives_the_name_of_its_array():
    tf = backend.tensorflow()
    array = backend.empty_aligned((200, 300), "float32")
    array[...] = 1.5
    tensor = backend.constant(array, "float32", share=True)
    del array
    junk = [np.full((200, 300), 7.0, np.float32) for _ in range(20)]  # reuse freed memory
    assert float(tf.reduce_sum(tensor)) == pytest.approx(1.5 * 200 * 300)
    assert junk[0][0, 0] == 7.0
