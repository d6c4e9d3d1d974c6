"""PyTorch facts about ties: parameter objects are swapped, buffers and RNN flat weights follow.

The sharing and ties every backend shares are in tests/test_ties.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import unifyparams as up
from unifyparams.lazy import materialize

from .backends.torch import models

pytestmark = pytest.mark.torch


def test_a_module_used_twice_is_listed_as_torch_lists_it() -> None:
    net = models.shared_mlp()
    ps = up.params(net)
    assert list(ps) == [n for n, _ in net.named_parameters(remove_duplicate=False)]
    assert ps["2.weight"].native is net[2].weight
    assert ps.count() == sum(p.numel() for p in net.parameters())


def test_tie_and_untie_swap_parameter_objects() -> None:
    net = models.shared_mlp(shared=False)
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
    assert up.pending_ties(lazy) == [("0.bias", "1.bias")]
    materialize(lazy, input_shape=(2, 3))
    assert lazy[1].bias is lazy[0].bias and not up.pending_ties(lazy)


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
