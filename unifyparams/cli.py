"""The ``unifyparams`` command line.

    $ unifyparams inspect model.pt                   # tree of names, shapes, dtypes; totals; ties; metadata
    $ unifyparams convert net.params net.safetensors # native file -> our format (or -> .pt)
    $ unifyparams diff a.safetensors b.pt            # names, shapes, max |a - b|; exit 0 same, 1 different
    $ unifyparams conformance [--backend torch] [-k access] [--report reports/]

Native files are read without running code from them (see :mod:`unifyparams.formats`). Errors
print one line on stderr and exit with status 2.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .display import Cell, Table, TreeNode
from .errors import UnifyParamsError
from .formats import NativeCheckpoint, formats, read, write_safetensors, write_torch

#: Elements compared at a time in ``diff`` (bounds the float64 copies).
DIFF_CHUNK = 1 << 22

Step = Callable[[str, int], None]


# --- output helpers ---------------------------------------------------------------------------
def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    console = Console(stderr=stderr, highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = 160
    return console


def human_bytes(n: int) -> str:
    """``1536`` -> ``'1.5 KiB'``."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def _shape(array: np.ndarray) -> str:
    return "(" + ", ".join(str(d) for d in array.shape) + ("," if array.ndim == 1 else "") + ")"


@contextmanager
def progress(label: str, count: int, nbytes: int) -> Iterator[Step]:
    """A ``step(name, nbytes)`` callback driving the library's progress (:mod:`unifyparams.progress`):
    the same bar and the same rule as ``up.save``/``up.load`` (a bar on a terminal, outside CI, for
    work still running after half a second)."""
    from .progress import resolve

    with resolve(None, label) as bar:
        bar.start(nbytes)
        yield lambda name, n: bar.advance(n)


def _describe(ckpt: NativeCheckpoint) -> str:
    names = "canonical names" if ckpt.canonical_names else "framework names"
    return f"{ckpt.format}, {names}, layout {ckpt.layout}"


def _section(console: Any, title: str) -> None:
    from rich.text import Text

    console.print(Text(title, style="bold"))


def _print_notes(console: Any, ckpt: NativeCheckpoint) -> None:
    from rich.text import Text

    for note in ckpt.notes:
        console.print(Text(f"note: {note}", style="yellow"))


# --- inspect ----------------------------------------------------------------------------------
def cmd_inspect(args: argparse.Namespace) -> int:
    """Print the tree of a checkpoint, its totals, tie groups, metadata and notes."""
    ckpt = read(args.path, args.format)
    console = _console()
    console.print(build_tree(ckpt, args.depth))
    for title, table in inspect_tables(ckpt):
        _section(console, title)
        console.print(table)
    _print_notes(console, ckpt)
    return 0


def inspect_tables(ckpt: NativeCheckpoint) -> list[tuple[str, Table]]:
    """The totals, tie groups and metadata of ``ckpt`` as titled tables (empty ones left out)."""
    totals = Table(("key", "value"), show_header=False)
    totals.add_row("tensors", f"{len(ckpt.tensors):,}")
    totals.add_row("scalars", f"{ckpt.scalars:,}")
    totals.add_row("bytes", f"{ckpt.nbytes:,} ({human_bytes(ckpt.nbytes)})")
    totals.add_row("dtypes", ", ".join(sorted({str(a.dtype) for a in ckpt.tensors.values()})) or "-")
    out = [("totals", totals)]
    if ckpt.ties:
        ties = Table(("stored", "aliases"), [(group[0], ", ".join(group[1:])) for group in ckpt.ties])
        out.append(("tie groups (the first name is stored, the others are aliases)", ties))
    if ckpt.metadata:
        rows = [(k, v if len(v) <= 200 else v[:200] + "...") for k, v in sorted(ckpt.metadata.items())]
        out.append(("metadata", Table(("key", "value"), list(rows))))
    return out


