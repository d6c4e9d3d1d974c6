"""User-defined Gluon model classes for the conformance builders (defined once MXNet is imported).

Each ``hybrid_forward`` runs in NDArray mode and in NumPy mode (``npx.set_np()``), hybridized or
not: ``F`` is ``mxnet.ndarray`` or ``mxnet.symbol`` either way, and NumPy mode needs its operators
from ``F.np`` / ``F.npx``.

>>> CustomModel = custom_model_class(import_mxnet()); net = CustomModel(); net.initialize()  # doctest: +SKIP
"""

from __future__ import annotations

from functools import cache
from typing import Any


def _relu(F: Any, x: Any) -> Any:
    from mxnet.util import is_np_array

    return F.npx.relu(x) if is_np_array() else F.relu(x)


def _concat(F: Any, *xs: Any) -> Any:
    from mxnet.util import is_np_array

    return F.np.concatenate(list(xs), axis=1) if is_np_array() else F.concat(*xs, dim=1)


@cache
def custom_model_class(mx: Any) -> type:
    nn = mx.gluon.nn

    base: Any = nn.HybridBlock  # a class known only at run time

    class CustomModel(base):
        """Attribute, list and dict children; the list and dict registered as Gluon asks
        (``register_child``), so canonical names are ``encoder.0.*`` and ``heads.cls.*``."""

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
                h = _relu(F, layer(h))
            h = self.norm(h)
            return _concat(F, self.heads["cls"](h), self.heads["reg"](h))

    return CustomModel


@cache
def residual_class(mx: Any) -> type:
    nn = mx.gluon.nn

    base: Any = nn.HybridBlock

    class ResidualBlock(base):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2D(4, 3, padding=1, in_channels=4)
            self.bn1 = nn.BatchNorm(in_channels=4, epsilon=1e-5)
            self.conv2 = nn.Conv2D(4, 3, padding=1, in_channels=4)
            self.bn2 = nn.BatchNorm(in_channels=4, epsilon=1e-5)

        def hybrid_forward(self, F: Any, x: Any) -> Any:
            h = _relu(F, self.bn1(self.conv1(x)))
            return _relu(F, x + self.bn2(self.conv2(h)))

    return ResidualBlock


@cache
def concat_pool_dense_class(mx: Any) -> type:
    nn = mx.gluon.nn

    base: Any = nn.HybridBlock

    class ConcatPoolDense(base):
        """DenseNet-style: two 'same' convs, concatenated, globally averaged, then a dense head."""

        def __init__(self) -> None:
            super().__init__()
            self.branch_a = nn.Conv2D(4, 3, padding=1, in_channels=3)
            self.branch_b = nn.Conv2D(4, 3, padding=1, in_channels=3)
            self.pool = nn.GlobalAvgPool2D()
            self.head = nn.Dense(5, in_units=8)

        def hybrid_forward(self, F: Any, x: Any) -> Any:
            h = _concat(F, _relu(F, self.branch_a(x)), _relu(F, self.branch_b(x)))
            return self.head(self.pool(h))

    return ConcatPoolDense


@cache
def embed_rnn_class(mx: Any) -> type:
    nn, rnn = mx.gluon.nn, mx.gluon.rnn

    base: Any = nn.HybridBlock

    class EmbedRNN(base):
        def __init__(self, cell: str) -> None:
            super().__init__()
            self.embed = nn.Embedding(50, 8)
            cls = rnn.GRU if cell == "gru" else rnn.LSTM
            self.rnn = cls(16, layout="NTC", input_size=8)
            self.head = nn.Dense(3, in_units=16)

        def hybrid_forward(self, F: Any, x: Any) -> Any:
            from mxnet.util import is_np_array

            emb = self.embed(x)
            if not is_np_array():
                seq = self.rnn(emb)
                return self.head(F.squeeze(F.slice_axis(seq, axis=1, begin=-1, end=None), axis=1))
            # MXNet 1.9.1: a fused RNN layer inside a hybridized block makes its default begin state
            # with batch size 0, which NumPy-shape mode takes literally: pass zero states instead.
            h0 = F.np.expand_dims(F.np.tile(F.np.zeros_like(emb[:, 0, :1]), (1, 16)), 0)  # (1, N, 16)
            states = [h0] * len(self.rnn.state_info())
            seq, _ = self.rnn(emb, states)
            return self.head(seq[:, -1, :])

    return EmbedRNN
