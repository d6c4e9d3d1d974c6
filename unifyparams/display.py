"""One model of what unifyparams shows (trees and tables), drawn by rich or as plain text.

A :class:`TreeNode` or :class:`Table` is data: ``str()`` gives plain text (columns as wide as
their contents, never cut), and rich draws it with styles through ``__rich__`` (``rich.print(node)``
or ``console.print(node)``). ``ParamSet`` trees, ``unifyparams inspect`` and port reports all use it.

>>> root = TreeNode("Sequential", ("torch",))
>>> block = root.add("0", "Linear")
>>> _ = block.add("weight", "(4, 3)", "float32"), block.add("bias", "(4,)", "float32")
>>> print(root)
Sequential  torch
└── 0  Linear
    ├── weight  (4, 3)  float32
    └── bias    (4,)    float32
>>> print(Table(("name", "shape"), [("weight", "(4, 3)"), ("b", "(4,)")], title="params"))
params
name    shape
------  ------
weight  (4, 3)
b       (4,)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .param import Param

#: A table cell: its text, or ``(text, rich style)``.
Cell = str | tuple[str, str]


def _text_of(cell: Cell) -> str:
    return cell if isinstance(cell, str) else cell[0]


def _style_of(cell: Cell) -> str:
    return "" if isinstance(cell, str) else cell[1]


@dataclass
class TreeNode:
    """One line of a tree (a label, then columns) and the lines below it.

    Columns of sibling leaves are aligned; ``styles`` gives rich styles for the label, then for
    each column (plain text ignores them).
    """

    label: str
    columns: tuple[str, ...] = ()
    styles: tuple[str, ...] = ()
    children: list[TreeNode] = field(default_factory=list)

    def add(self, label: str, *columns: str, styles: tuple[str, ...] = ()) -> TreeNode:
        """Append a child line and return it."""
        child = TreeNode(label, tuple(columns), styles)
        self.children.append(child)
        return child

    def pieces(self, widths: Sequence[int] = ()) -> list[tuple[str, str]]:
        """``(text, style)`` pieces of this line, its cells padded to ``widths`` (not the last)."""
        texts = [self.label, *self.columns]
        while len(texts) > 1 and not texts[-1]:
            texts.pop()
        out: list[tuple[str, str]] = []
        for i, text in enumerate(texts):
            last = i == len(texts) - 1
            padded = text if last or i >= len(widths) else text.ljust(widths[i])
            out.append((padded, self.styles[i] if i < len(self.styles) else ""))
            if not last:
                out.append(("  ", ""))
        return out

    def _child_widths(self) -> list[int]:
        leaves = [[c.label, *c.columns] for c in self.children if not c.children]
        count = max((len(cells) for cells in leaves), default=0)
        return [max((len(cells[i]) for cells in leaves if i < len(cells)), default=0) for i in range(count)]

    def _walk(self, prefix: str, out: list[tuple[str, TreeNode, list[int]]]) -> None:
        widths = self._child_widths()
        for i, child in enumerate(self.children):
            last = i == len(self.children) - 1
            out.append((prefix + ("└── " if last else "├── "), child, [] if child.children else widths))
            child._walk(prefix + ("    " if last else "│   "), out)

    def __str__(self) -> str:
        lines = ["".join(text for text, _ in self.pieces())]
        walked: list[tuple[str, TreeNode, list[int]]] = []
        self._walk("", walked)
        lines += [branch + "".join(text for text, _ in node.pieces(widths)) for branch, node, widths in walked]
        return "\n".join(line.rstrip() for line in lines)

    def __rich__(self) -> Any:
        """A ``rich.tree.Tree`` of the same lines, styled."""
        from rich.tree import Tree

        root = Tree(_rich_text(self.pieces()), guide_style="dim")
        self._add_rich(root)
        return root

    def _add_rich(self, tree: Any) -> None:
        widths = self._child_widths()
        for child in self.children:
            branch = tree.add(_rich_text(child.pieces([] if child.children else widths)))
            child._add_rich(branch)


def _rich_text(pieces: Sequence[tuple[str, str]]) -> Any:
    from rich.text import Text

    return Text.assemble(*[(text, style) if style else text for text, style in pieces])


@dataclass
class Table:
    """Rows of cells under column headers (``show_header=False`` for key/value tables).

    ``right`` names the columns aligned right (numbers).
    """

    columns: tuple[str, ...]
    rows: list[Sequence[Cell]] = field(default_factory=list)
    title: str = ""
    show_header: bool = True
    right: tuple[str, ...] = ()

    def add_row(self, *cells: Cell) -> None:
        """Append one row (a cell per column)."""
        self.rows.append(cells)

    def __str__(self) -> str:
        texts = [[_text_of(c) for c in row] for row in self.rows]
        header = [list(self.columns)] if self.show_header else []
        widths = [max((len(r[i]) for r in header + texts if i < len(r)), default=0) for i in range(len(self.columns))]

        def line(cells: Sequence[str]) -> str:
            parts = [
                cell.rjust(widths[i]) if self.columns[i] in self.right else cell.ljust(widths[i])
                for i, cell in enumerate(cells)
            ]
            return "  ".join(parts).rstrip()

        lines = [self.title] if self.title else []
        if self.show_header:
            lines += [line(self.columns), line(["-" * w for w in widths])]
        lines += [line(r) for r in texts]
        return "\n".join(lines)

    def __rich__(self) -> Any:
        """A ``rich.table.Table`` of the same cells, styled (cell text is never read as markup)."""
        from rich.table import Table as RichTable
        from rich.text import Text

        table = RichTable(title=self.title or None, show_header=self.show_header)
        for column in self.columns:
            table.add_column(column, justify="right" if column in self.right else "left")
        for row in self.rows:
            table.add_row(*[Text(_text_of(c), style=_style_of(c)) for c in row])
        return table


def block_tree(params: Sequence[Param], title: str) -> TreeNode:
    """The tree of ``params`` by block: a block's parameters first, then its child blocks.

    >>> from types import SimpleNamespace as NS
    >>> slot = NS(block_path=("0",), block_kinds=("Linear",))
    >>> w = NS(name="0.weight", slot=slot, shape=(4, 3), dtype="float32", trainable=True, shared_with=())
    >>> print(block_tree([w], "net  torch · 1 tensors · 12 scalars"))
    net  torch · 1 tensors · 12 scalars
    └── 0  Linear
        └── weight  (4, 3)  float32
    """
    root = TreeNode(title, styles=("bold",))
    blocks: dict[tuple[str, ...], TreeNode] = {(): root}
    for p in params:
        _block_node(blocks, p.slot.block_path, p.slot.block_kinds)
    placed: dict[tuple[str, ...], int] = {}
    for p in params:  # a block's parameters before its child blocks
        path = tuple(p.slot.block_path)
        leaf = p.name[len(".".join(path)) + 1 :] if path else p.name
        blocks[path].children.insert(placed.get(path, 0), _param_node(p, leaf))
        placed[path] = placed.get(path, 0) + 1
    return root


def _block_node(blocks: dict[tuple[str, ...], TreeNode], path: Sequence[str], kinds: Sequence[str]) -> TreeNode:
    key = tuple(path)
    if key not in blocks:
        parent = _block_node(blocks, key[:-1], kinds)
        kind = kinds[len(key) - 1] if len(key) - 1 < len(kinds) else ""
        blocks[key] = parent.add(key[-1], kind, styles=("bold cyan", "dim"))
    return blocks[key]


def _param_node(p: Param, leaf: str) -> TreeNode:
    from .param import format_shape

    notes = [] if p.trainable else ["not trainable"]
    if p.shared_with:
        notes.append("shared with " + ", ".join(p.shared_with))
    note = f"[{'; '.join(notes)}]" if notes else ""
    return TreeNode(leaf, (format_shape(p.shape), str(p.dtype), note), ("green", "", "magenta", "yellow"))
