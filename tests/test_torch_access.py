"""PyTorch facts about access and naming: torch's layer zoo, buffers, dtypes, zero-copy reads, porting facts.

The names, shapes and roles every backend shares are in tests/test_access.py.
"""

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
from unifyparams.conformance import builders_class
from unifyparams_torch import TorchAdapter
from unifyparams_torch.builders import TorchModels

from .backends import torch as torch_backend
from .backends.torch import assert_native_listing, models

pytestmark = pytest.mark.torch


@pytest.fixture
def adapter() -> TorchAdapter:
    return torch_backend.adapter()


def run_python(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


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
    assert builders_class("torch") is TorchModels  # the conformance builders, declared beside the adapter
    assert up.available_adapters()["torch"] is TorchAdapter
    assert adapter.owns(nn.ReLU())  # any module, parameters or not (owning nothing else: test_discovery.py)


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
    ps = up.params(model)
    assert_native_listing(model, ps)
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


def test_reads_share_memory_with_the_tensor() -> None:
    net = models.mlp()
    p = up.params(net)["0.bias"]
    view = p.numpy()
    with torch.no_grad():
        net[0].bias.fill_(0.25)
    assert np.all(view == 0.25)  # zero-copy: the view follows later torch writes
    snapshot = p.numpy(copy=True)
    with torch.no_grad():
        net[0].bias.fill_(-1.0)
    assert np.all(snapshot == 0.25)


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
