"""The conformance scenarios' models, in MXNet Gluon 1.9.1 (see unifyparams.conformance.builders).

Shapes are given up front (``in_units``, ``in_channels``) so nothing waits for data, except in
:meth:`GluonModels.lazy_mlp`. Normalization layers use eps 1e-5, as PyTorch does.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import unifyparams as up
from unifyparams.conformance import ModelBuilders, Unsupported

from . import structure
from .compat import import_mxnet

NP_MODE = "_unifyparams_np_mode"


class GluonModels(ModelBuilders):
    backend = "gluon"

    def __init__(self) -> None:
        self.mx = import_mxnet()
        self.nn = self.mx.gluon.nn
        self.rnn = self.mx.gluon.rnn

    def _seq(self, *blocks: Any) -> Any:
        net = self.nn.HybridSequential()
        net.add(*blocks)
        net.initialize()
        return net

    def _relu(self) -> Any:
        return self.nn.Activation("relu")

    def mlp(self, in_features: int = 20, hidden: int = 256, out_features: int = 10) -> Any:
        nn = self.nn
        return self._seq(nn.Dense(hidden, in_units=in_features), self._relu(), nn.Dense(out_features, in_units=hidden))

    def lazy_mlp(self) -> Any:
        return self._seq(self.nn.Dense(256), self._relu(), self.nn.Dense(10))

    def nested_blocks(self) -> Any:
        nn = self.nn

        def block1() -> Any:
            net = nn.HybridSequential()
            net.add(nn.Dense(8, in_units=4), self._relu(), nn.Dense(4, in_units=8), self._relu())
            return net

        block2 = nn.HybridSequential()
        for _ in range(4):
            block2.add(block1())
        return self._seq(block2, nn.Dense(1, in_units=4))

    def custom_model(self) -> Any:
        model = _custom_class(self.mx)()
        model.initialize()
        return model

    def single_layer(self, kind: str, **spec: int) -> Any:
        nn, rnn = self.nn, self.rnn
        if kind == "dense":
            layer = nn.Dense(spec["out_features"], in_units=spec["in_features"])
        elif kind in ("conv1d", "conv2d"):
            cls = nn.Conv1D if kind == "conv1d" else nn.Conv2D
            layer = cls(spec["out_channels"], spec["kernel_size"], in_channels=spec["in_channels"])
        elif kind == "batchnorm":
            layer = nn.BatchNorm(in_channels=spec["num_features"], epsilon=1e-5)
        elif kind == "layernorm":
            layer = nn.LayerNorm(in_channels=spec["num_features"], epsilon=1e-5)
        elif kind == "embedding":
            layer = nn.Embedding(spec["num_embeddings"], spec["embedding_dim"])
        elif kind in ("lstm", "gru"):
            cls = rnn.LSTM if kind == "lstm" else rnn.GRU
            layer = cls(spec["hidden_size"], layout="NTC", input_size=spec["input_size"])
        else:
            raise Unsupported(f"unknown layer kind {kind!r}")
        return self._seq(layer)

    def shared_mlp(self, shared: bool = True) -> Any:
        nn = self.nn
        first = nn.Dense(8, in_units=8)
        second = nn.Dense(8, in_units=8, params=first.params) if shared else nn.Dense(8, in_units=8)
        return self._seq(nn.Dense(8, in_units=20), self._relu(), first, self._relu(), second, self._relu(),
                         nn.Dense(1, in_units=8))

    def lenet(self) -> Any:
        nn = self.nn
        return self._seq(
            nn.Conv2D(6, 5, padding=2, in_channels=1), self._relu(), nn.MaxPool2D(2),
            nn.Conv2D(16, 5, in_channels=6), self._relu(), nn.MaxPool2D(2), nn.Flatten(),
            nn.Dense(120, in_units=400), self._relu(), nn.Dense(84, in_units=120), self._relu(),
            nn.Dense(10, in_units=84),
        )

    def residual_block(self) -> Any:
        model = _residual_class(self.mx)()
        model.initialize()
        return model

    def embed_rnn(self, cell: str) -> Any:
        model = _embed_rnn_class(self.mx)(cell)
        model.initialize()
        return model

    def variants(self, model: Any) -> list[tuple[str, Any]]:
        """The same MLP hybridized, and built in Gluon's NumPy mode; values copied from ``model``."""
        state = up.params(model).numpy(copy=True)
        hybrid = self.mlp()
        up.params(hybrid).load(state)
        hybrid.hybridize()
        self.mx.npx.set_np()
        try:
            np_model = self.mlp()
        finally:
            self.mx.npx.reset_np()
        setattr(np_model, NP_MODE, True)
        up.params(np_model).load(state)
        return [("hybridized", hybrid), ("numpy mode", np_model)]

    def forward(self, model: Any, *inputs: np.ndarray) -> np.ndarray:
        np_mode = getattr(model, NP_MODE, False)
        if np_mode:
            self.mx.npx.set_np()
        try:
            make = self.mx.np.array if np_mode else self.mx.nd.array
            args = [make(np.asarray(x), dtype=np.asarray(x).dtype) for x in inputs]
            with self.mx.autograd.pause(train_mode=False):
                out = model(*args)
            if isinstance(out, (list, tuple)):
                out = out[0]
            return out.asnumpy().astype(np.float32)
        finally:
            if np_mode:
                self.mx.npx.reset_np()

    def child_step(self, block: Any, part: str) -> Any:
        """A registered child, or a list/dict attribute (then its item), as the user reaches it."""
        if isinstance(block, list):
            return block[int(part)]
        if isinstance(block, dict):
            return block[part]
        value = vars(block).get(part)
        if isinstance(value, (list, dict)):
            return value
        return structure.child(block, part)


