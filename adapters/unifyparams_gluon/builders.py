"""The conformance scenarios' models, in MXNet Gluon 1.9.1 (see unifyparams.conformance.builders).

Shapes are given up front (``in_units``, ``in_channels``) so nothing waits for data, except in
:meth:`GluonModels.lazy_mlp`. Normalization layers use eps 1e-5, as PyTorch does. Every model is
written to run in NDArray mode and in Gluon's NumPy mode, hybridized or not, and remembers how it
was built, so :meth:`GluonModels.variants` can build its other forms.

>>> kit = GluonModels()                                          # doctest: +SKIP
>>> net = kit.mlp(); [label for label, _ in kit.variants(net)]   # doctest: +SKIP
['hybridized', 'numpy mode', 'numpy mode, hybridized']
"""

from __future__ import annotations

from typing import Any

import numpy as np

import unifyparams as up
from unifyparams.conformance import ModelBuilders, Unsupported

from . import running, structure
from .compat import import_mxnet
from .models import concat_pool_dense_class, custom_model_class, embed_rnn_class, residual_class

#: Attribute holding ``(builder method name, kwargs)`` on every model the builders return.
RECIPE = "_unifyparams_recipe"


class GluonModels(ModelBuilders):
    backend = "gluon"

    def __init__(self) -> None:
        self.mx = import_mxnet()
        self.nn = self.mx.gluon.nn
        self.rnn = self.mx.gluon.rnn

    # --- helpers -------------------------------------------------------------------------------
    def _seq(self, *blocks: Any, initialize: bool = True) -> Any:
        net = self.nn.HybridSequential()
        net.add(*blocks)
        if initialize:
            net.initialize()
        return net

    def _relu(self) -> Any:
        return self.nn.Activation("relu")

    @staticmethod
    def _tag(model: Any, method: str, **kwargs: Any) -> Any:
        object.__setattr__(model, RECIPE, (method, kwargs))  # a plain attribute, not a child
        return model

    # --- models --------------------------------------------------------------------------------
    def mlp(self, in_features: int = 20, hidden: int = 256, out_features: int = 10) -> Any:
        nn = self.nn
        net = self._seq(nn.Dense(hidden, in_units=in_features), self._relu(), nn.Dense(out_features, in_units=hidden))
        return self._tag(net, "mlp", in_features=in_features, hidden=hidden, out_features=out_features)

    def lazy_twin_mlp(self) -> Any:
        nn = self.nn
        return self._seq(nn.Dense(8), self._relu(), nn.Dense(8), self._relu(), nn.Dense(8), self._relu(), nn.Dense(1))

    def lazy_mlp(self) -> Any:
        """Deferred initialization: ``initialize()`` is called, the input size is not given."""
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
        return self._tag(self._seq(block2, nn.Dense(1, in_units=4)), "nested_blocks")

    def custom_model(self) -> Any:
        model = custom_model_class(self.mx)()
        model.initialize()
        return self._tag(model, "custom_model")

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
        return self._tag(self._seq(layer), "single_layer", kind=kind, **spec)

    def shared_mlp(self, shared: bool = True) -> Any:
        """Positions 2 and 4 share through Gluon's ``params=`` (one Parameter object per tensor)."""
        nn = self.nn
        first = nn.Dense(8, in_units=8)
        second = nn.Dense(8, in_units=8, params=first.params) if shared else nn.Dense(8, in_units=8)
        net = self._seq(
            nn.Dense(8, in_units=20), self._relu(), first, self._relu(), second, self._relu(), nn.Dense(1, in_units=8)
        )
        return self._tag(net, "shared_mlp", shared=shared)

    def lenet(self) -> Any:
        nn = self.nn
        net = self._seq(
            nn.Conv2D(6, 5, padding=2, in_channels=1), self._relu(), nn.MaxPool2D(2),
            nn.Conv2D(16, 5, in_channels=6), self._relu(), nn.MaxPool2D(2), nn.Flatten(),
            nn.Dense(120, in_units=400), self._relu(), nn.Dense(84, in_units=120), self._relu(),
            nn.Dense(10, in_units=84),
        )
        return self._tag(net, "lenet")

    def concat_pool_dense(self) -> Any:
        model = concat_pool_dense_class(self.mx)()
        model.initialize()
        return self._tag(model, "concat_pool_dense")

    def residual_block(self) -> Any:
        model = residual_class(self.mx)()
        model.initialize()
        return self._tag(model, "residual_block")

    def embed_rnn(self, cell: str) -> Any:
        model = embed_rnn_class(self.mx)(cell)
        model.initialize()
        return self._tag(model, "embed_rnn", cell=cell)

    # --- other forms, running, reaching children -----------------------------------------------
    def variants(self, model: Any) -> list[tuple[str, Any]]:
        """The same architecture hybridized, built in NumPy mode, and both; values copied from
        ``model``. Only models these builders made can be rebuilt (others: no variants)."""
        recipe = getattr(model, RECIPE, None)
        if recipe is None:
            return []
        method, kwargs = recipe
        state = up.params(model).numpy(copy=True)
        forms = []
        kinds = [("hybridized", False, True), ("numpy mode", True, False), ("numpy mode, hybridized", True, True)]
        if kwargs.get("kind") in ("lstm", "gru"):
            # MXNet 1.9.1: a fused RNN layer inside a hybridized container builds its default begin
            # state with batch size 0, which NumPy-shape mode takes literally (shape error); the
            # container cannot pass states, so this form does not run (embed_rnn passes states).
            kinds.pop()
        for label, numpy_mode, hybridize in kinds:
            with running.numpy_mode(numpy_mode):
                twin = getattr(self, method)(**kwargs)
            up.params(twin).load(state)
            if hybridize:
                twin.hybridize()
            forms.append((label, twin))
        return forms

    def forward(self, model: Any, *inputs: np.ndarray) -> np.ndarray:
        """Inference mode (BatchNorm uses its running statistics), nothing recorded, in the array
        mode the model was built in."""
        with running.model_mode(model):
            args = running.as_inputs(model, inputs)
            with self.mx.autograd.pause(train_mode=False):
                out = running.primary_output(model(*args))
            return np.asarray(out.asnumpy(), dtype=np.float32)

    def child_step(self, block: Any, part: str) -> Any:
        """A registered child, or a list/dict attribute (then its item), as the user reaches it."""
        if isinstance(block, (list, tuple)):
            return block[int(part)]
        if isinstance(block, dict):
            return block[part]
        value = vars(block).get(part)
        if isinstance(value, (list, tuple, dict)):
            return value
        return structure.child(block, part)
