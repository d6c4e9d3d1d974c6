"""Runs the conformance suite over every installed adapter and prints the backend-by-scenario matrix.

Each backend row runs in a fresh process (frameworks are imported once per process, and Keras
chooses its backend at import), streaming outcomes back while a progress display runs.

    $ python -m unifyparams.conformance                 # every adapter, every scenario
    $ python -m unifyparams.conformance --backend torch -k access --report reports/
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..registry import available_adapters
from .scenario import Outcome, all_scenarios
from .worker import MARKER, select_scenarios

SYMBOLS = {
    "pass": "[green]pass[/]",
    "fail": "[red]FAIL[/]",
    "error": "[red]ERROR[/]",
    "skip": "[yellow]skip[/]",
    "xfail": "[blue]xfail[/]",
    "xpass": "[magenta]XPASS[/]",
    "missing": "[red]no result[/]",
}
FAILING = {"fail", "error", "xpass", "missing"}


def all_rows() -> dict[str, dict[str, str]]:
    """``{row label: extra environment}`` for every registered adapter."""
    rows: dict[str, dict[str, str]] = {}
    for _, cls in sorted(available_adapters().items()):
        rows.update(cls.conformance_rows())
    return rows


def run_row_in_subprocess(
    row: str, env_extra: dict[str, str], pattern: str | None, on_outcome: object = None
) -> tuple[list[Outcome], str, int]:
    """Start a worker for ``row``; return its outcomes, the tail of its stderr and its exit code."""
    cmd = [sys.executable, "-m", "unifyparams.conformance", "--worker", row]
    if pattern:
        cmd += ["-k", pattern]
    env = {**os.environ, **env_extra, "PYTHONUNBUFFERED": "1"}
    outcomes: list[Outcome] = []
    with tempfile.TemporaryFile("w+") as errfile:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=errfile, text=True, env=env)
        assert proc.stdout is not None
        for line in proc.stdout:
            if not line.startswith(MARKER):
                continue
            data = json.loads(line[len(MARKER) :])
            outcome = Outcome(**data)
            outcomes.append(outcome)
            if callable(on_outcome):
                on_outcome(outcome)
        code = proc.wait()
        errfile.seek(0)
        err_tail = errfile.read()[-3000:]
    return outcomes, err_tail, code


def render_matrix(results: dict[str, dict[str, Outcome]], rows: Sequence[str], scenario_ids: Sequence[str]) -> Table:
    table = Table(title="unifyparams conformance: scenario x backend", show_lines=False)
    table.add_column("scenario", style="bold")
    for row in rows:
        table.add_column(escape(row), justify="center")
    for sid in scenario_ids:
        cells = []
        for row in rows:
            outcome = results.get(row, {}).get(sid)
            cells.append(SYMBOLS[outcome.status if outcome else "missing"])
        table.add_row(sid, *cells)
    return table


def markdown_report(results: dict[str, dict[str, Outcome]], rows: Sequence[str], scenario_ids: Sequence[str]) -> str:
    lines = ["# unifyparams conformance", "", "| scenario | " + " | ".join(rows) + " |"]
    lines.append("|---|" + "---|" * len(rows))
    for sid in scenario_ids:
        cells = []
        for row in rows:
            o = results.get(row, {}).get(sid)
            cells.append(o.status + (f" ({o.reason})" if o and o.reason and o.status != "pass" else "") if o else "no result")
        lines.append(f"| {sid} | " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="unifyparams conformance", description=__doc__.split("\n")[0])
    parser.add_argument("--backend", action="append", help="row to run (torch, keras[tensorflow], keras, gluon...); repeatable")
    parser.add_argument("-k", dest="pattern", help="only scenarios whose id contains this text (or matches this glob)")
    parser.add_argument("--report", type=Path, help="folder to write conformance.md and conformance.json into")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--list", action="store_true", help="list scenarios and rows, run nothing")
    args = parser.parse_args(argv)

    if args.worker:
        from .worker import main as worker_main

        return worker_main(args.worker, args.pattern)

    console = Console()
    rows = all_rows()
    if args.backend:
        wanted = set(args.backend)
        rows = {r: e for r, e in rows.items() if r in wanted or r.split("[", 1)[0] in wanted}
        unknown = wanted - {r for r in rows} - {r.split("[", 1)[0] for r in rows}
        if unknown:
            console.print(f"[red]unknown backend(s) {sorted(unknown)}; available rows: {sorted(all_rows())}[/]")
            return 2
    scenarios = select_scenarios(args.pattern)
    if args.list:
        console.print("rows: " + ", ".join(rows))
        for sc in scenarios:
            console.print(f"{sc.id}  {sc.title}")
        return 0
    if not rows:
        console.print("[red]no adapters registered: install unifyparams with an extra, e.g. unifyparams[torch][/]")
        return 2

    results: dict[str, dict[str, Outcome]] = {}
    stderr_tails: dict[str, str] = {}
    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, transient=False,
    ) as progress:
        for row, env in rows.items():
            task = progress.add_task(escape(row), total=len(scenarios))
            outcomes, tail, code = run_row_in_subprocess(
                row, env, args.pattern, on_outcome=lambda _o, t=task: progress.advance(t)
            )
            results[row] = {o.scenario: o for o in outcomes}
            if code != 0 or len(outcomes) < len(scenarios):
                stderr_tails[row] = f"worker exited with {code}\n{tail}"
            for line in tail.splitlines():  # e.g. known-failure ids that match no scenario
                if "UserWarning:" in line:
                    progress.console.print(f"{row}: {line.split('UserWarning:', 1)[1].strip()}", markup=False, style="yellow")

    ids = [s.id for s in scenarios]
    console.print(render_matrix(results, list(rows), ids))
    required = {s.id for s in all_scenarios().values() if s.required}
    failed = []
    for row in rows:
        for sid in ids:
            o = results[row].get(sid)
            status = o.status if o else "missing"
            if status in FAILING and sid in required:
                failed.append((row, sid, o))
            elif status in ("skip", "xfail") and o is not None:
                console.print(f"[dim]{escape(row)} {sid}: {status}: {escape(o.reason)}[/]")
    for row, sid, o in failed:
        console.print(f"\n[red bold]{escape(row)} {sid}[/]: {escape(o.reason) if o else 'no result'}")
        if o and o.details:
            console.print(o.details, markup=False, highlight=False)
    for row, tail in stderr_tails.items():
        console.print(f"\n{row}: {tail}", markup=False)
    counts: dict[str, int] = {}
    for row in rows:
        for o in results[row].values():
            counts[o.status] = counts.get(o.status, 0) + 1
    summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
    console.print(f"\n{len(rows)} backend row(s) x {len(ids)} scenario(s): {summary}")

    if args.report:
        args.report.mkdir(parents=True, exist_ok=True)
        (args.report / "conformance.md").write_text(markdown_report(results, list(rows), ids))
        payload = {row: [o.to_json() for o in results[row].values()] for row in rows}
        (args.report / "conformance.json").write_text(json.dumps(payload, indent=2))
        console.print(f"report written to {args.report}/conformance.md and conformance.json")
    return 1 if failed or stderr_tails else 0