def _custom_class(mx: Any) -> type:
    nn = mx.gluon.nn

    class CustomModel(nn.HybridBlock):
        """Attribute, list and dict children, registered as Gluon asks (register_child)."""

        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(50, 8)
            self.encoder = [nn.Dense(8, in_units=8), nn.Dense(8, in_units=8)]
            for i, layer in enumerate(self.encoder):
                self.register_child(layer, f"encoder{i}")
            self.norm = nn.LayerNorm(in_channels=8, epsilon=1e-5)
            self.heads = {"cls": nn.Dense(3, in_units=8), "reg": nn.Dense(1, in_units=8)}
            for key, layer in self.heads.items():
                self.register_child(layer, f"head_{key}")

        def hybrid_forward(self, F: Any, x: Any) -> Any:
            h = self.embed(x).mean(axis=1)
            for layer in self.encoder:
                h = F.relu(layer(h))
            h = self.norm(h)
            return F.concat(self.heads["cls"](h), self.heads["reg"](h), dim=1)

    return CustomModel


def _residual_class(mx: Any) -> type:
    nn = mx.gluon.nn

    class ResidualBlock(nn.HybridBlock):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2D(4, 3, padding=1, in_channels=4)
            self.bn1 = nn.BatchNorm(in_channels=4, epsilon=1e-5)
            self.conv2 = nn.Conv2D(4, 3, padding=1, in_channels=4)
            self.bn2 = nn.BatchNorm(in_channels=4, epsilon=1e-5)

        def hybrid_forward(self, F: Any, x: Any) -> Any:
            h = F.relu(self.bn1(self.conv1(x)))
            return F.relu(x + self.bn2(self.conv2(h)))

    return ResidualBlock


def _embed_rnn_class(mx: Any) -> type:
    nn, rnn = mx.gluon.nn, mx.gluon.rnn

    class EmbedRNN(nn.HybridBlock):
        def __init__(self, cell: str) -> None:
            super().__init__()
            self.embed = nn.Embedding(50, 8)
            cls = rnn.GRU if cell == "gru" else rnn.LSTM
            self.rnn = cls(16, layout="NTC", input_size=8)
            self.head = nn.Dense(3, in_units=16)

        def hybrid_forward(self, F: Any, x: Any) -> Any:
            seq = self.rnn(self.embed(x))
            return self.head(F.squeeze(F.slice_axis(seq, axis=1, begin=-1, end=None), axis=1))

    return EmbedRNN
