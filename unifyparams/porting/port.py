"""Move parameters from one model to another, across frameworks: :func:`port`.

>>> report = up.port(torch_net, keras_net)          # doctest: +SKIP
>>> print(report)                                    # doctest: +SKIP

Layers are matched by canonical name when the names agree, otherwise by the order of
parameter-bearing layers (checked by layer family and canonical shape), or by an explicit
mapping / rename rules. Every problem is collected before anything is written; under
``strict=True`` a port with any problem changes nothing, and ``dry_run=True`` never writes.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..access import params
from ..errors import DtypeMismatchError, ShapeMismatchError, UnifyParamsError
from ..param import Param, format_shape
from ..paramset import ParamSet
from .convert import LeafPlan, permute_flatten_input, plan_leaves
from .layers import Layer, group_layers


class PortError(UnifyParamsError, ValueError):
    """A port found problems under ``strict=True``; nothing was changed. ``.report`` has details."""

    def __init__(self, message: str, report: PortReport):
        super().__init__(message)
        self.report = report


@dataclass
class PortRow:
    source: str
    destination: str
    shape: str
    conversion: str
    problem: str = ""


@dataclass
class PortReport:
    """The plan (and, unless dry run, the result) of a port."""

    source_backend: str
    destination_backend: str
    match: str
    rows: list[PortRow] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    applied: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems

    def __str__(self) -> str:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"port {self.source_backend} -> {self.destination_backend} (match={self.match})")
        for column in ("source", "destination", "canonical shape", "conversion", "problem"):
            table.add_column(column)
        for r in self.rows:
            table.add_row(r.source, r.destination, r.shape, r.conversion, r.problem)
        console = Console(file=io.StringIO(), record=True, width=160, force_terminal=False)
        console.print(table)
        for w in self.warnings:
            console.print(f"warning: {w}", markup=False)
        for p in self.problems:
            console.print(f"problem: {p}", markup=False)
        state = "applied" if self.applied else "not applied"
        console.print(f"{len(self.rows)} parameter(s), {len(self.problems)} problem(s): {state}")
        return console.export_text()


def _rename(name: str, rules: Sequence[tuple[str, str]]) -> str:
    for pattern, repl in rules:
        name = re.sub(pattern, repl, name)
    return name


def _pair_layers(
    src: list[Layer], dst: list[Layer], match: str, report: PortReport
) -> list[tuple[Layer, Layer]]:
    if match == "name":
        by_path = {layer.path: layer for layer in src}
        pairs = []
        for layer in dst:
            if layer.path not in by_path:
                report.problems.append(f"destination layer {layer.label} has no source layer of that name")
                continue
            pairs.append((by_path[layer.path], layer))
        extra = {layer.path for layer in src} - {layer.path for layer in dst}
        for path in sorted(extra):
            report.problems.append(f"source layer {path!r} has no destination layer of that name")
        return pairs
    if len(src) != len(dst):
        report.problems.append(
            f"the models have {len(src)} and {len(dst)} parameter-bearing layers; matching by order needs "
            f"equal counts (source: {[layer.family for layer in src]}, destination: {[layer.family for layer in dst]})"
        )
    return list(zip(src, dst))


def _check_family(s: Layer, d: Layer, report: PortReport) -> bool:
    if s.family != d.family:
        report.problems.append(f"layer kinds differ: {s.label} is {s.family}, {d.label} is {d.family}")
        return False
    return True


def port(
    src_model: Any,
    dst_model: Any,
    match: str | Mapping[str, str] = "auto",
    strict: bool = True,
    dry_run: bool = False,
    example_input: Any = None,
    rename: Sequence[tuple[str, str]] = (),
) -> PortReport:
    """Copy every parameter of ``src_model`` into ``dst_model``, converting layouts as needed.

    ``match``: ``"auto"`` (names when the layer names agree, else order), ``"name"``, ``"order"``,
    or an explicit ``{destination name: source name}`` mapping. ``rename`` rules
    ``[(regex, replacement), ...]`` are applied to source names before name matching.
    ``example_input`` is accepted for API stability; the flatten permutation is inferred from
    the channel count of the layer before the first dense layer.
    """
    src_ps, dst_ps = params(src_model), params(dst_model)
    mode = match if isinstance(match, str) else "mapping"
    report = PortReport(src_ps.backend, dst_ps.backend, mode)
    plans: list[tuple[str, LeafPlan, Any]] = []  # (destination name, plan, destination Param)

    if isinstance(match, Mapping):
        for dst_name, src_name in match.items():
            if dst_name not in dst_ps or src_name not in src_ps:
                missing = dst_name if dst_name not in dst_ps else src_name
                report.problems.append(f"mapping names {missing!r}, which is not in the model")
                continue
            plans.append((dst_name, LeafPlan(dst_name, (src_name,), "copy", src_ps[src_name].numpy), dst_ps[dst_name]))
    else:
        renamed = ParamSet({_rename(n, rename): p for n, p in src_ps.items()}, backend=src_ps.backend) if rename else src_ps
        src_layers, dst_layers = group_layers(renamed), group_layers(dst_ps)
        if mode == "auto":
            same_names = [layer.path for layer in src_layers] == [layer.path for layer in dst_layers]
            mode = "name" if same_names and not rename else ("name" if rename else "order")
            report.match = f"auto:{mode}"
        if mode not in ("name", "order"):
            raise ValueError(f"match must be 'auto', 'name', 'order' or a mapping; received match={match!r}")
        pairs = _pair_layers(src_layers, dst_layers, mode, report)
        previous_channels: int | None = None
        src_channels_last = dst_channels_last = False
        for s, d in pairs:
            if not _check_family(s, d, report):
                continue
            leaf_plans, problems = plan_leaves(s.family, s.params, d.params)
            report.problems += [f"{d.label}: {p}" for p in problems]
            for plan in leaf_plans:
                plan.src_leaves = tuple(s.params[leaf].name for leaf in plan.src_leaves)
                dst_param = d.params[plan.dst_leaf]
                if (
                    d.family == "dense"
                    and plan.dst_leaf == "weight"
                    and previous_channels
                    and src_channels_last != dst_channels_last
                ):
                    plan = _with_flatten(plan, previous_channels, dst_channels_last, report, d)
                plans.append((dst_param.name, plan, dst_param))
            previous_channels = _channels_after(d, previous_channels)
            if d.family.startswith("conv"):
                src_channels_last, dst_channels_last = _is_channels_last(s), _is_channels_last(d)
            _compare_hyperparameters(s, d, report)

    streaming = all(p.materialized for p in dst_ps.values())
    state: dict[str, np.ndarray] = {}
    planned: set[str] = set()
    for dst_name, plan, dst_param in plans:
        row = PortRow(", ".join(plan.src_leaves), dst_name, format_shape(dst_param.shape), plan.conversion)
        try:
            if streaming and plan.source is not None:
                _check_fits(plan.source, dst_param)  # shapes and dtypes: no values read yet
            else:
                state[dst_name] = plan.compute()
                dst_param.prepare(state[dst_name])
            planned.add(dst_name)
        except UnifyParamsError as exc:
            row.problem = str(exc)
            report.problems.append(f"{dst_name}: {exc}")
        report.rows.append(row)
    for name in dst_ps:
        if name not in planned and not any(r.destination == name for r in report.rows):
            report.problems.append(f"destination parameter {name!r} receives no value")

    if report.problems and strict:
        raise PortError(
            f"port found {len(report.problems)} problem(s); nothing was changed:\n  - "
            + "\n  - ".join(report.problems[:20]),
            report,
        )
    if dry_run:
        return report
    if not streaming:  # a destination waiting for its shapes: ParamSet.load fills whole blocks
        for dst_name, plan, _ in plans:
            if dst_name in planned and dst_name not in state:
                state[dst_name] = plan.compute()
        dst_ps.load(state, strict=False)
    else:
        # Validated above; one tensor at a time, so peak memory is source + destination + one
        # tensor. Tied destination names share one storage: written once.
        written: set[Any] = set()
        for dst_name, plan, dst_param in plans:
            if dst_name not in planned or dst_param.storage_key in written:
                continue
            written.add(dst_param.storage_key)
            value = state.pop(dst_name, None)
            dst_param.write_native(dst_param.prepare(plan.compute() if value is None else value))
    report.applied = True
    return report


def _check_fits(source: Param, dst: Param) -> None:
    """Shape and dtype compatibility of a copy, from metadata alone."""
    if tuple(source.shape) != tuple(dst.shape):
        raise ShapeMismatchError(
            f"parameter {dst.name!r} has canonical shape {format_shape(dst.shape)} but its source "
            f"{source.name!r} has shape {format_shape(source.shape)}"
        )
    if source.dtype != dst.dtype and not np.can_cast(source.dtype, dst.dtype, "same_kind"):
        raise DtypeMismatchError(
            f"parameter {dst.name!r} holds {dst.dtype} but its source {source.name!r} holds {source.dtype}, "
            f"a cast that can lose information"
        )


def _is_channels_last(layer: Layer) -> bool:
    p = next(iter(layer.params.values()))
    return bool(p.adapter.channels_last(p.slot.block))


def _channels_after(layer: Layer, previous: int | None) -> int | None:
    """Channel count of the feature map after ``layer`` (for the flatten permutation)."""
    if layer.family.startswith("conv") and "weight" in layer.params:
        shape = layer.params["weight"].shape
        if layer.family.startswith("conv_transpose"):
            return shape[1] if isinstance(shape[1], int) else None
        return shape[0] if isinstance(shape[0], int) else None
    if layer.family in ("batchnorm", "groupnorm"):
        return previous
    return None


def _with_flatten(plan: LeafPlan, channels: int, to_channels_last: bool, report: PortReport, layer: Layer) -> LeafPlan:
    in_features = layer.params["weight"].shape[1]
    if not isinstance(in_features, int) or in_features % channels:
        report.problems.append(
            f"{layer.label}: follows a {channels}-channel feature map but has {in_features} inputs; cannot tell "
            f"how the flatten orders features. Port this layer with an explicit mapping."
        )
        return plan
    inner = plan.compute
    direction = "channels-first -> channels-last" if to_channels_last else "channels-last -> channels-first"
    if in_features == channels:
        return plan  # one spatial position: both orders agree
    return LeafPlan(
        plan.dst_leaf,
        plan.src_leaves,
        f"{plan.conversion}; flatten permutation ({direction}, C={channels})",
        lambda: permute_flatten_input(inner(), channels, to_channels_last),
        plan.source,
    )


def _compare_hyperparameters(s: Layer, d: Layer, report: PortReport) -> None:
    src_cfg = _config(s)
    dst_cfg = _config(d)
    for key in ("eps", "momentum"):
        a, b = src_cfg.get(key), dst_cfg.get(key)
        if a is not None and b is not None and not np.isclose(a, b):
            report.warnings.append(
                f"{d.label}: {key} differs ({s.label}: {a:g}, {d.label}: {b:g}; momentum in PyTorch's "
                f"convention); outputs can differ slightly"
            )


def _config(layer: Layer) -> dict[str, float]:
    p = next(iter(layer.params.values()))
    return dict(p.adapter.layer_config(p.slot.block))
