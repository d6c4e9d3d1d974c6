"""The PyTorch backend's helpers for the per-feature tests (surface: tests/backends/__init__.py)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

import unifyparams as up
from unifyparams.conformance import load_builders
from unifyparams_torch import TorchAdapter

NAME = "torch"
PACKAGE = "unifyparams_torch"
models = load_builders(NAME)  #: the conformance builders declared for this backend
KINDS = {"sequential": "Sequential", "dense": "Linear", "list": "ModuleList", "dict": "ModuleDict"}


def adapter() -> TorchAdapter:
    a = up.get_adapter(NAME)
    assert isinstance(a, TorchAdapter)
    return a


def tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(array))


def total(x: torch.Tensor) -> torch.Tensor:
    return x.sum()


def native_numpy(p: up.Param) -> np.ndarray:
    return p.layout.to_canonical(p.native.detach().numpy())


def expected_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """What unifyparams should list: torch's state_dict (every alias) minus num_batches_tracked."""
    return {
        k: v for k, v in model.state_dict(keep_vars=True).items() if not k.endswith("num_batches_tracked")
    }


def assert_native_listing(model: nn.Module, ps: up.ParamSet) -> None:
    """Names, objects, shapes, dtypes, flags and values are torch's own ``state_dict``'s."""
    state = expected_state(model)
    assert list(ps) == list(state)
    for name, t in state.items():
        p = ps[name]
        assert p.native is t, name
        assert p.native_name == name, name
        assert p.shape == tuple(t.shape), name
        assert p.dtype == t.detach().numpy().dtype, name
        assert p.trainable == (isinstance(t, nn.Parameter) and t.requires_grad), name
        assert p.backend == "torch"
        np.testing.assert_array_equal(p.numpy(), t.detach().numpy())


def reused_layer() -> tuple[Any, str, str]:
    shared = nn.Linear(2, 2)
    return nn.Sequential(shared, shared), "1.weight", "deepcopy"
