"""Matching rules that the model-family work tightened: hyper-parameters compared in every mode,
rename rules across layer paths, and order matching that refuses twins only creation order
tells apart (keras-hub's Llama creates its up-projection before its gate)."""

from __future__ import annotations

import numpy as np
import pytest

import unifyparams as up

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch


class Block(torch.nn.Module):
    def __init__(self, eps: float = 1e-5) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(3, 4)
        self.norm = torch.nn.LayerNorm(4, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x))


class Renamed(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = torch.nn.ModuleDict({"dense": torch.nn.Linear(3, 4), "ln": torch.nn.LayerNorm(4)})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder["ln"](self.encoder["dense"](x))


def test_a_mapping_compares_hyperparameters_too() -> None:
    src, dst = Block(eps=1e-5), Block(eps=1e-3)
    report = up.port(src, dst, match={n: n for n in up.params(dst)}, dry_run=True)
    assert any("eps differs" in w and "0.001" in w for w in report.warnings)


def test_rename_rules_may_change_layer_paths() -> None:
    src, dst = Block(), Renamed()
    report = up.port(src, dst, rename=[(r"^proj\.", "encoder.dense."), (r"^norm\.", "encoder.ln.")])
    assert report.applied and {r.destination for r in report.rows} == set(up.params(dst))
    x = torch.randn(2, 3)
    with torch.no_grad():
        np.testing.assert_allclose(src(x).numpy(), dst(x).numpy(), rtol=1e-6)


def test_rename_rules_that_cut_a_leaf_are_not_silently_accepted() -> None:
    report = up.port(Block(), Renamed(), rename=[(r"^proj\.we", "encoder.dense.we"), (r"^norm\.", "encoder.ln.")],
                     strict=False, dry_run=True)
    assert report.problems  # proj.bias keeps its old layer: the layers no longer pair


def test_order_matching_refuses_a_gate_and_up_projection_pair() -> None:
    class Gate(torch.nn.Module):
        def __init__(self, up_first: bool) -> None:
            super().__init__()
            if up_first:
                self.up_proj, self.gate_proj = torch.nn.Linear(4, 8), torch.nn.Linear(4, 8)
            else:
                self.gate_proj, self.up_proj = torch.nn.Linear(4, 8), torch.nn.Linear(4, 8)

    class Named(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.mlp = Gate(up_first=True)

    class Other(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.ff = Gate(up_first=False)

    with pytest.raises(up.PortError, match="cannot tell apart"):
        up.port(Named(), Other(), match="order")
