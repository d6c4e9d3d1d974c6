"""Conformance model builders for PyTorch: the models the scenarios check, written natively.

Canonical names are fixed by :class:`~unifyparams.conformance.builders.ModelBuilders`'s
docstrings; in PyTorch they are simply the attribute paths of these modules.

>>> kit = TorchModels()
>>> import unifyparams as up
>>> list(up.params(kit.mlp()))
['0.weight', '0.bias', '2.weight', '2.bias']
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from unifyparams.conformance.builders import LAYER_KINDS, ModelBuilders
from unifyparams.conformance.scenario import Unsupported

from .running import inference, primary_output
from .tensors import tensor_to_numpy, to_tensors


class SingleLayer(nn.Sequential):
    """A Sequential of one layer (child ``"0"``) that returns a recurrent layer's output sequence only."""

    def __init__(self, layer: nn.Module):
        super().__init__(layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return primary_output(self[0](x))


class CustomModel(nn.Module):
    """A user-defined model: attribute, list (``encoder``) and dict (``heads``) children."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(50, 8)
        self.encoder = nn.ModuleList([nn.Linear(8, 8), nn.Linear(8, 8)])
        self.norm = nn.LayerNorm(8)
        self.heads = nn.ModuleDict({"cls": nn.Linear(8, 3), "reg": nn.Linear(8, 1)})

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.embed(tokens).mean(dim=1)
        for layer in self.encoder:
            h = torch.relu(layer(h))
        h = self.norm(h)
        return torch.cat([self.heads["cls"](h), self.heads["reg"](h)], dim=1)


class ResidualBlock(nn.Module):
    """``relu(x + bn2(conv2(relu(bn1(conv1(x))))))`` on 4 channels."""

    def __init__(self, channels: int = 4):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(channels, eps=1e-5)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(channels, eps=1e-5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(x + self.bn2(self.conv2(h)))


class ConcatPoolDense(nn.Module):
    """DenseNet-style: two 'same' convs, concatenated, globally averaged, then a dense head."""

    def __init__(self) -> None:
        super().__init__()
        self.branch_a = nn.Conv2d(3, 4, 3, padding=1)
        self.branch_b = nn.Conv2d(3, 4, 3, padding=1)
        self.head = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.cat([torch.relu(self.branch_a(x)), torch.relu(self.branch_b(x))], dim=1)
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(h, 1), 1))


class EmbedRNN(nn.Module):
    """Embedding -> GRU/LSTM (batch-first) -> Dense on the last time step."""

    def __init__(self, cell: str):
        super().__init__()
        rnn_cls = {"gru": nn.GRU, "lstm": nn.LSTM}[cell]
        self.embed = nn.Embedding(50, 8)
        self.rnn = rnn_cls(8, 16, batch_first=True)
        self.head = nn.Linear(16, 3)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        sequence, _ = self.rnn(self.embed(tokens))
        return self.head(sequence[:, -1])


def _layer(kind: str, spec: dict[str, int]) -> nn.Module:
    if kind == "dense":
        return nn.Linear(spec["in_features"], spec["out_features"])
    if kind in ("conv1d", "conv2d"):
        conv = nn.Conv1d if kind == "conv1d" else nn.Conv2d
        return conv(spec["in_channels"], spec["out_channels"], spec["kernel_size"], stride=1, padding=0)
    if kind == "batchnorm":
        return nn.BatchNorm1d(spec["num_features"])
    if kind == "layernorm":
        return nn.LayerNorm(spec["num_features"])
    if kind == "embedding":
        return nn.Embedding(spec["num_embeddings"], spec["embedding_dim"])
    rnn = nn.LSTM if kind == "lstm" else nn.GRU
    return rnn(spec["input_size"], spec["hidden_size"], num_layers=1, batch_first=True, bidirectional=False)


class TorchModels(ModelBuilders):
    """The conformance models in PyTorch (``functional_model`` stays Unsupported: torch has no such API)."""

    backend = "torch"

    def mlp(self, in_features: int = 20, hidden: int = 256, out_features: int = 10) -> nn.Module:
        return nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, out_features))

    def nested_blocks(self) -> nn.Module:
        def block1() -> nn.Module:
            return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 4), nn.ReLU())

        def block2() -> nn.Module:
            return nn.Sequential(*[block1() for _ in range(4)])

        return nn.Sequential(block2(), nn.Linear(4, 1))

    def custom_model(self) -> nn.Module:
        return CustomModel()

    def single_layer(self, kind: str, **spec: int) -> nn.Module:
        if kind not in LAYER_KINDS:
            raise Unsupported(f"unknown layer kind {kind!r}; known: {sorted(LAYER_KINDS)}")
        missing = [key for key in LAYER_KINDS[kind] if key not in spec]
        if missing:
            raise ValueError(f"single_layer({kind!r}) needs {missing}; received {sorted(spec)}")
        return SingleLayer(_layer(kind, spec))

    def transformer_block(self) -> nn.Module:
        return nn.TransformerEncoderLayer(16, 4, 32, dropout=0.0, batch_first=True)

    def lazy_twin_mlp(self) -> nn.Module:
        return nn.Sequential(nn.LazyLinear(8), nn.ReLU(), nn.LazyLinear(8), nn.ReLU(), nn.LazyLinear(8), nn.ReLU(),
                             nn.LazyLinear(1))

    def lazy_mlp(self) -> nn.Module:
        return nn.Sequential(nn.LazyLinear(256), nn.ReLU(), nn.LazyLinear(10))

    def shared_mlp(self, shared: bool = True) -> nn.Module:
        s = nn.Linear(8, 8)
        second = s if shared else nn.Linear(8, 8)
        return nn.Sequential(nn.Linear(20, 8), nn.ReLU(), s, nn.ReLU(), second, nn.ReLU(), nn.Linear(8, 1))

    def lenet(self) -> nn.Module:
        return nn.Sequential(
            nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10),
        )  # fmt: skip

    def residual_block(self) -> nn.Module:
        return ResidualBlock(4)

    def concat_pool_dense(self) -> nn.Module:
        return ConcatPoolDense()

    def embed_rnn(self, cell: str) -> nn.Module:
        if cell not in ("gru", "lstm"):
            raise Unsupported(f"embed_rnn supports 'gru' and 'lstm'; received {cell!r}")
        return EmbedRNN(cell)

    def variants(self, model: Any) -> list[tuple[str, Any]]:
        """The model wrapped by ``torch.compile`` (eager backend: traced by Dynamo, no C++ build)."""
        try:
            return [("torch.compile", torch.compile(model, backend="eager"))]
        except Exception:  # Dynamo unavailable on this Python/platform
            return []

    def forward(self, model: Any, *inputs: np.ndarray) -> np.ndarray:
        with inference(model):
            output = primary_output(model(*to_tensors(inputs, model)))
        return np.asarray(tensor_to_numpy(output), dtype=np.float32)

    def child_step(self, block: Any, part: str) -> Any:
        if isinstance(block, (nn.Sequential, nn.ModuleList)) and part.lstrip("-").isdigit():
            return block[int(part)]
        if isinstance(block, nn.ModuleDict):
            return block[part]
        return getattr(block, part)
