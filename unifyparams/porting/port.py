"""Move parameters from one model to another, across frameworks: :func:`port`.

>>> report = up.port(net, numpy_net(seed=7))      # torch_net -> keras_net alike
>>> report.ok, report.applied, report.match, len(report.rows)
(True, True, 'auto:name', 8)
>>> print(report.table())                         # doctest: +ELLIPSIS
port numpy-test -> numpy-test (match=auto:name)
source          destination     canonical shape  conversion  native layouts                    problem
--------------  --------------  ---------------  ----------  --------------------------------  -------
0.weight        0.weight        (4, 3)           copy        transpose(1,0) -> transpose(1,0)
0.bias          0.bias          (4,)             copy        identity -> identity
...

Layers are matched by canonical name when the names agree, otherwise by the order of
parameter-bearing layers (only when both sequences agree in count and layer family), or by an
explicit mapping / rename rules. Dense layers after convolutions are converted by what the
models' dataflow says they read (:mod:`unifyparams.porting.flatten`). Every problem is
collected before anything is written; under ``strict=True`` a port with any problem changes
nothing, and ``dry_run=True`` never writes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ..access import params
from ..capabilities import PortingFacts
from ..dataflow import FLATTENED, UNKNOWN, DenseInput, agreement
from ..distributed import collective_for, collective_operation
from ..errors import DtypeMismatchError, ShapeMismatchError, UnifyParamsError
from ..layouts import Layout, Transpose
from ..memory_write import Borrowed
from ..param import Param, format_shape
from ..paramset import ParamSet
from ..progress import Progress, ProgressArg, resolve
from ..recipes.registry import recipe_for
from ..recipes.spec import Recipe
from .convert import LeafPlan, plan_leaves
from .flatten import advice, dense_facts
from .hyper import compare_hyperparameters
from .layers import LayerParams, group_layers
from .match import pair_by_name, pair_by_order
from .rename import renamed
from .report import PortError, PortReport, PortRow

MATCH_MODES = ("auto", "name", "order", "recipe")


def _mode(match: Any) -> str:
    if isinstance(match, Mapping):
        bad = [(k, v) for k, v in match.items() if not isinstance(k, str) or not isinstance(v, str)]
        if bad:
            raise PortError(f"match mapping must map destination names (str) to source names (str); received {bad[:3]}",
                            None)
        return "mapping"
    if isinstance(match, str) and match in MATCH_MODES:
        return match
    raise PortError(
        f"match must be one of {MATCH_MODES} or a {{destination name: source name}} mapping; received match={match!r}",
        None,
    )


def _model_of(model: Any) -> Any:
    return model.model if isinstance(model, ParamSet) else (None if isinstance(model, Param) else model)


def port(
    src_model: Any,
    dst_model: Any,
    *,
    match: str | Mapping[str, str] = "auto",
    strict: bool = True,
    dry_run: bool = False,
    example_input: Any = None,
    dst_example_input: Any = None,
    rename: Sequence[tuple[str, str]] = (),
    src_dense_inputs: Mapping[str, DenseInput] | None = None,
    dst_dense_inputs: Mapping[str, DenseInput] | None = None,
    atomic: bool = True,
    progress: ProgressArg = None,
) -> PortReport:
    """Copy every parameter of ``src_model`` into ``dst_model``, converting layouts as needed.

    ``match``: ``"auto"`` (names when the layer names agree, else order), ``"name"``, ``"order"``,
    or an explicit ``{destination name: source name}`` mapping. ``rename`` rules
    ``[(regex, replacement), ...]`` are applied to source names before name matching.

    ``example_input`` (the source's native input layout) and ``dst_example_input`` (the
    destination's; defaults to ``example_input`` between models of one backend) let adapters
    trace a forward pass to learn what each dense layer after convolutions reads;
    ``src_dense_inputs``/``dst_dense_inputs`` (``{layer path: up.DenseInput}``) state it
    instead. A fact that matters but cannot be established is a problem, never a guess.
    ``atomic=False`` skips the snapshot that restores the destination if the framework refuses a
    write part way (it saves a copy of each parameter): such a port is not atomic.

    ``progress``: ``True`` a progress bar, ``False`` nothing, a ``callback(done, total)`` (bytes
    written, once per destination tensor and at the end; ``(0, 0)`` for a dry run); ``None`` (the
    default) a bar only on a terminal, outside CI, for a port still running after half a second
    (:mod:`unifyparams.progress`).
    """
    # either side sharded over processes: every rank ports together (its reads of a sharded source are
    # collectives), and one rank's failure is every rank's (unifyparams.distributed)
    src_ps, dst_ps = params(src_model), params(dst_model)
    collective = collective_for(src_ps.values()) or collective_for(dst_ps.values())
    with collective_operation(collective, "port"), resolve(progress, "porting") as bar:
        return _port(src_model, dst_model, src_ps, dst_ps, match=match, strict=strict, dry_run=dry_run, example_input=example_input,
                     dst_example_input=dst_example_input, rename=rename, src_dense_inputs=src_dense_inputs,
                     dst_dense_inputs=dst_dense_inputs, atomic=atomic, progress=bar)


def _port(
    src_model: Any, dst_model: Any, src_ps: ParamSet, dst_ps: ParamSet, *, match: str | Mapping[str, str], strict: bool, dry_run: bool,
    example_input: Any, dst_example_input: Any, rename: Sequence[tuple[str, str]],
    src_dense_inputs: Mapping[str, DenseInput] | None, dst_dense_inputs: Mapping[str, DenseInput] | None,
    atomic: bool, progress: Progress,
) -> PortReport:
    mode = _mode(match)
    if rename and mode == "mapping":
        raise PortError(
            "rename rules and a match mapping were both given; a mapping already names every source, so the "
            "rules would not apply. Pass one of them (a mapping whose names are the renamed ones: rename first "
            "with up.port(..., rename=...) and match by name)", None,
        )
    if mode in ("auto", "recipe") and not rename:
        pair = _recipe_pair(src_model, dst_model, required=mode == "recipe")
        if pair is not None:
            return port_by_recipes(src_ps, dst_ps, *pair, strict=strict, dry_run=dry_run, atomic=atomic,
                                   progress=progress, src_config=_config_of(pair[0], _model_of(src_model)),
                                   dst_config=_config_of(pair[1], _model_of(dst_model)))
        if mode == "recipe":
            mode = "auto"
    report = PortReport(src_ps.backend, dst_ps.backend, mode)
    if dst_example_input is None and src_ps.backend == dst_ps.backend:
        dst_example_input = example_input
    source_ps = renamed(src_ps, rename)
    src_layers, dst_layers = group_layers(source_ps), group_layers(dst_ps)
    src_facts = dense_facts(source_ps, _model_of(src_model), example_input, src_dense_inputs)
    dst_facts = dense_facts(dst_ps, _model_of(dst_model), dst_example_input, dst_dense_inputs)

    pairs, plans = _plan(match, mode, bool(rename), source_ps, dst_ps, src_layers, dst_layers, report)
    compare_hyperparameters(pairs, report)
    final = [
        (_ordered(plan, s, d, src_facts, dst_facts, report), d.params[plan.dst_leaf]) for s, d, plan in plans
    ]
    return _finish(final, dst_ps, report, strict=strict, dry_run=dry_run, atomic=atomic, progress=progress)


def _finish(
    final: list[tuple[LeafPlan, Param]], dst_ps: ParamSet, report: PortReport, *, strict: bool, dry_run: bool,
    atomic: bool, progress: Progress | None = None,
) -> PortReport:
    """Check the planned writes, refuse on any problem under ``strict``, then write (unless dry run)."""
    _check_tied_destinations(final, report)
    state, planned = _validate(final, dst_ps, report)
    if report.problems and strict:
        raise PortError(
            f"port found {len(report.problems)} problem(s); nothing was changed:\n  - "
            + "\n  - ".join(report.problems[:20]),
            report,
        )
    if dry_run:
        return report
    _apply(final, planned, state, dst_ps, atomic, progress)
    report.applied = True
    return report


def _recipe_pair(src_model: Any, dst_model: Any, *, required: bool) -> tuple[Recipe, Recipe] | None:
    """The recipes of one family describing both models' classes, or None (``required``: refuse)."""
    src_target, dst_target = _model_of(src_model), _model_of(dst_model)
    src = recipe_for(src_target) if src_target is not None else None
    dst = recipe_for(dst_target, family=src.family) if src is not None and dst_target is not None else None
    if src is not None and dst is not None:
        return src, dst
    if required:
        found = {"source": src, "destination": dst}
        raise PortError(
            "match='recipe' needs a recipe for both models; "
            + ", ".join(f"the {side} ({type(_model_of(m)).__name__}) has {r.key if r else 'none'}"
                        for (side, r), m in zip(found.items(), (src_model, dst_model)))
            + ". Recipes are declared in the 'unifyparams.recipes' entry-point group (unifyparams.recipes.families())",
            None,
        )
    return None


def _config_of(recipe: Recipe, model: Any) -> Mapping[str, Any] | None:
    if recipe.read_config is None or model is None:
        return None
    return recipe.read_config(model)


def port_by_recipes(
    src_ps: ParamSet, dst_ps: ParamSet, src_recipe: Recipe, dst_recipe: Recipe, *, strict: bool = True,
    dry_run: bool = False, atomic: bool = True, src_config: Mapping[str, Any] | None = None,
    dst_config: Mapping[str, Any] | None = None, src_is_file: bool = False, progress: ProgressArg = None,
) -> PortReport:
    """A port planned by two recipes of one family (see :mod:`unifyparams.recipes.plan`); ``progress``
    as for :func:`port`."""
    with resolve(progress, "porting") as bar:
        return _port_by_recipes(src_ps, dst_ps, src_recipe, dst_recipe, strict=strict, dry_run=dry_run, atomic=atomic,
                                src_config=src_config, dst_config=dst_config, src_is_file=src_is_file, progress=bar)


def _port_by_recipes(
    src_ps: ParamSet, dst_ps: ParamSet, src_recipe: Recipe, dst_recipe: Recipe, *, strict: bool, dry_run: bool,
    atomic: bool, src_config: Mapping[str, Any] | None, dst_config: Mapping[str, Any] | None, src_is_file: bool,
    progress: Progress,
) -> PortReport:
    from ..recipes.plan import plan as recipe_plan

    report = PortReport(src_ps.backend, dst_ps.backend,
                        f"recipe:{src_recipe.family} ({src_recipe.library} -> {dst_recipe.library})")
    planned = recipe_plan(src_recipe, src_ps, dst_recipe, dst_ps, src_config=src_config, dst_config=dst_config,
                          src_is_file=src_is_file)
    report.problems += planned.problems
    report.warnings += planned.warnings
    compare_hyperparameters(_layer_pairs(src_ps, dst_ps, planned.pairs), report)
    return _finish(planned.final, dst_ps, report, strict=strict, dry_run=dry_run, atomic=atomic, progress=progress)


def _layer_pairs(src_ps: ParamSet, dst_ps: ParamSet, pairs: Sequence[tuple[Param, Param]]) -> list[tuple[LayerParams, LayerParams]]:
    """The layers of one-to-one copied tensors, paired once each (for the hyper-parameter check)."""
    def index(ps: ParamSet) -> dict[int, LayerParams]:
        return {id(p): layer for layer in group_layers(ps) for p in layer.params.values()}

    src_index, dst_index = index(src_ps), index(dst_ps)
    found: dict[tuple[int, int], tuple[LayerParams, LayerParams]] = {}
    for s, d in pairs:
        a, b = src_index.get(id(s)), dst_index.get(id(d))
        if a is not None and b is not None and a.family == b.family:
            found.setdefault((id(a), id(b)), (a, b))
    return list(found.values())


def _plan(
    match: str | Mapping[str, str], mode: str, renaming: bool, source_ps: ParamSet, dst_ps: ParamSet,
    src_layers: list[LayerParams], dst_layers: list[LayerParams], report: PortReport,
) -> tuple[list[tuple[LayerParams, LayerParams]], list[tuple[LayerParams, LayerParams, LeafPlan]]]:
    """Pair the layers (by mapping, name or order; ``auto`` chooses and says so in the report)
    and plan each destination leaf."""
    if mode == "mapping":
        assert isinstance(match, Mapping)
        return _mapping_plans(match, source_ps, dst_ps, src_layers, dst_layers, report)
    if mode == "auto":
        same_names = [layer.path for layer in src_layers] == [layer.path for layer in dst_layers]
        mode = "name" if same_names or renaming else "order"
        report.match = f"auto:{mode}"
    if mode == "name":
        pairs = pair_by_name(src_layers, dst_layers, report.problems)
    else:
        pairs = pair_by_order(src_layers, dst_layers, report.problems, report.warnings)
    plans = []
    for s, d in pairs:
        leaf_plans, problems = plan_leaves(s.family, s.params, d.params)
        report.problems += [f"{d.label}: {p}" for p in problems]
        for plan in leaf_plans:
            plan.src_leaves = tuple(s.params[leaf].name for leaf in plan.src_leaves)
            plans.append((s, d, plan))
    return pairs, plans


def _ordered(
    plan: LeafPlan, s: LayerParams, d: LayerParams, src_facts: Mapping[str, DenseInput],
    dst_facts: Mapping[str, DenseInput], report: PortReport,
) -> LeafPlan:
    """A dense weight after convolutions, converted for the flatten order each side reads."""
    if d.family == "dense" and plan.dst_leaf == "weight" and s.family == "dense":
        return _with_dense_order(plan, s, d, src_facts.get(s.path), dst_facts.get(d.path), report)
    return plan


def _mapping_plans(
    match: Mapping[str, str], src_ps: ParamSet, dst_ps: ParamSet, src_layers: list[LayerParams], dst_layers: list[LayerParams],
    report: PortReport,
) -> tuple[list[tuple[LayerParams, LayerParams]], list[tuple[LayerParams, LayerParams, LeafPlan]]]:
    """Plans for an explicit ``{destination: source}`` mapping, with the layers each name is in."""
    src_layer = {p.name: layer for layer in src_layers for p in layer.params.values()}
    dst_layer = {p.name: layer for layer in dst_layers for p in layer.params.values()}
    plans: list[tuple[LayerParams, LayerParams, LeafPlan]] = []
    pairs: dict[tuple[int, int], tuple[LayerParams, LayerParams]] = {}
    for dst_name, src_name in match.items():
        missing = [n for n, ps in ((dst_name, dst_ps), (src_name, src_ps)) if n not in ps]
        if missing:
            side = "destination" if missing[0] == dst_name else "source"
            report.problems.append(f"mapping names {missing[0]!r}, which is not a parameter of the {side} model")
            continue
        s, d = src_layer[src_name], dst_layer[dst_name]
        leaf = next(k for k, p in d.params.items() if p.name == dst_name)
        source = src_ps[src_name]
        plans.append((s, d, LeafPlan(leaf, (src_name,), "copy", source.numpy, source)))
        pairs[(id(s), id(d))] = (s, d)
    return list(pairs.values()), plans


def _with_dense_order(
    plan: LeafPlan, s: LayerParams, d: LayerParams, src_fact: DenseInput | None, dst_fact: DenseInput | None, report: PortReport
) -> LeafPlan:
    """The plan for a dense weight, converted between the two models' input orders."""
    facts = {"source": (src_fact, s, "src_"), "destination": (dst_fact, d, "dst_")}
    for side, (fact, layer, prefix) in facts.items():
        if fact is not None and fact.kind == UNKNOWN:
            report.problems.append(
                f"{layer.label}: how the {side} layer orders its inputs is not established ({fact.reason}); "
                + advice(layer.path, prefix)
            )
            return plan
        if fact is not None and fact.kind == FLATTENED:
            inputs = layer.params["weight"].shape[1]
            if isinstance(inputs, int) and inputs != fact.size:
                report.problems.append(
                    f"{layer.label}: the {side} layer has {inputs} inputs but its dataflow says it reads "
                    f"{fact.describe()} ({fact.size} values)"
                )
                return plan
    if src_fact is None or dst_fact is None:
        return plan
    conflict = agreement(src_fact, dst_fact)
    if conflict is not None:
        report.problems.append(f"{d.label}: the two layers do not compute the same function: {conflict}")
        return plan
    if not (src_fact.permutes or dst_fact.permutes):
        return plan
    inner = plan.compute
    transpose = _fastest_transpose(s, d)

    def converted() -> np.ndarray:
        return dst_fact.to_model(src_fact.to_canonical(inner(), transpose), transpose)

    change = f"input order: {src_fact.describe()} -> {dst_fact.describe()}"
    fused = _fused_order(plan, d.params[plan.dst_leaf], src_fact, dst_fact)
    return LeafPlan(plan.dst_leaf, plan.src_leaves, f"{plan.conversion}; {change}", converted, plan.source, fused)


def _native_atoms(fact: DenseInput, layout: Layout, ndim: int) -> list[int] | None:
    """The axes of a dense weight's native array once its input axis is split into the flattened
    map's axes: ``-1`` for the output axis, ``a`` for map axis ``a``; None for other layouts."""
    inputs = list(fact.order) if fact.permutes else list(range(ndim))
    if layout.is_identity:
        return [-1, *inputs]
    if isinstance(layout, Transpose) and layout.perm == (1, 0):
        return [*inputs, -1]
    return None


def _fused_order(
    plan: LeafPlan, dst: Param, src_fact: DenseInput, dst_fact: DenseInput
) -> Callable[[Param], np.ndarray | None] | None:
    """The flatten reorder and both native layouts composed into one transposing copy, from the
    source's native memory to the destination's native layout (the route a hand-written copy
    takes), when the source is one tensor of the destination's dtype in a plain layout."""
    src = plan.source
    if src is None or src.dtype != dst.dtype or len(src.native_shape) != 2 or len(dst.native_shape) != 2:
        return None
    if src_fact.permutes and dst_fact.permutes and src_fact.map_shape != dst_fact.map_shape:
        return None
    map_shape = src_fact.map_shape if src_fact.permutes else dst_fact.map_shape
    src_atoms = _native_atoms(src_fact, src.layout, len(map_shape))
    dst_atoms = _native_atoms(dst_fact, dst.layout, len(map_shape))
    out = dst.shape[0]
    if src_atoms is None or dst_atoms is None or not isinstance(out, int):
        return None
    sizes = tuple(out if a == -1 else map_shape[a] for a in src_atoms)
    axes = tuple(src_atoms.index(a) for a in dst_atoms)
    source = src

    def write_into(p: Param) -> np.ndarray | None:
        native_shape = tuple(int(d) for d in p.native_shape)  # type: ignore[arg-type]
        if axes == tuple(range(len(axes))):  # the reorders cancel: a plain copy
            return source.adapter.read(source.native).reshape(native_shape)
        if type(p.adapter).write_permuted is not PortingFacts.write_permuted:
            base = np.ascontiguousarray(source.adapter.read(source.native)).reshape(sizes)
            if p.adapter.write_permuted(p.native, base, axes):
                return None
        value = source.adapter.read_permuted(source.native, sizes, axes)
        if value is None:
            base = np.ascontiguousarray(source.adapter.read(source.native)).reshape(sizes)
            transpose = _fastest_transpose_of(source.adapter, p.adapter)
            value = transpose(base, axes)
        return value.reshape(native_shape)

    return write_into


def _fastest_transpose_of(*adapters: Any) -> Any:
    """The first of ``adapters``' own transposing copies, else NumPy's."""
    for adapter in adapters:
        if type(adapter).transpose_copy is not PortingFacts.transpose_copy:
            return adapter.transpose_copy
    return adapters[0].transpose_copy


def _fastest_transpose(s: LayerParams, d: LayerParams) -> Any:
    """The source framework's transposing copy if it has its own (the values come from its memory,
    in its layout), else the destination's; either is several times faster than NumPy's for the
    large weight of a VGG's first dense layer."""
    for layer in (s, d):
        adapter = next(iter(layer.params.values())).adapter
        if type(adapter).transpose_copy is not PortingFacts.transpose_copy:
            return adapter.transpose_copy
    return None


def _check_tied_destinations(final: list[tuple[LeafPlan, Param]], report: PortReport) -> None:
    """Destination names sharing one storage must receive the same source, converted the same way."""
    by_storage: dict[Any, tuple[str, tuple[Any, ...], str]] = {}
    for plan, dst_param in final:
        key = dst_param.storage_key
        sources = tuple(plan.src_leaves)
        if plan.source is not None:
            sources = (plan.source.storage_key,)
        previous = by_storage.get(key)
        if previous is None:
            by_storage[key] = (dst_param.name, sources, plan.conversion)
        elif previous[1] != sources or previous[2] != plan.conversion:
            report.problems.append(
                f"{dst_param.name!r} and {previous[0]!r} share one storage (tied) in the destination but are fed "
                f"by different sources ({', '.join(plan.src_leaves)} vs the source of {previous[0]!r}); untie "
                f"them first (up.untie) or map both to one source"
            )


def _validate(
    final: list[tuple[LeafPlan, Param]], dst_ps: ParamSet, report: PortReport
) -> tuple[dict[str, np.ndarray], set[str]]:
    """Check every planned value fits its destination; rows of the report; values already computed."""
    streaming = all(p.materialized for p in dst_ps.values())
    state: dict[str, np.ndarray] = {}
    planned: set[str] = set()
    for plan, dst_param in final:
        dst_name = dst_param.name
        row = PortRow(", ".join(plan.src_leaves), dst_name, format_shape(dst_param.shape), plan.conversion,
                      layouts=_layouts(plan, dst_param))
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
    fed = {r.destination for r in report.rows}
    for name in dst_ps:
        if name not in fed:
            report.problems.append(f"destination parameter {name!r} receives no value")
    return state, planned


def _layouts(plan: LeafPlan, dst: Param) -> str:
    """Both native layouts, so no transposition goes unseen."""
    def short(layout: Any) -> str:
        return repr(layout).removeprefix("<Layout ").removesuffix(">")

    src = short(plan.source.layout) if plan.source is not None else "computed"
    return f"{src} -> {short(dst.layout)}"


def _apply(
    final: list[tuple[LeafPlan, Param]], planned: set[str], state: dict[str, np.ndarray], dst_ps: ParamSet,
    atomic: bool, progress: Progress | None = None,
) -> None:
    if not all(p.materialized for p in dst_ps.values()):
        # a destination waiting for its shapes: ParamSet.load fills whole blocks together
        for plan, dst_param in final:
            if dst_param.name in planned and dst_param.name not in state:
                state[dst_param.name] = plan.compute()
        dst_ps.load(state, strict=False, rollback=atomic, progress=progress if progress is not None else False)
        return
    # One tensor at a time, so peak memory is source + destination + one tensor (plus the
    # snapshot of what was written, when atomic). Tied destination names are written once.
    writes: list[tuple[Param, Callable[[], np.ndarray | None]]] = []
    seen: set[Any] = set()
    for plan, dst_param in final:
        if dst_param.name not in planned or dst_param.storage_key in seen:
            continue
        seen.add(dst_param.storage_key)
        value = state.pop(dst_param.name, None)

        def produce(p: Param = dst_param, plan: LeafPlan = plan, value: np.ndarray | None = value) -> np.ndarray | None:
            if value is None and plan.write_into is not None:
                return plan.write_into(p)  # native already (or written by the adapter itself)
            return p.prepare(plan.compute() if value is None else value)

        if value is None and plan.write_into is None and _copies_one_tensor(plan, dst_param):
            writes.append((dst_param, Borrowed(functools.partial(_borrowed, plan.source, dst_param), produce)))
        else:
            writes.append((dst_param, produce))
    from ..transaction import write_all

    write_all(writes, atomic=atomic, what="port", progress=progress)


def _copies_one_tensor(plan: LeafPlan, dst: Param) -> bool:
    """A plan whose value is one source tensor, only its layout changed (no cast, no arithmetic)."""
    return plan.conversion == "copy" and plan.source is not None and plan.source.dtype == dst.dtype


def _borrowed(source: Param | None, dst: Param) -> np.ndarray | None:
    """``source``'s values in ``dst``'s native layout as a view of memory that exists already
    (:meth:`Adapter.borrow <unifyparams.adapter.Adapter.borrow>`), or None."""
    assert source is not None
    if not all(layout.is_identity or isinstance(layout, Transpose) for layout in (source.layout, dst.layout)):
        return None  # a gate reorder gathers rows: new memory
    memory = source.adapter.borrow(source.native)
    return None if memory is None else dst.prepare(source.layout.to_canonical(memory))


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
