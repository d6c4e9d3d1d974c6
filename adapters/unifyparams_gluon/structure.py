"""Walking a Gluon block: canonical names from the user's attribute paths.

Gluon's ``collect_params()`` keys carry global counters (``dense0_weight``); the names here are
attribute paths, as ``save_parameters`` uses (``_collect_params_with_prefix``): positions in
sequential containers, attribute names of custom blocks. Gluon does not register lists or dicts of
blocks by itself (users call ``register_child``); a registered child that sits in a list, tuple or
dict attribute is named by where the user reaches it (``encoder.0``, ``heads.cls``, ``stages.1.0``),
any other by its registered child name.

>>> [s.name for s in walk(net)]                    # doctest: +SKIP
['0.weight', '0.bias', '2.weight', '2.bias']
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from typing import Any

from unifyparams import Slot

from .rules import canonical_leaves, native_layout


def kind_names(block: Any) -> tuple[str, ...]:
    """The class names of ``block``'s type and its bases (naming rules match any of them)."""
    return tuple(c.__name__ for c in type(block).__mro__)


def _containers(value: Any, path: str, found: dict[int, str], block_type: type, depth: int = 0) -> None:
    """Record ``{id(block): "attr.i.key"}`` for blocks nested in lists, tuples and dicts."""
    if depth > 8:
        return
    if isinstance(value, (list, tuple)):
        items: Any = enumerate(value)
    elif isinstance(value, dict):
        items = value.items()
    else:
        if isinstance(value, block_type):
            found.setdefault(id(value), path)
        return
    for key, item in items:
        _containers(item, f"{path}.{key}", found, block_type, depth + 1)


@cache
def _block_type() -> type:
    from mxnet.gluon import Block  # the adapter imported MXNet before any walk

    return Block


def children(block: Any) -> list[tuple[str, Any]]:
    """``(name, child)`` in registration order, named as the user reaches them."""
    registered = list(block._children.items())
    if not registered:
        return []
    attrs = vars(block)
    in_containers: dict[int, str] = {}
    for attr, value in attrs.items():
        if not attr.startswith("_") and isinstance(value, (list, tuple, dict)):
            _containers(value, attr, in_containers, _block_type())
    named = []
    for name, child in registered:
        if attrs.get(name) is child:  # a plain attribute: its registered name is its attribute name
            named.append((name, child))
        else:
            named.append((in_containers.get(id(child), name), child))
    return named


def child(block: Any, part: str) -> Any:
    """The child named ``part`` (as :func:`children` names it); ``part`` may be ``"attr.key"``."""
    for name, sub in children(block):
        if name == part:
            return sub
    raise KeyError(f"{type(block).__name__} has no child {part!r}; children: {[n for n, _ in children(block)]}")


def walk(root: Any) -> Iterator[Slot]:
    """Every Parameter under ``root``: a block's own parameters, then its children's (the order of
    ``_collect_params_with_prefix``). A Parameter reachable under several names (``params=``
    sharing, a block used twice) is yielded under each."""
    yield from _walk(root, (), (), frozenset(), type(root).__name__)


def _walk(
    block: Any, path: tuple[str, ...], kinds: tuple[str, ...], ancestors: frozenset[int], root_kind: str
) -> Iterator[Slot]:
    if id(block) in ancestors:  # a block that contains itself: stop instead of recursing forever
        return
    ancestors = ancestors | {id(block)}
    prefix = ".".join(path) + "." if path else ""
    leaves = canonical_leaves(kind_names(block), tuple(block._reg_params))
    for attr, param in block._reg_params.items():
        leaf, role = leaves[attr]
        yield Slot(prefix + leaf, param.name, param, role, native_layout(block, attr), path, kinds, block, root_kind)
    for name, sub in children(block):
        parts = tuple(name.split("."))
        holders = _holder_kinds(block, parts)
        yield from _walk(sub, path + parts, kinds + holders + (type(sub).__name__,), ancestors, root_kind)


def _holder_kinds(block: Any, parts: tuple[str, ...]) -> tuple[str, ...]:
    """Kinds of the containers between ``block`` and a child named ``attr.i.key``: list, dict..."""
    kinds: list[str] = []
    node: Any = block
    for part in parts[:-1]:
        node = vars(node).get(part) if not isinstance(node, (list, tuple, dict)) else _item(node, part)
        kinds.append(type(node).__name__ if node is not None else "")
    return tuple(kinds)


def _item(container: Any, key: str) -> Any:
    if isinstance(container, dict):
        return container.get(key, container.get(int(key)) if key.isdigit() else None)
    return container[int(key)]


def attribute_of(block: Any, param: Any) -> str:
    """The attribute under which ``block`` registered ``param``."""
    for attr, p in block._reg_params.items():
        if p is param:
            return attr
    raise KeyError(f"{param.name!r} is not registered on {type(block).__name__}")


def blocks(root: Any) -> Iterator[Any]:
    """Every block under ``root`` (``root`` first), each once."""
    stack = [root]
    seen: set[int] = set()
    while stack:
        block = stack.pop()
        if id(block) in seen:
            continue
        seen.add(id(block))
        yield block
        stack.extend(reversed(list(block._children.values())))


def clear_cached_graphs(root: Any) -> None:
    """Hybridized blocks cache a graph over their parameters: drop it after a structure change."""
    for block in blocks(root):
        clear = getattr(block, "_clear_cached_op", None)
        if clear is not None:
            clear()
