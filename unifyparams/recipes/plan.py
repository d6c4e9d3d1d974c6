"""A port planned by two recipes of one family: every destination tensor from the source's,
through the family's reference names, with the configurations compared.

For each reference tensor the destination holds, the source's parts are joined into the
reference tensor (its recipe's transform, inverted) and split into the destination's (its
recipe's transform). A plain one-to-one tensor is a copy that the port streams like any other.
A destination tensor no recipe row describes, a reference tensor the source lacks, and a
configuration value that differs (norm eps, activation, rotary base, head counts, tied
embeddings) are problems: under ``strict=True`` nothing is written.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..param import Param
from ..paramset import ParamSet
from ..porting.convert import LeafPlan
from .resolve import Binding, Bound, _pattern, bind, matches
from .spec import Recipe, RecipeError, Rows, Split, Transposed, Zeros

#: Relative tolerance of float configuration values (``1e-5`` and ``1.0e-05`` from JSON agree).
_RTOL = 1e-9


def keyed(ps: ParamSet, recipe: Recipe) -> dict[str, Param]:
    """``{key: Param}`` in the recipe's naming (canonical names, or the framework's own)."""
    if recipe.names == "native":
        return {p.native_name: p for p in ps.values()}
    return dict(ps.items())


def same_value(a: Any, b: Any) -> bool:
    """Configuration values compare equal (floats within a relative tolerance)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return bool(a) == bool(b) if isinstance(a, bool) and isinstance(b, bool) else a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(float(a), float(b), rel_tol=_RTOL, abs_tol=0.0)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    return bool(a == b)


def compare_config(
    src: Recipe, src_config: Mapping[str, Any] | None, dst: Recipe, dst_config: Mapping[str, Any] | None
) -> tuple[list[str], list[str]]:
    """``(problems, warnings)``: every reference configuration key both sides know and disagree
    on is a problem, unless one side's fixed value is declared a close approximation of the
    other's (a warning)."""
    problems, warnings = [], []
    for key in dict.fromkeys([*src.config, *dst.config]):
        known_a, a = src.config_value(key, src_config)
        known_b, b = dst.config_value(key, dst_config)
        if not (known_a and known_b) or same_value(a, b):
            continue
        if b in src.approximates(key) or a in dst.approximates(key):
            warnings.append(
                f"configuration: {key} is {a!r} in the source ({src.key}) and {b!r} in the destination "
                f"({dst.key}), which the recipe declares a close approximation; outputs differ slightly"
            )
            continue
        problems.append(
            f"configuration differs: {key} is {a!r} in the source ({src.key}) and {b!r} in the destination "
            f"({dst.key}); the two models do not compute the same function. Build one of them with the "
            f"other's value where its library lets you choose it"
        )
    return problems, warnings


@dataclass
class _Reference:
    """The reference value of one bound source tensor, read once and shared by the parts that
    need it (GPT-2's ``c_attn`` feeds three destination tensors)."""

    source: Bound
    transposed: bool
    users: int
    #: the reference tensor's shape and dtype where the source cannot say (``Rows``, ``Zeros``)
    like: tuple[tuple[int, ...], Any] | None = None
    value: np.ndarray | None = None
    served: int = 0

    def get(self) -> np.ndarray:
        if self.value is None:
            self.value = self._read()
        value = self.value
        self.served += 1
        if self.served >= self.users:  # the last part: let it go
            self.value, self.served = None, 0
        return value

    def _read(self) -> np.ndarray:
        spec = self.source.spec
        if isinstance(spec, Zeros):
            shape, dtype = self._like()
            return np.zeros(shape, dtype)
        parts = [p.numpy() for p in self.source.items]
        if isinstance(spec, Rows):
            return spec.to_reference(parts[0], self._like()[0][0])
        value = parts[0] if isinstance(spec, str) else spec.join(parts)
        return np.ascontiguousarray(value.T) if self.transposed else value

    def _like(self) -> tuple[tuple[int, ...], Any]:
        if self.like is None:
            raise RecipeError(f"{self.source.reference}: a Rows/Zeros source needs a plain destination tensor")
        return self.like
        value = self.value
        self.served += 1
        if self.served >= self.users:  # the last part: let it go
            self.value, self.served = None, 0
        return value


