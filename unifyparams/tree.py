"""A readable tree of a model's blocks and parameters.

>>> print(up.params(net))                     # doctest: +SKIP
Sequential  torch · 4 tensors · 5,386 scalars
├── 0  Linear
│   ├── weight  (256, 20)  float32
│   └── bias    (256,)     float32
└── 2  Linear
    ...
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from .param import format_shape

if TYPE_CHECKING:
    from .param import Param


class _Node:
    __slots__ = ("kind", "children", "params")

    def __init__(self, kind: str = ""):
        self.kind = kind
        self.children: dict[str, _Node] = {}
        self.params: list[Param] = []


def _build(params: Iterable[Param]) -> _Node:
    root = _Node()
    for p in params:
        node = root
        slot = p.slot
        for depth, part in enumerate(slot.block_path):
            child = node.children.get(part)
            if child is None:
                kind = slot.block_kinds[depth] if depth < len(slot.block_kinds) else ""
                child = node.children[part] = _Node(kind)
            node = child
        node.params.append(p)
    return root


def _leaf(p: Param) -> str:
    return p.name[len(".".join(p.slot.block_path)) + 1 :] if p.slot.block_path else p.name


def _param_line(p: Param, width: int = 0, shape_width: int = 0) -> str:
    leaf = _leaf(p).ljust(width)
    notes = []
    if not p.trainable:
        notes.append("not trainable")
    if p.shared_with:
        notes.append("shared with " + ", ".join(p.shared_with))
    note = f"  [{'; '.join(notes)}]" if notes else ""
    return f"{leaf}  {format_shape(p.shape).ljust(shape_width)}  {p.dtype}{note}"


def render(params: list[Param], title: str) -> str:
    """Render ``params`` as an indented tree under the heading ``title``."""
    lines = [title]

    def emit(node: _Node, prefix: str) -> None:
        entries: list[tuple[str, _Node | Param]] = [("p", p) for p in node.params]
        entries += [(name, child) for name, child in node.children.items()]
        width = max((len(_leaf(p)) for p in node.params), default=0)
        shape_width = max((len(format_shape(p.shape)) for p in node.params), default=0)
        for i, (label, entry) in enumerate(entries):
            last = i == len(entries) - 1
            branch = "└── " if last else "├── "
            if isinstance(entry, _Node):
                kind = f"  {entry.kind}" if entry.kind else ""
                lines.append(f"{prefix}{branch}{label}{kind}")
                emit(entry, prefix + ("    " if last else "│   "))
            else:
                lines.append(f"{prefix}{branch}{_param_line(entry, width, shape_width)}")

    emit(_build(params), "")
    return "\n".join(lines)
