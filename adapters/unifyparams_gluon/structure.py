"""Walking a Gluon block: canonical names from the user's attribute paths.

Gluon's ``collect_params()`` keys carry global counters (``dense0_weight``); the names here are
attribute paths, as ``save_parameters`` uses: positions in sequential containers, attribute names
of custom blocks. Gluon does not register lists or dicts of blocks by itself (users call
``register_child``); a child that sits in a list or dict attribute is named by where the user
reaches it (``encoder.0``, ``heads.cls``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from unifyparams import Slot
from unifyparams.layouts import IDENTITY

from .naming import canonical_leaf


def kind_names(block: Any) -> tuple[str, ...]:
    return tuple(c.__name__ for c in type(block).__mro__)


def _norm_kind(block: Any) -> str:
    """The class name, or the normalization base class a user's subclass derives from."""
    for name in kind_names(block):
        if name in ("BatchNorm", "SyncBatchNorm", "LayerNorm", "GroupNorm", "InstanceNorm"):
            return name
    return type(block).__name__


def _container_paths(block: Any) -> dict[int, str]:
    """``{id(child): "attr.i" | "attr.key"}`` for blocks held in list, tuple or dict attributes."""
    from mxnet.gluon import Block

    paths: dict[int, str] = {}
    for attr, value in vars(block).items():
        if attr.startswith("_"):
            continue
        if isinstance(value, (list, tuple)):
            items = [(str(i), v) for i, v in enumerate(value)]
        elif isinstance(value, dict):
            items = [(str(k), v) for k, v in value.items()]
        else:
            continue
        for key, child in items:
            if isinstance(child, Block):
                paths.setdefault(id(child), f"{attr}.{key}")
    return paths


def children(block: Any) -> list[tuple[str, Any]]:
    """``(name, child)`` in registration order, named as the user reaches them."""
    registered = list(block._children.items())
    if not registered:
        return []
    in_containers = _container_paths(block)
    return [(in_containers.get(id(child), name), child) for name, child in registered]


def child(block: Any, part: str) -> Any:
    """The child named ``part`` (as :func:`children` names it); ``part`` may be ``"attr.key"``."""
    for name, sub in children(block):
        if name == part:
            return sub
    raise KeyError(f"{type(block).__name__} has no child {part!r}; children: {[n for n, _ in children(block)]}")


def walk(root: Any) -> Iterator[Slot]:
    """Every Parameter under ``root``: a block's own parameters, then its children's."""
    root_kind = type(root).__name__
    yield from _walk(root, (), (), frozenset(), root_kind)


def _walk(block: Any, path: tuple[str, ...], kinds: tuple[str, ...], ancestors: frozenset[int],
          root_kind: str) -> Iterator[Slot]:
    if id(block) in ancestors:
        return
    ancestors = ancestors | {id(block)}
    kind = _norm_kind(block)
    prefix = ".".join(path) + "." if path else ""
    for attr, param in block._reg_params.items():
        leaf, role = canonical_leaf(kind, attr)
        yield Slot(prefix + leaf, param.name, param, role, IDENTITY, path, kinds, block, root_kind)
    for name, sub in children(block):
        parts = tuple(name.split("."))
        container_kinds = ("list",) * (len(parts) - 1)
        yield from _walk(sub, path + parts, kinds + container_kinds + (type(sub).__name__,), ancestors, root_kind)


def attribute_of(block: Any, param: Any) -> str:
    """The attribute under which ``block`` registered ``param``."""
    for attr, p in block._reg_params.items():
        if p is param:
            return attr
    raise KeyError(f"{param.name!r} is not registered on {type(block).__name__}")


def clear_cached_graphs(root: Any) -> None:
    """Hybridized blocks cache a graph over their parameters: drop it after a structure change."""
    stack = [root]
    seen: set[int] = set()
    while stack:
        block = stack.pop()
        if id(block) in seen:
            continue
        seen.add(id(block))
        clear = getattr(block, "_clear_cached_op", None)
        if clear is not None:
            clear()
        stack.extend(block._children.values())
