"""Finding recipes: the ``unifyparams.recipes`` entry-point group, built-ins included.

A package declares its recipes in its ``pyproject.toml``; the object named is a
:class:`~unifyparams.recipes.Recipe` or a sequence of them::

    [project.entry-points."unifyparams.recipes"]
    mylib = "mylib_unifyparams.recipes:RECIPES"

The recipe for a model is chosen by its class (any class along its hierarchy), so a pair of
models names its family without hints.

>>> from unifyparams.recipes import Recipe
>>> toy = Recipe(family="toy", library="a", models=("ToyA",), tensors={"w": "w"})
>>> class ToyA: pass
>>> recipe_for(ToyA(), extra=[toy]).key
'toy/a'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from importlib import metadata
from typing import Any

from ..errors import UnifyParamsError
from .spec import Recipe, RecipeError

RECIPES_GROUP = "unifyparams.recipes"

_cache: list[Recipe] | None = None


def _entries() -> list[Recipe]:
    found: list[Recipe] = []
    for entry in sorted(metadata.entry_points(group=RECIPES_GROUP), key=lambda e: e.name):
        try:
            value = entry.load()
        except Exception as exc:  # a broken third-party package must say which entry point
            raise RecipeError(f"recipe entry point {entry.name!r} ({entry.value}) does not load: {exc}") from exc
        items = [value] if isinstance(value, Recipe) else list(value) if isinstance(value, (list, tuple)) else None
        if items is None or not all(isinstance(r, Recipe) for r in items):
            raise RecipeError(
                f"recipe entry point {entry.name!r} ({entry.value}) names {type(value).__name__}; expected a "
                f"unifyparams.recipes.Recipe or a list of them"
            )
        found += items
    return found


def all_recipes(*, refresh: bool = False) -> list[Recipe]:
    """Every declared recipe (loaded once; ``refresh=True`` reads the entry points again)."""
    global _cache
    if _cache is None or refresh:
        _cache = _entries()
    return list(_cache)


def _class_names(model: Any) -> list[str]:
    target = getattr(model, "model", None) if type(model).__name__ == "ParamSet" else model
    return [c.__name__ for c in type(target).__mro__]


def recipe_for(model: Any, *, family: str | None = None, extra: Sequence[Recipe] = ()) -> Recipe | None:
    """The recipe describing ``model``'s class (the nearest class along its hierarchy wins), or None."""
    candidates = [*extra, *all_recipes()]
    for name in _class_names(model):
        matching = [r for r in candidates if name in r.models and (family is None or r.family == family)]
        if len(matching) > 1 and len({r.key for r in matching}) > 1:
            raise UnifyParamsError(
                f"several recipes describe {name}: {sorted({r.key for r in matching})}; pass recipe= to choose"
            )
        if matching:
            return matching[0]
    return None


def by_family(family: str, library: str, extra: Iterable[Recipe] = ()) -> Recipe | None:
    """The recipe of ``library`` for ``family``, or None."""
    for recipe in [*extra, *all_recipes()]:
        if recipe.family == family and recipe.library == library:
            return recipe
    return None


def with_files(family: str, extra: Iterable[Recipe] = ()) -> Recipe | None:
    """The recipe of ``family`` that describes its ``save_pretrained`` files (``hf=HFFiles(...)``)."""
    for recipe in [*extra, *all_recipes()]:
        if recipe.family == family and recipe.hf is not None:
            return recipe
    return None


def for_model_type(model_type: str, extra: Iterable[Recipe] = ()) -> Recipe | None:
    """The ``transformers`` recipe whose files have ``model_type`` (a ``config.json`` field)."""
    for recipe in [*extra, *all_recipes()]:
        if recipe.hf is not None and recipe.hf.model_type == model_type:
            return recipe
    return None


def families() -> Mapping[str, list[str]]:
    """``{family: [library, ...]}`` of every declared recipe.

    >>> sorted(families())                                 # doctest: +SKIP
    ['bert', 'gemma', 'gpt2', 'llama', 'mistral', 'qwen2', 'roberta']
    """
    table: dict[str, list[str]] = {}
    for recipe in all_recipes():
        table.setdefault(recipe.family, []).append(recipe.library)
    return table
