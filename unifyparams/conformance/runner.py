"""``python -m unifyparams.conformance``: the suite on every backend row, and the matrix.

A thin wrapper over pytest: each row (``torch``, ``keras[tensorflow]``, ``keras[torch]``,
``keras[jax]``, ``gluon``, third-party ones) is one pytest run of the shipped suite in its own
process, with the row's environment, recorded by :mod:`unifyparams.conformance.plugin`; the matrix
is drawn from those records. A row runs in the runner's own Python unless its environment names
another under :data:`~unifyparams.conformance.builders.PYTHON_KEY` (``keras[jax]`` runs in
``.venv-jax/bin/python``: JAX needs NumPy 2, MXNet NumPy 1); a row whose interpreter is missing
is reported skipped, "not installed".

    $ python -m unifyparams.conformance                 # every row, every scenario
    $ python -m unifyparams.conformance --backend torch -k access --report reports/
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from . import report as rep
from .builders import PYTHON_KEY
from .discovery import all_rows
from .plugin import ROW_ENV, matches, write_reports
from .row_suite import ADAPTER_ENV
from .suite import ConformanceTests, scenario_cases, scenario_tests, scenario_title

Rows = dict[str, tuple[str, dict[str, str]]]


def row_python(env: dict[str, str]) -> tuple[str | None, str]:
    """``(interpreter, what was asked for)`` of a row: the runner's own Python, or the one its
    environment names under :data:`PYTHON_KEY`, found as given, from the current folder or from
    the source checkout holding ``unifyparams``; ``None`` when no such file exists.

    >>> row_python({}) == (sys.executable, sys.executable)
    True
    >>> row_python({PYTHON_KEY: "no/such/python"})
    (None, 'no/such/python')
    """
    wanted = env.get(PYTHON_KEY)
    if not wanted:
        return sys.executable, sys.executable
    path = Path(wanted)
    checkout = Path(__file__).resolve().parents[2]
    candidates = [path] if path.is_absolute() else [Path.cwd() / path, checkout / path]
    found = next((c for c in candidates if c.is_file() and os.access(c, os.X_OK)), None)
    return (None if found is None else str(found)), wanted


def pytest_command(pattern: str | None, stream: Path, python: str | None = None) -> list[str]:
    """The pytest command line of one row (in ``python``, by default the runner's own)."""
    cmd = [python or sys.executable, "-m", "pytest", str(Path(__file__).with_name("row_suite.py")), "-q", "-rN", "--tb=short",
           "-p", "no:cacheprovider", "-p", "unifyparams.conformance.plugin", "--conformance-json", str(stream)]
    return cmd + (["--scenarios", pattern] if pattern else [])


def _read_stream(path: Path) -> tuple[int, list[rep.Outcome]]:
    total, outcomes = 0, {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            data = json.loads(line)
            if "collected" in data:
                total = data["collected"]
            else:
                o = rep.Outcome(**data)
                outcomes[o.label] = o  # a teardown error replaces the call's outcome
    return total, list(outcomes.values())


def run_row(backend: str, label: str, env: dict[str, str], pattern: str | None,
            progress: Callable[[int, int], None] = lambda done, total: None) -> tuple[list[rep.Outcome], str, int]:
    """Run the suite for one row; return its outcomes, the tail of pytest's output and its exit code.

    A row whose interpreter (:func:`row_python`) is missing runs nothing: every selected scenario
    is a skip saying so, and the exit code is 0.
    """
    python, wanted = row_python(env)
    if python is None:
        reason = f"not installed: the {label} row runs in {wanted}, which does not exist"
        return [rep.Outcome(sid, label, "skip", reason) for sid in selected_ids(pattern)], reason, 0
    with tempfile.TemporaryDirectory() as folder:
        stream, log = Path(folder) / "outcomes.jsonl", Path(folder) / "pytest.log"
        row_env = {k: v for k, v in env.items() if k != PYTHON_KEY}
        full_env = {**os.environ, **row_env, ADAPTER_ENV: backend, ROW_ENV: label, "PYTHONUNBUFFERED": "1"}
        full_env.pop(PYTHON_KEY, None)
        with open(log, "w") as out:
            proc = subprocess.Popen(pytest_command(pattern, stream, python), stdout=out, stderr=subprocess.STDOUT,
                                    env=full_env)
            while proc.poll() is None:
                time.sleep(0.2)
                total, outcomes = _read_stream(stream)
                progress(len(outcomes), total)
        total, outcomes = _read_stream(stream)
        return outcomes, log.read_text(errors="replace")[-3000:], proc.returncode


def select_rows(wanted: Sequence[str] | None) -> tuple[Rows, list[str]]:
    """The rows to run (a backend name selects all its rows) and the names that match none."""
    rows = all_rows()
    if not wanted:
        return rows, []
    chosen = {r: v for r, v in rows.items() if r in wanted or v[0] in wanted}
    unknown = [w for w in wanted if w not in rows and w not in {v[0] for v in rows.values()}]
    return chosen, unknown


def selected_ids(pattern: str | None) -> list[str]:
    """Scenario ids selected by ``-k`` (a scenario is kept if any of its cases is)."""
    cases = scenario_cases(ConformanceTests)
    return [sid for sid, cs in cases.items()
            if not pattern or any(matches(f"{sid}[{c}]" if c else sid, pattern) for c in (cs or [""]))]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="unifyparams conformance", description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--backend", action="append", help="row to run (torch, keras[tensorflow], keras, gluon...); repeatable")
    parser.add_argument("-k", dest="pattern", help="only scenarios whose id contains this text (or matches this glob)")
    parser.add_argument("--report", type=Path, help="folder to write conformance.md and conformance.json into")
    parser.add_argument("--list", action="store_true", help="list scenarios and rows, run nothing")
    return parser


def _list(console: Console, rows: Rows, ids: Sequence[str]) -> int:
    tests = scenario_tests(ConformanceTests)
    console.print(Text("rows: " + ", ".join(rows)))
    for sid in ids:
        console.print(Text(f"{sid}  {scenario_title(tests[sid])}"))
    return 0


def _run_rows(console: Console, rows: Rows, pattern: str | None, n: int) -> tuple[dict[str, list[rep.Outcome]], dict[str, str]]:
    results: dict[str, list[rep.Outcome]] = {}
    broken: dict[str, str] = {}
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        for label, (backend, env) in rows.items():
            task = progress.add_task(Text(label, style="bold").markup, total=n)
            def advance(done: int, total: int, task: Any = task) -> None:
                progress.update(task, completed=done, total=total or n)

            outcomes, tail, code = run_row(backend, label, env, pattern, advance)
            results[label] = outcomes
            if tail.startswith("not installed:"):
                progress.update(task, completed=n, total=n)
                progress.console.print(Text(f"{label}: {tail}", style="yellow"))
                continue
            failed = any(o.status in rep.FAILING for o in outcomes)
            if code not in (0, 1) or (code == 1 and not failed) or not outcomes:
                broken[label] = f"pytest exited with {code}\n{tail}"
            for line in tail.splitlines():  # e.g. known-failure ids that match no scenario
                if "known_failures:" in line:
                    progress.console.print(Text(f"{label}: {line.split('UserWarning:', 1)[-1].strip()}", style="yellow"))
    return results, broken


def _print_results(console: Console, results: dict[str, list[rep.Outcome]], ids: Sequence[str]) -> list[rep.Outcome]:
    console.print(rep.rich_matrix(results, ids))
    for sid in ids:
        for row, outcomes in results.items():
            for o in outcomes:
                if o.scenario == sid and o.status in ("skip", "xfail"):
                    console.print(Text(f"{row} {o.label}: {o.status}: {o.reason}", style="dim"))
    failed = rep.failures(results, ids)
    for o in failed:
        console.print()
        console.print(Text.assemble((f"{o.backend} {o.label}", "red bold"), f": {o.reason}"))
        if o.details:
            console.print(o.details, markup=False, highlight=False)
    return failed


def main(argv: Sequence[str] | None = None) -> int:
    """Run the suite on the chosen rows; print the matrix; 0 when no scenario fails."""
    args = _parser().parse_args(argv)
    console = Console()
    rows, unknown = select_rows(args.backend)
    if unknown:
        console.print(Text(f"expected a backend row or name; received {unknown}; available rows: {sorted(all_rows())}",
                           style="red"))
        return 2
    ids = selected_ids(args.pattern)
    if args.list:
        return _list(console, rows, ids)
    if not rows:
        console.print(Text("no conformance builders declared: install unifyparams with an extra, e.g. unifyparams[torch]",
                           style="red"))
        return 2
    total = sum(max(len(c), 1) for sid, c in scenario_cases(ConformanceTests).items() if sid in ids)
    results, broken = _run_rows(console, rows, args.pattern, total)
    failed = _print_results(console, results, ids)
    for label, tail in broken.items():
        console.print(f"\n{label}: {tail}", markup=False, highlight=False)
    console.print(rep.summary(results, ids), markup=False, highlight=False)
    if args.report:
        write_reports(args.report, results, ids)
        console.print(f"report written to {args.report}/conformance.md and conformance.json", markup=False)
    return 1 if failed or broken else 0
