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
    """``{scenario id: reason}`` from the adapter class's ``known_failures`` attribute.

    The attribute is a mapping ``{scenario id: reason}`` or the path of a text file with one
    ``scenario.id  # reason`` per line (blank lines and ``#`` comment lines are ignored; a
    relative path is read next to the module of the class that sets it). A listed scenario that
    fails is an ``xfail``, one that passes an ``xpass`` (a failure). Ids that name no scenario,
    and malformed lines, are reported as a :class:`UserWarning` and ignored.

    >>> class MyAdapter:
    ...     known_failures = {"tie.bad_ties": "refuses ties with a different message"}
    >>> load_known_failures(MyAdapter)
    {'tie.bad_ties': 'refuses ties with a different message'}
    """
    import os
    import warnings
    from pathlib import Path

    from ..errors import closest_names

    spec = getattr(adapter_cls, "known_failures", None)
    name = getattr(adapter_cls, "name", "") or getattr(adapter_cls, "__name__", "?")
    if not spec:
        return {}
    problems: list[str] = []
    if isinstance(spec, (str, os.PathLike)):
        path = Path(spec)
        if not path.is_absolute():
            owner = next((c for c in getattr(adapter_cls, "__mro__", ()) if "known_failures" in vars(c)), adapter_cls)
            module_file = getattr(sys.modules.get(owner.__module__), "__file__", None)
            path = (Path(module_file).parent if module_file else Path.cwd()) / path
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            warnings.warn(f"adapter {name!r}: cannot read its known_failures file: {exc}", UserWarning, stacklevel=2)
            return {}
        known: dict[str, str] = {}
        for number, line in enumerate(text.splitlines(), 1):
            sid, _, reason = line.partition("#")
            sid = sid.strip()
            if not sid:
                continue
            if len(sid.split()) != 1:
                problems.append(f"{path}:{number}: expected 'scenario.id  # reason', received {line.strip()!r}")
                continue
            known[sid] = reason.strip() or f"listed in {path.name}"
    else:
        known = {str(k): str(v) for k, v in dict(spec).items()}
    ids = all_scenarios()
    for sid in known:
        if sid not in ids:
            problems.append(
                f"{sid!r} names no scenario (closest: {', '.join(closest_names(sid, ids, 3))}); ignored"
            )
    for problem in problems:
        warnings.warn(f"adapter {name!r} known_failures: {problem}", UserWarning, stacklevel=2)
    return {sid: reason for sid, reason in known.items() if sid in ids}


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
