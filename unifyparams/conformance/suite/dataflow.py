"""Dense layers after convolutions: what they read decides how their weights move.

Two models every adapter builds: a LeNet, whose first dense layer reads a flattened 16x5x5 map
(in the framework's own flatten order), and a DenseNet-style model whose dense layer reads 8
globally pooled features of concatenated convolutions (nothing to reorder, although the last
convolution has 4 output channels and 8 is a multiple of 4). In both, the checkpoint must hold
canonical (channels-first) weights: a NumPy reference computes the model's outputs from the file
alone, and the file loads back into a fresh build with the same outputs.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

import unifyparams as up

from .. import reference
from ..checks import check
from .access import _randomize, _rng


def _stored(path: Path) -> dict[str, np.ndarray]:
    from unifyparams.checkpoint.shards import open_checkpoint

    with open_checkpoint(path) as ckpt:
        return {name: np.array(ckpt.tensor(name), dtype=np.float64) for name in ckpt.names}


def _close(a: np.ndarray, b: np.ndarray) -> bool:
    scale = max(float(np.abs(b).max()), 1e-6)
    return float(np.abs(np.asarray(a, np.float64) - b).max()) <= 1e-4 * scale


def _round_trip(kit: Any, build: Any, x: np.ndarray, ref: Any, label: str) -> None:
    net = build()
    _randomize(up.params(net), seed=71)
    expected = kit.forward(net, x)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.safetensors"
        up.save(net, path)
        stored = _stored(path)
        check(_close(expected, ref(x, stored)), f"{label}: the checkpoint's canonical weights do not compute "
              f"the model's outputs (max diff {np.abs(expected - ref(x, stored)).max():.3g})")
        fresh = build()
        up.load(fresh, path)
        check(_close(kit.forward(fresh, x), expected), f"{label}: a fresh build loaded from the file differs")


class DataflowTests:
    """The ``dataflow.*`` scenarios; mix into a class with the suite's fixtures."""

    def test_dataflow__flattened_map(self, kit: Any) -> None:
        """A LeNet's first dense weight reads a flattened map: stored channels-first."""
        x = _rng(72).normal(size=(2, 1, 28, 28)).astype(np.float32)
        _round_trip(kit, kit.lenet, x, reference.lenet, "lenet")

    def test_dataflow__pooled_features(self, kit: Any) -> None:
        """Conv -> concatenate -> global pool -> dense reads features: never reordered."""
        x = _rng(73).normal(size=(2, 3, 8, 8)).astype(np.float32)

        def ref(x: np.ndarray, stored: dict[str, np.ndarray]) -> np.ndarray:
            return reference.concat_pool_dense(x, list(stored.values()))

        _round_trip(kit, kit.concat_pool_dense, x, ref, "concat_pool_dense")
        a, b = kit.concat_pool_dense(), kit.concat_pool_dense()
        _randomize(up.params(a), seed=74)
        report = up.port(a, b)
        check(all("input order" not in row.conversion for row in report.rows), f"pooled features reordered: {report}")
        check(_close(kit.forward(b, x), kit.forward(a, x)), "outputs differ after a port between two builds")
