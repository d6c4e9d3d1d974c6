"""Walking a Keras layer tree: canonical child names and the slots of every variable.

Child names are the ones a user reaches natively, never Keras's global counters (``dense_3``):

- ``Sequential`` and functional models: the position among ``model.layers`` without
  ``InputLayer`` s (``Sequential.layers`` already hides it; a functional model lists it first, so
  ``0`` is the first layer after the inputs);
- any other layer or model: the attribute name, in definition order. Keras wraps lists and dicts
  into tracked containers; their items are ``attr.i`` and ``attr.key``;
- recurrent layers collapse their ``cell`` (``0.weight_ih_l0``, not ``0.cell.kernel``);
  ``Bidirectional`` reports both directions as one block, the backward one with ``_reverse``.

>>> [s.name for s in walk(keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]), types)]  # doctest: +SKIP
['0.weight', '0.bias']

A layer object reached under two names (used twice) yields its variables under both.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from unifyparams import Slot

from .attention import attention_slots, is_attention
from .pending import pending_variables
from .rules import (
    RECURRENT_CELLS,
    Leaf,
    cell_leaf,
    einsum_spec,
    fallback_leaf,
    is_scale_only_norm,
    layer_leaf,
    recurrent_kind,
)

#: Layer attributes that are Keras/TF/torch bookkeeping, never user children.
_INTERNAL = frozenset(
    {
        "_layers", "_tracked", "_tracker", "_operations", "_functional", "_inbound_nodes",
        "_outbound_nodes", "_trainable_variables", "_non_trainable_variables", "_metrics",
        "_seed_generators", "_torch_params", "_modules", "_parameters", "_buffers", "_losses",
        "_losses_override", "_loss_ids", "_compile_loss", "_compile_metrics", "_loss_tracker",
        "optimizer", "_input_layers", "_output_layers", "inputs", "outputs", "_inputs_struct",
        "_outputs_struct", "_nodes", "_nodes_by_depth", "_operations_by_depth", "_unifyparams_listing",
    }
)


@dataclass(frozen=True)
class KerasTypes:
    """The Keras classes the walk tests against, resolved once Keras is imported."""

    Layer: Any
    Variable: Any
    Sequential: Any
    Functional: Any
    InputLayer: Any

    @classmethod
    def load(cls) -> KerasTypes:
        import keras
        from keras.src.models.functional import Functional

        global _KERAS_TYPES
        types = cls(keras.layers.Layer, keras.Variable, keras.Sequential, Functional, keras.layers.InputLayer)
        _KERAS_TYPES = types
        return types


def mro_names(obj: Any) -> tuple[str, ...]:
    return tuple(c.__name__ for c in type(obj).__mro__)


def own_variables(layer: Any) -> list[Any]:
    """The variables ``layer`` tracks itself (not its sublayers'), trainable first, deduplicated."""
    seen: set[int] = set()
    found = []
    for v in list(layer._trainable_variables) + list(layer._non_trainable_variables):
        if id(v) not in seen:
            seen.add(id(v))
            found.append(v)
    return found


def positional_layers(model: Any, types: KerasTypes) -> list[Any]:
    """``model.layers`` without input layers: what positions ``0, 1, ...`` name."""
    return [layer for layer in model.layers if not isinstance(layer, types.InputLayer)]


def is_positional(layer: Any, types: KerasTypes) -> bool:
    return isinstance(layer, (types.Sequential, types.Functional))


Found = tuple[tuple[str, ...], tuple[str, ...], Any]  # (name parts, container kinds, object)


def _scan(value: Any, parts: tuple[str, ...], kinds: tuple[str, ...], types: KerasTypes, depth: int = 0) -> Iterator[Found]:
    """Layers and variables inside one attribute value, through lists, tuples and dicts."""
    if isinstance(value, (types.Layer, types.Variable)):
        yield parts, kinds, value
    elif depth < 8 and isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
        for i, item in enumerate(value):
            yield from _scan(item, parts + (str(i),), kinds + ("list",), types, depth + 1)
    elif depth < 8 and isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str):
                yield from _scan(item, parts + (key,), kinds + ("dict",), types, depth + 1)


