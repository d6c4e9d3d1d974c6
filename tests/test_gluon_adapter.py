"""MXNet Gluon specifics: names against Gluon's own attribute paths, deferred shapes, NumPy mode,
sharing through ``params=``, writes, and the import shim."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import unifyparams as up
from unifyparams_gluon import import_mxnet
from unifyparams_gluon.builders import GluonModels

mx = import_mxnet()
nn, rnn = mx.gluon.nn, mx.gluon.rnn
KIT = GluonModels()
RENAMES = {"gamma": "weight", "beta": "bias"}


def test_names_follow_gluon_attribute_paths() -> None:
    net = KIT.nested_blocks()
    native = list(net._collect_params_with_prefix())
    assert list(up.params(net)) == native
    bn = KIT.single_layer("batchnorm", num_features=3)
    expected = [".".join(RENAMES.get(p, p) for p in n.split(".")) for n in bn._collect_params_with_prefix()]
    assert sorted(up.params(bn)) == sorted(expected)
    assert up.params(net)["0.1.0.weight"].native_name.startswith("dense")


def test_recurrent_names_and_bidirectional_suffix() -> None:
    layer = rnn.LSTM(5, num_layers=2, bidirectional=True, input_size=3, layout="NTC")
    layer.initialize()
    names = set(up.params(layer))
    assert {"weight_ih_l0", "weight_hh_l1", "bias_ih_l0_reverse", "bias_hh_l1_reverse"} <= names
    assert up.params(layer)["weight_ih_l1"].shape == (20, 10)  # layer 1 reads both directions


def test_deferred_initialization_reports_unknown_dims() -> None:
    net = KIT.lazy_mlp()
    ps = up.params(net)
    assert ps["0.weight"].shape == (256, None) and not ps["0.weight"].materialized
    with pytest.raises(up.NotMaterializedError, match="0.weight"):
        ps["0.weight"].numpy()
    up.materialize(net, input_shape=(2, 20))
    assert up.params(net)["0.weight"].shape == (256, 20) and up.is_materialized(net)


def test_first_forward_calls_the_materialized_hook_before_values_are_used() -> None:
    net = KIT.lazy_mlp()
    adapter = up.adapter_for(net)
    seen: list[tuple[int | None, ...]] = []

    def fill() -> None:
        for p in up.params(net).values():
            if p.materialized and p.name == "2.bias":
                seen.append(p.shape)
                p.set(np.full(10, 5.0, np.float32))

    assert adapter.on_materialized(net, fill)
    out = KIT.forward(net, np.zeros((2, 20), np.float32))
    assert seen and set(seen) == {(10,)}  # called as each waiting Parameter is initialized
    np.testing.assert_allclose(out, 5.0)  # zero input: the output is the bias written by the hook


def test_numpy_mode_and_hybridized_models_expose_the_same_parameters() -> None:
    base = KIT.mlp()
    for label, model in KIT.variants(base):
        ps = up.params(model)
        assert list(ps) == list(up.params(base)), label
        np.testing.assert_array_equal(ps["2.weight"].numpy(), up.params(base)["2.weight"].numpy())
    assert not mx.util.is_np_array()  # the builders restore the global mode


def test_writes_keep_the_parameter_and_reach_every_context() -> None:
    net = KIT.mlp()
    p = up.params(net)["0.bias"]
    native = p.native
    p.update(lambda b: b + 1)
    p[3] = 42.0
    assert p.native is native and net[0].bias is native
    assert net[0].bias.data().asnumpy()[3] == 42.0


def test_shared_params_through_params_argument() -> None:
    net = KIT.shared_mlp()
    ps = up.params(net)
    assert ps["2.weight"].native is ps["4.weight"].native
    assert up.ties(net) == [("2.weight", "4.weight"), ("2.bias", "4.bias")]
    assert len(list(net.collect_params().keys())) == 6  # Gluon itself lists the shared Parameter once


def test_tie_updates_gluon_bookkeeping_and_untie_restores_it() -> None:
    net = KIT.shared_mlp(shared=False)
    net.hybridize()
    KIT.forward(net, np.ones((1, 20), np.float32))  # build the cached graph first
    up.tie(net, "2", "4")
    assert len(list(net.collect_params().keys())) == 6
    trainer = mx.gluon.Trainer(net.collect_params(), "sgd")  # Gluon accepts the tied model
    assert trainer is not None
    up.untie(net, "4")
    assert up.ties(net) == [] and len(list(net.collect_params().keys())) == 8


def test_import_shim_and_unavailable_error() -> None:
    code = (
        "import numpy\n"
        "assert 'bool' not in numpy.__dict__ or True\n"
        "from unifyparams_gluon import import_mxnet\n"
        "mx = import_mxnet()\n"
        "print(mx.__version__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "1.9.1"
