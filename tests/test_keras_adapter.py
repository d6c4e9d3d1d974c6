"""The Keras 3 adapter on the backend ``KERAS_BACKEND`` selects (run this file once per backend).

Layouts are checked numerically: canonical (PyTorch-layout) weights are written through
unifyparams, Keras runs its own forward pass, and the output is compared with a NumPy reference
written with PyTorch's conventions (dense ``x W^T + b``, cross-correlation in NCHW, PyTorch's
LSTM/GRU equations).
"""

from __future__ import annotations

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import unifyparams as up
from unifyparams.lazy import materialize

L = keras.layers
BACKEND = keras.backend.backend()
ADAPTER = up.get_adapter("keras")


# --- helpers -------------------------------------------------------------------------------------
def seq(input_shape: tuple[int | None, ...], *layers: keras.layers.Layer, dtype: str = "float32") -> keras.Model:
    return keras.Sequential([keras.Input(input_shape, dtype=dtype), *layers])


def run(model: keras.Model, x: np.ndarray) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(model(x, training=False)), dtype=np.float64)


def randomize(ps: up.ParamSet, seed: int = 0, positive: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """Load random canonical values (positive for names ending in ``positive``); return them as float64."""
    rng = np.random.default_rng(seed)
    state = {}
    for name, p in ps.items():
        shape = tuple(int(d) for d in p.shape)
        low, high = (0.5, 1.5) if name.endswith(positive) else (-0.5, 0.5)
        state[name] = rng.uniform(low, high, size=shape).astype(p.dtype)
    ps.load(state)
    return {k: v.astype(np.float64) for k, v in state.items()}


def leaves(state: dict[str, np.ndarray], prefix: str = "0.") -> dict[str, np.ndarray]:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def conv_nd(x: np.ndarray, w: np.ndarray, b: np.ndarray, groups: int = 1) -> np.ndarray:
    """PyTorch ``conv{1,2,3}d``: cross-correlation, stride 1, no padding, NC* layout."""
    nd = w.ndim - 2
    kernel = w.shape[2:]
    windows = np.lib.stride_tricks.sliding_window_view(x, kernel, axis=tuple(range(2, 2 + nd)))
    per_group_in, out = x.shape[1] // groups, w.shape[0]
    per_group_out = out // groups
    results = []
    for g in range(groups):
        xs = windows[:, g * per_group_in:(g + 1) * per_group_in]
        ws = w[g * per_group_out:(g + 1) * per_group_out]
        axes = ([1] + [2 + nd + i for i in range(nd)], [1] + [2 + i for i in range(nd)])
        results.append(np.moveaxis(np.tensordot(xs, ws, axes=axes), -1, 1))
    y = np.concatenate(results, axis=1)
    return y + b.reshape((1, -1) + (1,) * nd)


def conv_transpose2d(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """PyTorch ``conv_transpose2d``, stride 1, no padding: weight (in, out, kh, kw)."""
    n, _, h, wd = x.shape
    _, out, kh, kw = w.shape
    y = np.zeros((n, out, h + kh - 1, wd + kw - 1))
    for a in range(kh):
        for c in range(kw):
            y[:, :, a:a + h, c:c + wd] += np.einsum("nihw,io->nohw", x, w[:, :, a, c])
    return y + b.reshape(1, -1, 1, 1)


def lstm_ref(x: np.ndarray, w_ih: np.ndarray, w_hh: np.ndarray, b_ih: np.ndarray, b_hh: np.ndarray) -> np.ndarray:
    """PyTorch LSTM (gates i, f, g, o), batch-first, whole output sequence."""
    hidden = w_hh.shape[1]
    h = np.zeros((x.shape[0], hidden))
    c = np.zeros_like(h)
    out = []
    for t in range(x.shape[1]):
        i, f, g, o = np.split(x[:, t] @ w_ih.T + b_ih + h @ w_hh.T + b_hh, 4, axis=1)
        c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        h = sigmoid(o) * np.tanh(c)
        out.append(h)
    return np.stack(out, axis=1)


def gru_ref(x: np.ndarray, w_ih: np.ndarray, w_hh: np.ndarray, b_ih: np.ndarray, b_hh: np.ndarray) -> np.ndarray:
    """PyTorch GRU: r = σ(W_ir x + b_ir + W_hr h + b_hr), z likewise,
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn)), h' = (1 - z) * n + z * h."""
    hidden = w_hh.shape[1]
    h = np.zeros((x.shape[0], hidden))
    out = []
    for t in range(x.shape[1]):
        i_r, i_z, i_n = np.split(x[:, t] @ w_ih.T + b_ih, 3, axis=1)
        h_r, h_z, h_n = np.split(h @ w_hh.T + b_hh, 3, axis=1)
        r, z = sigmoid(i_r + h_r), sigmoid(i_z + h_z)
        n = np.tanh(i_n + r * h_n)
        h = (1 - z) * n + z * h
        out.append(h)
    return np.stack(out, axis=1)


def rnn_ref(x: np.ndarray, w_ih: np.ndarray, w_hh: np.ndarray, b: np.ndarray) -> np.ndarray:
    h = np.zeros((x.shape[0], w_hh.shape[1]))
    out = []
    for t in range(x.shape[1]):
        h = np.tanh(x[:, t] @ w_ih.T + b + h @ w_hh.T)
        out.append(h)
    return np.stack(out, axis=1)


def assert_close(got: np.ndarray, expected: np.ndarray, atol: float = 1e-4) -> None:
    assert got.shape == expected.shape, f"shape {got.shape} != expected {expected.shape}"
    diff = float(np.max(np.abs(got - expected)))
    assert diff <= atol, f"max abs difference {diff:.3g} > {atol}"


def snapshot(ps: up.ParamSet) -> dict[str, np.ndarray]:
    return ps.numpy(copy=True)


def assert_unchanged(ps: up.ParamSet, before: dict[str, np.ndarray]) -> None:
    for name, value in before.items():
        assert np.array_equal(ps[name].numpy(), value), f"{name} changed"


# --- discovery ------------------------------------------------------------------------------------
def test_importing_the_adapter_package_imports_no_framework() -> None:
    code = "import sys, unifyparams_keras; print(sorted(m for m in ('keras', 'tensorflow', 'torch') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_keras_adapter_owns_layers_and_wins_over_torch() -> None:
    net = seq((3,), L.Dense(2))
    assert up.params(net).backend == "keras"
    assert ADAPTER.owns(net) and ADAPTER.owns(net.layers[0])
    assert not ADAPTER.owns(net.layers[0].kernel) and not ADAPTER.owns(np.zeros(3))
    assert type(ADAPTER).priority > 0
    if BACKEND == "torch":
        import torch

        assert isinstance(net, torch.nn.Module)  # why Keras must be asked before PyTorch
        assert not ADAPTER.owns(torch.nn.Linear(2, 2))

        class Mixed(keras.Model):  # a raw torch module inside a Keras model
            def __init__(self) -> None:
                super().__init__()
                self.lin = torch.nn.Linear(3, 2)
                self.out = L.Dense(1)

            def call(self, x):  # noqa: ANN001, ANN201
                return self.out(self.lin(x))

        mixed = Mixed()
        mixed(np.zeros((1, 3), dtype="float32"))
        ps = up.params(mixed)
        assert list(ps) == ["lin.weight", "lin.bias", "out.weight", "out.bias"]  # torch's own names, not `variable_3`
        assert ps["lin.weight"].shape == (2, 3) and ps["lin.weight"].layout.is_identity
        ps["lin.weight"].set(np.ones((2, 3), dtype=np.float32))
        assert float(mixed.lin.module.weight.detach().sum()) == 6.0
    else:
        import tensorflow as tf

        assert isinstance(net.layers[0].kernel.value, tf.Variable)
    assert set(type(ADAPTER).conformance_rows()) == {"keras[tensorflow]", "keras[torch]"}


# --- names --------------------------------------------------------------------------------------
def test_sequential_names_are_positions_without_input_layer() -> None:
    net = seq((20,), L.Dense(256), L.Activation("relu"), L.Dense(10))
    ps = up.params(net)
    assert list(ps) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert ps["0.weight"].shape == (256, 20) and ps["0.weight"].native_shape == (20, 256)
    assert ps["0.weight"].native is net.layers[0].kernel
    assert ps["0.weight"].native_name == net.layers[0].kernel.path
    assert ps["2.bias"].slot.block_path == ("2",) and ps["2.bias"].slot.block_kinds == ("Dense",)
    assert ps["2.bias"].slot.block is net.layers[2]


def test_names_do_not_depend_on_keras_global_counters() -> None:
    first = seq((4,), L.Dense(3), L.Dense(2))
    for _ in range(3):
        L.Dense(1)  # advance Keras's name counters
    second = seq((4,), L.Dense(3), L.Dense(2))
    assert list(up.params(first)) == list(up.params(second)) == ["0.weight", "0.bias", "1.weight", "1.bias"]
    assert up.params(first)["0.weight"].native_name != up.params(second)["0.weight"].native_name


def test_functional_model_skips_its_input_layer() -> None:
    inputs = keras.Input((6,))
    x = L.Dense(5)(inputs)
    x = L.ReLU()(x)
    net = keras.Model(inputs, L.Dense(2)(x))
    assert type(net.layers[0]).__name__ == "InputLayer"  # Keras 3.15 lists it first
    ps = up.params(net)
    assert list(ps) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert ps["2.weight"].native is net.layers[3].kernel


class Custom(keras.Model):
    def __init__(self) -> None:
        super().__init__()
        self.embed = L.Embedding(50, 8)
        self.encoder = [L.Dense(8), L.Dense(8)]
        self.norm = L.LayerNormalization()
        self.heads = {"cls": L.Dense(3), "reg": L.Dense(1)}

    def call(self, tokens):  # noqa: ANN001, ANN201
        x = keras.ops.mean(self.embed(tokens), axis=1)
        for layer in self.encoder:
            x = layer(x)
        x = self.norm(x)
        return keras.ops.concatenate([self.heads["cls"](x), self.heads["reg"](x)], axis=-1)


def test_subclassed_model_names_follow_attributes_lists_and_dicts_in_order() -> None:
    net = Custom()
    net(np.zeros((1, 5), dtype="int32"))
    ps = up.params(net)
    assert list(ps) == [
        "embed.weight",
        "encoder.0.weight", "encoder.0.bias", "encoder.1.weight", "encoder.1.bias",
        "norm.weight", "norm.bias",
        "heads.cls.weight", "heads.cls.bias", "heads.reg.weight", "heads.reg.bias",
    ]
    assert ps["heads.cls.weight"].shape == (3, 8)
    assert ps["encoder.1.bias"].slot.block_kinds == ("list", "Dense")
    assert ps["heads.reg.bias"].slot.block_kinds == ("dict", "Dense")
    assert ps["norm.weight"].role == up.Role.SCALE and ps["norm.bias"].role == up.Role.SHIFT
    assert list(up.params(net.heads["cls"])) == ["weight", "bias"]


def test_nested_containers_and_custom_variables() -> None:
    class Block(keras.layers.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.inner = keras.Sequential([L.Dense(4), L.Activation("relu")])
            self.scales = []

        def build(self, shape):  # noqa: ANN001
            self.alpha = self.add_weight(shape=(4,), initializer="ones", name="alpha")
            self.scales.append(self.add_weight(shape=(1,), initializer="zeros", trainable=False))
            self.inner.build(shape)

        def call(self, x):  # noqa: ANN001, ANN201
            return self.inner(x) * self.alpha + self.scales[0]

    net = seq((3,), Block(), L.Dense(2))
    ps = up.params(net)
    assert list(ps) == ["0.alpha", "0.scales.0", "0.inner.0.weight", "0.inner.0.bias", "1.weight", "1.bias"]
    assert ps["0.alpha"].role == up.Role.OTHER and ps["0.alpha"].layout.is_identity
    assert not ps["0.scales.0"].trainable
    assert ps["0.inner.0.weight"].shape == (4, 3)


def test_unknown_variable_names_keep_their_keras_name() -> None:
    layer = L.PReLU()
    net = seq((5,), layer)
    ps = up.params(net)
    assert list(ps) == ["0.alpha"]
    assert ps["0.alpha"].layout.is_identity


def test_recurrent_layers_collapse_their_cell() -> None:
    net = seq((4, 5), L.LSTM(6, return_sequences=True), L.GRU(3, return_sequences=True), L.SimpleRNN(2))
    ps = up.params(net)
    assert list(ps) == [f"{i}.{leaf}" for i in range(3) for leaf in ("weight_ih_l0", "weight_hh_l0", "bias_l0")]
    assert ps["0.weight_ih_l0"].shape == (24, 5) and ps["0.weight_hh_l0"].shape == (24, 6)
    assert ps["0.bias_l0"].shape == (24,)
    assert ps["1.bias_l0"].shape == (2, 9)
    assert ps["2.weight_hh_l0"].shape == (2, 2)
    assert ps["0.weight_ih_l0"].native is net.layers[0].cell.kernel
    assert ps["1.bias_l0"].slot.block_kinds == ("GRU",) and ps["1.bias_l0"].slot.block is net.layers[1]


# --- layouts, numerically -------------------------------------------------------------------------
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


# --- values -------------------------------------------------------------------------------------
def test_set_update_and_item_writes_keep_the_variable_object() -> None:
    net = seq((4,), L.Dense(3), L.BatchNormalization())
    ps = up.params(net)
    kernel, running = net.layers[0].kernel, net.layers[1].moving_mean
    raw = kernel.value
    ps["0.weight"].set(np.arange(12, dtype=np.float32).reshape(3, 4))
    ps["0.weight"].update(lambda w: w + 1)
    ps["0.weight"][2, 3] = -5.0
    ps["1.running_mean"].set(np.full(3, 0.25, dtype=np.float32))
    expected = np.arange(12, dtype=np.float32).reshape(3, 4) + 1
    expected[2, 3] = -5.0
    assert net.layers[0].kernel is kernel and net.layers[1].moving_mean is running
    assert kernel.value is raw  # the backend variable/parameter itself is kept
    assert np.array_equal(keras.ops.convert_to_numpy(kernel), expected.T)
    assert kernel.trainable and not running.trainable
    assert np.array_equal(keras.ops.convert_to_numpy(running), np.full(3, 0.25))
    if BACKEND == "torch":
        assert kernel.value.requires_grad and not running.value.requires_grad


def test_reads_are_read_only_and_copies_are_independent() -> None:
    net = seq((4,), L.Dense(3))
    p = up.params(net)["0.weight"]
    view = p.numpy()
    with pytest.raises(ValueError):
        view[0, 0] = 1.0
    snap = p.numpy(copy=True)
    p.set(np.zeros((3, 4), dtype=np.float32))
    assert not np.array_equal(snap, 0) and np.array_equal(p.numpy(), np.zeros((3, 4)))


@pytest.mark.parametrize("dtype", ["float64", "float16", "bfloat16"])
def test_dtypes(dtype: str) -> None:
    net = seq((4,), L.Dense(3, dtype=dtype))
    p = up.params(net)["0.weight"]
    assert p.dtype.name == dtype
    value = np.arange(12).reshape(3, 4).astype(p.dtype)
    p.set(value)
    assert p.numpy().dtype == p.dtype and np.array_equal(p.numpy().astype(np.float64), value.astype(np.float64))


def test_load_is_all_or_nothing() -> None:
    net = seq((4,), L.Dense(8), L.BatchNormalization(), L.Dense(2))
    ps = up.params(net)
    before = snapshot(ps)
    good = {k: np.ones_like(v) for k, v in before.items()}
    bad = [
        {**good, "2.weight": np.ones((4, 2), dtype=np.float32)},  # native (Keras) shape instead of canonical
        {k: v for k, v in good.items() if k != "1.running_var"},
        {**good, "3.weight": np.ones((2, 2), dtype=np.float32)},
        {**good, "0.bias": np.ones(8, dtype=np.complex64)},
    ]
    for state in bad:
        with pytest.raises(up.LoadError):
            ps.load(state)
        assert_unchanged(ps, before)


def test_load_restores_everything_when_keras_refuses_a_write(monkeypatch: pytest.MonkeyPatch) -> None:
    net = seq((4,), L.Dense(8), L.Dense(2))
    ps = up.params(net)
    before = snapshot(ps)
    calls = {"n": 0}
    real_write = ADAPTER.write

    def flaky(native, value):  # noqa: ANN001, ANN202
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("simulated Keras failure")
        real_write(native, value)

    monkeypatch.setattr(ADAPTER, "write", flaky)
    with pytest.raises(up.WriteError, match="restored"):
        ps.load({k: v + 1 for k, v in before.items()})
    assert_unchanged(ps, before)


# --- gradients ----------------------------------------------------------------------------------
def mlp_grads(x: np.ndarray, w: dict[str, np.ndarray], dy: np.ndarray) -> dict[str, np.ndarray]:
    z = x @ w["0.weight"].T + w["0.bias"]
    h = np.maximum(z, 0)
    dz = (dy @ w["2.weight"]) * (z > 0)
    return {"0.weight": dz.T @ x, "0.bias": dz.sum(0), "2.weight": dy.T @ h, "2.bias": dy.sum(0)}


def test_gradients_match_a_hand_computed_reference() -> None:
    net = seq((5,), L.Dense(7), L.Activation("relu"), L.Dense(3))
    ps = up.params(net)
    assert all(p.grad() is None for p in ps.values())
    w = randomize(ps, seed=12)
    x = np.random.default_rng(13).normal(size=(4, 5)).astype(np.float32)
    grads = up.gradients(net, x)
    expected = mlp_grads(x.astype(np.float64), w, np.ones((4, 3)))
    assert sorted(grads) == sorted(expected)
    for name, g in expected.items():
        assert_close(grads[name], g)
        assert_close(ps[name].grad(), g)
    # a custom loss, and a second pass replaces (does not accumulate) the gradients
    grads = up.gradients(net, x, loss=lambda y: keras.ops.sum(y * y) / 2)
    y = np.maximum(x @ w["0.weight"].T + w["0.bias"], 0) @ w["2.weight"].T + w["2.bias"]
    for name, g in mlp_grads(x.astype(np.float64), w, y).items():
        assert_close(grads[name], g, atol=1e-3)
        assert_close(ps[name].grad(), g, atol=1e-3)


def test_gradients_skip_non_trainable_state() -> None:
    net = seq((3,), L.Dense(4), L.BatchNormalization())
    grads = up.gradients(net, np.ones((2, 3), dtype=np.float32))
    assert sorted(grads) == ["0.bias", "0.weight", "1.bias", "1.weight"]
    assert up.params(net)["1.running_mean"].grad() is None


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


# --- sharing and ties ---------------------------------------------------------------------------
def shared_mlp(shared: bool) -> keras.Model:
    s = L.Dense(8)
    other = s if shared else L.Dense(8)
    return seq((20,), L.Dense(8), L.Activation("relu"), s, L.Activation("relu"), other, L.Activation("relu"), L.Dense(1))


def test_a_layer_used_twice_is_shared() -> None:
    net = shared_mlp(shared=True)
    ps = up.params(net)
    assert list(ps) == [f"{i}.{leaf}" for i in (0, 2, 4, 6) for leaf in ("weight", "bias")]
    assert ps["2.weight"].native is ps["4.weight"].native
    assert ps["2.weight"].shared_with == ("4.weight",)
    assert up.ties(net) == [("2.weight", "4.weight"), ("2.bias", "4.bias")]
    assert ps.count() == 20 * 8 + 8 + 8 * 8 + 8 + 8 + 1
    ps["4.bias"][3] = 9.0
    assert up.params(net)["2.bias"].numpy()[3] == 9.0


def test_shared_layer_gradients_accumulate() -> None:
    tied, twin = shared_mlp(True), shared_mlp(False)
    up.params(twin).load(up.params(tied).numpy(copy=True))
    x = np.random.default_rng(15).normal(size=(3, 20)).astype(np.float32)
    g_tied, g_twin = up.gradients(tied, x), up.gradients(twin, x)
    for leaf in ("weight", "bias"):
        assert_close(g_tied[f"2.{leaf}"], g_twin[f"2.{leaf}"].astype(np.float64) + g_twin[f"4.{leaf}"])
        assert np.array_equal(g_tied[f"2.{leaf}"], g_tied[f"4.{leaf}"])


def test_tie_and_untie() -> None:
    net = shared_mlp(shared=False)
    x = np.random.default_rng(16).normal(size=(3, 20)).astype(np.float32)
    source = up.params(net)["2.weight"].numpy(copy=True)
    assert up.tie(net, "2", "4") == [("2.weight", "4.weight"), ("2.bias", "4.bias")]
    assert net.layers[4].kernel is net.layers[2].kernel and net.layers[4].bias is net.layers[2].bias
    assert len(net.trainable_variables) == 6 and len(net.get_weights()) == 6
    assert up.ties(net) == [("2.weight", "4.weight"), ("2.bias", "4.bias")]
    if BACKEND == "torch":
        assert len(list(net.parameters())) == 6  # the torch mirror lists the shared parameter once
    ps = up.params(net)
    assert np.array_equal(ps["4.weight"].numpy(), source)
    ps["4.bias"].set(np.full(8, 0.5, dtype=np.float32))
    assert np.all(up.params(net)["2.bias"].numpy() == 0.5)

    twin = shared_mlp(shared=False)
    up.params(twin).load(up.params(net).numpy(copy=True))
    assert_close(run(net, x), run(twin, x), atol=1e-5)
    g = up.gradients(net, x)
    g_twin = up.gradients(twin, x)
    assert_close(g["2.weight"], g_twin["2.weight"].astype(np.float64) + g_twin["4.weight"])

    assert up.untie(net, "4.weight") == ["4.weight"]
    ps = up.params(net)
    assert ps["4.weight"].native is not ps["2.weight"].native
    assert net.layers[4].kernel is ps["4.weight"].native
    assert np.array_equal(ps["4.weight"].numpy(), source)
    assert ps["4.weight"].trainable and ps["4.weight"].native.path.endswith("/kernel")
    ps["4.weight"][0, 0] = -7.0
    assert ps["2.weight"].numpy()[0, 0] != -7.0
    assert up.ties(net) == [("2.bias", "4.bias")]
    assert len(net.trainable_variables) == 7
    if BACKEND == "torch":
        assert len(list(net.parameters())) == 7
    grads = up.gradients(net, x)  # the untied variable trains on its own again
    assert grads["4.weight"].shape == (8, 8) and not np.array_equal(grads["4.weight"], grads["2.weight"])


def test_tie_refuses_different_native_layouts_and_changes_nothing() -> None:
    class Model(keras.Model):
        def __init__(self) -> None:
            super().__init__()
            self.embed = L.Embedding(8, 8)
            self.proj = L.Dense(8)
            self.norm = L.BatchNormalization()

        def call(self, tokens):  # noqa: ANN001, ANN201
            return self.norm(self.proj(self.embed(tokens)))

    net = Model()
    net(np.zeros((1, 3), dtype="int32"))
    ps = up.params(net)
    before = snapshot(ps)
    kernel = net.proj.kernel
    assert ps["proj.weight"].shape == ps["embed.weight"].shape == (8, 8)
    with pytest.raises(up.TieError, match="layouts"):
        up.tie(net, "embed.weight", "proj.weight")  # Dense keeps (in, out), Embedding (num, dim)
    with pytest.raises(up.TieError, match="trainable"):
        up.tie(net, "norm.running_mean", "proj.bias")
    assert net.proj.kernel is kernel and up.ties(net) == []
    assert_unchanged(up.params(net), before)


def test_a_block_tie_refused_for_one_pair_ties_nothing() -> None:
    frozen = L.BatchNormalization()
    net = seq((4,), L.BatchNormalization(), frozen)
    frozen.trainable = False  # gamma/beta become non-trainable; moving stats already are
    ps = up.params(net)
    assert ps["0.running_mean"].trainable == ps["1.running_mean"].trainable
    with pytest.raises(up.TieError, match="trainable"):
        up.tie(net, "0", "1")
    assert up.ties(net) == []  # not even the running statistics, which alone could be tied
    assert net.layers[1].moving_mean is not net.layers[0].moving_mean


def test_bare_layer_reports_its_kind() -> None:
    layer = L.RNN(L.LSTMCell(3))
    seq((4, 5), layer)
    ps = up.params(layer)
    assert list(ps) == ["weight_ih_l0", "weight_hh_l0", "bias_l0"]
    assert ps["bias_l0"].slot.block_path == () and ps["bias_l0"].slot.block_kind == "LSTM"


def test_untie_of_a_reused_layer_is_refused() -> None:
    net = shared_mlp(shared=True)
    with pytest.raises(up.TieError, match="one Keras layer"):
        up.untie(net, "4.weight")
    assert up.params(net)["2.weight"].native is up.params(net)["4.weight"].native


# --- unbuilt models and materialize -----------------------------------------------------------
def test_unbuilt_model_walks_and_materializes() -> None:
    net = keras.Sequential([L.Dense(4), L.Activation("relu"), L.Dense(2)])
    before = up.params(net)  # what build() will create, with the input size unknown
    assert {n: p.shape for n, p in before.items()} == {
        "0.weight": (4, None), "0.bias": (4,), "2.weight": (2, None), "2.bias": (2,),
    }
    assert not any(p.materialized for p in before.values())
    assert ADAPTER.has_unbuilt(net)
    ps = materialize(net, input_shape=(3, 7))
    assert list(ps) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert ps["0.weight"].shape == (4, 7)
    assert not ADAPTER.has_unbuilt(net)


def test_subclassed_model_materializes_from_example_input() -> None:
    net = Custom()
    before = up.params(net)  # Dense and LayerNorm stand-ins; the Embedding's come with build
    assert before["encoder.0.weight"].shape == (8, None) and before["norm.weight"].shape == (None,)
    assert ADAPTER.has_unbuilt(net)
    ps = materialize(net, np.zeros((2, 5), dtype="int32"))
    assert len(ps) == 11 and ps["heads.reg.weight"].shape == (1, 8)
    assert not ADAPTER.has_unbuilt(net)


def test_materialize_failure_names_the_problem() -> None:
    net = keras.Sequential([L.Dense(4), L.Reshape((3, 3))])
    with pytest.raises(up.NotMaterializedError, match="Reshape"):
        materialize(net, input_shape=(2, 7))


# --- facts for porting ----------------------------------------------------------------------------
def test_layer_config_and_channels_last() -> None:
    bn = L.BatchNormalization(momentum=0.99, epsilon=1e-3)
    assert ADAPTER.layer_config(bn) == pytest.approx({"eps": 1e-3, "momentum": 0.01})
    assert ADAPTER.layer_config(L.LayerNormalization(epsilon=1e-5)) == pytest.approx({"eps": 1e-5})
    assert ADAPTER.layer_config(L.Dense(2)) == {}
    assert ADAPTER.channels_last(L.Conv2D(2, 3))
    assert not ADAPTER.channels_last(L.Conv2D(2, 3, data_format="channels_first"))


def test_backend_is_the_one_requested() -> None:
    assert BACKEND == os.environ.get("KERAS_BACKEND", "tensorflow")
