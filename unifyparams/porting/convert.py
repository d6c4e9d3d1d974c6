"""Value conversions between two matched layers whose canonical forms differ.

Canonical layouts already agree across frameworks; what remains are structural differences:
Keras keeps one recurrent bias where PyTorch and Gluon keep two, and PyTorch packs attention's
query, key and value projections into one tensor. (The input order of a dense layer after a
flatten is :mod:`unifyparams.dataflow`'s business.)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from ..param import Param

Getter = Callable[[], np.ndarray]


@dataclass
class LeafPlan:
    """How one destination leaf gets its value."""

    dst_leaf: str
    src_leaves: tuple[str, ...]
    conversion: str
    compute: Getter
    #: For plans that copy one source tensor (possibly permuted, same shape): that source, so a
    #: port can validate shapes and dtypes without reading any values.
    source: Param | None = None
    #: Optional: writes ``compute()``'s value into the destination parameter given, in one
    #: transposing copy from the source's memory where the adapters offer one (a dense weight whose
    #: input order changes); returns the native value for the destination's ``write`` instead, or
    #: None when it wrote the parameter itself.
    write_into: Callable[[Param], np.ndarray | None] | None = None


def _value(p: Param) -> Getter:
    return lambda: p.numpy()


def plan_leaves(
    family: str, src: Mapping[str, Param], dst: Mapping[str, Param]
) -> tuple[list[LeafPlan], list[str]]:
    """Plans for every destination leaf of a layer, and the problems found (empty when all fit)."""
    plans: list[LeafPlan] = []
    problems: list[str] = []
    for leaf, p in dst.items():
        if leaf in src:
            plans.append(LeafPlan(leaf, (leaf,), "copy", _value(src[leaf]), src[leaf]))
            continue
        plan = _recurrent_bias(family, leaf, src, p) or _attention(family, leaf, src)
        if plan is None:
            problems.append(f"no source for {leaf!r} (source has {sorted(src)})")
        else:
            plans.append(plan)
    return plans, problems


_QKV = ("q_proj", "k_proj", "v_proj")


def _attention(family: str, leaf: str, src: Mapping[str, Param]) -> LeafPlan | None:
    """PyTorch packs the query, key and value projections into ``in_proj_weight`` (3E, E) and
    ``in_proj_bias`` (3E,) when their sizes agree; Keras (and PyTorch with other key sizes) keeps
    ``q_proj_weight``/``k_proj_weight``/``v_proj_weight``: split rows, or stack them."""
    if family != "attention":
        return None
    for kind in ("weight", "bias"):
        packed = f"in_proj_{kind}"
        parts = tuple(f"{q}_{kind}" for q in _QKV)
        if leaf in parts and packed in src:
            index = parts.index(leaf)
            source = src[packed]

            def rows(source: Param = source, index: int = index) -> np.ndarray:
                value = source.numpy()
                size = value.shape[0] // 3
                return value[index * size : (index + 1) * size]

            return LeafPlan(leaf, (packed,), f"rows {index}/3 of {packed}", rows)
        if leaf == packed and all(p in src for p in parts):
            sources = [src[p] for p in parts]

            def stacked(sources: list[Param] = sources) -> np.ndarray:
                return np.concatenate([s.numpy() for s in sources])

            return LeafPlan(leaf, parts, "stack q, k, v", stacked)
    return None


def _recurrent_bias(family: str, leaf: str, src: Mapping[str, Param], dst: Param) -> LeafPlan | None:
    rev = "_reverse" if leaf.endswith("_reverse") else ""
    base = leaf[: -len(rev)] if rev else leaf
    if family not in ("lstm", "gru", "rnn"):
        return None
    if base == "bias" and f"bias_ih{rev}" in src and f"bias_hh{rev}" in src:
        b_ih, b_hh = src[f"bias_ih{rev}"], src[f"bias_hh{rev}"]
        if len(dst.shape) == 2:  # GRU reset_after: rows (input, recurrent)
            return LeafPlan(leaf, (f"bias_ih{rev}", f"bias_hh{rev}"), "stack rows",
                            lambda: np.stack([b_ih.numpy(), b_hh.numpy()]))
        return LeafPlan(leaf, (f"bias_ih{rev}", f"bias_hh{rev}"), "sum (b_ih + b_hh)",
                        lambda: b_ih.numpy() + b_hh.numpy())
    if base in ("bias_ih", "bias_hh") and f"bias{rev}" in src:
        single = src[f"bias{rev}"]
        row = 0 if base == "bias_ih" else 1
        if len(single.shape) == 2:
            return LeafPlan(leaf, (f"bias{rev}",), f"row {row}", lambda: single.numpy()[row])
        if row == 0:
            return LeafPlan(leaf, (f"bias{rev}",), "all of the single bias", lambda: single.numpy())
        return LeafPlan(leaf, (f"bias{rev}",), "zeros (single bias went to bias_ih)",
                        lambda: np.zeros(single.numpy().shape, dtype=single.dtype))
    return None
