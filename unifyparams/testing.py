"""The pytest route to the conformance suite: one test method per scenario, for your adapter.

Subclass :class:`ConformanceTests` in your adapter's test suite and name the adapter (as
registered under the ``unifyparams.adapters`` entry point)::

    import pytest
    from unifyparams.testing import ConformanceTests

    class TestMyLibConformance(ConformanceTests):
        @pytest.fixture
        def adapter_name(self) -> str:
            return "mylib"

That collects ``test_access__mlp_names_shapes``, ``test_tie__bad_ties``... (a scenario id with
``.`` spelled ``__``), one per registered scenario. Each runs the scenario through
:func:`unifyparams.conformance.run_scenario` in the pytest process and maps its outcome:
``pass`` passes; ``skip`` (a capability in the adapter's ``missing_capabilities``, or a builder
raising ``Unsupported``) skips with the reason; a failure listed in the adapter's
``known_failures`` is an xfail; a listed scenario that passes (``xpass``) fails, so stale
entries get removed; anything else fails with the scenario's traceback.

The adapter must be registered (its entry point installed, or ``unifyparams.register_adapter``
called before the tests run). The class-scoped fixtures are the hooks: override ``builders`` to
run the scenarios on other builders, ``missing_capabilities`` or ``known_failures``
(``{scenario id: reason}``) to change what is expected, or define a method with a scenario's
test name to replace that one test. Builders and known failures are loaded once per adapter class.
This module imports pytest and no framework.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

import pytest

from .adapter import Adapter
from .conformance import Outcome, all_scenarios, run_scenario
from .conformance.worker import load_builders, load_known_failures
from .registry import available_adapters, get_adapter

__all__ = ["ConformanceTests", "check_outcome", "scenario_test_name"]


def scenario_test_name(scenario_id: str) -> str:
    """The test method name for a scenario.

    >>> scenario_test_name("access.mlp_names_shapes")
    'test_access__mlp_names_shapes'
    """
    return "test_" + scenario_id.replace(".", "__")


def check_outcome(outcome: Outcome, label: str = "") -> None:
    """Turn a scenario outcome into pytest's verdict (pass, skip, xfail or fail).

    >>> check_outcome(Outcome("access.example", "mylib", "pass"))
    """
    where = f"{label or outcome.backend} {outcome.scenario}"
    if outcome.status == "pass":
        return
    if outcome.status == "skip":
        pytest.skip(f"{where}: {outcome.reason}")
    if outcome.status == "xfail":
        pytest.xfail(f"{where}: known failure: {outcome.reason}")
    if outcome.status == "xpass":
        pytest.fail(f"XPASS {where}: {outcome.reason}; remove it from known_failures", pytrace=False)
    pytest.fail(f"{where}: {outcome.status}: {outcome.reason}\n{outcome.details}", pytrace=False)


@functools.cache
def _builders_for(adapter_cls: type[Adapter]) -> Any:
    return load_builders(adapter_cls)


@functools.cache
def _known_failures_for(adapter_cls: type[Adapter]) -> Mapping[str, str]:
    return MappingProxyType(load_known_failures(adapter_cls))  # warns about unknown ids once


def _scenario_test(scenario_id: str, title: str) -> Callable[..., None]:
    def test(
        self: Any,
        adapter_name: str,
        builders: Any,
        missing_capabilities: Mapping[str, str],
        known_failures: Mapping[str, str],
    ) -> None:
        outcome = run_scenario(
            all_scenarios()[scenario_id],
            builders,
            missing=dict(missing_capabilities),
            known_failures=dict(known_failures),
            backend=adapter_name,
        )
        check_outcome(outcome)

    test.__name__ = test.__qualname__ = scenario_test_name(scenario_id)
    test.__doc__ = f"{scenario_id}: {title}"
    return test


def _add_scenario_tests(cls: type) -> None:
    """Give ``cls`` a test method for every registered scenario it does not define itself."""
    for sc in all_scenarios().values():
        name = scenario_test_name(sc.id)
        if not hasattr(cls, name):
            setattr(cls, name, _scenario_test(sc.id, sc.title))


class ConformanceTests:
    """Base class of an adapter's conformance tests; subclass it and override ``adapter_name``.

    Scenarios registered before a subclass is defined get a test method on that subclass too.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _add_scenario_tests(cls)

    @pytest.fixture
    def adapter_name(self) -> str:
        """The adapter's registered name: override this fixture."""
        raise pytest.UsageError(
            f"{type(self).__name__} must override the `adapter_name` fixture with the name its adapter is "
            f"registered under; registered: {sorted(available_adapters())}"
        )

    @pytest.fixture
    def conformance_adapter(self, adapter_name: str) -> Adapter:
        """The adapter instance (its framework is imported here)."""
        return get_adapter(adapter_name)

    @pytest.fixture
    def builders(self, conformance_adapter: Adapter) -> Any:
        """The adapter's conformance builders (its ``builders = "module:Class"``)."""
        return _builders_for(type(conformance_adapter))

    @pytest.fixture
    def missing_capabilities(self, conformance_adapter: Adapter) -> Mapping[str, str]:
        """``{capability: reason}`` the adapter lacks; scenarios needing one skip."""
        return dict(conformance_adapter.missing_capabilities)

    @pytest.fixture
    def known_failures(self, conformance_adapter: Adapter) -> Mapping[str, str]:
        """``{scenario id: reason}`` from the adapter's ``known_failures`` (a mapping or a file)."""
        return _known_failures_for(type(conformance_adapter))


_add_scenario_tests(ConformanceTests)
