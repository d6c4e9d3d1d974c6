"""Finding adapters: the ``unifyparams.adapters`` entry-point group, and nothing else.

The built-in adapters are registered there exactly as a third party's would be. An adapter is
asked about a model only when its framework is already imported (as einops does), so choosing
an adapter never imports a framework; the answer is cached per type.

>>> import unifyparams as up
>>> sorted(up.available_adapters())          # doctest: +SKIP
['gluon', 'keras', 'torch']
"""

from __future__ import annotations

import sys
import threading
from importlib import metadata
from typing import Any

from .adapter import Adapter
from .errors import AdapterUnavailableError, UnsupportedModelError

ENTRY_POINT_GROUP = "unifyparams.adapters"

_lock = threading.RLock()
_classes: dict[str, type[Adapter]] | None = None
_instances: dict[str, Adapter] = {}
_by_type: dict[type, Adapter] = {}
_entry_points: dict[str, metadata.EntryPoint] = {}
_extra: dict[str, type[Adapter]] = {}
#: Entry points whose adapter class failed to load, with the error to raise when one is asked for.
_broken: dict[str, AdapterUnavailableError] = {}


def _discover() -> dict[str, type[Adapter]]:
    """Load the adapter classes (cheap: adapter modules import no framework)."""
    global _classes
    with _lock:
        if _classes is None:
            found: dict[str, type[Adapter]] = {}
            for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
                _entry_points[ep.name] = ep
                try:
                    cls = ep.load()
                except Exception as exc:  # a broken third-party adapter must not break the rest
                    _broken[ep.name] = AdapterUnavailableError(
                        f"adapter {ep.name!r} ({ep.value}) failed to load: {exc!r}. "
                        f"Reinstall the package that provides it."
                    )
                    continue
                found[ep.name] = cls
            found.update(_extra)
            _classes = found
        return _classes



def register_adapter(cls: type[Adapter], name: str | None = None) -> None:
    """Register an adapter class by hand (tests, notebooks); entry points are the normal route."""
    with _lock:
        key = name or cls.name
        _extra[key] = cls
        if _classes is not None:
            _classes[key] = cls
        _instances.pop(key, None)
        _by_type.clear()


def available_adapters() -> dict[str, type[Adapter]]:
    """All registered adapter classes by backend name (frameworks are not imported)."""
    return dict(_discover())


def get_adapter(name: str) -> Adapter:
    """The adapter instance registered under ``name``; imports its framework.

    Raises :class:`AdapterUnavailableError` (saying what to install) if it cannot load.
    """
    classes = _discover()
    with _lock:
        if name in _instances:
            return _instances[name]
        if name not in classes:
            if name in _broken:
                raise _broken[name]
            raise AdapterUnavailableError(
                f"no adapter named {name!r} is registered; registered: {sorted(classes)}. "
                f"Install it with: pip install 'unifyparams[{name}]'"
            )
        cls = classes[name]
        try:
            instance = cls()
        except AdapterUnavailableError:
            raise
        except Exception as exc:
            raise AdapterUnavailableError(
                f"the {name!r} adapter could not load its framework: {exc!r}. "
                f"Install it with: {cls.install_hint or f'pip install unifyparams[{name}]'}"
            ) from exc
        _instances[name] = instance
        return instance


def adapter_for(obj: Any) -> Adapter:
    """The adapter that owns ``obj`` (a model, a block, or one native parameter's model)."""
    cls_of_obj = type(obj)
    cached = _by_type.get(cls_of_obj)
    if cached is not None:
        return cached
    classes = _discover()
    candidates = sorted(classes.items(), key=lambda item: -item[1].priority)
    for name, cls in candidates:
        if cls.framework_module and cls.framework_module not in sys.modules:
            continue
        adapter = get_adapter(name)
        if adapter.owns(obj):
            with _lock:
                _by_type[cls_of_obj] = adapter
            return adapter
    hints = ", ".join(
        f"{name} ({cls.install_hint or f'pip install unifyparams[{name}]'})"
        for name, cls in sorted(classes.items())
    )
    raise UnsupportedModelError(
        f"no adapter recognises an object of type {cls_of_obj.__module__}.{cls_of_obj.__qualname__}. "
        f"Expected a model or block of a framework with a registered adapter; registered: "
        f"{hints or '(none: reinstall unifyparams)'}. "
        f"Pass the model itself (or a sub-block), or register an adapter for this framework."
    )
