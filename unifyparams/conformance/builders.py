"""What an adapter supplies so conformance scenarios can build and run models in its framework.

Every builder returns a *native* model whose canonical parameter names are fixed by the
docstring, so one scenario can check the same names in every backend. Inputs and outputs of
:meth:`ModelBuilders.forward` are NumPy arrays in the canonical layout: channels-first for
convolutions (N, C, L) / (N, C, H, W), batch-first (N, T, F) for recurrent layers. An adapter
whose framework is channels-last transposes inside ``forward``.

A builder that cannot express a model raises :class:`~unifyparams.conformance.Unsupported`
with the reason, and scenarios that need it are reported as skipped.

Builders are test code, not runtime code: they are found through the ``unifyparams.builders``
entry-point group (``torch = "unifyparams_torch.builders:TorchModels"``), never through the
adapter class, and they declare the suite's per-backend facts: the matrix rows (:attr:`rows`)
and the scenarios known to fail (:attr:`known_failures`).
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from .checks import Unsupported

#: The key of a row's environment (:attr:`ModelBuilders.rows`) that names the Python interpreter
#: the row runs in instead of the runner's own: an absolute path, or one relative to the current
#: folder or to the source checkout holding ``unifyparams`` (the repository root).
PYTHON_KEY = "UNIFYPARAMS_PYTHON"

#: Layer kinds :meth:`ModelBuilders.single_layer` must build, with their spec keys.
LAYER_KINDS: dict[str, tuple[str, ...]] = {
    "dense": ("in_features", "out_features"),
    "conv1d": ("in_channels", "out_channels", "kernel_size"),
    "conv2d": ("in_channels", "out_channels", "kernel_size"),
    "batchnorm": ("num_features",),
    "layernorm": ("num_features",),
    "embedding": ("num_embeddings", "embedding_dim"),
    "lstm": ("input_size", "hidden_size"),
    "gru": ("input_size", "hidden_size"),
}


class ModelBuilders(ABC):
    """Per-framework model factory used by the conformance scenarios."""

    #: Backend name, equal to the adapter's ``name``.
    backend: str = ""
    #: Rows of the conformance matrix, ``{row label: environment}``; each row runs in its own
    #: process with that environment added. Empty: one row named :attr:`backend`. A row whose
    #: framework cannot live in the runner's environment names its own interpreter under the
    #: reserved key :data:`PYTHON_KEY` (``"UNIFYPARAMS_PYTHON": ".venv-jax/bin/python"``): that
    #: key is not passed on as a variable, the row runs in that Python, and when no such file
    #: exists the row's scenarios are reported skipped as "not installed".
    rows: ClassVar[Mapping[str, Mapping[str, str]]] = {}
    #: Scenarios known to fail here, each an xfail(strict=True): ``{scenario id: reason}``, or the
    #: path of a file of ``scenario.id  # reason`` lines (relative: next to the builders' module).
    known_failures: ClassVar[Mapping[str, str] | str | os.PathLike[str]] = {}

    @classmethod
    def matrix_rows(cls) -> dict[str, dict[str, str]]:
        """``{row label: environment}`` for this backend (see :attr:`rows`).

        >>> class Demo(ModelBuilders):
        ...     backend = "demo"
        >>> Demo.matrix_rows()
        {'demo': {}}
        """
        return {label: dict(env) for label, env in cls.rows.items()} or {cls.backend: {}}

    @classmethod
    def row_label(cls) -> str:
        """The matrix row this process runs: the row whose environment is in force (else the first).

        >>> class Demo(ModelBuilders):
        ...     backend = "demo"
        ...     rows = {"demo[a]": {"DEMO_MODE": "a"}, "demo[b]": {"DEMO_MODE": "b"}}
        >>> Demo.row_label()
        'demo[a]'
        """
        rows = cls.matrix_rows()
        for label, env in rows.items():
            env = {k: v for k, v in env.items() if k != PYTHON_KEY}  # an interpreter, not a variable
            if env and all(os.environ.get(k) == v for k, v in env.items()):
                return label
        return next(iter(rows))

    @abstractmethod
    def mlp(self, in_features: int = 20, hidden: int = 256, out_features: int = 10) -> Any:
        """Sequential container: ``[Dense(in->hidden), ReLU, Dense(hidden->out)]``, shapes known.

        Canonical names: ``0.weight (hidden, in)``, ``0.bias``, ``2.weight (out, hidden)``, ``2.bias``.
        """

    @abstractmethod
    def nested_blocks(self) -> Any:
        """The "block of blocks" network, input features 4, shapes known.

        ``block1() = Sequential[Dense(4->8), ReLU, Dense(8->4), ReLU]``;
        ``block2() = Sequential[block1() for i in range(4)]``;
        ``net = Sequential[block2(), Dense(4->1)]``.
        Canonical names: ``0.{i}.0.weight (8, 4)``, ``0.{i}.0.bias``, ``0.{i}.2.weight (4, 8)``,
        ``0.{i}.2.bias`` for i in 0..3, then ``1.weight (1, 4)``, ``1.bias``.
        """

    @abstractmethod
    def custom_model(self) -> Any:
        """A user-defined model class (framework's subclassing API) with, in this order:

        - attribute ``embed``: Embedding(50, 8)                      -> ``embed.weight (50, 8)``
        - attribute ``encoder``: a *list* of two Dense(8->8) layers  -> ``encoder.0.weight``, ``encoder.1.weight`` (+ biases)
        - attribute ``norm``: LayerNorm(8)                           -> ``norm.weight``, ``norm.bias``
        - attribute ``heads``: a *dict* {"cls": Dense(8->3), "reg": Dense(8->1)}
                                                                     -> ``heads.cls.weight (3, 8)``, ``heads.reg.weight (1, 8)``
        Forward: integer input (N, T) -> embed -> mean over T -> encoder layers (ReLU) -> norm ->
        concatenate(heads.cls, heads.reg) giving (N, 4). Shapes known after building.
        """

    @abstractmethod
    def single_layer(self, kind: str, **spec: int) -> Any:
        """A container holding one layer of ``kind`` at position 0, shapes known.

        Kinds and spec keys are :data:`LAYER_KINDS`. Canonical names under ``0.``: dense, conv
        ``weight``/``bias``; norms ``weight``, ``bias`` (+ ``running_mean``/``running_var`` for batch
        norm); embedding ``weight``; recurrent ``weight_ih_l0``, ``weight_hh_l0`` and either
        ``bias_ih_l0``/``bias_hh_l0`` or a single ``bias_l0`` (Keras). Conv layers use stride 1, no
        padding; recurrent layers are batch-first, one layer, one direction, and return the
        whole output sequence; batch norm runs in inference mode in :meth:`forward`.
        """

    def functional_model(self) -> Any:
        """A model built with the framework's functional API, if it has one: Dense(6->5), ReLU,
        Dense(5->2); canonical names ``0.*`` and ``2.*`` (``1`` is the activation).

        Default: raise Unsupported.
        """
        raise Unsupported(f"{self.backend} has no functional model API")

    def lazy_mlp(self) -> Any:
        """``[Dense(256), ReLU, Dense(10)]`` whose input size is NOT given: shapes wait for data
        (PyTorch ``LazyLinear``, a Keras model not yet built, Gluon deferred initialization).
        Canonical names ``0.*`` and ``2.*``; after one batch of shape (2, 20) the weights are
        (256, 20) and (10, 256)."""
        raise Unsupported(f"{self.backend} builders do not provide lazy_mlp")

    def lazy_twin_mlp(self) -> Any:
        """``[Dense(8), ReLU, Dense(8), ReLU, Dense(8), ReLU, Dense(1)]`` with no input sizes given
        and no sharing: positions 2 and 4 can be tied before their shapes are known."""
        raise Unsupported(f"{self.backend} builders do not provide lazy_twin_mlp")

    def shared_mlp(self, shared: bool = True) -> Any:
        """The MLP whose second and third hidden layers share one layer, shapes known, input 20:

        ``[Dense(20->8), ReLU, S, ReLU, S, ReLU, Dense(8->1)]`` where ``S = Dense(8->8)`` is ONE
        layer object used twice (the framework's own way of sharing: the same module/layer object,
        or Gluon ``params=``). Canonical names ``0.*``, ``2.*``, ``4.*``, ``6.*``; ``2.*`` and
        ``4.*`` share storage. With ``shared=False``, positions 2 and 4 hold two separate layers
        (the untied twin used to check that gradients accumulate).
        """
        raise Unsupported(f"{self.backend} builders do not provide shared_mlp")

    # --- architectures for the porting proofs (optional; default Unsupported) ----------------
    def lenet(self) -> Any:
        """LeNet-style CNN on canonical input (N, 1, 28, 28), shapes known, a sequential container:
        ``0 Conv2d(1->6, k=5, padding=2 'same')``, ``1 ReLU``, ``2 MaxPool(2)``, ``3 Conv2d(6->16, k=5)``,
        ``4 ReLU``, ``5 MaxPool(2)``, ``6 Flatten``, ``7 Dense(400->120)``, ``8 ReLU``,
        ``9 Dense(120->84)``, ``10 ReLU``, ``11 Dense(84->10)``. The framework's native flatten
        order is kept (channels-last in Keras): porting must permute 7.weight's input axis."""
        raise Unsupported(f"{self.backend} builders do not provide lenet")

    def concat_pool_dense(self) -> Any:
        """A DenseNet-style model on canonical input (N, 3, 8, 8), shapes known, whose parameters are,
        in model order: a Conv2d(3->4, k=3, padding 1 'same'), another Conv2d(3->4, k=3, padding 1),
        and a Dense(8->5). Forward: both convs on the input, ReLU each, concatenate on channels
        (8 channels), global average pooling, the dense layer. Build it the framework's usual way for
        such models (a functional graph in Keras): its dense layer reads pooled features, which a
        port must never reorder as if it read a flattened map."""
        raise Unsupported(f"{self.backend} builders do not provide concat_pool_dense")

    def residual_block(self) -> Any:
        """A custom residual block on canonical input (N, 4, 8, 8), shapes known: attributes
        ``conv1`` Conv2d(4->4, k=3, padding 1), ``bn1`` BatchNorm(4, eps=1e-5), ``conv2``, ``bn2``
        likewise; forward ``relu(x + bn2(conv2(relu(bn1(conv1(x))))))``, inference mode."""
        raise Unsupported(f"{self.backend} builders do not provide residual_block")

    def embed_rnn(self, cell: str) -> Any:
        """``cell`` in ("gru", "lstm"): attributes ``embed`` Embedding(50, 8), ``rnn`` GRU/LSTM(8->16,
        batch-first, one layer), ``head`` Dense(16->3); integer input (N, T) -> the head applied to
        the last time step's output -> (N, 3)."""
        raise Unsupported(f"{self.backend} builders do not provide embed_rnn")

    def transformer_block(self) -> Any:
        """A post-norm transformer encoder block, where the framework offers attention: model width
        16, 4 heads of 4, feed-forward 32, no dropout, batch-first input (N, T, 16). Attributes
        ``self_attn`` (attention: ``q/k/v_proj_*`` or PyTorch's packed ``in_proj_*``, and
        ``out_proj``), ``linear1`` Dense(16->32), ``linear2`` Dense(32->16), ``norm1``, ``norm2``
        LayerNorm(16, eps=1e-5); ``x = norm1(x + attn(x)); x = norm2(x + linear2(relu(linear1(x))))``."""
        raise Unsupported(f"{self.backend} offers no attention layer")

    def variants(self, model: Any) -> list[tuple[str, Any]]:
        """Other forms of the same model the framework offers (hybridized, NumPy mode); each must
        give identical names, shapes and values. Default: none."""
        return []

    @abstractmethod
    def forward(self, model: Any, *inputs: np.ndarray) -> np.ndarray:
        """Run ``model`` in inference mode on canonical-layout NumPy inputs; return NumPy output
        (canonical layout, float32)."""

    def child(self, model: Any, path: str) -> Any:
        """The native sub-block at canonical ``path`` (``"0.1"``), as a user would reach it."""
        node = model
        for part in path.split("."):
            node = self.child_step(node, part)
        return node

    @abstractmethod
    def child_step(self, block: Any, part: str) -> Any:
        """One step of :meth:`child`: the child named ``part`` (position or attribute)."""
