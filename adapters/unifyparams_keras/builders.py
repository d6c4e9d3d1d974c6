"""Conformance model builders for Keras 3: the scenario models, built eagerly (shapes known).

Containers are ``keras.Sequential`` with an ``Input`` (so names are positions ``0.*``, ``2.*``),
activations are separate ``Activation`` layers so positions match PyTorch's ``Sequential``, and
normalization layers use PyTorch's ``eps`` (1e-5) so outputs match the NumPy references.
:meth:`KerasModels.forward` takes canonical channels-first inputs and returns canonical outputs,
transposing to and from Keras's channels-last layout around models that contain convolutions.

>>> kit = KerasModels()                                    # doctest: +SKIP
>>> [l.__class__.__name__ for l in kit.mlp().layers]       # doctest: +SKIP
['Dense', 'Activation', 'Dense']
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from unifyparams.conformance import ModelBuilders, Unsupported
from unifyparams.conformance.builders import PYTHON_KEY

from . import structure

EPS = 1e-5  # PyTorch's normalization eps (Keras defaults to 1e-3)


def _keras() -> Any:
    import keras

    return keras


@functools.cache
def _custom_model_class() -> type:
    keras = _keras()
    layers, ops = keras.layers, keras.ops

    class CustomModel(keras.Model):  # type: ignore[name-defined,misc]
        """``embed``, a list ``encoder``, ``norm`` and a dict ``heads``, in that order."""

        def __init__(self) -> None:
            super().__init__()
            self.embed = layers.Embedding(50, 8)
            self.encoder = [layers.Dense(8), layers.Dense(8)]
            self.norm = layers.LayerNormalization(epsilon=EPS)
            self.heads = {"cls": layers.Dense(3), "reg": layers.Dense(1)}

        def call(self, tokens: Any) -> Any:
            x = ops.mean(self.embed(tokens), axis=1)
            for layer in self.encoder:
                x = ops.relu(layer(x))
            x = self.norm(x)
            return ops.concatenate([self.heads["cls"](x), self.heads["reg"](x)], axis=-1)

    return CustomModel


@functools.cache
def _residual_block_class() -> type:
    keras = _keras()
    layers, ops = keras.layers, keras.ops

    class ResidualBlock(keras.Model):  # type: ignore[name-defined,misc]
        """``relu(x + bn2(conv2(relu(bn1(conv1(x))))))`` on channels-last input."""

        def __init__(self) -> None:
            super().__init__()
            self.conv1 = layers.Conv2D(4, 3, padding="same")
            self.bn1 = layers.BatchNormalization(epsilon=EPS, momentum=0.9)
            self.conv2 = layers.Conv2D(4, 3, padding="same")
            self.bn2 = layers.BatchNormalization(epsilon=EPS, momentum=0.9)

        def call(self, x: Any, training: Any = None) -> Any:
            y = ops.relu(self.bn1(self.conv1(x), training=training))
            y = self.bn2(self.conv2(y), training=training)
            return ops.relu(x + y)

    return ResidualBlock


@functools.cache
def _embed_rnn_class() -> type:
    keras = _keras()
    layers = keras.layers

    class EmbedRNN(keras.Model):  # type: ignore[name-defined,misc]
        """``embed`` -> ``rnn`` (GRU or LSTM) -> ``head`` on the last time step."""

        def __init__(self, cell: str) -> None:
            super().__init__()
            self.embed = layers.Embedding(50, 8)
            self.rnn = layers.GRU(16, reset_after=True) if cell == "gru" else layers.LSTM(16)
            self.head = layers.Dense(3)

        def call(self, tokens: Any) -> Any:
            return self.head(self.rnn(self.embed(tokens)))

    return EmbedRNN


@functools.cache
def _transformer_block_class() -> type:
    keras = _keras()
    layers, ops = keras.layers, keras.ops

    class TransformerBlock(keras.Model):  # type: ignore[name-defined,misc]
        """Post-norm encoder block with the attribute names of PyTorch's TransformerEncoderLayer."""

        def __init__(self) -> None:
            super().__init__()
            self.self_attn = layers.MultiHeadAttention(4, 4)
            self.linear1 = layers.Dense(32)
            self.linear2 = layers.Dense(16)
            self.norm1 = layers.LayerNormalization(epsilon=EPS)
            self.norm2 = layers.LayerNormalization(epsilon=EPS)

        def call(self, x: Any) -> Any:
            x = self.norm1(x + self.self_attn(x, x))
            return self.norm2(x + self.linear2(ops.relu(self.linear1(x))))

    return TransformerBlock


