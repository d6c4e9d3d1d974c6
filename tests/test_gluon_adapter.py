"""MXNet Gluon 1.9.1 adapter: names against Gluon's own attribute paths, layouts and recurrent gates
against PyTorch's equations, writes, strict loading, gradients, sharing, deferred shapes, NumPy mode
and hybridized blocks, and the import shim."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

import unifyparams as up
from unifyparams.conformance import LAYER_KINDS
from unifyparams_gluon import GluonAdapter, import_mxnet
from unifyparams_gluon.builders import GluonModels
from unifyparams_gluon.running import numpy_mode

mx = import_mxnet()
nn, rnn = mx.gluon.nn, mx.gluon.rnn
KIT = GluonModels()
GAMMA_BETA = {"gamma": "weight", "beta": "bias"}


@pytest.fixture(autouse=True)
def classic_mode() -> Iterator[None]:
    """NumPy mode is global: every test must leave it off (and is put back if it did not)."""
    yield
    leaked = mx.util.is_np_array() or mx.util.is_np_shape()
    if leaked:
        mx.npx.reset_np()
    assert not leaked, "the test left Gluon's NumPy mode on"


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def randomize(model: Any, seed: int = 0) -> dict[str, np.ndarray]:
    """Random values for every parameter (positive variances); returns what was written."""
    ps = up.params(model)
    r = rng(seed)
    state = {}
    for name, p in ps.items():
        value = r.normal(size=p.shape).astype(np.float32)
        value = np.abs(value) + 0.5 if name.endswith("running_var") else value
        state[name] = next((state[n] for n in p.shared_with if n in state), value)  # tied: one value
    ps.load(state)
    return state


def in_numpy_mode(build: Callable[[], Any]) -> Any:
    mx.npx.set_np()
    try:
        return build()
    finally:
        mx.npx.reset_np()


def gluon_paths(block: Any) -> list[str]:
    """Gluon's own ``save_parameters`` names, with gamma/beta spelled as PyTorch does."""
    return [
        ".".join(GAMMA_BETA.get(part, part) if i == len(name.split(".")) - 1 else part
                 for i, part in enumerate(name.split(".")))
        for name in block._collect_params_with_prefix()
    ]


