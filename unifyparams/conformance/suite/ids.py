"""Scenario ids: ``access.mlp_names_shapes`` is the test ``test_access__mlp_names_shapes``.

>>> scenario_test_name("access.mlp_names_shapes")
'test_access__mlp_names_shapes'
>>> scenario_id("test_access__mlp_names_shapes")
'access.mlp_names_shapes'
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

#: Where the suite's autouse fixture leaves the matrix row of a test, for the report plugin.
ROW_KEY = pytest.StashKey[str]()

F = TypeVar("F", bound=Callable[..., Any])


def needs(*capabilities: str) -> Callable[[F], F]:
    """Mark a scenario test as needing adapter capabilities; it skips where one is missing.

    >>> @needs("tie")
    ... def test_tie__example(self, kit): ...
    >>> needed(test_tie__example)
    ('tie',)
    """

    def mark(fn: F) -> F:
        fn.__dict__["needs"] = (*needed(fn), *capabilities)
        return fn

    return mark


def needed(fn: Any) -> tuple[str, ...]:
    """The capabilities a scenario test needs."""
    return tuple(getattr(fn, "needs", ()))


def scenario_test_name(scenario_id: str) -> str:
    """The test method name of a scenario."""
    return "test_" + scenario_id.replace(".", "__", 1)


def scenario_id(test_name: str) -> str | None:
    """The scenario id of a test method name, or None if it is no scenario test."""
    if not test_name.startswith("test_") or "__" not in test_name:
        return None
    return test_name[len("test_"):].replace("__", ".", 1)


def scenario_of(item: Any) -> str | None:
    """The scenario id of a collected pytest item (None for other tests)."""
    return scenario_id(getattr(item, "originalname", "") or item.name)


def case_of(item: Any) -> str:
    """The case id of a parametrized scenario test (``conv2d``), or ``""``."""
    callspec = getattr(item, "callspec", None)
    return callspec.id if callspec is not None else ""


def scenario_tests(cls: type) -> dict[str, Any]:
    """``{scenario id: test function}`` of a suite class: the most derived definition of each,
    in the order of the method resolution (``AccessTests`` first in ``ConformanceTests``)."""
    tests: dict[str, Any] = {}
    for base in cls.__mro__:
        for name, fn in vars(base).items():
            sid = scenario_id(name)
            if sid is not None and callable(fn) and sid not in tests:
                tests[sid] = fn
    return tests


def _case_ids(fn: Any) -> list[str]:
    cases: list[str] = []
    for mark in getattr(fn, "pytestmark", []):
        if mark.name == "parametrize":
            cases += [str(v) for v in mark.args[1]]
    return cases


def scenario_cases(cls: type) -> dict[str, list[str]]:
    """``{scenario id: case ids}`` of a suite class (empty list: not parametrized)."""
    return {sid: _case_ids(fn) for sid, fn in scenario_tests(cls).items()}


def scenario_title(fn: Any) -> str:
    """The one-line summary of a scenario test."""
    return (inspect.getdoc(fn) or "").split("\n", 1)[0].rstrip(".")
