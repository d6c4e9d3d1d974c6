"""PyTorch facts about writes and gradients: writes record no autograd, gradients match torch's own.

The writes, loads and gradients every backend shares are in tests/test_writes.py and tests/test_gradients.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import unifyparams as up

from .backends.torch import models

pytestmark = pytest.mark.torch


def test_set_setitem_update_keep_parameter_identity_and_record_no_autograd() -> None:
    net = models.mlp()
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
    # the values written (tests/test_writes.py), here through a frozen parameter too
    assert float(net[2].weight[0, 0]) == 3.0 and torch.all(net[2].bias == 5)
    # The model still trains normally after the writes: nothing of them is in the graph.
    net(torch.ones(1, 20)).sum().backward()
    assert net[0].weight.grad is not None and net[2].weight.grad is None


def _torch_grads(net: nn.Module, inputs: tuple[torch.Tensor, ...], loss) -> dict[str, np.ndarray]:  # type: ignore[no-untyped-def]
    net.zero_grad(set_to_none=True)
    out = net(*inputs)
    loss(out[0] if isinstance(out, tuple) else out).backward()
    return {n: p.grad.detach().numpy().copy() for n, p in net.named_parameters() if p.grad is not None}


def test_gradients_match_torch_autograd(rng: np.random.Generator) -> None:
    net = models.custom_model()
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


def test_gradients_skip_frozen_parameters_and_buffers() -> None:
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 1))
    net[0].weight.requires_grad_(False)
    grads = up.gradients(net, np.ones((5, 3), dtype=np.float32))
    assert sorted(grads) == ["0.bias", "1.bias", "1.weight", "2.bias", "2.weight"]
    assert up.params(net)["1.running_mean"].grad() is None
