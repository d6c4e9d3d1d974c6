"""Names of the home-made scenario runner that the pytest suite replaced (deprecated).

``all_scenarios()`` still lists the scenarios; ``scenario`` and ``run_scenario`` point to the
pytest way, since a scenario is now a test method of :class:`unifyparams.testing.ConformanceTests`.

>>> import warnings
>>> with warnings.catch_warnings():
...     warnings.simplefilter("ignore")
...     all_scenarios()["tie.bad_ties"].requires
('tie',)
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

from ..errors import UnifyParamsError


@dataclass(frozen=True)
class Scenario:
    """A scenario as the old runner described it (now: one test method of the suite)."""

    id: str
    title: str
    fn: Callable[..., Any]
    requires: tuple[str, ...] = ()
    required: bool = True


def all_scenarios() -> dict[str, Scenario]:
    """Deprecated: ``{scenario id: Scenario}`` of :class:`~unifyparams.testing.ConformanceTests`."""
    from .suite import ConformanceTests, scenario_tests, scenario_title
    from .suite.ids import needed

    warnings.warn("all_scenarios() is deprecated; the scenarios are the test methods of "
                  "unifyparams.testing.ConformanceTests (see unifyparams.conformance.suite.scenario_tests)",
                  DeprecationWarning, stacklevel=2)
    return {sid: Scenario(sid, scenario_title(fn), fn, needed(fn))
            for sid, fn in scenario_tests(ConformanceTests).items()}


def _gone(name: str, instead: str) -> Callable[..., NoReturn]:
    def removed(*args: Any, **kwargs: Any) -> NoReturn:
        raise UnifyParamsError(
            f"unifyparams.conformance.{name} was removed with the home-made runner; expected {instead}. "
            f"Received a call to {name}()."
        )

    removed.__name__ = name
    return removed


scenario = _gone("scenario", "a test method `test_<group>__<name>(self, kit)` on a ConformanceTests subclass")
run_scenario = _gone("run_scenario", "pytest running a ConformanceTests subclass (or `python -m unifyparams.conformance`)")