def _bookkeeping(name: str, value: Any) -> bool:
    """TensorFlow's trackable bookkeeping (``_self_unconditional_dependency_names`` and kin: dicts
    and lists of what the layer tracks) starts with ``_self_``; a user attribute that happens to
    (keras-hub's ``self._self_attention_layer``) holds one layer or variable, and is kept."""
    if not name.startswith("_self_"):
        return False
    types = _KERAS_TYPES
    if types is None:
        return True
    return not isinstance(value, (types.Layer, types.Variable))


#: Set by :meth:`KerasTypes.load` (the walk needs Keras's classes; this module never imports Keras).
_KERAS_TYPES: KerasTypes | None = None


def _attribute_sequences(layer: Any) -> list[list[tuple[str, Any]]]:
    """Attribute ``(name, value)`` lists in assignment order: ``vars()``, and on the torch backend
    also ``_modules`` (where ``torch.nn.Module.__setattr__`` moves sublayers out of ``vars()``)."""
    attrs = vars(layer)
    plain = [(k, v) for k, v in attrs.items() if k not in _INTERNAL and not _bookkeeping(k, v)]
    sequences = [plain]
    modules = attrs.get("_modules")
    if isinstance(modules, dict):
        sequences.append([(k, v) for k, v in modules.items() if k not in _INTERNAL])
    return sequences


def attribute_children(layer: Any, types: KerasTypes) -> tuple[list[Found], dict[int, Found]]:
    """Sublayers of ``layer`` by attribute name, in definition order, and the first attribute
    name of each of its own variables (``{id(variable): found}``).

    Only layers Keras tracks (``layer._layers``) count. The torch backend keeps sublayers in
    ``_modules`` and containers in ``vars()``; the two orders are merged by the order in which
    Keras tracked each layer, which is the assignment order.
    """
    tracked = {id(sub): i for i, sub in enumerate(layer._layers)}
    variables: dict[int, Found] = {}
    runs: list[list[tuple[float, list[Found]]]] = []
    for sequence in _attribute_sequences(layer):
        run: list[tuple[float, list[Found]]] = []
        for name, value in sequence:
            entries = list(_scan(value, (name,), (), types))
            layers = [e for e in entries if isinstance(e[2], types.Layer) and id(e[2]) in tracked]
            for entry in entries:
                if isinstance(entry[2], types.Variable):
                    variables.setdefault(id(entry[2]), entry)
            if layers:
                run.append((min(tracked[id(e[2])] for e in layers), layers))
        runs.append(run)
    merged = heapq.merge(*runs, key=lambda item: item[0])
    children = [entry for _, entries in merged for entry in entries]
    named = {id(e[2]) for e in children}
    for sub in layer._layers:  # tracked but held by no attribute: fall back to Keras's name
        if id(sub) not in named:
            children.append(((str(sub.name),), (), sub))
            named.add(id(sub))
    return children, variables


def children(layer: Any, types: KerasTypes) -> list[Found]:
    """Direct children of ``layer`` as ``(name parts, container kinds, sublayer)``."""
    if is_positional(layer, types):
        return [((str(i),), (), sub) for i, sub in enumerate(positional_layers(layer, types))]
    return attribute_children(layer, types)[0]


def child(layer: Any, part: str, types: KerasTypes) -> Any:
    """One step down by canonical name: a position, an attribute, or a container item."""
    if isinstance(layer, types.Layer) and is_positional(layer, types):
        return positional_layers(layer, types)[int(part)]
    if isinstance(layer, (list, tuple)):
        return layer[int(part)]
    if isinstance(layer, dict):
        return layer[part]
    return getattr(layer, part)


# --- recurrent layers ---------------------------------------------------------------------------
def _cells(rnn: Any) -> list[tuple[str, Any]] | None:
    """``[(cell kind, cell)]`` of a recurrent layer whose cells are all known, else ``None``."""
    cell = getattr(rnn, "cell", None)
    if cell is None or not any(n == "RNN" for n in mro_names(rnn)):
        return None
    cells = list(getattr(cell, "cells", None) or [cell]) if "StackedRNNCells" in mro_names(cell) else [cell]
    kinds = [recurrent_kind(mro_names(c)) for c in cells]
    if not cells or any(k is None for k in kinds):
        return None
    return [(k, c) for k, c in zip(kinds, cells) if k is not None]


