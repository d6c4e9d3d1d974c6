"""One model of what unifyparams shows (trees and tables), drawn by rich or as plain text.

A :class:`TreeNode` or :class:`Table` is data: ``str()`` gives plain text, and rich draws it with
styles through ``__rich__`` (``rich.print(node)`` or ``console.print(node)``; ``print()`` always
gives the plain text, so that ``str()`` never holds terminal escapes). ``ParamSet`` trees,
``unifyparams inspect``, port and load reports all use it.

Plain text fits the terminal: on a terminal (stdout a tty, or ``COLUMNS`` set) lines are kept
within ``shutil.get_terminal_size()`` columns, the widest columns cut with an ellipsis (``…``)
rather than wrapped; elsewhere (a file, a pipe, a log) columns are as wide as their contents,
never cut. ``text(width=...)`` forces a width. Rich fits its console's width itself.

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

import os
import shutil
import sys
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .param import Param

#: A table cell: its text, or ``(text, rich style)``.
Cell = str | tuple[str, str]


#: What a cut cell ends with.
ELLIPSIS = "…"
#: The narrowest a column is cut to (its ellipsis included).
MIN_COLUMN = 4


def terminal_width() -> int | None:
    """The width plain text must fit: the terminal's columns when stdout is a terminal (or
    ``COLUMNS`` is set), None (no limit) otherwise."""
    if not os.environ.get("COLUMNS"):
        try:
            if not (sys.stdout is not None and sys.stdout.isatty()):
                return None
        except (AttributeError, ValueError):
            return None
    return max(shutil.get_terminal_size().columns, 1)


def on_terminal() -> bool:
    """True when stdout is an interactive terminal (where ``print`` shows rich's rendering)."""
    try:
        return sys.stdout is not None and sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    except (AttributeError, ValueError):
        return False


def shown(obj: Any, plain: str | None = None) -> str:
    """What ``print(obj)`` shows: rich's rendering of ``obj`` (``obj.__rich__()``) on a
    terminal when rich is installed, else ``plain`` (the plain text, fitted to the terminal).
    Off a terminal (logs, pipes, files, doctests) it is always the plain text, without escapes.
    """
    if on_terminal():
        try:
            import io

            from rich.console import Console
        except ImportError:
            pass
        else:
            buffer = io.StringIO()
            Console(file=buffer, force_terminal=True, width=terminal_width()).print(obj)
            return buffer.getvalue().rstrip("\n")
    return plain if plain is not None else str(obj)


def cut(text: str, width: int) -> str:
    """``text`` in at most ``width`` characters, ending with an ellipsis when cut.

    >>> cut("encoder.layers.0.weight", 10), cut("bias", 10)
    ('encoder.l…', 'bias')
    """
    if len(text) <= width:
        return text
    return text[: max(width - 1, 0)] + ELLIPSIS if width > 0 else ""


def fit_widths(widths: Sequence[int], available: int | None, sep: int = 2) -> list[int]:
    """Column widths that fit ``available`` characters (``sep`` between columns): the widest
    columns are narrowed first, none below :data:`MIN_COLUMN` (or its own width).

    >>> fit_widths([20, 5, 30], 40)
    [15, 5, 16]
    """
    fitted = list(widths)
    if available is None or not fitted:
        return fitted
    budget = available - sep * (len(fitted) - 1)
    while sum(fitted) > budget:
        widest = max(range(len(fitted)), key=lambda i: fitted[i])
        floor = min(MIN_COLUMN, widths[widest])
        if fitted[widest] <= floor:
            break  # cannot narrow further: the line is cut as a whole
        fitted[widest] -= 1
    return fitted


def _fit_line(line: str, width: int | None) -> str:
    return line if width is None else cut(line, width)


def wrap(text: str, width: int | None) -> list[str]:
    """Prose lines wrapped at ``width`` (None: as they are); words are not cut."""
    if width is None:
        return text.splitlines() or [""]
    out: list[str] = []
    for line in text.splitlines() or [""]:
        out += [cut(piece, width) for piece in textwrap.wrap(line, width, break_on_hyphens=False)] or [""]
    return out


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

    def pieces(self, widths: Sequence[int] = (), available: int | None = None) -> list[tuple[str, str]]:
        """``(text, style)`` pieces of this line, its cells padded to ``widths`` (not the last);
        with ``available``, cells are cut (with an ellipsis) so the line fits that many characters."""
        texts = [self.label, *self.columns]
        while len(texts) > 1 and not texts[-1]:
            texts.pop()
        if available is not None:
            natural = [max(widths[i] if i < len(widths) else 0, len(t)) for i, t in enumerate(texts)]
            fitted = fit_widths(natural, available)
            texts = [cut(t, w) for t, w in zip(texts, fitted)]
            widths = [min(w, f) for w, f in zip(widths, fitted)]
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

    def text(self, width: int | None = None) -> str:
        """Plain text within ``width`` characters a line (None: no limit)."""
        lines = ["".join(text for text, _ in self.pieces((), width))]
        walked: list[tuple[str, TreeNode, list[int]]] = []
        self._walk("", walked)
        for branch, node, widths in walked:
            room = None if width is None else max(width - len(branch), 1)
            lines.append(branch + "".join(text for text, _ in node.pieces(widths, room)))
        return "\n".join(_fit_line(line.rstrip(), width) for line in lines)

    def __str__(self) -> str:
        """Plain text, fitted to the terminal's width (see the module); rich's on a terminal."""
        return shown(self, self.text(terminal_width()))

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

    text = Text.assemble(*[(text, style) if style else text for text, style in pieces])
    text.no_wrap, text.overflow = True, "ellipsis"  # a tree line is cut, never wrapped under its guides
    return text


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

    def text(self, width: int | None = None) -> str:
        """Plain text within ``width`` characters a line (None: columns as wide as their contents)."""
        texts = [[_text_of(c) for c in row] for row in self.rows]
        header = [list(self.columns)] if self.show_header else []
        natural = [max((len(r[i]) for r in header + texts if i < len(r)), default=0) for i in range(len(self.columns))]
        widths = fit_widths(natural, width)

        def line(cells: Sequence[str]) -> str:
            parts = [
                cut(cell, widths[i]).rjust(widths[i]) if self.columns[i] in self.right
                else cut(cell, widths[i]).ljust(widths[i])
                for i, cell in enumerate(cells)
            ]
            return _fit_line("  ".join(parts).rstrip(), width)

        lines = [_fit_line(self.title, width)] if self.title else []
        if self.show_header:
            lines += [line(self.columns), line(["-" * w for w in widths])]
        lines += [line(r) for r in texts]
        return "\n".join(lines)

    def __str__(self) -> str:
        """Plain text, fitted to the terminal's width (see the module); rich's on a terminal."""
        return shown(self, self.text(terminal_width()))

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
    placement = getattr(p, "placement", None)
    if placement:
        notes.append(placement)
    note = f"[{'; '.join(notes)}]" if notes else ""
    return TreeNode(leaf, (format_shape(p.shape), str(p.dtype), note), ("green", "", "magenta", "yellow"))
