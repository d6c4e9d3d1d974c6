"""PyTorch facts about compiled models and the conformance builders."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import unifyparams as up
from unifyparams.conformance import Unsupported
from unifyparams_torch.builders import TorchModels

from .backends.torch import models
from .test_torch_values import _torch_grads

pytestmark = pytest.mark.torch


@pytest.fixture
def kit() -> TorchModels:
    assert isinstance(models, TorchModels)
    return models


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