def _recurrent_slots(rnn: Any, cells: list[tuple[str, Any]], path: tuple[str, ...], kinds: tuple[str, ...],
                     block: Any, suffix: str) -> Iterator[Slot]:
    """Variables of recurrent cells (unbuilt recurrent layers list nothing until built)."""
    for index, (kind, cell) in enumerate(cells):
        for v in own_variables(cell):
            leaf = cell_leaf(kind, v.name, tuple(v.shape)) or fallback_leaf(str(v.name), str(v.name))
            yield _slot(path, kinds, block, leaf.suffixed(f"_l{index}{suffix}"), v)


def _slot(path: tuple[str, ...], kinds: tuple[str, ...], block: Any, leaf: Leaf, v: Any,
          extra: tuple[str, ...] = (), extra_kinds: tuple[str, ...] = ()) -> Slot:
    block_path, block_kinds = path + extra, kinds + extra_kinds
    return Slot(
        name=".".join(block_path + (leaf.name,)),
        native_name=str(v.path),
        native=v,
        role=leaf.role,
        layout=leaf.layout,
        block_path=block_path,
        block_kinds=block_kinds,
        block=block,
    )


def layer_kind(layer: Any) -> str:
    """The class name, except that a generic ``keras.layers.RNN`` of known cells is named after
    them (``RNN(LSTMCell(...))`` is an ``LSTM``), so porting sees the right layer family."""
    kind = type(layer).__name__
    if kind == "RNN":
        cells = _cells(layer)
        if cells:
            return RECURRENT_CELLS[cells[0][0]][0]
    return kind


#: Keras classes (and their subclasses) by framework-neutral layer family.
_FAMILIES = {
    "Dense": "dense", "Embedding": "embedding", "Conv1D": "conv1d", "Conv2D": "conv2d", "Conv3D": "conv3d",
    "Conv1DTranspose": "conv_transpose1d", "Conv2DTranspose": "conv_transpose2d",
    "Conv3DTranspose": "conv_transpose3d", "DepthwiseConv2D": "conv2d", "DepthwiseConv1D": "conv1d",
    "BatchNormalization": "batchnorm", "LayerNormalization": "layernorm", "GroupNormalization": "groupnorm",
    "RMSNormalization": "rmsnorm", "LSTM": "lstm", "GRU": "gru", "SimpleRNN": "rnn",
    "Bidirectional": "bidirectional", "MultiHeadAttention": "attention", "EinsumDense": "dense",
    "ReversibleEmbedding": "embedding", "PositionEmbedding": "embedding",
}


def layer_family(layer: Any) -> str:
    """The family of the nearest known class in ``layer``'s class hierarchy (a generic ``RNN`` of
    known cells by its cells), or ``""``. An ``EinsumDense`` is ``"dense"`` only when its equation
    is a linear map; a normalization of no known class whose only variable is ``scale`` is ``"rmsnorm"``."""
    kind = layer_kind(layer)
    family = _FAMILIES.get(kind, "")
    if not family:
        family = next((_FAMILIES[name] for name in mro_names(layer) if name in _FAMILIES), "")
    if family == "dense" and "EinsumDense" in mro_names(layer) and einsum_spec(layer) is None:
        return ""
    if not family and is_scale_only_norm(layer):
        return "rmsnorm"
    return family


# --- the walk -----------------------------------------------------------------------------------
def walk(root: Any, types: KerasTypes) -> Iterator[Slot]:
    """Every variable under ``root`` as a :class:`~unifyparams.Slot`, own variables before
    children, children in definition (or position) order."""
    root_kind = layer_kind(root)
    for slot in _walk(root, (), (), types, frozenset()):
        if not slot.block_kinds:
            slot.root_kind = root_kind  # a bare layer's own variables: porting needs its kind
        yield slot


