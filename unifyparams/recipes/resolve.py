"""Applying one recipe to one model's parameters: every reference tensor, bound to its Params.

>>> from unifyparams.recipes.spec import Recipe, Split
>>> recipe = Recipe(family="toy", library="a", models=("Toy",),
...                 tensors={"l.{i}.qk": Split(0, ("b.{i}.q", "b.{i}.k")), "out": "head"})
>>> bound = bind(recipe, {"b.0.q": "P1", "b.0.k": "P2", "b.1.q": "P3", "b.1.k": "P4", "head": "P5", "x": "P6"})
>>> sorted(bound.tensors), bound.unused, bound.incomplete
(['l.0.qk', 'l.1.qk', 'out'], ['x'], [])
>>> bound.tensors["l.1.qk"].keys
('b.1.q', 'b.1.k')
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .spec import Recipe, RecipeError, TensorSpec, names_of

_INDEX = re.compile(r"\{(\w+)\}")


def _pattern(template: str) -> re.Pattern[str]:
    parts = _INDEX.split(template)
    regex = "".join(re.escape(p) if k % 2 == 0 else f"(?P<{p}>\\d+)" for k, p in enumerate(parts))
    try:
        return re.compile(f"^{regex}$")
    except re.error as exc:  # the same placeholder twice
        raise RecipeError(f"template {template!r} is not valid: {exc}") from None


def matches(template: str, concrete: str) -> bool:
    """Whether ``concrete`` is ``template`` with its placeholders filled.

    >>> matches("h.{i}.attn.c_attn.weight", "h.11.attn.c_attn.weight"), matches("h.{i}.w", "h.x.w")
    (True, False)
    """
    return _pattern(template).match(concrete) is not None


def fill(template: str, values: Mapping[str, str]) -> str:
    """A template with its placeholders filled: ``fill("h.{i}.w", {"i": "3"}) == "h.3.w"``."""
    try:
        return _INDEX.sub(lambda m: values[m.group(1)], template)
    except KeyError as exc:
        raise RecipeError(f"template {template!r} needs a value for {{{exc.args[0]}}}") from None


@dataclass
class Bound:
    """One reference tensor of a model: the recipe's spec and the model's keys and objects."""

    reference: str
    spec: TensorSpec
    keys: tuple[str, ...]
    items: tuple[Any, ...]


@dataclass
class Binding:
    """A recipe applied to one model: reference name -> :class:`Bound`, and what did not fit."""

    recipe: Recipe
    prefix: str
    tensors: dict[str, Bound] = field(default_factory=dict)
    #: keys of the model that no template describes
    unused: list[str] = field(default_factory=list)
    #: reference tensors with some parts found and some missing: ``(reference, missing keys)``
    incomplete: list[tuple[str, list[str]]] = field(default_factory=list)


def _prefix(recipe: Recipe, keys: list[str]) -> str:
    """The task-model prefix most keys carry (``""`` when none does)."""
    best, count = "", 0
    for prefix in recipe.prefixes:
        n = sum(1 for k in keys if prefix and k.startswith(prefix))
        if n > count:
            best, count = prefix, n
    return best


def bind(recipe: Recipe, items: Mapping[str, Any]) -> Binding:
    """Bind ``recipe`` to a model's ``{key: object}`` (keys in the recipe's naming)."""
    keys = list(items)
    prefix = _prefix(recipe, keys)
    local = {k[len(prefix):] if prefix and k.startswith(prefix) else k: k for k in keys}
    binding = Binding(recipe, prefix)
    patterns = [(reference, spec, [_pattern(t) for t in names_of(spec)]) for reference, spec in recipe.tensors.items()]
    used: set[str] = set()
    for reference, spec, compiled in patterns:
        templates = names_of(spec)
        if not templates:  # Zeros(): the library has no tensor; the reference is zero in its models
            if _INDEX.search(reference) is None:
                binding.tensors[reference] = Bound(reference, spec, (), ())
            continue
        seen: dict[tuple[tuple[str, str], ...], None] = {}
        for name in local:  # every index this spec's templates take in the model
            for pattern in compiled:
                m = pattern.match(name)
                if m is not None:
                    seen.setdefault(tuple(sorted(m.groupdict().items())), None)
        for values in seen:
            filled = [fill(t, dict(values)) for t in templates]
            missing = [f for f in filled if f not in local]
            concrete = fill(reference, dict(values))
            if missing:
                binding.incomplete.append((concrete, missing))
                continue
            full = tuple(local[f] for f in filled)
            used.update(full)
            binding.tensors[concrete] = Bound(concrete, spec, full, tuple(items[k] for k in full))
    binding.unused = [k for k in keys if k not in used]
    return binding
