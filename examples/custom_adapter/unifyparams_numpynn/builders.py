"""Conformance model builders for numpynn (see :class:`unifyparams.conformance.ModelBuilders`).

numpynn has no functional API and no other forms of a model; those scenarios skip with the reason.

>>> kit = NumpyNNBuilders()
>>> kit.forward(kit.mlp(), np.zeros((2, 20), np.float32)).shape
(2, 10)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpynn as nn

from unifyparams.conformance import ModelBuilders, Unsupported


class TextClassifier(nn.Module):
    """The user-defined model of :meth:`ModelBuilders.custom_model`."""

    def __init__(self) -> None:
        self.embed = nn.Embedding(50, 8)
        self.encoder = nn.ModuleList([nn.Dense(8, in_features=8), nn.Dense(8, in_features=8)])
        self.norm = nn.LayerNorm(8)
        self.heads = nn.ModuleDict({"cls": nn.Dense(3, in_features=8), "reg": nn.Dense(1, in_features=8)})

    def forward(self, idx: np.ndarray) -> np.ndarray:
        x = self.embed(idx).mean(axis=1)
        for layer in self.encoder:
            x = np.maximum(layer(x), 0)
        x = self.norm(x)
        return np.concatenate([self.heads["cls"](x), self.heads["reg"](x)], axis=-1)


class ConcatPoolDense(nn.Module):
    """The DenseNet-style model of :meth:`ModelBuilders.concat_pool_dense`, on (N, 8, 8, 3) inputs:
    two 'same' 3x3 convolutions of the input, ReLU each, concatenated on channels, globally
    averaged, then a dense layer reading the 8 pooled features."""

    def __init__(self) -> None:
        self.input_shape = (8, 8, 3)
        self.branch_a = nn.Conv2d(3, 4, 3, padding=1, input_size=(8, 8))
        self.branch_b = nn.Conv2d(3, 4, 3, padding=1, input_size=(8, 8))
        self.relu = nn.ReLU()
        self.concat = nn.Concatenate()
        self.pool = nn.GlobalAvgPool2d()
        self.head = nn.Dense(5, in_features=8)

    def forward(self, x: np.ndarray) -> np.ndarray:
        features = self.concat(self.relu(self.branch_a(x)), self.relu(self.branch_b(x)))
        return self.head(self.pool(features))


def _layer(kind: str, spec: dict[str, int]) -> nn.Module:
    if kind == "dense":
        return nn.Dense(spec["out_features"], in_features=spec["in_features"])
    if kind in ("conv1d", "conv2d"):
        conv = nn.Conv1d if kind == "conv1d" else nn.Conv2d
        return conv(spec["in_channels"], spec["out_channels"], spec["kernel_size"])
    if kind == "batchnorm":
        return nn.BatchNorm(spec["num_features"])
    if kind == "layernorm":
        return nn.LayerNorm(spec["num_features"])
    if kind == "embedding":
        return nn.Embedding(spec["num_embeddings"], spec["embedding_dim"])
    if kind == "lstm":
        return nn.LSTM(spec["input_size"], spec["hidden_size"])
    if kind == "gru":
        return nn.GRU(spec["input_size"], spec["hidden_size"])
    raise Unsupported(f"numpynn has no {kind!r} layer")


class NumpyNNBuilders(ModelBuilders):
    backend = "numpynn"
    #: Scenarios known to fail, one ``scenario.id  # reason`` per line (next to this module).
    known_failures = "known_failures.txt"

    def mlp(self, in_features: int = 20, hidden: int = 256, out_features: int = 10) -> Any:
        return nn.Sequential(nn.Dense(hidden, in_features=in_features), nn.ReLU(), nn.Dense(out_features, in_features=hidden))

    def nested_blocks(self) -> Any:
        def block1() -> nn.Module:
            return nn.Sequential(nn.Dense(8, in_features=4), nn.ReLU(), nn.Dense(4, in_features=8), nn.ReLU())

        return nn.Sequential(nn.Sequential(*[block1() for _ in range(4)]), nn.Dense(1, in_features=4))

    def custom_model(self) -> Any:
        return TextClassifier()

    def single_layer(self, kind: str, **spec: int) -> Any:
        return nn.Sequential(_layer(kind, spec))

    def lazy_mlp(self) -> Any:
        return nn.Sequential(nn.Dense(256), nn.ReLU(), nn.Dense(10))

    def shared_mlp(self, shared: bool = True) -> Any:
        first = nn.Dense(8, in_features=20)
        a = nn.Dense(8, in_features=8)
        b = a if shared else nn.Dense(8, in_features=8)
        return nn.Sequential(first, nn.ReLU(), a, nn.ReLU(), b, nn.ReLU(), nn.Dense(1, in_features=8))

    def lenet(self) -> Any:
        return nn.Sequential(
            nn.Conv2d(1, 6, 5, padding=2, input_size=(28, 28)), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
            nn.Dense(120, in_features=400), nn.ReLU(), nn.Dense(84, in_features=120), nn.ReLU(),
            nn.Dense(10, in_features=84),
        )

    def concat_pool_dense(self) -> Any:
        return ConcatPoolDense()

    def forward(self, model: Any, *inputs: np.ndarray) -> np.ndarray:
        """Canonical inputs are channels-first; numpynn convolutions are channels-last: a model
        with convolutions gets its maps (3-D and up) with channels moved last, and gives its
        output maps back channels-first."""
        conv = any(isinstance(m, nn.Conv) for m in model.modules())
        args = [np.moveaxis(x, 1, -1) if conv and np.ndim(x) >= 3 else x for x in inputs]
        out = np.asarray(model(*args))
        return np.asarray(np.moveaxis(out, -1, 1) if conv and out.ndim >= 3 else out, dtype=np.float32)

    def child_step(self, block: Any, part: str) -> Any:
        if isinstance(block, (nn.Sequential, nn.ModuleList)):
            return block[int(part)]
        if isinstance(block, nn.ModuleDict):
            return block[part]
        return getattr(block, part)