def _walk(layer: Any, path: tuple[str, ...], kinds: tuple[str, ...], types: KerasTypes,
          ancestors: frozenset[int]) -> Iterator[Slot]:
    if id(layer) in ancestors:  # a cycle: report each layer once per path, never loop
        return
    ancestors = ancestors | {id(layer)}

    forward, backward = getattr(layer, "forward_layer", None), getattr(layer, "backward_layer", None)
    if "Bidirectional" in mro_names(layer) and forward is not None and backward is not None:
        f_cells, b_cells = _cells(forward), _cells(backward)
        if f_cells is not None and b_cells is not None:
            yield from _recurrent_slots(forward, f_cells, path, kinds, layer, "")
            yield from _recurrent_slots(backward, b_cells, path, kinds, layer, "_reverse")
            return

    if is_attention(mro_names(layer), layer):  # PyTorch's names and layouts for attention
        yield from attention_slots(layer, path, kinds)
        return

    cells = _cells(layer)
    if cells is not None:
        if kinds:
            kinds = kinds[:-1] + (layer_kind(layer),)
        yield from _own_slots(layer, path, kinds, types, {})
        yield from _recurrent_slots(layer, cells, path, kinds, layer, "")
        return

    found: list[Found]
    var_names: dict[int, Found] | None = {}
    if is_positional(layer, types):
        found = [((str(i),), (), sub) for i, sub in enumerate(positional_layers(layer, types))]
    elif layer._layers:
        found, var_names = attribute_children(layer, types)
    else:  # a leaf layer (Dense, Conv...): no children to scan for; variable names only on demand
        found, var_names = [], None
    yield from _own_slots(layer, path, kinds, types, var_names)
    for parts, container_kinds, sub in found:
        sub_kinds = kinds + container_kinds + (type(sub).__name__,)
        yield from _walk(sub, path + parts, sub_kinds, types, ancestors)


def _torch_parameter_names(wrapper: Any) -> dict[int, str]:
    """``{id(parameter): name}`` of the torch module a ``TorchModuleWrapper`` holds; its Keras
    variables wrap those parameters and carry only counter names (``variable_3``)."""
    module = getattr(wrapper, "module", None)
    if module is None or not hasattr(module, "named_parameters"):
        return {}
    return {id(param): name for name, param in module.named_parameters()}


def _own_slots(layer: Any, path: tuple[str, ...], kinds: tuple[str, ...], types: KerasTypes,
               var_names: dict[int, Found] | None) -> Iterator[Slot]:
    """``var_names`` is None when not computed yet: it is scanned only if a variable has no rule."""
    names = mro_names(layer)
    torch_names = _torch_parameter_names(layer) if "TorchModuleWrapper" in names else {}
    used: set[str] = set()
    for v in own_variables(layer) or pending_variables(layer):
        extra: tuple[str, ...] = ()
        extra_kinds: tuple[str, ...] = ()
        leaf = layer_leaf(names, v.name, tuple(v.shape), layer)
        wrapped = torch_names.get(id(getattr(v, "_value", None)))
        if leaf is None and wrapped is not None:  # a torch module inside a Keras model (torch backend)
            *extra_list, attr = wrapped.split(".")
            extra, extra_kinds = tuple(extra_list), ("Module",) * len(extra_list)
            leaf = fallback_leaf(attr, attr)
        elif leaf is None:
            if var_names is None:
                var_names = attribute_children(layer, types)[1]
            found = var_names.get(id(v))
            if found is not None:
                parts, extra_kinds, _ = found
                extra, attr = parts[:-1], parts[-1]
            else:
                attr = str(v.name)
            leaf = fallback_leaf(attr, str(v.name))
        key = ".".join(extra + (leaf.name,))
        if key in used:  # two variables with one Keras name in one layer: keep both, numbered
            n = 1
            while f"{key}_{n}" in used:
                n += 1
            leaf = leaf.suffixed(f"_{n}")
            key = ".".join(extra + (leaf.name,))
        used.add(key)
        yield _slot(path, kinds, layer, leaf, v, extra, extra_kinds)


