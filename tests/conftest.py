"""Shared fixtures. Every backend must import: a missing framework is a failed install, not a skip.

Per-feature tests take the ``backend`` fixture and run once per backend (``test_x[torch]``,
``test_x[keras]``, ``test_x[gluon]``); ``@pytest.mark.backends("torch", "gluon")`` narrows one test.
The fixture's value is that backend's helper module (tests/backends/). Each run carries the
backend's marker, so ``-m keras`` selects it.

Keras reads ``KERAS_BACKEND`` at import, so CI runs a second pytest process,
``KERAS_BACKEND=torch pytest -m keras``. The rule below gives the ``keras`` marker to every test
that uses Keras, so new tests are picked up without listing them anywhere: a test whose file,
class, name or parameters say ``keras``; whose own code (decorators aside: a parametrize list may
name every backend) says ``keras``; or whose code or fixtures use a module-level name that leads to
Keras (the ``keras`` module, a constant naming it such as ``BACKENDS``, or a helper of this test
package using either, transitively). Tests that use only PyTorch or Gluon do not rerun there.
"""

from __future__ import annotations

import functools
import inspect
import re
import sys
import types
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import numpy as np
import pytest

import unifyparams as up

from .backends import BACKENDS, load
from .numpy_framework import NumpyAdapter

up.register_adapter(NumpyAdapter)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "backends(*names): run a `backend` test only for these backends")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" not in metafunc.fixturenames:
        return
    if any("backend" in _argnames(m) for m in metafunc.definition.iter_markers("parametrize")):
        return  # the test parametrizes `backend` itself (with names)
    only = metafunc.definition.get_closest_marker("backends")
    names = only.args if only else BACKENDS
    params = [pytest.param(name, id=name, marks=getattr(pytest.mark, name)) for name in names]
    metafunc.parametrize("backend", params, indirect=True)


def _argnames(mark: pytest.Mark) -> list[str]:
    names = mark.args[0] if mark.args else mark.kwargs.get("argnames", "")
    return [n.strip() for n in names.split(",")] if isinstance(names, str) else list(names)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> ModuleType:
    """The helper module of the backend this run is for (tests/backends/<name>.py)."""
    return load(request.param)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("keras") is None and _uses_keras(item):
            item.add_marker(pytest.mark.keras)


def _uses_keras(item: pytest.Item) -> bool:
    if "keras" in item.nodeid:  # file, class, test name or parameters
        return True
    module, function = getattr(item, "module", None), getattr(item, "function", None)
    if module is None or function is None:
        return False
    leads = _keras_names(module)
    fixtures = getattr(item, "fixturenames", ())
    return any("keras" in f or f in leads for f in fixtures) or _mentions(_body(function), leads)


def _mentions(source: str, names: frozenset[str]) -> bool:
    return "keras" in source or any(re.search(rf"\b{re.escape(n)}\b", source) for n in names)


@functools.cache
def _keras_names(module: types.ModuleType) -> frozenset[str]:
    """Module-level names that lead to Keras: the keras module, constants naming it (a list of
    backends), and helpers of this test package whose code uses either, transitively."""
    package = module.__name__.split(".")[0]
    names: set[str] = set()
    sources: dict[str, str] = {}
    for name, value in vars(module).items():
        if isinstance(value, types.ModuleType):
            if value.__name__.split(".")[0] == "keras":
                names.add(name)
            elif value.__name__.split(".")[0] == package and value is not module:
                sources[name] = _source(value)
        elif isinstance(value, (str, list, tuple, dict, set, frozenset)):
            if "keras" in repr(value)[:100_000]:
                names.add(name)
        elif (inspect.isfunction(value) or inspect.isclass(value)) and value.__module__.split(".")[0] == package:
            sources[name] = _body(value)
    grew = True
    while grew:
        grew = False
        for name, source in sources.items():
            if name not in names and _mentions(source, frozenset(names)):
                names.add(name)
                grew = True
    return frozenset(names)


def _source(obj: Any) -> str:
    try:
        return inspect.getsource(obj)
    except (OSError, TypeError):
        return ""


@functools.cache
def _body(function: Any) -> str:
    """The code of a function or class without its decorators (a parametrize list may name every backend)."""
    source = _source(function)
    start = re.search(r"^\s*(async\s+def|def|class)\s", source, re.MULTILINE)
    return source[start.start() if start else 0:]


@pytest.fixture(autouse=True)
def _gluon_classic_mode(request: pytest.FixtureRequest) -> Iterator[None]:
    """Gluon's NumPy mode is global: every Gluon test must leave it off (and it is put back if not)."""
    yield
    mx = sys.modules.get("mxnet")
    if mx is None or request.node.get_closest_marker("gluon") is None:
        return
    leaked = mx.util.is_np_array() or mx.util.is_np_shape()
    if leaked:
        mx.npx.reset_np()
    assert not leaked, "the test left Gluon's NumPy mode on"


@pytest.fixture
def numpy_adapter() -> NumpyAdapter:
    adapter = up.get_adapter("numpy-test")
    assert isinstance(adapter, NumpyAdapter)
    adapter.fail_writes_after = None
    yield adapter
    adapter.fail_writes_after = None


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
