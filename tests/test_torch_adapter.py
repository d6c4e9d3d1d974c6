"""The PyTorch adapter against PyTorch itself: names, shapes, values, gradients, ties, lazy modules."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import ml_dtypes
import numpy as np
import pytest
import torch
from torch import nn

import unifyparams as up
from unifyparams.conformance.builders import LAYER_KINDS
from unifyparams.conformance.scenario import Unsupported
from unifyparams.lazy import is_materialized, materialize
from unifyparams_torch import TorchAdapter
from unifyparams_torch.builders import TorchModels

pytestmark = pytest.mark.torch


@pytest.fixture
def kit() -> TorchModels:
    return TorchModels()


@pytest.fixture
def adapter() -> TorchAdapter:
    a = up.adapter_for(nn.Linear(1, 1))
    assert isinstance(a, TorchAdapter)
    return a


def expected_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """What unifyparams should list: torch's state_dict (every alias) minus num_batches_tracked."""
    return {
        k: v for k, v in model.state_dict(keep_vars=True).items() if not k.endswith("num_batches_tracked")
    }


def assert_matches_torch(model: nn.Module) -> up.ParamSet:
    ps = up.params(model)
    state = expected_state(model)
    assert list(ps) == list(state)
    for name, tensor in state.items():
        p = ps[name]
        assert p.native is tensor, name
        assert p.shape == tuple(tensor.shape), name
        assert p.dtype == tensor.detach().numpy().dtype, name
        assert p.trainable == (isinstance(tensor, nn.Parameter) and tensor.requires_grad), name
        assert p.backend == "torch"
        np.testing.assert_array_equal(p.numpy(), tensor.detach().numpy())
    return ps


