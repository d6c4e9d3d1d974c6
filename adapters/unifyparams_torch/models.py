"""User-defined PyTorch model classes for the conformance builders (imported with torch).

>>> net = CustomModel()                                  # doctest: +SKIP
>>> sorted(dict(net.named_parameters()))[:2]             # doctest: +SKIP
['embed.weight', 'encoder.0.bias']
"""

from __future__ import annotations

import torch
from torch import nn

from .running import primary_output


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


def layer(kind: str, spec: dict[str, int]) -> nn.Module:
    """One native layer of ``kind`` (see :data:`unifyparams.conformance.LAYER_KINDS`)."""
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
