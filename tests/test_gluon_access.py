"""MXNet Gluon 1.9.1 facts about access and naming: the import shim, names against Gluon's own attribute
paths, layouts and recurrent gates against PyTorch's equations.

What every backend shares is in tests/test_discovery.py and tests/test_access.py.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import numpy as np
import pytest

import unifyparams as up

from .backends.gluon import gluon_paths, models, nn, randomize, rng, rnn
from .backends.reference import deep_rnn as reference_rnn

pytestmark = pytest.mark.gluon


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


@pytest.mark.parametrize("build", ["mlp", "nested_blocks", "lenet", "residual_block", "shared_mlp"])
def test_names_are_gluons_attribute_paths(build: str) -> None:
    net = getattr(models, build)()
    ps = up.params(net)
    assert list(ps) == gluon_paths(net)
    natives = list(net._collect_params_with_prefix().values())
    assert [p.native for p in ps.values()] == natives
    assert [p.native_name for p in ps.values()] == [p.name for p in natives]


def test_custom_block_children_are_registered_under_gluons_names_but_named_where_the_user_reaches_them() -> None:
    net = models.custom_model()
    ps = up.params(net)
    # Gluon registers them as encoder0 / head_cls; the Parameters are the same objects, in the same order.
    assert gluon_paths(net)[1] == "encoder0.weight" and gluon_paths(net)[7] == "head_cls.weight"
    assert list(ps)[1] == "encoder.0.weight" and list(ps)[7] == "heads.cls.weight"
    assert ps["encoder.1.weight"].native is net.encoder[1].weight
    assert ps["heads.cls.weight"].native is net.heads["cls"].weight
    assert models.child(net, "heads.cls") is net.heads["cls"] and models.child(net, "encoder.0") is net.encoder[0]


def test_native_names_are_gluons_prefixed_names() -> None:
    slot = up.params(models.nested_blocks())["0.3.2.weight"].slot
    assert slot.native_name.startswith("dense") and slot.native_name.endswith("_weight")


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
    adapter = up.adapter_for(models.mlp())
    assert adapter.layer_config(nn.BatchNorm(momentum=0.9, epsilon=1e-3)) == pytest.approx({"eps": 1e-3, "momentum": 0.1})
    assert adapter.layer_config(nn.LayerNorm(epsilon=1e-5)) == pytest.approx({"eps": 1e-5})
    assert adapter.layer_config(nn.Dense(2)) == {}


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
    np.testing.assert_allclose(models.forward(layer, x), expected, atol=1e-5)
