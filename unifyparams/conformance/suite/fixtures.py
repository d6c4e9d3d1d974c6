"""The fixtures an adapter's conformance test class overrides, and the verdict rules they feed.

Override ``adapter_name`` (always), and where needed ``builders`` (other builders than the
declared ones), ``known_failures`` (``{scenario id: reason}``) or ``missing_capabilities``. An
autouse fixture turns them into verdicts before each test: a test marked
``@needs("tie")`` skips with the reason where the adapter lacks ``tie``; a listed
known failure gets ``xfail(strict=True)`` (a pass fails the run, so stale entries get removed);
a builder raising :class:`~unifyparams.conformance.Unsupported` skips with its reason.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import pytest

from ...adapter import Adapter
from ...registry import available_adapters, get_adapter
from ..builders import ModelBuilders
from ..checks import Unsupported
from ..discovery import load_builders
from ..known import load_known_failures
from .ids import ROW_KEY, case_of, needed, scenario_cases, scenario_of


class SkipUnsupported:
    """The builders as the tests see them: a builder raising ``Unsupported`` skips the test.

    >>> from types import SimpleNamespace
    >>> SkipUnsupported(SimpleNamespace(backend="demo")).backend
    'demo'
    """

    def __init__(self, builders: ModelBuilders) -> None:
        self.builders = builders

    def __getattr__(self, name: str) -> Any:
        value = getattr(self.builders, name)
        if not callable(value):
            return value

        @functools.wraps(value)
        def call(*args: Any, **kwargs: Any) -> Any:
            __tracebackhide__ = True  # failures point at the test and the builder, not at this proxy
            try:
                return value(*args, **kwargs)
            except Unsupported as exc:
                pytest.skip(str(exc))

        return call


@functools.cache
def _builders(name: str) -> ModelBuilders:
    return load_builders(name)


@functools.cache
def _known(builders_cls: type, suite_cls: Any) -> Mapping[str, str]:
    return load_known_failures(builders_cls, scenario_cases(suite_cls))  # warns once per class


def _apply_verdict_rules(request: pytest.FixtureRequest, sid: str) -> None:
    missing: Mapping[str, str] = request.getfixturevalue("missing_capabilities")
    for capability in needed(request.function):
        if capability in missing:
            pytest.skip(f"{capability}: {missing[capability]}")
    known: Mapping[str, str] = request.getfixturevalue("known_failures")
    case = case_of(request.node)
    reason = known.get(f"{sid}[{case}]") if case else None
    reason = reason or known.get(sid)
    if reason is not None:
        request.applymarker(pytest.mark.xfail(reason=f"known failure: {reason}", strict=True))


class ConformanceFixtures:
    """The fixtures of the conformance suite; :class:`ConformanceTests` mixes them in."""

    @pytest.fixture
    def adapter_name(self) -> str:
        """The adapter's registered name: override this fixture."""
        raise pytest.UsageError(
            f"expected {type(self).__name__} to override the `adapter_name` fixture with the name its adapter "
            f"is registered under; received no override (registered: {sorted(available_adapters())})"
        )

    @pytest.fixture
    def conformance_adapter(self, adapter_name: str) -> Adapter:
        """The adapter instance (its framework is imported here)."""
        return get_adapter(adapter_name)

    @pytest.fixture
    def builders(self, adapter_name: str) -> ModelBuilders:
        """The builders declared for the adapter (``unifyparams.builders`` entry point); loaded once."""
        return _builders(adapter_name)

    @pytest.fixture
    def kit(self, builders: ModelBuilders) -> Any:
        """What the tests use: the builders, with ``Unsupported`` turned into a skip."""
        return SkipUnsupported(builders)

    @pytest.fixture
    def missing_capabilities(self, conformance_adapter: Adapter) -> Mapping[str, str]:
        """``{capability: reason}`` the adapter lacks; tests marked ``@needs(capability)`` skip."""
        return dict(conformance_adapter.missing_capabilities)

    @pytest.fixture
    def known_failures(self, builders: ModelBuilders) -> Mapping[str, str]:
        """``{scenario id: reason}`` expected to fail: the builders' ``known_failures``."""
        suite: Any = type(self)
        return _known(type(builders), suite)

    @pytest.fixture
    def conformance_row(self, builders: ModelBuilders) -> str:
        """The matrix row these results belong to (``keras[torch]``)."""
        return builders.row_label()

    @pytest.fixture(autouse=True)
    def _conformance_verdict(self, request: pytest.FixtureRequest) -> None:
        """Record the row, then skip or xfail the test as the fixtures above say."""
        sid = scenario_of(request.node)
        if sid is None:
            return
        request.node.stash[ROW_KEY] = request.getfixturevalue("adapter_name")
        request.node.stash[ROW_KEY] = request.getfixturevalue("conformance_row")
        _apply_verdict_rules(request, sid)