def _classes() -> dict[str, type]:
    """User-defined model classes, created once Keras is imported (this module must not import it)."""
    return {
        "custom": _custom_model_class(),
        "residual": _residual_block_class(),
        "embed_rnn": _embed_rnn_class(),
        "transformer": _transformer_block_class(),
    }


class KerasModels(ModelBuilders):
    """The conformance scenarios' models, in Keras 3."""

    backend = "keras"
    #: Keras reads ``KERAS_BACKEND`` once, at import: one matrix row per Keras backend. JAX needs
    #: NumPy 2, which MXNet cannot share, so ``keras[jax]`` runs in its own environment's Python
    #: (``.venv-jax``, made by ``bash .ci/setup-jax``; "not installed" where it is missing).
    rows = {
        "keras[tensorflow]": {"KERAS_BACKEND": "tensorflow"},
        "keras[torch]": {"KERAS_BACKEND": "torch"},
        "keras[jax]": {"KERAS_BACKEND": "jax", PYTHON_KEY: ".venv-jax/bin/python"},
    }

    @classmethod
    def row_label(cls) -> str:
        """``keras[<the backend Keras runs on>]``."""
        return f"keras[{_keras().backend.backend()}]"

    def _sequential(self, input_shape: tuple[int | None, ...], *layers: Any, dtype: str = "float32") -> Any:
        keras = _keras()
        return keras.Sequential([keras.Input(input_shape, dtype=dtype), *layers])

    def mlp(self, in_features: int = 20, hidden: int = 256, out_features: int = 10) -> Any:
        L = _keras().layers
        return self._sequential((in_features,), L.Dense(hidden), L.Activation("relu"), L.Dense(out_features))

    def transformer_block(self) -> Any:
        model = _classes()["transformer"]()
        model(np.zeros((1, 5, 16), dtype="float32"))
        return model

    def lazy_twin_mlp(self) -> Any:
        L = _keras().layers
        return _keras().Sequential([L.Dense(8), L.Activation("relu"), L.Dense(8), L.Activation("relu"), L.Dense(8),
                                    L.Activation("relu"), L.Dense(1)])

    def lazy_mlp(self) -> Any:
        L = _keras().layers
        return _keras().Sequential([L.Dense(256), L.Activation("relu"), L.Dense(10)])  # no Input: unbuilt

    def nested_blocks(self) -> Any:
        keras = _keras()
        L = keras.layers

        def block1() -> Any:
            return keras.Sequential([L.Dense(8), L.Activation("relu"), L.Dense(4), L.Activation("relu")])

        block2 = keras.Sequential([block1() for _ in range(4)])
        return self._sequential((4,), block2, L.Dense(1))

    def custom_model(self) -> Any:
        model = _classes()["custom"]()
        model(np.zeros((1, 5), dtype="int32"))
        return model

    def single_layer(self, kind: str, **spec: int) -> Any:
        L = _keras().layers
        if kind == "dense":
            return self._sequential((spec["in_features"],), L.Dense(spec["out_features"]))
        if kind == "conv1d":
            return self._sequential((None, spec["in_channels"]), L.Conv1D(spec["out_channels"], spec["kernel_size"]))
        if kind == "conv2d":
            layer = L.Conv2D(spec["out_channels"], spec["kernel_size"])
            return self._sequential((None, None, spec["in_channels"]), layer)
        if kind == "batchnorm":
            return self._sequential((spec["num_features"],), L.BatchNormalization(epsilon=EPS, momentum=0.9))
        if kind == "layernorm":
            return self._sequential((spec["num_features"],), L.LayerNormalization(epsilon=EPS))
        if kind == "embedding":
            layer = L.Embedding(spec["num_embeddings"], spec["embedding_dim"])
            return self._sequential((None,), layer, dtype="int32")
        if kind == "lstm":
            return self._sequential((None, spec["input_size"]), L.LSTM(spec["hidden_size"], return_sequences=True))
        if kind == "gru":
            layer = L.GRU(spec["hidden_size"], return_sequences=True, reset_after=True)
            return self._sequential((None, spec["input_size"]), layer)
        raise Unsupported(f"Keras builders have no single layer of kind {kind!r}")

    def functional_model(self) -> Any:
        keras = _keras()
        inputs = keras.Input((6,))
        x = keras.layers.Dense(5)(inputs)
        x = keras.layers.Activation("relu")(x)
        return keras.Model(inputs, keras.layers.Dense(2)(x))

    def shared_mlp(self, shared: bool = True) -> Any:
        L = _keras().layers
        s = L.Dense(8)
        other = s if shared else L.Dense(8)
        return self._sequential(
            (20,), L.Dense(8), L.Activation("relu"), s, L.Activation("relu"), other, L.Activation("relu"), L.Dense(1)
        )

    def lenet(self) -> Any:
        L = _keras().layers
        return self._sequential(
            (28, 28, 1),
            L.Conv2D(6, 5, padding="same"), L.Activation("relu"), L.MaxPooling2D(2),
            L.Conv2D(16, 5), L.Activation("relu"), L.MaxPooling2D(2),
            L.Flatten(),
            L.Dense(120), L.Activation("relu"), L.Dense(84), L.Activation("relu"), L.Dense(10),
        )

    def concat_pool_dense(self) -> Any:
        keras = _keras()
        L = keras.layers
        x = keras.Input((8, 8, 3))
        a = L.Conv2D(4, 3, padding="same", activation="relu")(x)
        b = L.Conv2D(4, 3, padding="same", activation="relu")(x)
        pooled = L.GlobalAveragePooling2D()(L.Concatenate()([a, b]))
        return keras.Model(x, L.Dense(5)(pooled))

    def residual_block(self) -> Any:
        model = _classes()["residual"]()
        model(np.zeros((1, 8, 8, 4), dtype="float32"))
        return model

    def embed_rnn(self, cell: str) -> Any:
        if cell not in ("gru", "lstm"):
            raise Unsupported(f"embed_rnn cell must be 'gru' or 'lstm'; received cell={cell!r}")
        model = _classes()["embed_rnn"](cell)
        model(np.zeros((1, 5), dtype="int32"))
        return model

    # --- running -------------------------------------------------------------------------------
    def _has_conv(self, model: Any) -> bool:
        conv = {"BaseConv", "BaseConvTranspose", "BaseDepthwiseConv", "BaseSeparableConv"}
        return any(conv & set(structure.mro_names(layer)) for layer in model._flatten_layers(include_self=True))

    def forward(self, model: Any, *inputs: np.ndarray) -> np.ndarray:
        """Inference-mode output (float32, canonical layout) for canonical-layout NumPy inputs."""
        keras = _keras()
        channels_first = self._has_conv(model)
        native = []
        for x in inputs:
            x = np.asarray(x)
            if channels_first and x.ndim >= 3:
                x = np.moveaxis(x, 1, -1)  # (N, C, *spatial) -> (N, *spatial, C)
            if x.dtype.kind == "f":
                x = x.astype(np.float32)
            native.append(np.ascontiguousarray(x))
        out = model(*native, training=False)
        result = np.asarray(keras.ops.convert_to_numpy(out), dtype=np.float32)
        if channels_first and result.ndim >= 3:
            result = np.moveaxis(result, -1, 1)
        return result

    def child_step(self, block: Any, part: str) -> Any:
        """A position for ``Sequential``/functional models, else an attribute or container item."""
        return structure.child(block, part, structure.KerasTypes.load())