def build_tree(ckpt: NativeCheckpoint, depth: int | None = None) -> TreeNode:
    """The tree of a file: names grouped by prefix (``.``, or ``/`` for Keras paths), leaves with
    shape and dtype; groups below ``depth`` levels are collapsed into one summary line each.

    ``str()`` of it is plain text; rich draws it styled.

    >>> import numpy as np
    >>> print(build_tree(NativeCheckpoint("m.pt", "torch", {"0.weight": np.zeros((4, 3), np.float32)})))
    m.pt  [torch, canonical names, layout canonical]  1 tensor, 12 scalars, 48 B
    └── 0  1 tensor, 12 scalars, 48 B
        └── weight  (4, 3)  float32
    """
    nested: Node = {}
    for name, array in ckpt.tensors.items():
        parts = name.split(ckpt.separator)
        node = nested
        for part in parts[:-1]:
            child = node.setdefault((True, part), {})
            assert isinstance(child, dict)
            node = child
        node[(False, parts[-1])] = array
    root = TreeNode(ckpt.path, (f"[{_describe(ckpt)}]", _summary(_stats(nested))), ("bold",))
    _add_nodes(root, nested, depth, 1)
    return root


#: A group of the tree: ``{(is_group, name part): subgroup or array}``, in file order.
Node = dict[tuple[bool, str], Any]


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def _summary(stats: tuple[int, int, int]) -> str:
    tensors, scalars, nbytes = stats
    return f"{_plural(tensors, 'tensor')}, {_plural(scalars, 'scalar')}, {human_bytes(nbytes)}"


def _stats(node: Any) -> tuple[int, int, int]:
    if not isinstance(node, dict):
        return 1, math.prod(node.shape), int(node.nbytes)
    counts = [_stats(child) for child in node.values()]
    return sum(c[0] for c in counts), sum(c[1] for c in counts), sum(c[2] for c in counts)


def _add_nodes(tree: TreeNode, nested: Node, depth: int | None, level: int) -> None:
    for (is_group, key), value in nested.items():
        if not is_group:
            tree.add(key, _shape(value), str(value.dtype), styles=("green", "", "magenta"))
            continue
        branch = tree.add(key, _summary(_stats(value)), styles=("bold cyan",))
        if depth is None or level < depth:
            _add_nodes(branch, value, depth, level + 1)


# --- convert ----------------------------------------------------------------------------------
def cmd_convert(args: argparse.Namespace) -> int:
    """Convert ``SRC`` (any supported format) to ``DST`` (``.safetensors`` or ``.pt``/``.pth``)."""
    dst = Path(args.dst)
    suffix = dst.suffix.lower()
    if suffix not in (".safetensors", ".pt", ".pth"):
        raise UnifyParamsError(
            f"convert writes .safetensors (ours) or .pt/.pth (PyTorch); received {dst.name!r}"
        )
    if dst.exists() and not args.force:
        raise UnifyParamsError(f"{dst} exists; pass --force to replace it")
    ckpt = read(args.src, args.format)
    console = _console()
    with progress("converting", len(ckpt.tensors), ckpt.nbytes) as step:
        if suffix == ".safetensors":
            write_safetensors(ckpt, dst, step)
            target = "unifyparams safetensors"
        else:
            write_torch(ckpt, dst, step)
            target = "PyTorch state dict"
    console.print(
        f"converted {len(ckpt.tensors)} tensors ({human_bytes(ckpt.nbytes)}) from {ckpt.path} "
        f"[{_describe(ckpt)}] to {target} {dst}",
        markup=False,
    )
    if ckpt.ties:
        console.print(f"tie groups kept: {len(ckpt.ties)}", markup=False)
    _print_notes(console, ckpt)
    return 0