def run_python(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


# --- registration and imports -------------------------------------------------------------------
def test_importing_the_adapter_package_does_not_import_torch() -> None:
    out = run_python(
        """
        import sys
        import unifyparams, unifyparams_torch
        print(unifyparams_torch.TorchAdapter.name, "torch" in sys.modules)
        """
    )
    assert out.split() == ["torch", "False"]


def test_choosing_the_torch_adapter_imports_no_other_framework() -> None:
    out = run_python(
        """
        import sys
        import unifyparams as up
        import torch
        adapter = up.adapter_for(torch.nn.Linear(2, 3))
        print(adapter.name, list(up.params(torch.nn.Linear(2, 3))))
        print(sorted(m for m in ("tensorflow", "keras", "mxnet", "jax") if m in sys.modules))
        """
    )
    first, second = out.strip().splitlines()
    assert first == "torch ['weight', 'bias']"
    assert second == "[]"


def test_adapter_metadata(adapter: TorchAdapter) -> None:
    assert (adapter.name, adapter.framework_module, adapter.priority) == ("torch", "torch", 0)
    assert adapter.install_hint == "pip install 'unifyparams[torch]'"
    assert TorchAdapter.builders == "unifyparams_torch.builders:TorchModels"
    assert up.available_adapters()["torch"] is TorchAdapter
    assert not adapter.owns(np.zeros(3)) and not adapter.owns(torch.zeros(3))
    assert adapter.owns(nn.ReLU())


# --- names, shapes, dtypes, roles ----------------------------------------------------------------
LAYER_SPECS = {
    "dense": {"in_features": 5, "out_features": 3},
    "conv1d": {"in_channels": 4, "out_channels": 6, "kernel_size": 3},
    "conv2d": {"in_channels": 3, "out_channels": 8, "kernel_size": 3},
    "batchnorm": {"num_features": 5},
    "layernorm": {"num_features": 7},
    "embedding": {"num_embeddings": 50, "embedding_dim": 8},
    "lstm": {"input_size": 5, "hidden_size": 6},
    "gru": {"input_size": 5, "hidden_size": 6},
}
LAYER_NAMES = {
    "dense": {"weight": ((3, 5), "weight"), "bias": ((3,), "bias")},
    "conv1d": {"weight": ((6, 4, 3), "weight"), "bias": ((6,), "bias")},
    "conv2d": {"weight": ((8, 3, 3, 3), "weight"), "bias": ((8,), "bias")},
    "batchnorm": {
        "weight": ((5,), "scale"), "bias": ((5,), "shift"),
        "running_mean": ((5,), "running_mean"), "running_var": ((5,), "running_var"),
    },
    "layernorm": {"weight": ((7,), "scale"), "bias": ((7,), "shift")},
    "embedding": {"weight": ((50, 8), "weight")},
    "lstm": {
        "weight_ih_l0": ((24, 5), "weight"), "weight_hh_l0": ((24, 6), "weight"),
        "bias_ih_l0": ((24,), "bias"), "bias_hh_l0": ((24,), "bias"),
    },
    "gru": {
        "weight_ih_l0": ((18, 5), "weight"), "weight_hh_l0": ((18, 6), "weight"),
        "bias_ih_l0": ((18,), "bias"), "bias_hh_l0": ((18,), "bias"),
    },
}  # fmt: skip


@pytest.mark.parametrize("kind", sorted(LAYER_KINDS))
def test_every_layer_kind_names_shapes_dtypes_roles(kit: TorchModels, kind: str) -> None:
    model = kit.single_layer(kind, **LAYER_SPECS[kind])
    ps = assert_matches_torch(model)
    expected = LAYER_NAMES[kind]
    assert list(ps) == [f"0.{leaf}" for leaf in expected]
    for leaf, (shape, role) in expected.items():
        p = ps[f"0.{leaf}"]
        assert p.shape == shape and p.native_shape == shape
        assert p.dtype == np.float32 and p.role == role and p.layout.is_identity
        assert p.trainable == (role not in ("running_mean", "running_var"))
        assert p.native_name == f"0.{leaf}" and p.materialized and p.size == int(np.prod(shape))
        assert p.slot.block is kit.child(model, "0")
        assert p.slot.block_path == ("0",) and p.slot.block_kinds == (type(kit.child(model, "0")).__name__,)


def test_more_layer_types_follow_torch_names_and_roles() -> None:
    model = nn.Sequential(
        nn.ConvTranspose2d(3, 4, 2),
        nn.GroupNorm(2, 4),
        nn.InstanceNorm2d(4, affine=True, track_running_stats=True),
        nn.RMSNorm(4),
        nn.LSTM(4, 3, num_layers=2, bidirectional=True, proj_size=2),
        nn.MultiheadAttention(4, 2, add_bias_kv=True),
        nn.Linear(4, 2, bias=False),
        nn.PReLU(),
    )
    ps = assert_matches_torch(model)
    assert ps["0.weight"].shape == (3, 4, 2, 2)
    roles = {name: p.role for name, p in ps.items()}
    assert roles["1.weight"] == roles["2.weight"] == roles["3.weight"] == up.Role.SCALE
    assert roles["1.bias"] == roles["2.bias"] == up.Role.SHIFT
    assert roles["2.running_mean"] == up.Role.RUNNING_MEAN and roles["2.running_var"] == up.Role.RUNNING_VAR
    assert roles["4.weight_hr_l1_reverse"] == up.Role.WEIGHT and roles["4.bias_hh_l1_reverse"] == up.Role.BIAS
    assert roles["5.in_proj_weight"] == up.Role.WEIGHT and roles["5.in_proj_bias"] == up.Role.BIAS
    assert roles["5.bias_k"] == up.Role.BIAS and roles["5.out_proj.weight"] == up.Role.WEIGHT
    assert "6.bias" not in ps and roles["7.weight"] == up.Role.WEIGHT


def test_num_batches_tracked_and_other_buffers_are_not_parameters() -> None:
    class WithBuffers(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bn = nn.BatchNorm1d(3)
            self.register_buffer("mask", torch.ones(3, dtype=torch.bool))
            self.register_buffer("running_mean", torch.zeros(2), persistent=False)
            self.scale = nn.Parameter(torch.ones(()))

    ps = up.params(WithBuffers())
    assert list(ps) == ["scale", "running_mean", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"]
    assert ps["scale"].role == up.Role.OTHER and ps["scale"].shape == ()
    assert ps["running_mean"].role == up.Role.RUNNING_MEAN and not ps["running_mean"].trainable
    assert not any("num_batches_tracked" in n or "mask" in n for n in ps)


def test_custom_norm_classes_are_recognised_by_name() -> None:
    class T5LayerNorm(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.ones(4))

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.norm = T5LayerNorm()
            self.proj = nn.Linear(4, 4)

    ps = up.params(Block())
    assert ps["norm.weight"].role == up.Role.SCALE and ps["proj.weight"].role == up.Role.WEIGHT


def test_custom_model_and_nested_blocks(kit: TorchModels) -> None:
    net = kit.custom_model()
    ps = assert_matches_torch(net)
    assert list(ps) == [
        "embed.weight", "encoder.0.weight", "encoder.0.bias", "encoder.1.weight", "encoder.1.bias",
        "norm.weight", "norm.bias", "heads.cls.weight", "heads.cls.bias", "heads.reg.weight", "heads.reg.bias",
    ]  # fmt: skip
    assert ps["heads.cls.weight"].shape == (3, 8) and ps["embed.weight"].shape == (50, 8)
    assert ps["encoder.1.bias"].slot.block_path == ("encoder", "1")
    assert ps["encoder.1.bias"].slot.block_kinds == ("ModuleList", "Linear")
    assert ps["encoder.1.bias"].slot.block is net.encoder[1]
    assert ps["norm.weight"].role == up.Role.SCALE
    assert list(up.params(net.heads["cls"])) == ["weight", "bias"]

    nested = kit.nested_blocks()
    nps = assert_matches_torch(nested)
    assert nps["0.3.2.weight"].shape == (4, 8) and nps["1.weight"].shape == (1, 4)
    assert nps["0.3.2.weight"].slot.block_kinds == ("Sequential", "Sequential", "Linear")
    inner = up.params(nested[0][1])
    assert list(inner) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert inner["2.bias"].native is nps["0.1.2.bias"].native


@pytest.mark.filterwarnings("ignore:ComplexHalf support is experimental")
def test_dtypes_follow_the_module(adapter: TorchAdapter) -> None:
    ps = up.params(nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3)).double())
    assert {p.dtype for p in ps.values()} == {np.dtype(np.float64)}
    assert up.params(nn.Linear(2, 3).half())["weight"].dtype == np.float16
    assert adapter.dtype(torch.zeros(2, dtype=torch.int64)) == np.int64
    assert adapter.dtype(torch.zeros(2, dtype=torch.bool)) == np.bool_
    with pytest.raises(up.UnifyParamsError, match="complex32"):
        adapter.dtype(torch.zeros(2, dtype=torch.complex32))


def test_bfloat16_is_an_ml_dtypes_view_of_the_same_memory() -> None:
    lin = nn.Linear(3, 2).to(torch.bfloat16)
    p = up.params(lin)["weight"]
    assert p.dtype == np.dtype(ml_dtypes.bfloat16)
    np.testing.assert_array_equal(p.numpy().astype(np.float32), lin.weight.detach().float().numpy())
    p.set(np.full((2, 3), 1.5, dtype=np.float32))
    p[0, 1] = -2.0
    assert lin.weight.dtype == torch.bfloat16 and lin.weight.requires_grad
    assert lin.weight.detach().float().tolist() == [[1.5, -2.0, 1.5], [1.5, 1.5, 1.5]]
    with torch.no_grad():
        lin.weight[1, 2] = 4.0
    assert float(p.numpy()[1, 2]) == 4.0  # zero-copy read follows later torch writes


# --- values and writes ---------------------------------------------------------------------------
def test_reads_share_memory_and_are_read_only(kit: TorchModels) -> None:
    net = kit.mlp()
    p = up.params(net)["0.bias"]
    view = p.numpy()
    with torch.no_grad():
        net[0].bias.fill_(0.25)
    assert np.all(view == 0.25)
    with pytest.raises(ValueError):
        view[0] = 1.0
    snapshot = p.numpy(copy=True)
    with torch.no_grad():
        net[0].bias.fill_(-1.0)
    assert np.all(snapshot == 0.25)


def test_set_setitem_update_keep_parameter_identity_and_record_no_autograd(kit: TorchModels) -> None:
    net = kit.mlp()
    frozen = net[2].weight
    frozen.requires_grad_(False)
    ps = up.params(net)
    before = {name: p.native for name, p in ps.items()}
    w = ps["0.weight"]
    w.set(np.zeros((256, 20), dtype=np.float32))
    w[1, 2] = 7.0
    w.update(lambda v: v * 2 + 1)
    ps["2.weight"][0, 0] = 3.0
    ps["2.bias"].set(np.full(10, 5))  # a scalar is not broadcast (values.py)
    for name, p in up.params(net).items():
        assert p.native is before[name] and p.native is dict(net.named_parameters())[name]
        assert isinstance(p.native, nn.Parameter) and p.native.is_leaf and p.native.grad_fn is None
    assert net[0].weight.requires_grad and not net[2].weight.requires_grad and net[2].weight is frozen
    expected = np.ones((256, 20), dtype=np.float32)
    expected[1, 2] = 15.0
    np.testing.assert_array_equal(net[0].weight.detach().numpy(), expected)
    assert float(net[2].weight[0, 0]) == 3.0 and torch.all(net[2].bias == 5)
    # The model still trains normally after the writes: nothing of them is in the graph.
    net(torch.ones(1, 20)).sum().backward()
    assert net[0].weight.grad is not None and net[2].weight.grad is None


def test_wrong_shapes_and_lossy_dtypes_are_refused(kit: TorchModels) -> None:
    ps = up.params(kit.mlp())
    before = ps.numpy(copy=True)
    with pytest.raises(up.ShapeMismatchError, match=r"0\.weight.*\(20, 256\)"):
        ps["0.weight"].set(np.zeros((20, 256), dtype=np.float32))
    with pytest.raises(up.DtypeMismatchError, match="complex128"):
        ps["0.bias"].set(np.zeros(256, dtype=np.complex128))
    for name, value in before.items():
        np.testing.assert_array_equal(ps[name].numpy(), value)


def test_values_round_trip_through_load_and_state_dict(kit: TorchModels, rng: np.random.Generator) -> None:
    net = kit.custom_model()
    ps = up.params(net)
    state = {name: rng.normal(size=p.shape).astype(np.float32) for name, p in ps.items()}
    report = ps.load(state)
    assert report.loaded == list(ps)
    for name, value in state.items():
        np.testing.assert_array_equal(ps[name].numpy(), value)
        np.testing.assert_array_equal(net.state_dict()[name].numpy(), value)
    clone = kit.custom_model()
    up.params(clone).load(ps.numpy())
    tokens = rng.integers(0, 50, size=(3, 5))
    np.testing.assert_array_equal(kit.forward(clone, tokens), kit.forward(net, tokens))
    ps.load(ps.numpy())  # loading the model's own read-only views into itself is fine


def _bad_loads(good: dict[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    last = list(good)[-1]
    return {
        "last entry has the wrong shape": {**good, last: np.ones((2, 2), dtype=np.float32)},
        "an entry cannot be cast": {**good, last: np.ones(good[last].shape, dtype=np.complex64)},
        "unexpected name": {**good, "9.weight": np.ones(3, dtype=np.float32)},
        "missing name": {k: v for k, v in good.items() if k != last},
    }


def test_load_is_all_or_nothing(kit: TorchModels) -> None:
    net = kit.single_layer("batchnorm", num_features=4)
    ps = up.params(net)
    before = {k: v.copy() for k, v in ps.numpy().items()}
    good = {k: np.full_like(v, 3.0) for k, v in before.items()}
    for label, state in _bad_loads(good).items():
        with pytest.raises(up.LoadError):
            ps.load(state)
        for name, value in before.items():
            np.testing.assert_array_equal(ps[name].numpy(), value, err_msg=label)
            np.testing.assert_array_equal(expected_state(net)[name].detach().numpy(), value, err_msg=label)


def test_load_restores_everything_when_torch_refuses_a_write_part_way(
    kit: TorchModels, adapter: TorchAdapter, monkeypatch: pytest.MonkeyPatch
) -> None:
    net = kit.nested_blocks()
    ps = up.params(net)
    before = ps.numpy(copy=True)
    real_write = TorchAdapter.write
    calls = {"n": 0}

    def flaky(self: TorchAdapter, native: torch.Tensor, value: np.ndarray) -> None:
        calls["n"] += 1
        if calls["n"] == 5:
            raise RuntimeError("simulated device failure")
        real_write(self, native, value)

    monkeypatch.setattr(TorchAdapter, "write", flaky)
    with pytest.raises(up.WriteError, match="restored"):
        ps.load({k: v + 1 for k, v in before.items()})
    for name, value in before.items():
        np.testing.assert_array_equal(ps[name].numpy(), value)


# --- gradients -----------------------------------------------------------------------------------
def _torch_grads(net: nn.Module, inputs: tuple[torch.Tensor, ...], loss) -> dict[str, np.ndarray]:  # type: ignore[no-untyped-def]
    net.zero_grad(set_to_none=True)
    out = net(*inputs)
    loss(out[0] if isinstance(out, tuple) else out).backward()
    return {n: p.grad.detach().numpy().copy() for n, p in net.named_parameters() if p.grad is not None}


def test_gradients_match_torch_autograd(kit: TorchModels, rng: np.random.Generator) -> None:
    net = kit.custom_model()
    tokens = rng.integers(0, 50, size=(4, 6))
    target = torch.from_numpy(rng.normal(size=(4, 4)).astype(np.float32))

    def mse(out: torch.Tensor) -> torch.Tensor:
        return ((out - target) ** 2).mean()

    grads = up.gradients(net, tokens, loss=mse)
    expected = _torch_grads(net, (torch.from_numpy(tokens),), mse)
    assert sorted(grads) == sorted(expected) == sorted(n for n, _ in net.named_parameters())
    ps = up.params(net)
    for name, g in expected.items():
        np.testing.assert_allclose(grads[name], g, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(ps[name].grad(), g, rtol=1e-6, atol=1e-7)


def test_gradients_of_an_rnn_use_its_output_sequence_and_reset_between_calls(
    rng: np.random.Generator,
) -> None:
    lstm = nn.LSTM(3, 4, batch_first=True)
    x = rng.normal(size=(2, 5, 3))  # float64 data runs through the float32 model
    first = up.gradients(lstm, x)
    second = up.gradients(lstm, x)
    expected = _torch_grads(lstm, (torch.from_numpy(x.astype(np.float32)),), lambda out: out.sum())
    for name, g in expected.items():
        np.testing.assert_allclose(first[name], g, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(first[name], second[name])  # not accumulated across calls


def test_gradients_skip_frozen_and_buffers_and_reject_non_scalar_losses(kit: TorchModels) -> None:
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 1))
    net[0].weight.requires_grad_(False)
    grads = up.gradients(net, np.ones((5, 3), dtype=np.float32))
    assert sorted(grads) == ["0.bias", "1.bias", "1.weight", "2.bias", "2.weight"]
    assert up.params(net)["1.running_mean"].grad() is None
    with pytest.raises(up.UnifyParamsError, match="one-element"):
        up.gradients(net, np.ones((5, 3), dtype=np.float32), loss=lambda out: out * 2)


# --- ties ----------------------------------------------------------------------------------------
def test_a_module_used_twice_is_listed_under_both_names_and_counted_once(kit: TorchModels) -> None:
    net = kit.shared_mlp()
    ps = up.params(net)
    assert list(ps) == [f"{i}.{leaf}" for i in (0, 2, 4, 6) for leaf in ("weight", "bias")]
    assert list(ps) == [n for n, _ in net.named_parameters(remove_duplicate=False)]
    assert ps["2.weight"].native is ps["4.weight"].native is net[2].weight
    assert ps["2.weight"].shared_with == ("4.weight",) and ps["4.bias"].shared_with == ("2.bias",)
    assert ps["0.weight"].shared_with == ()
    assert ps.count() == sum(p.numel() for p in net.parameters()) == 20 * 8 + 8 + 8 * 8 + 8 + 8 + 1
    assert up.ties(net) == [("2.weight", "4.weight"), ("2.bias", "4.bias")]
    ps["4.weight"][3, 3] = 9.0
    assert float(net[2].weight.detach()[3, 3]) == 9.0
    with pytest.raises(up.LoadError, match="share one storage"):
        ps.load({**ps.numpy(copy=True), "4.bias": np.zeros(8, dtype=np.float32)})


def test_tie_and_untie_swap_parameter_objects(kit: TorchModels) -> None:
    net = kit.shared_mlp(shared=False)
    net[4].weight.requires_grad_(False)
    source = net[2].weight
    assert up.tie(net, "2", "4") == [("2.weight", "4.weight"), ("2.bias", "4.bias")]
    assert net[4].weight is source and net[4].bias is net[2].bias
    assert [n for n, _ in net.named_parameters()] == [
        "0.weight",
        "0.bias",
        "2.weight",
        "2.bias",
        "6.weight",
        "6.bias",
    ]
    ps = up.params(net)
    assert ps["4.weight"].shared_with == ("2.weight",)
    up.gradients(net, np.ones((2, 20), dtype=np.float32))
    np.testing.assert_array_equal(ps["2.weight"].grad(), ps["4.weight"].grad())

    values = source.detach().numpy().copy()
    assert up.untie(net, "4.weight") == ["4.weight"]
    fresh = net[4].weight
    assert fresh is not source and isinstance(fresh, nn.Parameter) and fresh.requires_grad
    assert fresh.grad is None and fresh.is_leaf
    np.testing.assert_array_equal(fresh.detach().numpy(), values)
    with torch.no_grad():
        fresh[0, 0] = -7.0
    assert float(source.detach()[0, 0]) != -7.0
    assert up.ties(net) == [("2.bias", "4.bias")]

    frozen = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    frozen[0].bias.requires_grad_(False)
    up.tie(frozen, "0.bias", "1.bias")
    up.untie(frozen, "1.bias")
    assert not frozen[1].bias.requires_grad and frozen[1].bias is not frozen[0].bias


def test_tie_buffers_and_refuse_impossible_ties() -> None:
    net = nn.Sequential(nn.BatchNorm1d(3), nn.BatchNorm1d(3), nn.Linear(3, 3))
    up.tie(net, "0.running_mean", "1.running_mean")
    assert net[1].running_mean is net[0].running_mean
    assert "1.running_mean" in net.state_dict()
    up.untie(net, "1.running_mean")
    assert net[1].running_mean is not net[0].running_mean

    with pytest.raises(up.TieError, match="buffer"):
        up.tie(net, "0.running_var", "1.weight")
    assert net[1].weight is not net[0].running_var

    shared = nn.Linear(2, 2)
    twice = nn.Sequential(shared, shared)
    with pytest.raises(up.TieError, match="deepcopy"):
        up.untie(twice, "1.weight")
    assert twice[1] is twice[0]

    lazy = nn.Sequential(nn.LazyLinear(3), nn.LazyLinear(3))  # shapes unknown: the tie waits for them
    assert up.tie(lazy, "0.bias", "1.bias") == [("0.bias", "1.bias")]
    assert up.waiting_ties(lazy) == [("0.bias", "1.bias")]
    materialize(lazy, input_shape=(2, 3))
    assert lazy[1].bias is lazy[0].bias and not up.waiting_ties(lazy)


def test_tie_and_untie_keep_rnn_flat_weights_and_buffer_persistence() -> None:
    net = nn.Sequential(nn.GRU(3, 3), nn.GRU(3, 3), nn.BatchNorm1d(3), nn.BatchNorm1d(3))
    up.tie(net, "0", "1")
    assert all(a is b for a, b in zip(net[1]._flat_weights, net[0]._flat_weights))
    x = torch.randn(2, 1, 3)
    torch.testing.assert_close(net[1](x)[0], net[0](x)[0])
    up.untie(net, "1.weight_hh_l0")
    assert net[1]._flat_weights[1] is net[1].weight_hh_l0 is not net[0].weight_hh_l0
    net[3].register_buffer("running_var", net[3].running_var, persistent=False)
    up.tie(net, "2.running_var", "3.running_var")
    assert net[3].running_var is net[2].running_var and "3.running_var" not in net.state_dict()


# --- lazy modules --------------------------------------------------------------------------------
def lazy_net() -> nn.Module:
    return nn.Sequential(
        nn.LazyConv2d(4, 3), nn.LazyBatchNorm2d(), nn.ReLU(), nn.LazyConvTranspose2d(2, 2),
        nn.Flatten(), nn.LazyLinear(5),
    )  # fmt: skip


def test_lazy_modules_report_known_dims_and_none() -> None:
    net = lazy_net()
    ps = up.params(net)  # must not touch numel of any uninitialized parameter
    assert {n: p.shape for n, p in ps.items()} == {
        "0.weight": (4, None, 3, 3), "0.bias": (4,),
        "1.weight": (None,), "1.bias": (None,), "1.running_mean": (None,), "1.running_var": (None,),
        "3.weight": (None, 2, 2, 2), "3.bias": (2,),
        "5.weight": (5, None), "5.bias": (5,),
    }  # fmt: skip
    assert ps["5.weight"].size is None and not ps["5.weight"].materialized
    assert ps["1.running_mean"].role == up.Role.RUNNING_MEAN and not ps["1.running_mean"].trainable
    assert ps["0.weight"].dtype == np.float32 and ps["0.weight"].trainable
    assert not is_materialized(net)
    assert up.params(nn.LazyConv1d(3, 2))["weight"].shape == (3, None, 2)
    assert "(5, ?)" in str(ps)
    with pytest.raises(up.NotMaterializedError):
        ps["5.weight"].numpy()
    with pytest.raises(up.NotMaterializedError, match="materialize"):
        ps["5.bias"].numpy()  # its shape is known, but it holds no values yet
    with pytest.raises(up.NotMaterializedError):
        ps["5.bias"].set(np.zeros(5, dtype=np.float32))


def test_materialize_runs_in_eval_mode_and_restores_flags() -> None:
    net = lazy_net()
    net.train()
    net[1].eval()  # a mixed state must come back exactly
    ps = materialize(net, input_shape=(2, 3, 8, 8))
    assert ps["0.weight"].shape == (4, 3, 3, 3)
    assert ps["1.weight"].shape == (4,) and ps["3.weight"].shape == (4, 2, 2, 2)
    assert ps["5.weight"].shape == (5, 2 * 7 * 7)
    assert [m.training for m in net] == [True, False, True, True, True, True]
    assert type(net[5]) is nn.Linear and is_materialized(net)
    assert all(p.grad is None for p in net.parameters())
    np.testing.assert_array_equal(ps["1.running_mean"].numpy(), np.zeros(4, dtype=np.float32))
    assert int(net[1].num_batches_tracked) == 0  # eval mode: no statistics were updated


def test_materialize_with_example_inputs_and_integer_data() -> None:
    net = nn.Sequential(nn.Embedding(10, 4), nn.LazyLinear(2))
    materialize(net, np.array([[1, 2, 3]]))
    assert up.params(net)["1.weight"].shape == (2, 4)


def test_materialize_failure_names_the_failing_block() -> None:
    net = nn.Sequential(nn.LazyLinear(4), nn.ReLU(), nn.Sequential(nn.Linear(3, 2)))
    with pytest.raises(up.NotMaterializedError, match=r"block '2\.0' \(Linear\)") as info:
        materialize(net, input_shape=(2, 5))
    assert "(2, 5)" in str(info.value) and "mat1 and mat2" in str(info.value)
    assert not any(net[i]._forward_pre_hooks for i in (1, 2))  # tracking hooks were removed
    assert net.training


def test_on_materialized_fires_before_new_values_are_used(adapter: TorchAdapter) -> None:
    net = nn.Sequential(nn.LazyLinear(3), nn.ReLU(), nn.LazyLinear(1))
    seen: list[list[str]] = []

    def fill() -> None:
        names = [
            n
            for n, p in up.params(net).items()
            if isinstance(p.native, nn.Parameter)
            and p.materialized
            and not isinstance(p.native, nn.parameter.UninitializedParameter)
        ]
        seen.append(names)
        for name in names:
            up.params(net)[name].set(np.full(up.params(net)[name].shape, 0.5, dtype=np.float32))

    assert adapter.on_materialized(net, fill)
    out = net(torch.ones(2, 4))
    assert seen == [["0.weight", "0.bias"], ["0.weight", "0.bias", "2.weight", "2.bias"]]
    # every value 0.5 before first use: layer 0 gives relu(4 * 0.5 + 0.5) = 2.5, layer 2 3 * 2.5 * 0.5 + 0.5
    torch.testing.assert_close(out, torch.full((2, 1), 4.25))
    net(torch.ones(2, 4))
    assert len(seen) == 2  # the hooks removed themselves
    assert not adapter.on_materialized(nn.Linear(2, 2), fill)


# --- torch.compile -------------------------------------------------------------------------------
def test_compiled_models_are_unwrapped(kit: TorchModels, rng: np.random.Generator) -> None:
    base = kit.mlp(in_features=5, hidden=7, out_features=3)
    compiled = torch.compile(base, backend="eager")
    ps = up.params(compiled)
    assert list(ps) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert [p.native_name for p in ps.values()] == [n for n, _ in compiled.named_parameters()]
    assert ps["0.weight"].native_name == "_orig_mod.0.weight"
    assert all(p.native is q.native for p, q in zip(ps.values(), up.params(base).values()))
    assert ps["0.weight"].slot.block_kinds == ("Linear",)
    x = rng.normal(size=(2, 5)).astype(np.float32)
    grads = up.gradients(compiled, x)
    expected = _torch_grads(base, (torch.from_numpy(x),), lambda out: out.sum())
    for name, g in expected.items():
        np.testing.assert_allclose(grads[name], g, rtol=1e-6)

    outer = nn.Sequential(nn.Linear(2, 2))
    outer.add_module("enc", torch.compile(nn.Linear(2, 3), backend="eager"))
    names = {p.name: p.native_name for p in up.params(outer).values()}
    assert names == {
        "0.weight": "0.weight",
        "0.bias": "0.bias",
        "enc.weight": "enc._orig_mod.weight",
        "enc.bias": "enc._orig_mod.bias",
    }


# --- builders ------------------------------------------------------------------------------------
def test_builders_follow_their_docstrings(kit: TorchModels, rng: np.random.Generator) -> None:
    assert kit.backend == "torch"
    assert {n: p.shape for n, p in up.params(kit.mlp()).items()} == {
        "0.weight": (256, 20), "0.bias": (256,), "2.weight": (10, 256), "2.bias": (10,),
    }  # fmt: skip
    assert kit.forward(kit.mlp(), rng.normal(size=(3, 20))).shape == (3, 10)
    assert kit.forward(kit.nested_blocks(), np.ones((2, 4), np.float32)).shape == (2, 1)
    out = kit.forward(kit.custom_model(), rng.integers(0, 50, size=(2, 5)))
    assert out.shape == (2, 4) and out.dtype == np.float32
    for kind in ("lstm", "gru"):
        seq = kit.forward(kit.single_layer(kind, input_size=5, hidden_size=6), np.ones((2, 4, 5), np.float32))
        assert seq.shape == (2, 4, 6)
    assert kit.forward(kit.lenet(), np.zeros((2, 1, 28, 28), np.float32)).shape == (2, 10)
    assert kit.forward(kit.residual_block(), np.zeros((2, 4, 8, 8), np.float32)).shape == (2, 4, 8, 8)
    for cell in ("gru", "lstm"):
        model = kit.embed_rnn(cell)
        assert list(up.params(model))[:3] == ["embed.weight", "rnn.weight_ih_l0", "rnn.weight_hh_l0"]
        assert kit.forward(model, rng.integers(0, 50, size=(2, 7))).shape == (2, 3)
    assert list(up.params(kit.lenet()))[-2:] == ["11.weight", "11.bias"]
    assert list(up.params(kit.residual_block()))[:3] == ["conv1.weight", "conv1.bias", "bn1.weight"]
    with pytest.raises(Unsupported):
        kit.functional_model()
    net = kit.custom_model()
    assert kit.child(net, "heads.cls") is net.heads["cls"] and kit.child(net, "encoder.1") is net.encoder[1]
    nested = kit.nested_blocks()
    assert kit.child(nested, "0.2.0") is nested[0][2][0]


def test_builder_forward_is_inference_and_restores_training(kit: TorchModels) -> None:
    model = kit.single_layer("batchnorm", num_features=3)
    model.train()
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_allclose(kit.forward(model, x), x / np.sqrt(1 + 1e-5), rtol=1e-6)  # running stats used
    assert model.training and model[0].training
    np.testing.assert_array_equal(model[0].running_mean.numpy(), np.zeros(3))


def test_variants_give_the_same_parameters(kit: TorchModels) -> None:
    base = kit.mlp()
    [(label, compiled)] = kit.variants(base)
    assert label == "torch.compile"
    assert list(up.params(compiled)) == list(up.params(base))
    x = np.ones((2, 20), np.float32)
    np.testing.assert_allclose(kit.forward(compiled, x), kit.forward(base, x), rtol=1e-6)


def test_layer_config_reports_norm_hyperparameters(adapter: TorchAdapter) -> None:
    assert adapter.layer_config(nn.BatchNorm2d(3, eps=1e-3, momentum=0.01)) == {"eps": 1e-3, "momentum": 0.01}
    assert adapter.layer_config(nn.BatchNorm1d(3, momentum=None)) == {"eps": 1e-5}
    assert adapter.layer_config(nn.LayerNorm(3)) == {"eps": 1e-5}
    assert adapter.layer_config(nn.Linear(2, 2)) == {}
    assert not adapter.channels_last(nn.Conv2d(1, 1, 1))


def test_to_numpy_converts_outputs(adapter: TorchAdapter) -> None:
    out, state = nn.GRU(2, 3, batch_first=True)(torch.ones(1, 4, 2))
    assert adapter.to_numpy((out, state)).shape == (1, 4, 3)
    assert adapter.to_numpy(torch.ones(2, requires_grad=True) * 2).tolist() == [2.0, 2.0]


# --- the meta device: shapes without memory ---------------------------------------------------------
def test_meta_device_model_shows_shapes_and_count_without_memory() -> None:
    with torch.device("meta"):
        big = nn.Sequential(*[nn.Linear(65536, 65536) for _ in range(8)])  # 128 GiB of float32
    ps = up.params(big)
    assert ps.count() == 8 * (65536 * 65536 + 65536)
    assert ps["7.weight"].shape == (65536, 65536) and not ps["7.weight"].materialized
    assert "(65536, 65536)" in str(ps)
    with pytest.raises(up.NotMaterializedError, match="meta"):
        ps["0.bias"].numpy()
    with pytest.raises(up.NotMaterializedError):
        ps["0.bias"].set(np.zeros(65536, np.float32))


def test_lazy_model_on_meta_infers_shapes_then_allocates_with_waiting_init() -> None:
    with torch.device("meta"):
        lazy = nn.Sequential(nn.LazyLinear(64), nn.ReLU(), nn.LazyBatchNorm1d(), nn.LazyLinear(3))
    up.initialize(lazy, up.init.XavierUniform(), seed=4)
    materialize(lazy, input_shape=(2, 20))
    ps = up.params(lazy)
    assert ps["0.weight"].shape == (64, 20) and not ps["0.weight"].materialized
    assert up.pending(lazy)["0.weight"].initializer is not None
    materialize(lazy)  # no inputs: allocate on the CPU
    eager = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.BatchNorm1d(64), nn.Linear(64, 3))
    up.initialize(eager, up.init.XavierUniform(), seed=4)
    for name, value in up.params(eager).numpy().items():
        np.testing.assert_array_equal(up.params(lazy)[name].numpy(), value, err_msg=name)
    assert is_materialized(lazy) and not up.pending(lazy)
