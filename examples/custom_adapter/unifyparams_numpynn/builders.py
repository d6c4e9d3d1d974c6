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

    def forward(self, model: Any, *inputs: np.ndarray) -> np.ndarray:
        """Canonical inputs are channels-first; numpynn convolutions are channels-last."""
        first = model[0] if isinstance(model, nn.Sequential) and len(model) else model
        conv = isinstance(first, nn.Conv)
        args = [np.moveaxis(x, 1, -1) if conv else x for x in inputs]
        out = np.asarray(model(*args))
        return np.asarray(np.moveaxis(out, -1, 1) if conv else out, dtype=np.float32)

    def child_step(self, block: Any, part: str) -> Any:
        if isinstance(block, (nn.Sequential, nn.ModuleList)):
            return block[int(part)]
        if isinstance(block, nn.ModuleDict):
            return block[part]
        return getattr(block, part)
