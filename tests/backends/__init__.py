"""One small module per backend, each with the same surface, for the per-feature tests.

A per-feature test takes the ``backend`` fixture (tests/conftest.py) and runs once per backend;
the fixture gives it one of these modules. Every module defines:

- ``NAME``: the adapter's name; ``PACKAGE``: the adapter's import package;
- ``models``: the backend's conformance model builders (``mlp()``, ``nested_blocks()``, ...);
- ``adapter()``: the registered adapter;
- ``tensor(array)``: a native tensor (not a model); ``total(x)``: the sum of a native tensor, for losses;
- ``native_numpy(p)``: the value the framework itself holds for ``p``, in the canonical layout;
- ``assert_native_listing(model, ps)``: the framework's own listing of ``model`` agrees with ``ps``;
- ``KINDS``: the block kinds the framework reports (``sequential``, ``dense``, ``list``, ``dict``);
- ``reused_layer()``: ``(model, name, words)``, a model reusing one layer object, a name that
  cannot be untied, and words of the refusal.

The framework is imported when the module is, so a test that never asks for a backend imports none.
"""

from __future__ import annotations

import importlib
from types import ModuleType

#: Every built-in backend, in the order tests run them.
BACKENDS = ("torch", "keras", "gluon")


def load(name: str) -> ModuleType:
    """The helper module of backend ``name`` (imports its framework)."""
    if name not in BACKENDS:
        raise ValueError(f"unknown backend. Expected one of {BACKENDS}. Received: name={name!r}")
    return importlib.import_module(f"{__name__}.{name}")
