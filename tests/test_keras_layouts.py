"""Keras 3 layouts, checked numerically, on the backend ``KERAS_BACKEND`` selects.

Canonical (PyTorch-layout) weights are written through unifyparams, Keras runs its own forward
pass, and the output is compared with a NumPy reference written with PyTorch's conventions
(tests/backends/reference.py: dense ``x W^T + b``, cross-correlation in NCHW, PyTorch's LSTM/GRU).
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

import unifyparams as up

from .backends.keras import BACKEND, leaves, run, seq
from .backends.reference import assert_close, conv_nd, conv_transpose2d, randomize
from .backends.reference import gru as gru_ref
from .backends.reference import lstm as lstm_ref
from .backends.reference import simple_rnn as rnn_ref

pytestmark = pytest.mark.keras
L = keras.layers
ADAPTER = up.get_adapter("keras")


def test_dense_layout() -> None:
    net = seq((5,), L.Dense(3))
    w = leaves(randomize(up.params(net)))
    x = np.random.default_rng(1).normal(size=(4, 5)).astype(np.float32)
    assert_close(run(net, x), x @ w["weight"].T + w["bias"])
    assert np.array_equal(keras.ops.convert_to_numpy(net.layers[0].kernel), up.params(net)["0.weight"].numpy().T)


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_conv_layouts(nd: int) -> None:
    conv = {1: L.Conv1D, 2: L.Conv2D, 3: L.Conv3D}[nd](4, (3, 2, 2)[:nd] if nd > 1 else 3)
    spatial = (7, 6, 5)[:nd]
    net = seq(spatial + (3,), conv)
    w = leaves(randomize(up.params(net)))
    assert w["weight"].shape[:2] == (4, 3)
    x = np.random.default_rng(2).normal(size=(2, 3) + spatial).astype(np.float32)
    got = np.moveaxis(run(net, np.moveaxis(x, 1, -1)), -1, 1)
    assert_close(got, conv_nd(x.astype(np.float64), w["weight"], w["bias"]))


def test_conv2d_transpose_layout() -> None:
    net = seq((5, 4, 3), L.Conv2DTranspose(6, (3, 2)))
    ps = up.params(net)
    assert ps["0.weight"].shape == (3, 6, 3, 2)  # PyTorch ConvTranspose2d: (in, out, kh, kw)
    w = leaves(randomize(ps))
    x = np.random.default_rng(3).normal(size=(2, 3, 5, 4)).astype(np.float32)
    got = np.moveaxis(run(net, np.moveaxis(x, 1, -1)), -1, 1)
    assert_close(got, conv_transpose2d(x.astype(np.float64), w["weight"], w["bias"]))


def test_depthwise_conv2d_layout() -> None:
    net = seq((6, 5, 3), L.DepthwiseConv2D(3, depth_multiplier=2))
    ps = up.params(net)
    assert ps["0.weight"].shape == (6, 1, 3, 3)  # PyTorch Conv2d(3, 6, 3, groups=3)
    w = leaves(randomize(ps))
    x = np.random.default_rng(4).normal(size=(2, 3, 6, 5)).astype(np.float32)
    got = np.moveaxis(run(net, np.moveaxis(x, 1, -1)), -1, 1)
    assert_close(got, conv_nd(x.astype(np.float64), w["weight"], w["bias"], groups=3))


def test_normalization_layouts_and_roles() -> None:
    x = np.random.default_rng(5).normal(size=(6, 5)).astype(np.float32)
    bn = seq((5,), L.BatchNormalization(epsilon=1e-5))
    ps = up.params(bn)
    assert list(ps) == ["0.weight", "0.bias", "0.running_mean", "0.running_var"]
    roles = [ps[n].role for n in ps]
    assert roles == [up.Role.SCALE, up.Role.SHIFT, up.Role.RUNNING_MEAN, up.Role.RUNNING_VAR]
    assert [ps[n].trainable for n in ps] == [True, True, False, False]
    w = leaves(randomize(ps, positive=("running_var", "weight")))
    expected = (x - w["running_mean"]) / np.sqrt(w["running_var"] + 1e-5) * w["weight"] + w["bias"]
    assert_close(run(bn, x), expected)

    ln = seq((5,), L.LayerNormalization(epsilon=1e-5))
    w = leaves(randomize(up.params(ln), seed=1))
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    assert_close(run(ln, x), (x - mean) / np.sqrt(var + 1e-5) * w["weight"] + w["bias"])


def test_embedding_layout() -> None:
    net = seq((None,), L.Embedding(50, 8), dtype="int32")
    w = leaves(randomize(up.params(net)))
    idx = np.random.default_rng(6).integers(0, 50, size=(2, 7))
    assert_close(run(net, idx), w["weight"][idx])


def test_lstm_layout() -> None:
    net = seq((None, 5), L.LSTM(6, return_sequences=True))
    w = leaves(randomize(up.params(net)))
    x = np.random.default_rng(7).normal(size=(2, 4, 5)).astype(np.float32)
    zeros = np.zeros(24)  # Keras's one bias is PyTorch's b_ih + b_hh
    assert_close(run(net, x), lstm_ref(x.astype(np.float64), w["weight_ih_l0"], w["weight_hh_l0"], w["bias_l0"], zeros))


def test_gru_layout_reorders_gates_and_splits_biases() -> None:
    net = seq((None, 5), L.GRU(6, return_sequences=True, reset_after=True))
    ps = up.params(net)
    w = leaves(randomize(ps))
    x = np.random.default_rng(8).normal(size=(2, 4, 5)).astype(np.float32)
    b_ih, b_hh = w["bias_l0"]  # rows: (input bias, recurrent bias), gates r, z, n
    assert_close(run(net, x), gru_ref(x.astype(np.float64), w["weight_ih_l0"], w["weight_hh_l0"], b_ih, b_hh))
    # natively Keras keeps gates (z, r, h): canonical block 0 (r) is Keras's block 1
    kernel = keras.ops.convert_to_numpy(net.layers[0].cell.kernel)
    assert np.array_equal(kernel[:, 6:12].T, ps["0.weight_ih_l0"].numpy()[:6])


def test_simple_rnn_layout() -> None:
    net = seq((None, 5), L.SimpleRNN(4, return_sequences=True))
    w = leaves(randomize(up.params(net)))
    x = np.random.default_rng(9).normal(size=(2, 3, 5)).astype(np.float32)
    assert_close(run(net, x), rnn_ref(x.astype(np.float64), w["weight_ih_l0"], w["weight_hh_l0"], w["bias_l0"]))


def test_bidirectional_lstm_reverse_suffix() -> None:
    net = seq((None, 5), L.Bidirectional(L.LSTM(3, return_sequences=True)))
    ps = up.params(net)
    assert list(ps) == [
        "0.weight_ih_l0", "0.weight_hh_l0", "0.bias_l0",
        "0.weight_ih_l0_reverse", "0.weight_hh_l0_reverse", "0.bias_l0_reverse",
    ]
    assert ps["0.bias_l0_reverse"].slot.block_kinds == ("Bidirectional",)
    w = leaves(randomize(ps))
    x = np.random.default_rng(10).normal(size=(2, 4, 5)).astype(np.float64)
    zeros = np.zeros(12)
    fwd = lstm_ref(x, w["weight_ih_l0"], w["weight_hh_l0"], w["bias_l0"], zeros)
    bwd = lstm_ref(x[:, ::-1], w["weight_ih_l0_reverse"], w["weight_hh_l0_reverse"], w["bias_l0_reverse"], zeros)
    assert_close(run(net, x.astype(np.float32)), np.concatenate([fwd, bwd[:, ::-1]], axis=-1))


def test_stacked_gru_cells_are_layers_l0_l1() -> None:
    net = seq((None, 5), L.RNN([L.GRUCell(4), L.GRUCell(4)], return_sequences=True))
    ps = up.params(net)
    assert [n for n in ps if "_l1" in n] == ["0.weight_ih_l1", "0.weight_hh_l1", "0.bias_l1"]
    assert ps["0.bias_l1"].slot.block_kinds == ("GRU",)  # an RNN of GRU cells is a GRU
    w = leaves(randomize(ps))
    x = np.random.default_rng(11).normal(size=(2, 3, 5)).astype(np.float64)
    h0 = gru_ref(x, w["weight_ih_l0"], w["weight_hh_l0"], *w["bias_l0"])
    h1 = gru_ref(h0, w["weight_ih_l1"], w["weight_hh_l1"], *w["bias_l1"])
    assert_close(run(net, x.astype(np.float32)), h1)


def test_gradient_is_in_canonical_layout_and_native_on_torch() -> None:
    net = seq((None, 5), L.GRU(3))
    ps = up.params(net)
    grads = up.gradients(net, np.random.default_rng(14).normal(size=(2, 4, 5)).astype(np.float32))
    assert grads["0.weight_ih_l0"].shape == (9, 5) and grads["0.bias_l0"].shape == (2, 9)
    native = ADAPTER.grad(ps["0.weight_ih_l0"].native)
    assert native is not None and native.shape == (5, 9)
    assert np.array_equal(ps["0.weight_ih_l0"].layout.to_canonical(native), grads["0.weight_ih_l0"])
    if BACKEND == "torch":  # the gradient lives where torch optimizers look for it
        torch_grad = net.layers[0].cell.kernel.value.grad.numpy()
        assert np.array_equal(torch_grad, native)