def unbuilt_names(model: Any, types: KerasTypes) -> list[str]:
    """Canonical paths (with class names) of the layers under ``model`` that have not been built."""
    names: list[str] = []

    def visit(layer: Any, path: tuple[str, ...], seen: frozenset[int]) -> None:
        if id(layer) in seen:
            return
        if not layer.built:
            names.append(f"{'.'.join(path) or '<model>'} ({type(layer).__name__})")
        for parts, _, sub in children(layer, types):
            visit(sub, path + parts, seen | {id(layer)})

    visit(model, (), frozenset())
    return names


# --- seeing the same structure again ------------------------------------------------------------
def structure_check(root: Any, slots: list[Slot], types: KerasTypes) -> Callable[[], bool] | None:
    """A check that a walk of ``root`` would still yield ``slots`` (:meth:`Adapter.structure_check`).

    Every layer reachable from ``root`` (tracked sublayers, and a model's positional layers) must
    keep its class, its ``built`` state, its tracked sublayers and its own variables, as the same
    objects in the same order; a layer whose names come from its attributes (a container of named
    sublayers, or variables no rule names) must also keep which layer or variable each attribute
    holds. Variables' names and shapes are fixed once they exist, and their values are read live.

    Not offered (``None``) while a layer is unbuilt (its stand-in variables are made per walk) or
    for a ``TorchModuleWrapper`` (its names come from the torch module inside it).
    """
    if any(type(s.native).__name__ == "PendingVariable" for s in slots):
        return None
    try:
        layers = _reachable_layers(root, types)
        if layers is None:
            return None
        named_by_attributes = [layer for layer in layers if _named_by_attributes(layer, types)]
        stamps = [_stamp(layer, types) for layer in layers]
        attributes = [_attribute_stamp(layer, types) for layer in named_by_attributes]
    except AttributeError:  # a layer without Keras's tracking lists (its __init__ skipped Layer's)
        return None

    def unchanged() -> bool:
        try:
            return [_stamp(layer, types) for layer in layers] == stamps and [
                _attribute_stamp(layer, types) for layer in named_by_attributes
            ] == attributes
        except AttributeError:
            return False

    return unchanged


def _reachable_layers(root: Any, types: KerasTypes) -> list[Any] | None:
    """Every layer reachable from ``root`` (tracked sublayers and positional layers), each once;
    None if one is a ``TorchModuleWrapper``."""
    layers: list[Any] = []
    seen: set[int] = set()
    stack = [root]
    while stack:
        layer = stack.pop()
        if id(layer) in seen or not isinstance(layer, types.Layer):
            continue
        seen.add(id(layer))
        if "TorchModuleWrapper" in mro_names(layer):
            return None
        layers.append(layer)
        stack.extend(reversed(_sublayers(layer, types)))
    return layers


def _sublayers(layer: Any, types: KerasTypes) -> list[Any]:
    found = list(layer._layers)
    if is_positional(layer, types):
        found.extend(positional_layers(layer, types))
    return found


def _ids(objects: Any) -> tuple[int, ...]:
    return tuple(map(id, objects))


def _stamp(layer: Any, types: KerasTypes) -> tuple[Any, ...]:
    """What the walk reads of ``layer`` itself, by identity."""
    return (
        type(layer), bool(layer.built), _ids(layer._layers), _ids(layer._trainable_variables),
        _ids(layer._non_trainable_variables),
        _ids(positional_layers(layer, types)) if is_positional(layer, types) else (),
    )


def _named_by_attributes(layer: Any, types: KerasTypes) -> bool:
    """True if the walk names some of ``layer``'s children or variables after its attributes."""
    if is_positional(layer, types):
        return False
    if layer._layers:
        return True
    names = mro_names(layer)
    return any(layer_leaf(names, v.name, tuple(v.shape), layer) is None for v in own_variables(layer))


def _attribute_stamp(layer: Any, types: KerasTypes) -> tuple[Any, ...]:
    """Every layer and variable its attributes hold, as :func:`attribute_children` finds them (its
    name parts, through lists, tuples and dicts), by identity, in definition order."""
    return tuple(
        (parts, id(found))
        for sequence in _attribute_sequences(layer)
        for name, value in sequence
        for parts, _, found in _scan(value, (name,), (), types)
    )
