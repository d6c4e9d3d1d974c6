"""PyTorch facts about shapes that wait: lazy modules, the materialize pass and its hooks, the meta device.

What every backend shares is in the conformance suite's ``lazy.*`` scenarios and tests/test_lazy.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import unifyparams as up
from unifyparams.lazy import is_materialized, materialize
from unifyparams_torch import TorchAdapter

from .backends import torch as torch_backend

pytestmark = pytest.mark.torch


@pytest.fixture
def adapter() -> TorchAdapter:
    return torch_backend.adapter()


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
