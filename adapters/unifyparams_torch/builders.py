"""Conformance model builders for PyTorch: the models the scenarios check, written natively.

Canonical names are fixed by :class:`~unifyparams.conformance.builders.ModelBuilders`'s
docstrings; in PyTorch they are simply the attribute paths of these modules. Importing this
module imports no framework (the suite reads :attr:`ModelBuilders.rows` without one); PyTorch is
imported when the builders are made.

>>> kit = TorchModels()
>>> import unifyparams as up
>>> list(up.params(kit.mlp()))
['0.weight', '0.bias', '2.weight', '2.bias']
"""

from __future__ import annotations

from typing import Any

import numpy as np

from unifyparams.conformance import LAYER_KINDS, ModelBuilders, Unsupported


class TorchModels(ModelBuilders):
    """The conformance models in PyTorch (``functional_model`` stays Unsupported: torch has no such API)."""

    backend = "torch"

    def __init__(self) -> None:
        import torch

        from . import models, running, tensors

        self.torch, self.nn, self.models, self.running, self.tensors = torch, torch.nn, models, running, tensors

    def mlp(self, in_features: int = 20, hidden: int = 256, out_features: int = 10) -> Any:
        return self.nn.Sequential(self.nn.Linear(in_features, hidden), self.nn.ReLU(), self.nn.Linear(hidden, out_features))

    def nested_blocks(self) -> Any:
        def block1() -> Any:
            return self.nn.Sequential(self.nn.Linear(4, 8), self.nn.ReLU(), self.nn.Linear(8, 4), self.nn.ReLU())

        def block2() -> Any:
            return self.nn.Sequential(*[block1() for _ in range(4)])

        return self.nn.Sequential(block2(), self.nn.Linear(4, 1))

    def custom_model(self) -> Any:
        return self.models.CustomModel()

    def single_layer(self, kind: str, **spec: int) -> Any:
        if kind not in LAYER_KINDS:
            raise Unsupported(f"unknown layer kind {kind!r}; known: {sorted(LAYER_KINDS)}")
        missing = [key for key in LAYER_KINDS[kind] if key not in spec]
        if missing:
            raise ValueError(f"single_layer({kind!r}) needs {missing}; received {sorted(spec)}")
        return self.models.SingleLayer(self.models.layer(kind, spec))

    def transformer_block(self) -> Any:
        return self.nn.TransformerEncoderLayer(16, 4, 32, dropout=0.0, batch_first=True)

    def lazy_twin_mlp(self) -> Any:
        return self.nn.Sequential(self.nn.LazyLinear(8), self.nn.ReLU(), self.nn.LazyLinear(8), self.nn.ReLU(), self.nn.LazyLinear(8), self.nn.ReLU(),
                             self.nn.LazyLinear(1))

    def lazy_mlp(self) -> Any:
        return self.nn.Sequential(self.nn.LazyLinear(256), self.nn.ReLU(), self.nn.LazyLinear(10))

    def shared_mlp(self, shared: bool = True) -> Any:
        s = self.nn.Linear(8, 8)
        second = s if shared else self.nn.Linear(8, 8)
        return self.nn.Sequential(self.nn.Linear(20, 8), self.nn.ReLU(), s, self.nn.ReLU(), second, self.nn.ReLU(), self.nn.Linear(8, 1))

    def lenet(self) -> Any:
        return self.nn.Sequential(
            self.nn.Conv2d(1, 6, 5, padding=2), self.nn.ReLU(), self.nn.MaxPool2d(2),
            self.nn.Conv2d(6, 16, 5), self.nn.ReLU(), self.nn.MaxPool2d(2),
            self.nn.Flatten(),
            self.nn.Linear(400, 120), self.nn.ReLU(), self.nn.Linear(120, 84), self.nn.ReLU(), self.nn.Linear(84, 10),
        )  # fmt: skip

    def residual_block(self) -> Any:
        return self.models.ResidualBlock(4)

    def concat_pool_dense(self) -> Any:
        return self.models.ConcatPoolDense()

    def embed_rnn(self, cell: str) -> Any:
        if cell not in ("gru", "lstm"):
            raise Unsupported(f"embed_rnn supports 'gru' and 'lstm'; received {cell!r}")
        return self.models.EmbedRNN(cell)

    def variants(self, model: Any) -> list[tuple[str, Any]]:
        """The model wrapped by ``torch.compile`` (eager backend: traced by Dynamo, no C++ build)."""
        try:
            return [("torch.compile", self.torch.compile(model, backend="eager"))]
        except Exception:  # Dynamo unavailable on this Python/platform
            return []

    def forward(self, model: Any, *inputs: np.ndarray) -> np.ndarray:
        with self.running.inference(model):
            output = self.running.primary_output(model(*self.tensors.to_tensors(inputs, model)))
        return np.asarray(self.tensors.tensor_to_numpy(output), dtype=np.float32)

    def child_step(self, block: Any, part: str) -> Any:
        if isinstance(block, (self.nn.Sequential, self.nn.ModuleList)) and part.lstrip("-").isdigit():
            return block[int(part)]
        if isinstance(block, self.nn.ModuleDict):
            return block[part]
        return getattr(block, part)
