"""Pairing the layers of two models: by canonical name, or by order when both agree in kind.

Order matching pairs the i-th parameter-bearing layer of one model with the i-th of the other
only when the two sequences agree in count *and* family at every position; otherwise nothing is
paired and the problem shows both sequences side by side. A transposition between two square
weights is invisible to shapes, so the family (from the adapters) is what keeps a pairing honest.

>>> side_by_side(["dense", "dense"], ["dense"])
'  #0: dense | dense\\n  #1: dense | (none)  <- differs'
"""

from __future__ import annotations

from .layers import LayerParams

#: How many rows of two layer sequences a problem shows around the first difference.
_CONTEXT = 6


def side_by_side(src: list[str], dst: list[str], first_difference: int | None = None) -> str:
    """Two sequences of layer labels as aligned rows, around the first difference."""
    rows = max(len(src), len(dst))
    start = 0 if first_difference is None else max(0, first_difference - _CONTEXT // 2)
    stop = min(rows, start + _CONTEXT * 2)
    lines = []
    for i in range(start, stop):
        a = src[i] if i < len(src) else "(none)"
        b = dst[i] if i < len(dst) else "(none)"
        mark = "  <- differs" if a.split(" ")[0] != b.split(" ")[0] else ""
        lines.append(f"  #{i}: {a} | {b}{mark}")
    if stop < rows:
        lines.append(f"  ... ({rows - stop} more)")
    return "\n".join(lines)


def _label(layer: LayerParams) -> str:
    return f"{layer.family} {layer.path or '<root>'}"


def pair_by_order(src: list[LayerParams], dst: list[LayerParams], problems: list[str]) -> list[tuple[LayerParams, LayerParams]]:
    """Pairs when the sequences agree in count and family everywhere; else none, with a problem."""
    for side, layers in (("source", src), ("destination", dst)):
        if any(layer.family == "?" for layer in layers):
            problems.append(
                f"the {side}'s layers have no known kinds (a file saved by another tool records none), so they "
                f"cannot be matched by order; match by name, or pass match={{destination name: source name}} or "
                f"rename=[(regex, repl)]"
            )
            return []
    first = next((i for i, (s, d) in enumerate(zip(src, dst)) if s.family != d.family), None)
    if len(src) == len(dst) and first is None:
        return list(zip(src, dst))
    if first is None:
        first = min(len(src), len(dst))
    reason = (
        f"the models have {len(src)} and {len(dst)} parameter-bearing layers"
        if len(src) != len(dst)
        else f"layer #{first} is {src[first].family} in the source and {dst[first].family} in the destination"
    )
    problems.append(
        f"matching by order needs the same sequence of layer kinds; {reason} (source | destination):\n"
        + side_by_side([_label(x) for x in src], [_label(x) for x in dst], first)
        + "\n  Nothing was paired. Pass match={destination name: source name} or rename=[(regex, repl)]"
        " for the layers that differ."
    )
    return []


def pair_by_name(src: list[LayerParams], dst: list[LayerParams], problems: list[str]) -> list[tuple[LayerParams, LayerParams]]:
    """Pairs of equal paths; a family mismatch or an unpaired layer is a problem."""
    by_path = {layer.path: layer for layer in src}
    pairs = []
    for layer in dst:
        other = by_path.get(layer.path)
        if other is None:
            problems.append(f"destination layer {layer.label} has no source layer of that name")
        elif other.family != layer.family:
            problems.append(f"layer kinds differ: {other.label} is {other.family}, {layer.label} is {layer.family}")
        else:
            pairs.append((other, layer))
    extra = {layer.path for layer in src} - {layer.path for layer in dst}
    for path in sorted(extra):
        problems.append(f"source layer {path!r} has no destination layer of that name")
    return pairs
