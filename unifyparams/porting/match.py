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


def pair_by_order(
    src: list[LayerParams], dst: list[LayerParams], problems: list[str], warnings: list[str] | None = None
) -> list[tuple[LayerParams, LayerParams]]:
    """Pairs when the sequences agree in count and family everywhere; else none, with a problem.

    Layers that only creation order tells apart (:func:`interchangeable_siblings`) on both sides
    are a problem; on one side, a warning."""
    warnings = [] if warnings is None else warnings
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
        src_twins, dst_twins = interchangeable_siblings(src), interchangeable_siblings(dst)
        positions = {k for k, layer in enumerate(src) for group in src_twins if layer.path in group}
        both = [dst[k].path for k in sorted(positions) if any(dst[k].path in g for g in dst_twins)]
        if both:
            group = next(g for g in dst_twins if both[0] in g)
            problems.append(
                f"matching by order cannot tell apart the destination's layers {', '.join(group)} (nor their "
                f"sources): on both sides they are named children of one block with the same kind and shapes, "
                f"so their order is the order each library created them in, which need not be the order they run "
                f"in (keras-hub creates a Llama's up-projection before its gate). Nothing was paired. Pass "
                f"match={{destination name: source name}} or rename=[(regex, repl)] for them, or declare a recipe "
                f"for the pair of models (unifyparams.recipes)"
            )
            return []
        for side, twins in (("source", src_twins), ("destination", dst_twins)):
            for group in twins:
                warnings.append(
                    f"the {side}'s layers {', '.join(group)} have the same kind and shapes and are paired in the "
                    f"order they were created in (the other model orders them by position, as they run); check "
                    f"the outputs, or pass match={{destination name: source name}}"
                )
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


def interchangeable_siblings(layers: list[LayerParams]) -> list[list[str]]:
    """Groups of two or more layers that share a parent block, are reached by attribute name (not
    by position, whose order is the order they run in), and have the same family and shapes:
    order alone cannot say which is which.

    >>> from unifyparams.porting.layers import LayerParams
    >>> a, b = LayerParams("mlp.gate", "Dense", "dense"), LayerParams("mlp.up", "Dense", "dense")
    >>> interchangeable_siblings([a, b])
    [['mlp.gate', 'mlp.up']]
    >>> interchangeable_siblings([LayerParams("0", "Dense", "dense"), LayerParams("1", "Dense", "dense")])
    []
    """
    groups: dict[tuple[object, ...], list[str]] = {}
    for layer in layers:
        parent, _, own = layer.path.rpartition(".")
        if not own or own.split("#")[0].isdigit():
            continue
        shapes = tuple(sorted((leaf, tuple(p.shape)) for leaf, p in layer.params.items()))
        groups.setdefault((parent, layer.family, shapes), []).append(layer.path)
    return [paths for paths in groups.values() if len(paths) > 1]


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