# --- diff -------------------------------------------------------------------------------------
def max_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    """Largest ``|a - b|`` over same-shaped arrays, in float64, a chunk at a time (NaN where NaNs differ)."""
    flat_a, flat_b = a.reshape(-1), b.reshape(-1)
    worst = 0.0
    for start in range(0, flat_a.size, DIFF_CHUNK):
        x = flat_a[start : start + DIFF_CHUNK].astype(np.complex128 if a.dtype.kind == "c" else np.float64)
        y = flat_b[start : start + DIFF_CHUNK].astype(np.complex128 if b.dtype.kind == "c" else np.float64)
        both_nan = np.isnan(x) & np.isnan(y)
        delta = np.abs(x - y)
        delta[both_nan] = 0.0
        if np.isnan(delta).any():
            return float("nan")
        if delta.size:
            worst = max(worst, float(delta.max()))
    return worst


@dataclass
class Diff:
    """What ``diff`` found: a table row per tensor shown, counts by kind of difference, the worst value."""

    table: Table
    common: int = 0
    only_a: int = 0
    only_b: int = 0
    counts: dict[str, int] = field(default_factory=lambda: {"shape": 0, "dtype": 0, "values": 0})
    worst: float = 0.0

    @property
    def different(self) -> bool:
        """True when the two checkpoints differ in names, shapes, dtypes or values."""
        return bool(self.only_a or self.only_b or any(self.counts.values()))

    def summary(self) -> str:
        """One line: ``IDENTICAL: ...`` or ``DIFFERENT: ...`` with every count."""
        c = self.counts
        return ("DIFFERENT: " if self.different else "IDENTICAL: ") + (
            f"{self.common} common tensors: {c['values']} with different values, {c['shape']} with "
            f"different shapes, {c['dtype']} with different dtypes; {self.only_a} only in A, "
            f"{self.only_b} only in B; max |A-B| {self.worst:.6g}"
        )


def compare(
    a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray], atol: float = 0.0, *, only_different: bool = False,
    step: Step = lambda name, n: None,
) -> Diff:
    """Compare two ``{name: array}`` states tensor by tensor (see ``unifyparams diff``).

    >>> x = np.zeros(3, np.float32)
    >>> compare({"w": x, "v": x}, {"w": x + 1}).summary()
    'DIFFERENT: 1 common tensors: 1 with different values, 0 with different shapes, 0 with different dtypes; 1 only in A, 0 only in B; max |A-B| 1'
    """
    diff = Diff(Table(("name", "A", "B", "max |A-B|", "status"), right=("max |A-B|",)))
    common = [n for n in a if n in b]
    diff.common = len(common)
    for name in common:
        step(name, int(a[name].nbytes))
        _compare_one(diff, name, a[name], b[name], atol, only_different)
    only = [(n, a[n], "A") for n in a if n not in b] + [(n, b[n], "B") for n in b if n not in a]
    for name, x, side in only:
        cell = f"{_shape(x)} {x.dtype}"
        diff.table.add_row(name, cell if side == "A" else "-", cell if side == "B" else "-", "-",
                           (f"only in {side}", "red"))
    diff.only_a, diff.only_b = sum(s == "A" for *_, s in only), sum(s == "B" for *_, s in only)
    return diff


def _compare_one(diff: Diff, name: str, x: np.ndarray, y: np.ndarray, atol: float, only_different: bool) -> None:
    cells: list[Cell] = [name, f"{_shape(x)} {x.dtype}", f"{_shape(y)} {y.dtype}"]
    if x.shape != y.shape:
        diff.counts["shape"] += 1
        diff.table.add_row(*cells, "-", ("shape differs", "red"))
        return
    value = max_abs_diff(x, y)
    diff.worst = value if math.isnan(value) or math.isnan(diff.worst) else max(diff.worst, value)
    status, style = "same", "green"
    if math.isnan(value) or value > atol:
        diff.counts["values"] += 1
        status, style = "values differ", "red"
    elif x.dtype != y.dtype:
        diff.counts["dtype"] += 1
        status, style = "dtype differs", "yellow"
    if status != "same" or not only_different:
        diff.table.add_row(*cells, f"{value:.6g}", (status, style))