@dataclass
class RecipePlan:
    """What :func:`plan` found: the plans with their destinations, and the report's lines."""

    final: list[tuple[LeafPlan, Param]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    pairs: list[tuple[Param, Param]] = field(default_factory=list)


def _parts(spec: Any, reference: Callable[[], np.ndarray], shapes: list[tuple[int, ...]], k: int) -> np.ndarray:
    value = reference()
    if isinstance(spec, str):
        return value
    return spec.split(value, shapes)[k]


def plan(
    src_recipe: Recipe, src_ps: ParamSet, dst_recipe: Recipe, dst_ps: ParamSet, *,
    src_config: Mapping[str, Any] | None = None, dst_config: Mapping[str, Any] | None = None,
    src_is_file: bool = False,
) -> RecipePlan:
    """Plan a port of ``src_ps`` into ``dst_ps`` by their recipes (one family, any two libraries).

    ``src_is_file``: the source is a ``save_pretrained`` folder, whose tensors the family's
    :class:`~unifyparams.recipes.HFFiles` may keep transposed.
    """
    result = RecipePlan()
    src_items, dst_items = keyed(src_ps, src_recipe), keyed(dst_ps, dst_recipe)
    source, dest = bind(src_recipe, src_items), bind(dst_recipe, dst_items)
    display = {id(p): name for name, p in src_ps.items()}
    problems, warnings = compare_config(src_recipe, src_config, dst_recipe, dst_config)
    result.problems += problems
    result.warnings += warnings
    for side, binding in (("source", source), ("destination", dest)):
        for reference, missing in binding.incomplete:
            result.problems.append(
                f"the {side} has part of {reference} ({binding.recipe.key}) but not {', '.join(missing)}"
            )
    transposed = _stored_transposed(src_recipe) if src_is_file else set()
    unfed: list[tuple[str, list[Param]]] = []
    for reference, bound in dest.tensors.items():
        origin = source.tensors.get(reference)
        if origin is None:
            unfed.append((reference, list(bound.items)))
        elif not isinstance(bound.spec, Zeros):  # Zeros: the destination has no such tensor
            names = tuple(display.get(id(p), p.name) for p in origin.items)
            _plan_tensor(reference, bound, origin, source, names, reference in transposed, result)
    _plan_aliases(unfed, src_recipe, result)
    _unused(source, dest, src_items, dst_items, dst_recipe, result)
    order = {id(p): k for k, p in enumerate(dst_ps.values())}
    result.final.sort(key=lambda item: order.get(id(item[1]), len(order)))  # rows in the destination's order
    return result


def _plan_tensor(reference: str, bound: Bound, origin: Bound, source: Binding, names: tuple[str, ...],
                 transposed: bool, result: RecipePlan) -> None:
    """The plans of the destination tensors of one reference tensor: a copy, rows, or parts."""
    targets = list(bound.items)
    if isinstance(bound.spec, Rows):
        _plan_rows(reference, bound, origin, source, names, result)
        return
    if isinstance(origin.spec, str) and isinstance(bound.spec, str) and not transposed:
        src_param = origin.items[0]
        result.final.append((LeafPlan(targets[0].name, names, "copy", src_param.numpy, src_param), targets[0]))
        result.pairs.append((src_param, targets[0]))
        return
    like = (tuple(int(d) for d in targets[0].shape), targets[0].dtype) if len(targets) == 1 else None
    ref = _Reference(origin, transposed, len(targets), like)
    shapes = [tuple(int(d) for d in p.shape) if all(d is not None for d in p.shape) else () for p in targets]
    for k, target in enumerate(targets):
        def compute(spec: Any = bound.spec, k: int = k) -> np.ndarray:
            return _parts(spec, ref.get, shapes, k)

        result.final.append((LeafPlan(target.name, names, _conversion(origin, bound, k, transposed), compute, None),
                             target))


def _plan_aliases(unfed: list[tuple[str, list[Param]]], src_recipe: Recipe, result: RecipePlan) -> None:
    """Destination tensors the source has no value for: a tie alias of a fed tensor (a tied
    ``lm_head``) gets that tensor's plan; anything else is a problem."""
    fed = {target.storage_key: leaf_plan for leaf_plan, target in result.final}
    for reference, targets in unfed:
        if all(t.storage_key in fed for t in targets):
            result.final.extend((fed[t.storage_key], t) for t in targets)
            continue
        result.problems.append(
            f"{', '.join(p.name for p in targets)}: the source has no {reference} "
            f"({src_recipe.key} names it {_describe(src_recipe, reference)}); nothing can feed it"
        )


def _plan_rows(reference: str, bound: Bound, origin: Bound, source: Binding, names: tuple[str, ...],
               result: RecipePlan) -> None:
    """A destination that keeps some rows of the reference tensor, maybe with another folded in."""
    spec = bound.spec
    assert isinstance(spec, Rows)
    target = bound.items[0]
    folded: _Reference | None = None
    if spec.fold is not None:
        fold_origin = source.tensors.get(spec.fold[0])
        if fold_origin is None:
            result.problems.append(f"{target.name}: the source has no {spec.fold[0]} to fold into {reference}")
            return
        folded = _Reference(fold_origin, False, 1)
        names = (*names, *fold_origin.keys)
    ref = _Reference(origin, False, 1)
    rows = int(target.shape[0])  # type: ignore[arg-type]

    def compute() -> np.ndarray:
        extra = folded.get()[spec.fold[1]] if folded is not None and spec.fold is not None else None
        return spec.from_reference(ref.get(), extra, rows)

    conversion = f"rows {spec.start}:{spec.start + rows}" + (f" + {spec.fold[0]}[{spec.fold[1]}]" if spec.fold else "")
    result.final.append((LeafPlan(target.name, names, conversion, compute, None), target))


def _describe(recipe: Recipe, reference: str) -> str:
    """What ``recipe`` expects for a reference tensor (its template), or that it has none."""
    for template, spec in recipe.tensors.items():
        if matches(template, reference):
            return repr(spec)
    return "no such tensor"


def _stored_transposed(recipe: Recipe) -> set[str]:
    """Reference tensor templates the family's files keep transposed, as a matcher set."""
    return set() if recipe.hf is None else _Templates(recipe.hf.stored_transposed)  # type: ignore[return-value]


class _Templates(set):  # type: ignore[type-arg]
    """A set of templates that contains every concrete name one of them matches."""

    def __init__(self, templates: tuple[str, ...]):
        super().__init__(templates)
        self._patterns = [_pattern(t) for t in templates]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and any(p.match(name) for p in self._patterns)


def _conversion(origin: Bound, bound: Bound, k: int, transposed: bool) -> str:
    steps = []
    if isinstance(origin.spec, Split):
        steps.append(f"concat {len(origin.keys)} along axis {origin.spec.axis}")
    elif isinstance(origin.spec, Transposed):
        steps.append("transpose")
    elif isinstance(origin.spec, Rows):
        steps.append(f"into rows {origin.spec.start}: of zeros")
    elif isinstance(origin.spec, Zeros):
        steps.append("zeros (the source library has none)")
    if transposed:
        steps.append("transpose (stored (in, out))")
    if isinstance(bound.spec, Split):
        steps.append(bound.spec.describe(k))
    elif isinstance(bound.spec, Transposed):
        steps.append("transpose")
    return "; ".join(steps) or "copy"


def _unused(source: Binding, dest: Binding, src_items: Mapping[str, Param], dst_items: Mapping[str, Param],
            dst_recipe: Recipe, result: RecipePlan) -> None:
    """Destination tensors no recipe row describes are problems; unused source tensors a warning."""
    by_storage = {target.storage_key: leaf_plan for leaf_plan, target in result.final}
    for key in dest.unused:
        alias = dst_items[key]
        if alias.storage_key in by_storage:  # a tie alias of a described tensor gets the same value
            result.final.append((by_storage[alias.storage_key], alias))
            continue
        result.problems.append(
            f"destination parameter {dst_items[key].name!r} is not described by recipe {dst_recipe.key}; nothing "
            f"would write it (add it to the recipe, or port with match='name' and rename rules)"
        )
    used_storage = {p.storage_key for b in source.tensors.values() if b.reference in dest.tensors for p in b.items}
    left = [src_items[k].name for k in source.unused if src_items[k].storage_key not in used_storage]
    left += [b.keys[0] for r, b in source.tensors.items() if r not in dest.tensors
             and not any(p.storage_key in used_storage for p in b.items)]
    if left:
        result.warnings.append(
            f"{len(left)} source tensor(s) have no place in the destination and are not ported: "
            + ", ".join(left[:6]) + (f" and {len(left) - 6} more" if len(left) > 6 else "")
        )
