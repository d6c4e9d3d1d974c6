"""What each Dense layer reads, from Keras' own functional graph.

Functional models (``keras.applications``) and built ``Sequential`` models keep the graph of
their layers: every Dense layer's input tensor records the operation that produced it. Walking
back from it through parameter-free element-wise layers (dropout, activations) reaches either a
flatten (``Flatten``, a ``Reshape`` to one axis, ``ops.reshape``) of a feature map, whose layout
is the ``data_format`` of the layers that produced the map, or something that yields plain
features (global pooling, another Dense, a model input vector). Anything else is reported as
not established, with the operation's name.

>>> facts = dense_inputs(keras.applications.VGG16(weights=None))        # doctest: +SKIP
>>> facts[id(model.get_layer("fc1"))].describe()                          # doctest: +SKIP
'a flattened 7x7x512 map (HWC order)'
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from unifyparams.dataflow import DenseInput

from .structure import mro_names

#: Parameter-free layers and ops that keep every feature where it is.
_ELEMENTWISE = frozenset(
    {
        "Dropout", "AlphaDropout", "GaussianDropout", "GaussianNoise", "Activation", "ReLU", "LeakyReLU",
        "ELU", "Softmax", "Identity", "ActivityRegularization", "Cast",
        # keras.ops operations on symbolic tensors
        "Relu", "Relu6", "Sigmoid", "Tanh", "Gelu", "Silu", "Elu", "Selu", "Softplus", "LeakyRelu",
        "HardSigmoid", "HardSilu", "Exp", "Abs", "Negative", "Square", "Sqrt",
    }
)
_FEATURE_SOURCES = frozenset(
    {
        "Dense", "EinsumDense", "Embedding", "GlobalAveragePooling1D", "GlobalAveragePooling2D",
        "GlobalAveragePooling3D", "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D",
        "LSTM", "GRU", "SimpleRNN", "RNN", "Bidirectional",
    }
)
_MERGES = frozenset({"Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate"})
_LIMIT = 100_000


def _history(tensor: Any) -> tuple[Any, list[Any]] | None:
    """``(operation, its input tensors)`` that produced a symbolic tensor."""
    history = getattr(tensor, "_keras_history", None)
    if history is None:
        return None
    op = history[0]
    nodes = getattr(op, "_inbound_nodes", [])
    index = history[1]
    if not 0 <= index < len(nodes):
        return None
    return op, list(nodes[index].input_tensors)


def _layout(tensor: Any) -> str | None:
    """``"channels_last"``/``"channels_first"``: the data format of the layers that made ``tensor``."""
    steps = 0
    while steps < _LIMIT:
        steps += 1
        found = _history(tensor)
        if found is None:
            return None
        op, inputs = found
        data_format = getattr(op, "data_format", None)
        if data_format in ("channels_last", "channels_first"):
            return str(data_format)
        if not inputs or "InputLayer" in mro_names(op):
            return None
        tensor = inputs[0]
    return None


def _flattened(map_tensor: Any, transposes_to_last: bool, via: str) -> DenseInput:
    """The fact for a row-major flatten of ``map_tensor`` (after moving axis 1 last if asked)."""
    dims = [int(d) if d is not None else None for d in tuple(map_tensor.shape)[1:]]
    if any(d is None for d in dims):
        return DenseInput.unknown(f"{via} flattens a map of unknown shape {tuple(map_tensor.shape)}")
    if sum(1 for d in dims if d != 1) <= 1:
        return DenseInput.features(f"{via} of a map with one non-trivial axis")
    layout = _layout(map_tensor)
    if layout is None:
        return DenseInput.unknown(
            f"{via} flattens a {tuple(dims)} tensor that no convolution or pooling layer produced, so "
            f"its channel axis is not known"
        )
    rank = len(dims)
    channel_axis = rank - 1 if layout == "channels_last" else 0
    canonical_axes = [channel_axis] + [a for a in range(rank) if a != channel_axis]  # tensor axis of each canonical axis
    flatten_axes = list(range(1, rank)) + [0] if transposes_to_last else list(range(rank))
    order = tuple(canonical_axes.index(a) for a in flatten_axes)
    shape = tuple(int(dims[a]) for a in canonical_axes)  # type: ignore[arg-type]
    return DenseInput.flattened(shape, order, reason=f"{via} of a {layout} map")


def classify(tensor: Any, top: bool = True) -> DenseInput:
    """What a Dense layer reading ``tensor`` sees (``top``: in the outermost model's graph, whose
    inputs are the user's; a nested model's inputs come from layers outside its graph)."""
    steps = 0
    while steps < _LIMIT:
        steps += 1
        if len(tuple(tensor.shape)) != 2:
            return DenseInput.features("a Dense layer applied along the last axis")
        found = _history(tensor)
        if found is None:
            return DenseInput.unknown("its input has no recorded producer")
        op, inputs = found
        names = mro_names(op)
        kind = type(op).__name__
        if "InputLayer" in names:
            if top:
                return DenseInput.features("a model input vector")
            return DenseInput.unknown("it reads an input of a nested model, fed from outside its graph")
        if kind == "Flatten" or (kind == "Reshape" and inputs and len(tuple(inputs[0].shape)) > 2):
            via = f"{kind} layer {op.name!r}" if kind == "Flatten" or "Layer" in names else f"ops.reshape {op.name!r}"
            transposes = kind == "Flatten" and getattr(op, "data_format", "channels_last") == "channels_first"
            return _flattened(inputs[0], transposes, via)
        if kind in _ELEMENTWISE and len(inputs) == 1:
            tensor = inputs[0]
            continue
        if any(n in _FEATURE_SOURCES for n in names):
            return DenseInput.features(f"the output of {kind} {op.name!r}")
        if kind in _MERGES:
            parts = [classify(t, top) for t in inputs]
            if all(p.kind == "features" for p in parts):
                return DenseInput.features(f"{kind} of feature vectors")
            return DenseInput.unknown(f"{kind} {op.name!r} merges inputs that are not all plain features")
        return DenseInput.unknown(f"it reads the output of {kind} {op.name!r}, which unifyparams does not follow")
    return DenseInput.unknown("the graph is too deep to follow")


def _graph_layers(model: Any) -> Iterator[Any]:
    functional = getattr(model, "_functional", None) or model
    yield from getattr(functional, "_operations", [])


def dense_inputs(model: Any) -> dict[int, DenseInput]:
    """``{id(dense layer): fact}`` for the Dense layers in ``model``'s functional graphs (nested
    functional models included); layers called in several places must agree."""
    facts: dict[int, DenseInput] = {}
    seen: set[int] = set()
    stack = [model]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        for layer in _graph_layers(current):
            names = mro_names(layer)
            if "Functional" in names or "Sequential" in names:
                stack.append(layer)
                continue
            if "Dense" not in names:
                continue
            node_facts = {classify(node.input_tensors[0], current is model) for node in getattr(layer, "_inbound_nodes", [])
                          if node.input_tensors}
            if len(node_facts) == 1:
                facts[id(layer)] = node_facts.pop()
            elif len(node_facts) > 1:
                facts[id(layer)] = DenseInput.unknown(
                    f"Dense layer {layer.name!r} is called on inputs laid out differently: "
                    + "; ".join(sorted(f.describe() for f in node_facts))
                )
    return facts
