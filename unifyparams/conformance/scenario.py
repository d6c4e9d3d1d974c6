"""Scenarios: behaviour written once against the public interface, run against every adapter.

>>> from unifyparams.conformance import scenario, check
>>> @scenario("access.example", "parameters of an MLP have canonical names")
... def example(kit):
...     ps = up.params(kit.mlp())
...     check(list(ps) == ["0.weight", "0.bias", "2.weight", "2.bias"], f"names were {list(ps)}")
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import UnifyParamsError

ScenarioFn = Callable[[Any], None]


class ConformanceFailure(AssertionError):
    """A scenario's expectation did not hold."""


class Unsupported(UnifyParamsError):
    """Raised by builders (or scenarios) for something a backend cannot express: a skip."""


def check(condition: Any, message: str) -> None:
    """Assert ``condition``; ``message`` must explain the failure without reading the scenario."""
    if not condition:
        raise ConformanceFailure(message)


def skip(reason: str) -> None:
    """Skip the running scenario with ``reason``."""
    raise Unsupported(reason)


@dataclass(frozen=True)
class Scenario:
    id: str
    title: str
    fn: ScenarioFn
    requires: tuple[str, ...] = ()
    required: bool = True


_SCENARIOS: dict[str, Scenario] = {}


def scenario(
    id: str, title: str, *, requires: tuple[str, ...] = (), required: bool = True
) -> Callable[[ScenarioFn], ScenarioFn]:
    """Register a scenario. ``requires`` names adapter capabilities (skipped where missing)."""

    def register(fn: ScenarioFn) -> ScenarioFn:
        if id in _SCENARIOS and _SCENARIOS[id].fn is not fn:
            raise ValueError(f"scenario id {id!r} is registered twice")
        _SCENARIOS[id] = Scenario(id, title, fn, tuple(requires), required)
        return fn

    return register


def all_scenarios() -> dict[str, Scenario]:
    """Every registered scenario, importing the built-in scenario modules first."""
    from . import scenarios  # noqa: F401  (registers the built-in scenarios)

    return dict(_SCENARIOS)


@dataclass
class Outcome:
    """The result of one scenario on one backend."""

    scenario: str
    backend: str
    status: str  # "pass" | "fail" | "skip" | "xfail" | "xpass" | "error"
    reason: str = ""
    seconds: float = 0.0
    details: str = field(default="", repr=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "backend": self.backend,
            "status": self.status,
            "reason": self.reason,
            "seconds": round(self.seconds, 4),
            "details": self.details,
        }


def run_scenario(
    sc: Scenario,
    kit: Any,
    *,
    missing: dict[str, str] | None = None,
    known_failures: dict[str, str] | None = None,
    backend: str = "",
) -> Outcome:
    """Run one scenario against one backend's builders and classify the result."""
    missing = missing or {}
    known = (known_failures or {}).get(sc.id)
    for cap in sc.requires:
        if cap in missing:
            return Outcome(sc.id, backend, "skip", f"{cap}: {missing[cap]}")
    start = time.perf_counter()
    try:
        sc.fn(kit)
    except Unsupported as exc:
        return Outcome(sc.id, backend, "skip", str(exc), time.perf_counter() - start)
    except Exception as exc:
        elapsed = time.perf_counter() - start
        details = traceback.format_exc()
        if known is not None:
            return Outcome(sc.id, backend, "xfail", known, elapsed, details)
        status = "fail" if isinstance(exc, AssertionError) else "error"
        return Outcome(sc.id, backend, status, f"{type(exc).__name__}: {exc}", elapsed, details)
    elapsed = time.perf_counter() - start
    if known is not None:
        return Outcome(sc.id, backend, "xpass", f"listed as known failure ({known}) but passed", elapsed)
    return Outcome(sc.id, backend, "pass", "", elapsed)