def cmd_diff(args: argparse.Namespace) -> int:
    """Compare two checkpoints; exit 0 when identical (within ``--atol``), 1 when they differ."""
    from rich.text import Text

    left, right = read(args.a, args.format_a), read(args.b, args.format_b)
    a, b = left.expanded(), right.expanded()
    nbytes = sum(int(a[n].nbytes) for n in a if n in b)
    with progress("comparing", sum(1 for n in a if n in b), nbytes) as step:
        diff = compare(a, b, args.atol, only_different=args.only_different, step=step)
    console = _console()
    console.print(
        Text(f"A = {left.path}  [{_describe(left)}]\nB = {right.path}  [{_describe(right)}]", style="bold")
    )
    console.print(diff.table)
    if left.layout != right.layout:
        note = f"note: the layouts differ (A {left.layout}, B {right.layout}); values are compared as stored"
        console.print(Text(note, style="yellow"))
    console.print(Text(diff.summary(), style="bold red" if diff.different else "bold green"))
    return 1 if diff.different else 0


# --- entry point ------------------------------------------------------------------------------
def _version() -> str:
    from . import __version__  # the package's one version (pyproject reads it too)

    return __version__


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand but ``conformance`` (which parses its own)."""
    parser = argparse.ArgumentParser(prog="unifyparams", description="One interface for NN parameters.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    known = formats()
    fmt_names = list(known)
    fmt_help = "file format, when the suffix does not tell: " + "; ".join(f"{k}: {v}" for k, v in known.items())

    p = sub.add_parser(
        "inspect", help="print the tree of a checkpoint (names, shapes, dtypes, totals, ties, metadata)"
    )
    p.add_argument("path", help="checkpoint file (.safetensors, index or folder, .pt, .params, .weights.h5)")
    p.add_argument("--format", choices=fmt_names, help=fmt_help)
    p.add_argument("--depth", type=int, help="collapse groups deeper than this many levels")
    p.set_defaults(run=cmd_inspect)

    p = sub.add_parser("convert", help="convert a checkpoint: SRC (any format) -> DST (.safetensors or .pt)")
    p.add_argument("src")
    p.add_argument(
        "dst", help="destination: .safetensors (ours, with metadata) or .pt/.pth (canonical sources only)"
    )
    p.add_argument("--format", choices=fmt_names, help="format of SRC; " + fmt_help)
    p.add_argument("-f", "--force", action="store_true", help="replace DST if it exists")
    p.set_defaults(run=cmd_convert)

    p = sub.add_parser(
        "diff", help="compare two checkpoints: names, shapes, max abs difference; exit 1 if they differ"
    )
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--format-a", choices=fmt_names, help="format of A")
    p.add_argument("--format-b", choices=fmt_names, help="format of B")
    p.add_argument(
        "--atol", type=float, default=0.0, help="values within this absolute difference count as equal"
    )
    p.add_argument("--only-different", action="store_true", help="list only tensors that differ")
    p.set_defaults(run=cmd_diff)

    sub.add_parser("conformance", help="run the conformance suite (see: unifyparams conformance --help)")
    return parser


def error(message: str) -> int:
    """Print ``unifyparams: error: message`` on one line of stderr; return exit status 2."""
    text = " ".join(str(message).split())
    print(f"unifyparams: error: {text}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run a command; returns the exit status (0 ok, 1 ``diff`` found differences, 2 error)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "conformance":
        from .conformance.runner import main as conformance_main

        return conformance_main(argv[1:])
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2, message already printed)
        return exc.code if isinstance(exc.code, int) else 2
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(args.run(args))
    except UnifyParamsError as exc:
        return error(str(exc))
    except OSError as exc:
        return error(f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": "))
    except MemoryError:  # readers refuse files that declare more than they hold; this is a real shortage
        return error("out of memory: the input does not fit in this machine's memory; nothing was written")
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
