"""``keras_adadim._backend``'s hot-path ops equal ``keras.ops`` (values and
gradients) on the current backend: on PyTorch they call torch directly,
elsewhere they are ``keras.ops`` itself."""

import keras
import numpy as np
import pytest
from keras import ops

from keras_adadim import _backend

from tests.losses.test_losses import _grad

CASES = {
    "sum all": (lambda m, x: m["sum"](x), ops.sum),
    "sum axis -1 keepdims": (
        lambda m, x: m["sum"](x, axis=-1, keepdims=True),
        lambda x: ops.sum(x, axis=-1, keepdims=True)),
    "sum axes (-2, -1)": (
        lambda m, x: m["sum"](x, axis=(-2, -1)),
        lambda x: ops.sum(x, axis=(-2, -1))),
    "sum axis -2": (
        lambda m, x: m["sum"](x, axis=-2),
        lambda x: ops.sum(x, axis=-2)),
    "stack": (
        lambda m, x: m["stack"]([x[0], 2.0 * x[1]]),
        lambda x: ops.stack([x[0], 2.0 * x[1]])),
    "stack axis 1": (
        lambda m, x: m["stack"]([x[0], x[1]], axis=1),
        lambda x: ops.stack([x[0], x[1]], axis=1)),
    "swapaxes": (
        lambda m, x: m["swapaxes"](x, -1, -2),
        lambda x: ops.swapaxes(x, -1, -2)),
    "trace": (
        lambda m, x: m["trace"](x),
        lambda x: ops.trace(x, axis1=-2, axis2=-1)),
    "logsumexp": (
        lambda m, x: m["logsumexp"](x, axis=-1),
        lambda x: ops.logsumexp(x, axis=-1)),
    "logsumexp axis 1": (
        lambda m, x: m["logsumexp"](x, axis=1),
        lambda x: ops.logsumexp(x, axis=1)),
}
HOT = {
    "sum": _backend.hot_sum,
    "stack": _backend.hot_stack,
    "swapaxes": _backend.hot_swapaxes,
    "trace": _backend.hot_trace,
    "logsumexp": _backend.hot_logsumexp,
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_hot_op_equals_keras_ops(case):
    hot, reference = CASES[case]
    x = np.random.default_rng(0).normal(size=(2, 5, 5)).astype("float32")
    got = ops.convert_to_numpy(hot(HOT, ops.convert_to_tensor(x)))
    want = ops.convert_to_numpy(reference(ops.convert_to_tensor(x)))
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    # Gradients of a weighted sum of the output (weights break symmetry).
    w = np.random.default_rng(1).normal(size=want.shape).astype("float32")
    (g_hot,) = _grad(
        lambda t: ops.sum(hot(HOT, t) * ops.convert_to_tensor(w)), x)
    (g_ref,) = _grad(
        lambda t: ops.sum(reference(t) * ops.convert_to_tensor(w)), x)
    np.testing.assert_allclose(g_hot, g_ref, rtol=1e-6, atol=1e-6)


def test_hot_ops_return_backend_tensors():
    x = ops.convert_to_tensor(np.ones((2, 3, 3), "float32"))
    for out in (_backend.hot_sum(x, axis=-1), _backend.hot_stack([x, x]),
                _backend.hot_swapaxes(x, 0, 1), _backend.hot_trace(x),
                _backend.hot_logsumexp(x, axis=-1)):
        assert ops.is_tensor(out)
        assert keras.backend.standardize_dtype(out.dtype) == "float32"
