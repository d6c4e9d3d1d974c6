"""Finding each backend's conformance builders: the ``unifyparams.builders`` entry-point group.

Builders are declared beside the adapter, under the same name, and never on the runtime adapter
class (a package registers both in its ``pyproject.toml``)::

    [project.entry-points."unifyparams.builders"]
    numpynn = "unifyparams_numpynn.builders:NumpyNNBuilders"

>>> from unifyparams.conformance import builders_class
>>> builders_class("torch").__name__                 # doctest: +SKIP
'TorchModels'
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

from ..errors import UnifyParamsError, closest_names
from .builders import ModelBuilders

BUILDERS_GROUP = "unifyparams.builders"

_by_hand: dict[str, type[ModelBuilders]] = {}


class BuildersNotFoundError(UnifyParamsError, LookupError):
    """No conformance builders are declared for a backend."""


def register_builders(cls: type[ModelBuilders], name: str | None = None) -> None:
    """Declare builders by hand (tests, notebooks); the entry-point group is the normal route.

    >>> from unifyparams.conformance import ModelBuilders, register_builders
    >>> class Demo(ModelBuilders): backend = "demo"
    >>> register_builders(Demo)
    """
    _by_hand[name or cls.backend] = cls


def _declared() -> dict[str, metadata.EntryPoint]:
    return {ep.name: ep for ep in metadata.entry_points(group=BUILDERS_GROUP)}


def builder_names() -> list[str]:
    """Every backend with declared builders (nothing is imported).

    >>> "torch" in builder_names()                    # doctest: +SKIP
    True
    """
    return sorted({*_declared(), *_by_hand})


def builders_class(name: str) -> type[ModelBuilders]:
    """The builders class declared for backend ``name`` (imports its module, not its framework).

    Raises :class:`BuildersNotFoundError` naming the declared backends and how to declare one.
    """
    if name in _by_hand:
        return _by_hand[name]
    declared = _declared()
    if name not in declared:
        raise BuildersNotFoundError(
            f"expected conformance builders declared for backend {name!r} under the {BUILDERS_GROUP!r} "
            f"entry-point group; received none (declared: {sorted(declared) or 'none'}; closest: "
            f"{closest_names(name, declared, 3)}). Add `{name} = \"package.module:Class\"` to "
            f"[project.entry-points.\"{BUILDERS_GROUP}\"] and reinstall, or call register_builders()."
        )
    cls = declared[name].load()
    if not (isinstance(cls, type) and issubclass(cls, ModelBuilders)):
        raise BuildersNotFoundError(
            f"expected a ModelBuilders subclass at {declared[name].value!r}; received {cls!r}. "
            f"Point the {BUILDERS_GROUP!r} entry point at the builders class."
        )
    return cls


def load_builders(backend: Any) -> ModelBuilders:
    """An instance of the builders for ``backend``: a name, an adapter class or an adapter.

    >>> kit = load_builders("torch")                  # doctest: +SKIP
    >>> kit.backend                                   # doctest: +SKIP
    'torch'
    """
    name = backend if isinstance(backend, str) else backend.name
    return builders_class(name)()


def all_rows() -> dict[str, tuple[str, dict[str, str]]]:
    """``{row label: (backend, environment)}`` for every backend with declared builders.

    >>> all_rows()["keras[torch]"]                    # doctest: +SKIP
    ('keras', {'KERAS_BACKEND': 'torch'})
    """
    rows: dict[str, tuple[str, dict[str, str]]] = {}
    for name in builder_names():
        for label, env in builders_class(name).matrix_rows().items():
            rows[label] = (name, env)
    return rows