# --- import -------------------------------------------------------------------------------------
def test_importing_the_adapter_imports_no_mxnet_and_the_shim_loads_it() -> None:
    code = (
        "import sys, numpy\n"
        "assert 'bool' not in numpy.__dict__\n"
        "import unifyparams as up, unifyparams_gluon\n"
        "assert 'gluon' in up.available_adapters() and 'mxnet' not in sys.modules\n"
        "mx = unifyparams_gluon.import_mxnet()\n"
        "print(mx.__version__, numpy.bool is bool)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert out.stdout.split() == ["1.9.1", "True"]


def test_missing_mxnet_raises_adapter_unavailable_with_the_install_hint() -> None:
    code = (
        "import sys\n"
        "sys.modules['mxnet'] = None  # import mxnet now raises ImportError\n"
        "import unifyparams as up\n"
        "from unifyparams_gluon import GluonAdapter\n"
        "for make in (GluonAdapter, lambda: up.get_adapter('gluon')):\n"
        "    try:\n"
        "        make()\n"
        "    except up.AdapterUnavailableError as exc:\n"
        "        assert 'numpy<2' in str(exc) and 'unifyparams[gluon]' in str(exc), exc\n"
        "    else:\n"
        "        raise SystemExit('no error')\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_adapter_is_found_for_blocks_only() -> None:
    adapter = up.adapter_for(KIT.mlp())
    assert isinstance(adapter, GluonAdapter) and adapter.name == "gluon"
    assert adapter.owns(nn.Dense(2)) and not adapter.owns(np.zeros(2)) and not adapter.owns(mx.nd.zeros(2))


# --- names --------------------------------------------------------------------------------------
@pytest.mark.parametrize("build", ["mlp", "nested_blocks", "lenet", "residual_block", "shared_mlp"])
def test_names_are_gluons_attribute_paths(build: str) -> None:
    net = getattr(KIT, build)()
    ps = up.params(net)
    assert list(ps) == gluon_paths(net)
    natives = list(net._collect_params_with_prefix().values())
    assert [p.native for p in ps.values()] == natives
    assert [p.native_name for p in ps.values()] == [p.name for p in natives]


def test_nested_blocks_names_shapes_and_block_paths() -> None:
    ps = up.params(KIT.nested_blocks())
    expected = {}
    for i in range(4):
        expected |= {f"0.{i}.0.weight": (8, 4), f"0.{i}.0.bias": (8,), f"0.{i}.2.weight": (4, 8), f"0.{i}.2.bias": (4,)}
    expected |= {"1.weight": (1, 4), "1.bias": (1,)}
    assert {n: p.shape for n, p in ps.items()} == expected
    slot = ps["0.3.2.weight"].slot
    assert slot.block_path == ("0", "3", "2")
    assert slot.block_kinds == ("HybridSequential", "HybridSequential", "Dense")
    assert slot.native_name.startswith("dense") and slot.native_name.endswith("_weight")
    assert up.params(KIT.child(KIT.nested_blocks(), "0.1")).keys() == {"0.weight", "0.bias", "2.weight", "2.bias"}


def test_custom_block_children_in_a_list_and_a_dict_are_named_where_the_user_reaches_them() -> None:
    net = KIT.custom_model()
    ps = up.params(net)
    assert list(ps) == [
        "embed.weight", "encoder.0.weight", "encoder.0.bias", "encoder.1.weight", "encoder.1.bias",
        "norm.weight", "norm.bias", "heads.cls.weight", "heads.cls.bias", "heads.reg.weight", "heads.reg.bias",
    ]
    # Gluon registers them as encoder0 / head_cls; the Parameters are the same objects, in the same order.
    assert gluon_paths(net)[1] == "encoder0.weight" and gluon_paths(net)[7] == "head_cls.weight"
    assert [p.native for p in ps.values()] == list(net._collect_params_with_prefix().values())
    assert ps["encoder.1.weight"].native is net.encoder[1].weight
    assert ps["heads.cls.weight"].native is net.heads["cls"].weight and ps["heads.cls.weight"].shape == (3, 8)
    slot = ps["heads.reg.bias"].slot
    assert slot.block_path == ("heads", "reg") and slot.block_kinds == ("dict", "Dense") and slot.block is net.heads["reg"]
    assert KIT.child(net, "heads.cls") is net.heads["cls"] and KIT.child(net, "encoder.0") is net.encoder[0]
    assert list(up.params(KIT.child(net, "heads.cls"))) == ["weight", "bias"]
    assert ps["norm.weight"].role == up.Role.SCALE and ps["norm.bias"].role == up.Role.SHIFT


def test_nested_containers_and_plain_attributes() -> None:
    class Net(nn.HybridBlock):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Dense(2, in_units=3)
            self.stages = [[nn.Dense(3, in_units=3), nn.Dense(3, in_units=3)], (nn.Dense(3, in_units=3),)]
            for i, block in enumerate([*self.stages[0], *self.stages[1]]):
                self.register_child(block, f"stage_block{i}")
            self.everything = [self.fc]  # also reachable as an attribute: the attribute name wins
            self.register_child(nn.Dense(1, in_units=2), "extra")  # only registered: its registered name

    net = Net()
    net.initialize()
    names = list(up.params(net))
    assert names == [
        "fc.weight", "fc.bias", "stages.0.0.weight", "stages.0.0.bias", "stages.0.1.weight", "stages.0.1.bias",
        "stages.1.0.weight", "stages.1.0.bias", "extra.weight", "extra.bias",
    ]
    assert up.params(net)["stages.1.0.weight"].slot.block_kinds == ("list", "tuple", "Dense")


def test_a_block_reached_twice_is_listed_under_both_names() -> None:
    dense = nn.Dense(4, in_units=4)
    net = nn.HybridSequential()
    net.add(dense, nn.Activation("relu"), dense)
    net.initialize()
    ps = up.params(net)
    assert list(ps) == ["0.weight", "0.bias", "2.weight", "2.bias"] == gluon_paths(net)
    assert up.ties(net) == [("0.weight", "2.weight"), ("0.bias", "2.bias")] and ps.count() == 20
    with pytest.raises(up.TieError, match="one object"):
        up.untie(net, "2.weight")


# --- layer kinds and layouts ----------------------------------------------------------------------
SPECS: dict[str, tuple[dict[str, int], dict[str, tuple[tuple[int, ...], str, bool]]]] = {
    "dense": ({"in_features": 5, "out_features": 3}, {"weight": ((3, 5), "weight", True), "bias": ((3,), "bias", True)}),
    "conv1d": ({"in_channels": 4, "out_channels": 6, "kernel_size": 3},
               {"weight": ((6, 4, 3), "weight", True), "bias": ((6,), "bias", True)}),
    "conv2d": ({"in_channels": 3, "out_channels": 8, "kernel_size": 3},
               {"weight": ((8, 3, 3, 3), "weight", True), "bias": ((8,), "bias", True)}),
    "batchnorm": ({"num_features": 5}, {
        "weight": ((5,), "scale", True), "bias": ((5,), "shift", True),
        "running_mean": ((5,), "running_mean", False), "running_var": ((5,), "running_var", False)}),
    "layernorm": ({"num_features": 7}, {"weight": ((7,), "scale", True), "bias": ((7,), "shift", True)}),
    "embedding": ({"num_embeddings": 50, "embedding_dim": 8}, {"weight": ((50, 8), "weight", True)}),
    "lstm": ({"input_size": 5, "hidden_size": 6}, {
        "weight_ih_l0": ((24, 5), "weight", True), "weight_hh_l0": ((24, 6), "weight", True),
        "bias_ih_l0": ((24,), "bias", True), "bias_hh_l0": ((24,), "bias", True)}),
    "gru": ({"input_size": 5, "hidden_size": 6}, {
        "weight_ih_l0": ((18, 5), "weight", True), "weight_hh_l0": ((18, 6), "weight", True),
        "bias_ih_l0": ((18,), "bias", True), "bias_hh_l0": ((18,), "bias", True)}),
}


@pytest.mark.parametrize("kind", list(LAYER_KINDS))
def test_every_layer_kind_names_shapes_roles_and_flags(kind: str) -> None:
    spec, expected = SPECS[kind]
    net = KIT.single_layer(kind, **spec)
    ps = up.params(net)
    assert {n: (p.shape, p.role, p.trainable) for n, p in ps.items()} == {f"0.{k}": v for k, v in expected.items()}
    for p in ps.values():
        assert p.dtype == np.float32 and p.materialized and p.layout.is_identity
        assert p.native_name == p.native.name and p.slot.block is net[0]
        assert p.numpy().shape == p.shape
    running = [p for p in ps.values() if not p.trainable]
    assert all(p.native.grad_req == "null" and p.grad() is None for p in running)


def test_recurrent_layers_with_layers_directions_and_projection() -> None:
    layer = rnn.LSTM(5, num_layers=2, bidirectional=True, input_size=3, layout="NTC")
    layer.initialize()
    ps = up.params(layer)
    names = [f"{w}_{k}_l{i}{d}" for i in range(2) for d in ("", "_reverse") for w, k in
             (("weight", "ih"), ("weight", "hh"), ("bias", "ih"), ("bias", "hh"))]
    assert sorted(ps) == sorted(names)
    assert ps["weight_ih_l0"].shape == (20, 3) and ps["weight_ih_l1_reverse"].shape == (20, 10)
    assert ps["bias_hh_l1_reverse"].native is layer.r1_h2h_bias
    projected = rnn.LSTM(6, input_size=3, projection_size=4)
    projected.initialize()
    pp = up.params(projected)
    assert pp["weight_hr_l0"].shape == (4, 6) and pp["weight_hh_l0"].shape == (24, 4)
    cell = rnn.GRUCell(4, input_size=3)
    cell.initialize()
    assert {n: p.shape for n, p in up.params(cell).items()} == {
        "weight_ih": (12, 3), "weight_hh": (12, 4), "bias_ih": (12,), "bias_hh": (12,)}


def test_other_blocks_keep_their_names_and_norm_variants_are_renamed() -> None:
    class Scale(nn.HybridBlock):
        def __init__(self) -> None:
            super().__init__()
            self.gamma = self.params.get("gamma", shape=(3,))
            self.weight = self.params.get("weight", shape=(3,))

        def hybrid_forward(self, F: Any, x: Any, gamma: Any, weight: Any) -> Any:
            return x * gamma * weight

    net = nn.HybridSequential()
    net.add(Scale(), nn.InstanceNorm(in_channels=3), nn.GroupNorm(num_groups=3), nn.Conv2DTranspose(5, 3, in_channels=2))
    net.initialize()
    ps = up.params(net)
    assert list(ps) == ["0.gamma", "0.weight", "1.weight", "1.bias", "2.weight", "2.bias", "3.weight", "3.bias"]
    assert ps["0.gamma"].role == up.Role.SCALE and ps["2.weight"].role == up.Role.SCALE
    assert ps["2.weight"].shape == (3,)  # MXNet 1.9.1 GroupNorm: one scale per group (PyTorch: per channel)
    assert ps["3.weight"].shape == (2, 5, 3, 3)  # transposed convolutions: (in, out/groups, kh, kw), as PyTorch


def test_channels_last_convolution_kernels_are_transposed_to_canonical() -> None:
    conv = nn.Conv2D(8, (3, 5), in_channels=4, layout="NHWC")
    conv.initialize()
    p = up.params(conv)["weight"]
    assert p.native_shape == (8, 3, 5, 4) and p.shape == (8, 4, 3, 5)
    value = rng().normal(size=(8, 4, 3, 5)).astype(np.float32)
    p.set(value)
    np.testing.assert_array_equal(conv.weight.data().asnumpy(), value.transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(p.numpy(), value)
    adapter = up.adapter_for(conv)
    assert adapter.channels_last(conv) and not adapter.channels_last(nn.Conv2D(2, 3))
    assert up.params(conv)["bias"].layout.is_identity


def test_normalization_hyper_parameters_in_pytorch_convention() -> None:
    adapter = up.adapter_for(KIT.mlp())
    assert adapter.layer_config(nn.BatchNorm(momentum=0.9, epsilon=1e-3)) == pytest.approx({"eps": 1e-3, "momentum": 0.1})
    assert adapter.layer_config(nn.LayerNorm(epsilon=1e-5)) == pytest.approx({"eps": 1e-5})
    assert adapter.layer_config(nn.Dense(2)) == {}


# --- recurrent gates against PyTorch's equations ---------------------------------------------------
def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _lstm_step(x: np.ndarray, state: tuple[np.ndarray, np.ndarray], w: dict[str, np.ndarray], sfx: str) -> Any:
    h, c = state
    gates = x @ w[f"weight_ih_{sfx}"].T + w[f"bias_ih_{sfx}"] + h @ w[f"weight_hh_{sfx}"].T + w[f"bias_hh_{sfx}"]
    i, f, g, o = np.split(gates, 4, axis=1)  # PyTorch: input, forget, cell, output
    c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
    h = _sigmoid(o) * np.tanh(c)
    return h, (h, c)


def _gru_step(x: np.ndarray, state: np.ndarray, w: dict[str, np.ndarray], sfx: str) -> Any:
    h = state
    xr, xz, xn = np.split(x @ w[f"weight_ih_{sfx}"].T + w[f"bias_ih_{sfx}"], 3, axis=1)  # PyTorch: r, z, n
    hr, hz, hn = np.split(h @ w[f"weight_hh_{sfx}"].T + w[f"bias_hh_{sfx}"], 3, axis=1)
    r, z = _sigmoid(xr + hr), _sigmoid(xz + hz)
    n = np.tanh(xn + r * hn)
    h = (1 - z) * n + z * h
    return h, h


def reference_rnn(kind: str, x: np.ndarray, w: dict[str, np.ndarray], layers: int, hidden: int) -> np.ndarray:
    """PyTorch's ``nn.LSTM``/``nn.GRU`` (batch_first, bidirectional) written out in NumPy."""
    step = _lstm_step if kind == "lstm" else _gru_step
    seq = x
    for k in range(layers):
        outputs = []
        for sfx, order in ((f"l{k}", range(seq.shape[1])), (f"l{k}_reverse", reversed(range(seq.shape[1])))):
            zeros = np.zeros((seq.shape[0], hidden))
            state: Any = (zeros, zeros) if kind == "lstm" else zeros
            out = np.zeros((seq.shape[0], seq.shape[1], hidden))
            for t in order:
                out[:, t], state = step(seq[:, t], state, w, sfx)
            outputs.append(out)
        seq = np.concatenate(outputs, axis=2)
    return seq


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("hybridize", [False, True])
def test_recurrent_gate_layout_is_pytorchs(kind: str, hybridize: bool) -> None:
    cls = rnn.LSTM if kind == "lstm" else rnn.GRU
    layer = cls(6, num_layers=2, bidirectional=True, layout="NTC", input_size=5)
    layer.initialize()
    if hybridize:
        layer.hybridize()
    weights = {n: v.astype(np.float64) for n, v in randomize(layer, seed=3).items()}
    x = rng(4).normal(size=(2, 7, 5)).astype(np.float32)
    expected = reference_rnn(kind, x.astype(np.float64), weights, layers=2, hidden=6)
    np.testing.assert_allclose(KIT.forward(layer, x), expected, atol=1e-5)


# --- variants: hybridized and NumPy mode ----------------------------------------------------------
VARIANT_MODELS: list[tuple[str, dict[str, Any], Callable[[np.random.Generator], np.ndarray]]] = [
    ("mlp", {}, lambda r: r.normal(size=(3, 20)).astype(np.float32)),
    ("nested_blocks", {}, lambda r: r.normal(size=(3, 4)).astype(np.float32)),
    ("custom_model", {}, lambda r: r.integers(0, 50, size=(3, 5))),
    ("shared_mlp", {}, lambda r: r.normal(size=(3, 20)).astype(np.float32)),
    ("lenet", {}, lambda r: r.normal(size=(2, 1, 28, 28)).astype(np.float32)),
    ("residual_block", {}, lambda r: r.normal(size=(2, 4, 8, 8)).astype(np.float32)),
    ("embed_rnn", {"cell": "lstm"}, lambda r: r.integers(0, 50, size=(3, 6))),
    ("embed_rnn", {"cell": "gru"}, lambda r: r.integers(0, 50, size=(3, 6))),
    ("single_layer", {"kind": "batchnorm", "num_features": 5}, lambda r: r.normal(size=(3, 5)).astype(np.float32)),
    ("single_layer", {"kind": "gru", "input_size": 5, "hidden_size": 6},
     lambda r: r.normal(size=(2, 4, 5)).astype(np.float32)),
]


@pytest.mark.parametrize(("build", "kwargs", "make_input"), VARIANT_MODELS, ids=lambda v: str(v) if isinstance(v, str) else "")
def test_hybridized_and_numpy_mode_forms_give_the_same_names_values_outputs_and_gradients(
    build: str, kwargs: dict[str, Any], make_input: Callable[[np.random.Generator], np.ndarray]
) -> None:
    base = getattr(KIT, build)(**kwargs)
    state = randomize(base, seed=1)
    x = make_input(rng(2))
    expected_out = KIT.forward(base, x)
    forms = KIT.variants(base)
    assert [label for label, _ in forms][:2] == ["hybridized", "numpy mode"]
    for label, model in forms:
        ps = up.params(model)
        assert list(ps) == list(state), label
        for name, value in state.items():
            assert ps[name].shape == value.shape and np.array_equal(ps[name].numpy(), value), (label, name)
        kind = mx.np.ndarray if "numpy" in label else mx.nd.NDArray
        assert all(isinstance(p.native.data(), kind) for p in ps.values()), label
        np.testing.assert_allclose(KIT.forward(model, x), expected_out, atol=1e-5, err_msg=label)
    # Gradients (training mode updates batch-norm statistics: compare on fresh copies of one state).
    reference = getattr(KIT, build)(**kwargs)
    up.params(reference).load(state)
    expected_grads = up.gradients(reference, x)
    for label, model in KIT.variants(reference):
        up.params(model).load(state)
        grads = up.gradients(model, x)
        assert grads.keys() == expected_grads.keys(), label
        for name, g in grads.items():
            np.testing.assert_allclose(g, expected_grads[name], atol=1e-5, err_msg=f"{label} {name}")


def test_a_numpy_mode_model_works_whatever_the_global_mode() -> None:
    net = in_numpy_mode(KIT.mlp)
    state = randomize(net, seed=5)
    x = rng(6).normal(size=(2, 20)).astype(np.float32)
    for global_np in (False, True):
        with numpy_mode(global_np):
            ps = up.params(net)
            np.testing.assert_array_equal(ps["2.weight"].numpy(), state["2.weight"])
            assert isinstance(net[0].weight.data(), mx.np.ndarray)
            grads = up.gradients(net, x)
            assert grads["0.weight"].shape == (256, 20)
            assert mx.util.is_np_array() == global_np  # the caller's mode is back
    with numpy_mode(True):
        classic = KIT.mlp()  # a classic-mode model used while NumPy mode is on
    up.params(classic).load(state)
    with numpy_mode(True):
        out = KIT.forward(classic, x)
    np.testing.assert_allclose(out, KIT.forward(net, x), atol=1e-6)


# --- writes and loads -------------------------------------------------------------------------------
def test_set_and_update_keep_the_parameter_object_and_reach_every_context() -> None:
    net = nn.HybridSequential()
    net.add(nn.Dense(3, in_units=2))
    net.initialize(ctx=[mx.cpu(0), mx.cpu(1)])
    net.hybridize()
    p = up.params(net)["0.weight"]
    native, arrays = p.native, list(net[0].weight.list_data())
    p.set(np.arange(6, dtype=np.float32).reshape(3, 2))
    p.update(lambda w: w + 1)
    p[0, 0] = 42.0
    expected = np.arange(6, dtype=np.float32).reshape(3, 2) + 1
    expected[0, 0] = 42.0
    assert p.native is native and net[0].weight is native and net[0]._reg_params["weight"] is native
    assert all(a is b for a, b in zip(net[0].weight.list_data(), arrays))  # written in place
    for data in net[0].weight.list_data():
        np.testing.assert_array_equal(data.asnumpy(), expected)
    up.params(net)["0.bias"].set(np.ones(3, np.float32))
    x = np.ones((1, 2), np.float32)
    out = net(mx.nd.array(x, ctx=mx.cpu(1))).asnumpy()
    np.testing.assert_allclose(out, x @ expected.T + 1)


def test_a_write_inside_autograd_recording_keeps_the_pass_usable() -> None:
    net = KIT.mlp(in_features=3, hidden=4, out_features=2)
    p = up.params(net)["0.bias"]
    x = mx.nd.ones((1, 3))
    with mx.autograd.record():
        p.set(np.zeros(4, np.float32))
        loss = net(x).sum()
    loss.backward()
    np.testing.assert_array_equal(p.numpy(), np.zeros(4, np.float32))
    assert p.grad() is not None


def test_failed_load_changes_nothing() -> None:
    net = KIT.nested_blocks()
    ps = up.params(net)
    before = ps.numpy(copy=True)
    natives = [p.native for p in ps.values()]
    bad_states = [
        {**{k: v + 1 for k, v in before.items()}, "1.weight": np.ones((4, 1), np.float32)},  # wrong shape, last
        {**{k: v + 1 for k, v in before.items()}, "0.3.2.bias": np.ones(4, np.int64).astype(np.complex64)},
        {**{k: v + 1 for k, v in before.items()}, "0.9.0.weight": np.ones((8, 4), np.float32)},  # unexpected
        {k: v + 1 for k, v in before.items() if k != "0.0.0.weight"},  # missing
    ]
    for state in bad_states:
        with pytest.raises(up.LoadError, match="nothing was loaded"):
            ps.load(state)
        for name, value in before.items():
            np.testing.assert_array_equal(ps[name].numpy(), value, err_msg=name)
    assert [p.native for p in up.params(net).values()] == natives


def test_a_framework_failure_part_way_through_a_load_restores_every_parameter(monkeypatch: pytest.MonkeyPatch) -> None:
    net = KIT.nested_blocks()
    ps = up.params(net)
    before = ps.numpy(copy=True)
    adapter = up.adapter_for(net)
    real_write = type(adapter).write
    calls = {"n": 0}

    def failing_write(self: Any, native: Any, value: np.ndarray) -> None:
        calls["n"] += 1
        if calls["n"] == 5:
            raise RuntimeError("simulated MXNet failure")
        real_write(self, native, value)

    monkeypatch.setattr(type(adapter), "write", failing_write)
    with pytest.raises(up.WriteError, match="restored"):
        ps.load({k: v * 3 for k, v in before.items()})
    monkeypatch.setattr(type(adapter), "write", real_write)
    for name, value in before.items():
        np.testing.assert_array_equal(ps[name].numpy(), value, err_msg=name)


# --- gradients ------------------------------------------------------------------------------------
def mlp_reference_gradients(x: np.ndarray, w: dict[str, np.ndarray], upstream: np.ndarray) -> dict[str, np.ndarray]:
    """Backpropagation through Dense -> ReLU -> Dense by hand, for d(loss)/d(output) = upstream."""
    z = x @ w["0.weight"].T + w["0.bias"]
    h = np.maximum(z, 0)
    dh = upstream @ w["2.weight"]
    dz = dh * (z > 0)
    return {
        "0.weight": dz.T @ x, "0.bias": dz.sum(0),
        "2.weight": upstream.T @ h, "2.bias": upstream.sum(0),
    }


@pytest.mark.parametrize("hybridize", [False, True])
def test_gradients_match_hand_computed_backpropagation(hybridize: bool) -> None:
    net = KIT.mlp(in_features=5, hidden=7, out_features=3)
    if hybridize:
        net.hybridize()
    w = {k: v.astype(np.float64) for k, v in randomize(net, seed=7).items()}
    x = rng(8).normal(size=(4, 5)).astype(np.float32)
    grads = up.gradients(net, x)
    expected = mlp_reference_gradients(x.astype(np.float64), w, np.ones((4, 3)))
    assert grads.keys() == expected.keys()
    for name, g in expected.items():
        np.testing.assert_allclose(grads[name], g, rtol=1e-4, atol=1e-5, err_msg=name)
        np.testing.assert_allclose(up.params(net)[name].grad(), g, rtol=1e-4, atol=1e-5, err_msg=name)
    target = rng(9).normal(size=(4, 3))
    grads = up.gradients(net, x.astype(np.float64), loss=lambda out: ((out - mx.nd.array(target)) ** 2).sum())
    out = np.maximum(x @ w["0.weight"].T + w["0.bias"], 0) @ w["2.weight"].T + w["2.bias"]
    expected = mlp_reference_gradients(x.astype(np.float64), w, 2 * (out - target))
    for name, g in expected.items():
        np.testing.assert_allclose(grads[name], g, rtol=1e-4, atol=1e-4, err_msg=name)


def test_gradients_hold_one_pass_and_the_loss_must_be_a_scalar() -> None:
    net = KIT.mlp(in_features=5, hidden=7, out_features=3)
    for p in net.collect_params().values():
        p.grad_req = "add"  # Gluon would accumulate across passes
    x = rng(10).normal(size=(4, 5)).astype(np.float32)
    first = up.gradients(net, x)
    second = up.gradients(net, x)
    for name in first:
        np.testing.assert_allclose(second[name], first[name], rtol=1e-6)
    with pytest.raises(up.UnifyParamsError, match="one-element"):
        up.gradients(net, x, loss=lambda out: out * 2)
    bn = KIT.single_layer("batchnorm", num_features=3)
    grads = up.gradients(bn, rng(11).normal(size=(4, 3)).astype(np.float32))
    assert sorted(grads) == ["0.bias", "0.weight"]
    assert up.params(bn)["0.running_mean"].grad() is None


# --- sharing ----------------------------------------------------------------------------------------
def test_parameters_shared_through_params_are_listed_under_both_names_and_counted_once() -> None:
    net = KIT.shared_mlp()
    ps = up.params(net)
    assert list(ps) == ["0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias", "6.weight", "6.bias"]
    assert ps["2.weight"].native is ps["4.weight"].native is net[2].weight
    assert up.ties(net) == [("2.weight", "4.weight"), ("2.bias", "4.bias")]
    assert ps["4.weight"].shared_with == ("2.weight",)
    assert ps.count() == 20 * 8 + 8 + 8 * 8 + 8 + 8 + 1 == up.params(KIT.shared_mlp(shared=False)).count() - 72
    assert len(list(net.collect_params().keys())) == 6  # Gluon lists the shared Parameters once too
    ps["4.weight"].set(np.full((8, 8), 0.5, np.float32))
    np.testing.assert_array_equal(ps["2.weight"].numpy(), np.full((8, 8), 0.5, np.float32))
    grads = up.gradients(net, rng(12).normal(size=(3, 20)).astype(np.float32))
    np.testing.assert_array_equal(grads["2.weight"], grads["4.weight"])


@pytest.mark.parametrize("numpy_mode_model", [False, True])
def test_tie_and_untie(numpy_mode_model: bool) -> None:
    build = lambda shared: KIT.shared_mlp(shared=shared)  # noqa: E731
    net = in_numpy_mode(lambda: build(False)) if numpy_mode_model else build(False)
    randomize(net, seed=13)
    net.hybridize()
    x = rng(14).normal(size=(3, 20)).astype(np.float32)
    KIT.forward(net, x)  # build the cached graph first: the tie must drop it
    assert up.tie(net, "2", "4") == [("2.weight", "4.weight"), ("2.bias", "4.bias")]
    assert net[4].weight is net[2].weight and net[4]._reg_params["bias"] is net[2].bias
    assert up.ties(net) == [("2.weight", "4.weight"), ("2.bias", "4.bias")]
    names = list(net.collect_params().keys())
    assert len(names) == 6 and mx.gluon.Trainer(net.collect_params(), "sgd") is not None
    native = KIT.shared_mlp(shared=True)  # the same values, shared natively with params=
    up.params(native).load(up.params(net).numpy(copy=True))
    np.testing.assert_allclose(KIT.forward(net, x), KIT.forward(native, x), atol=1e-6)
    grads, native_grads = up.gradients(net, x), up.gradients(native, x)
    for name in grads:
        np.testing.assert_allclose(grads[name], native_grads[name], atol=1e-5, err_msg=name)

    shared = net[2].weight
    before = up.params(net).numpy(copy=True)
    assert up.untie(net, "4") == ["4.weight", "4.bias"]
    ps = up.params(net)
    assert up.ties(net) == [] and net[2].weight is shared and net[4].weight is not shared
    assert ps["4.weight"].native is net[4].weight is net[4]._reg_params["weight"]
    assert ps["4.weight"].trainable and net[4].weight.grad_req == shared.grad_req
    assert isinstance(net[4].weight.data(), mx.np.ndarray if numpy_mode_model else mx.nd.NDArray)
    for name, value in before.items():
        np.testing.assert_array_equal(ps[name].numpy(), value)
    assert len(set(net.collect_params().keys())) == 8
    np.testing.assert_allclose(KIT.forward(net, x), KIT.forward(native, x), atol=1e-6)  # same values still
    ps["4.weight"].update(lambda w: w + 1)
    np.testing.assert_array_equal(ps["2.weight"].numpy(), before["2.weight"])
    assert not np.allclose(KIT.forward(net, x), KIT.forward(native, x))
    assert set(up.gradients(net, x)) == set(before)


def test_untie_keeps_grad_req() -> None:
    net = KIT.shared_mlp()
    net[2].weight.grad_req = "null"
    up.untie(net, "4.weight")
    assert net[4].weight.grad_req == "null" and not up.params(net)["4.weight"].trainable
    assert up.ties(net) == [("2.bias", "4.bias")]


# --- deferred shapes -----------------------------------------------------------------------------------
@pytest.mark.parametrize("numpy_mode_model", [False, True])
def test_deferred_initialization_reports_unknown_dims_as_none(numpy_mode_model: bool) -> None:
    net = in_numpy_mode(KIT.lazy_mlp) if numpy_mode_model else KIT.lazy_mlp()
    ps = up.params(net)
    assert list(ps) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert ps["0.weight"].shape == (256, None) and ps["2.weight"].shape == (10, None)
    assert ps["0.bias"].materialized  # Gluon initializes a Parameter whose shape is known at once
    assert not up.is_materialized(net) and ps.count() == 256 + 10
    with pytest.raises(up.NotMaterializedError, match="0.weight"):
        ps["0.weight"].numpy()
    assert "(256, ?)" in up.tree(net)
    up.materialize(net, input_shape=(2, 20))
    assert up.params(net)["0.weight"].shape == (256, 20) and up.params(net)["2.weight"].shape == (10, 256)
    assert up.is_materialized(net)
    kind = mx.np.ndarray if numpy_mode_model else mx.nd.NDArray
    assert isinstance(net[0].weight.data(), kind)


def test_materialize_from_example_inputs_hybridized_and_uninitialized_models() -> None:
    net = KIT.lazy_mlp()
    net.hybridize()
    up.materialize(net, rng().normal(size=(3, 20)).astype(np.float32))
    assert up.is_materialized(net) and up.params(net)["0.weight"].shape == (256, 20)

    fresh = nn.HybridSequential()  # initialize() never called: materialize initializes it, as Gluon requires
    fresh.add(nn.Conv2D(4, 3), nn.Flatten(), nn.Dense(2))
    up.materialize(fresh, input_shape=(1, 3, 6, 6))
    assert {n: p.shape for n, p in up.params(fresh).items()} == {
        "0.weight": (4, 3, 3, 3), "0.bias": (4,), "2.weight": (2, 64), "2.bias": (2,)}


@pytest.mark.parametrize("hybridize", [False, True])
def test_materialize_failure_names_the_block(hybridize: bool) -> None:
    net = KIT.mlp()  # expects 20 features
    if hybridize:
        net.hybridize()
    with pytest.raises(up.NotMaterializedError) as info:
        up.materialize(net, input_shape=(2, 7))
    message = str(info.value)
    assert "block '0' (Dense)" in message and "(2, 7)" in message and "Stack trace" not in message


def test_loading_a_deferred_model_fills_its_shapes() -> None:
    state = randomize(KIT.mlp(), seed=15)
    for numpy_mode_model in (False, True):
        net = in_numpy_mode(KIT.lazy_mlp) if numpy_mode_model else KIT.lazy_mlp()
        wrong = {**state, "2.weight": np.ones((11, 256), np.float32), "2.bias": np.ones(11, np.float32)}
        with pytest.raises(up.LoadError):
            up.params(net).load(wrong)
        assert up.params(net)["0.weight"].shape == (256, None)
        if numpy_mode_model:
            with numpy_mode(True):  # loading initializes arrays of the current mode's kind, as Gluon does
                up.params(net).load(state)
        else:
            up.params(net).load(state)
        assert up.is_materialized(net)
        for name, value in state.items():
            np.testing.assert_array_equal(up.params(net)[name].numpy(), value)
        x = rng(16).normal(size=(2, 20)).astype(np.float32)
        reference = KIT.mlp()
        up.params(reference).load(state)
        np.testing.assert_allclose(KIT.forward(net, x), KIT.forward(reference, x), atol=1e-5)


@pytest.mark.parametrize("hybridize", [False, True])
def test_the_first_forward_calls_the_materialized_hook_before_values_are_used(hybridize: bool) -> None:
    net = KIT.lazy_mlp()
    if hybridize:
        net.hybridize()
    adapter = up.adapter_for(net)
    seen: list[tuple[int | None, ...]] = []

    def fill() -> None:
        p = up.params(net)["2.bias"]
        if p.materialized and not seen:
            seen.append(p.shape)
            p.set(np.full(10, 5.0, np.float32))

    assert adapter.on_materialized(net, fill)
    out = KIT.forward(net, np.zeros((2, 20), np.float32))
    assert seen == [(10,)]
    np.testing.assert_allclose(out, 5.0)  # zero input: the output is the bias written by the hook
    assert not adapter.on_materialized(net, fill)  # nothing waits any more


def test_loading_a_model_whose_initialize_was_never_called() -> None:
    state = randomize(KIT.mlp(), seed=17)
    net = nn.HybridSequential()
    net.add(nn.Dense(256, in_units=20), nn.Activation("relu"), nn.Dense(10))  # one known, one deferred shape
    ps = up.params(net)
    assert ps["0.weight"].shape == (256, 20) and not ps["0.weight"].materialized and ps["2.weight"].shape == (10, None)
    ps.load(state)
    assert up.is_materialized(net) and net[0].weight.list_ctx() == [mx.context.current_context()]
    for name, value in state.items():
        np.testing.assert_array_equal(up.params(net)[name].numpy(), value)
    x = rng(18).normal(size=(2, 20)).astype(np.float32)
    reference = KIT.mlp()
    up.params(reference).load(state)
    np.testing.assert_allclose(KIT.forward(net, x), KIT.forward(reference, x), atol=1e-6)
