"""Runs the scenarios for one backend row inside one process and streams the outcomes as JSON.

The runner starts one worker per row so that each framework (and each Keras backend) is
imported fresh. Every outcome is one line ``@@unifyparams@@ {json}`` on stdout; anything else a
framework prints there is ignored.

>>> run_row("torch", pattern=None)      # doctest: +SKIP
[Outcome(scenario='access.mlp_names_shapes', backend='torch', status='pass', ...), ...]
"""

from __future__ import annotations

import fnmatch
import importlib
import json
import sys
from collections.abc import Callable
from typing import Any

from ..errors import UnifyParamsError
from ..registry import available_adapters, get_adapter
from .scenario import Outcome, Scenario, all_scenarios, run_scenario

MARKER = "@@unifyparams@@ "


def load_builders(adapter_cls: Any) -> Any:
    """Instantiate the adapter's conformance builders (``"module:Class"``)."""
    target = getattr(adapter_cls, "builders", "")
    if not target or ":" not in target:
        raise UnifyParamsError(
            f"adapter {adapter_cls.name!r} declares no conformance builders; set "
            f"`builders = 'package.module:Class'` on the adapter class"
        )
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)()


def select_scenarios(pattern: str | None) -> list[Scenario]:
    """Scenarios whose id contains ``pattern`` (or matches it as a glob)."""
    chosen = list(all_scenarios().values())
    if pattern:
        chosen = [s for s in chosen if pattern in s.id or fnmatch.fnmatchcase(s.id, pattern)]
    return chosen


def load_known_failures(adapter_cls: Any) -> dict[str, str]:
    """``{scenario id: reason}`` from the adapter's ``known_failures`` mapping, if any."""
    return dict(getattr(adapter_cls, "known_failures", {}) or {})


def run_row(
    row: str,
    pattern: str | None = None,
    emit: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """Run every selected scenario against the adapter behind ``row`` (``"keras[torch]"`` -> keras)."""
    backend = row.split("[", 1)[0]
    scenarios = select_scenarios(pattern)
    classes = available_adapters()
    outcomes: list[Outcome] = []

    def record(outcome: Outcome) -> None:
        outcome.backend = row
        outcomes.append(outcome)
        if emit is not None:
            emit(outcome)

    try:
        if backend not in classes:
            raise UnifyParamsError(f"no adapter named {backend!r}; registered: {sorted(classes)}")
        adapter = get_adapter(backend)
        kit = load_builders(classes[backend])
    except Exception as exc:  # the whole row is broken: say why on every scenario
        for sc in scenarios:
            record(Outcome(sc.id, row, "error", f"adapter unavailable: {exc}"))
        return outcomes
    missing = dict(adapter.missing_capabilities)
    known = load_known_failures(classes[backend])
    for sc in scenarios:
        record(run_scenario(sc, kit, missing=missing, known_failures=known, backend=row))
    return outcomes


def main(row: str, pattern: str | None) -> int:
    """Worker entry point: stream outcomes for ``row`` to stdout."""

    def emit(outcome: Outcome) -> None:
        sys.stdout.write(MARKER + json.dumps(outcome.to_json()) + "\n")
        sys.stdout.flush()

    run_row(row, pattern, emit)
    return 0
