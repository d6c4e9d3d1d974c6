"""The suite's pytest plugin: scenario selection and the backend-by-scenario matrix of a run.

The suite itself needs no plugin; load this one for its options with
``-p unifyparams.conformance.plugin`` (``python -m unifyparams.conformance`` does):

``--scenarios PATTERN``
    keep only scenario tests whose id (``access.layer_kinds[gru]``) contains PATTERN or
    matches it as a glob; other tests are left alone.
``--conformance-json FILE``
    append one JSON line per scenario outcome as the run goes (``python -m
    unifyparams.conformance`` reads these from each row's process).
``--conformance-report DIR``
    print the backend-by-scenario matrix of this run and write ``DIR/conformance.{md,json}``.

    $ pytest -p unifyparams.conformance.plugin tests/test_conformance_torch.py --conformance-report reports/
"""

from __future__ import annotations

import fnmatch
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from . import report as rep
from .suite.ids import ROW_KEY, case_of, scenario_of

ROW_ENV = "UNIFYPARAMS_CONFORMANCE_ROW"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("unifyparams", "unifyparams conformance suite")
    group.addoption("--scenarios", metavar="PATTERN", help="only scenarios whose id contains PATTERN or matches it as a glob")
    group.addoption("--conformance-json", metavar="FILE", help="append one JSON line per scenario outcome to FILE")
    group.addoption("--conformance-report", metavar="DIR", help="print the scenario matrix; write DIR/conformance.{md,json}")


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--conformance-json") or config.getoption("--conformance-report"):
        config.pluginmanager.register(Recorder(config), "unifyparams-conformance-recorder")


def matches(label: str, pattern: str) -> bool:
    """Whether a scenario label is selected by ``pattern`` (substring or glob).

    >>> matches("access.layer_kinds[gru]", "access"), matches("tie.bad_ties", "tie.*"), matches("tie.x", "lazy")
    (True, True, False)
    """
    return pattern in label or fnmatch.fnmatchcase(label, pattern)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    pattern = config.getoption("--scenarios")
    if not pattern:
        return
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        sid = scenario_of(item)
        label = f"{sid}[{case_of(item)}]" if sid and case_of(item) else sid
        (drop if label is not None and not matches(label, pattern) else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def row_of(item: pytest.Item) -> str:
    """The matrix row of a test: the runner's, else the one the suite recorded, else its class."""
    cls = getattr(item, "cls", None)
    return os.environ.get(ROW_ENV) or item.stash.get(ROW_KEY, "") or (cls.__name__ if cls else item.nodeid)


def _reason(report: pytest.TestReport, call: pytest.CallInfo[None]) -> str:
    if hasattr(report, "wasxfail"):
        return str(report.wasxfail)
    if report.skipped and isinstance(report.longrepr, tuple):
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    if call.excinfo is not None:
        return f"{call.excinfo.typename}: {call.excinfo.value}"
    return str(report.longrepr or "").strip().splitlines()[0] if report.longrepr else ""


def classify(report: pytest.TestReport, call: pytest.CallInfo[None]) -> str | None:
    """The matrix status of one phase's report, or None while the test is still running."""
    if report.when == "setup":
        return "skip" if report.skipped else "error" if report.failed else None
    if report.when == "teardown":
        return "error" if report.failed else None
    if hasattr(report, "wasxfail"):
        return "xfail" if report.skipped else "xpass"
    if report.failed:
        return "xpass" if "[XPASS(strict)]" in str(report.longrepr) else "fail"
    return "skip" if report.skipped else "pass"


class Recorder:
    """Collects scenario outcomes of this run; streams them to ``--conformance-json``."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.outcomes: dict[str, rep.Outcome] = {}
        self.ids: list[str] = []
        self.stream = config.getoption("--conformance-json")
        self.started: dict[str, float] = {}

    def _emit(self, payload: dict[str, Any]) -> None:
        if self.stream:
            with open(self.stream, "a", encoding="utf-8") as out:
                out.write(json.dumps(payload) + "\n")

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        ids = [sid for item in session.items if (sid := scenario_of(item))]
        self.ids = list(dict.fromkeys(ids))
        self._emit({"collected": len(ids), "scenarios": self.ids})

    def pytest_runtest_logstart(self, nodeid: str, location: Any) -> None:
        self.started[nodeid] = time.perf_counter()

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
        report = yield
        sid = scenario_of(item)
        status = classify(report, call) if sid else None
        if sid and status:
            row = row_of(item)
            seconds = time.perf_counter() - self.started.get(item.nodeid, time.perf_counter())
            details = report.longreprtext if status in rep.FAILING else ""
            outcome = rep.Outcome(sid, row, status, _reason(report, call), seconds, details, case_of(item))
            self.outcomes[item.nodeid] = outcome
            self._emit(outcome.to_json())
        return report

    def results(self) -> dict[str, list[rep.Outcome]]:
        """``{row: outcomes}`` of this run."""
        rows: dict[str, list[rep.Outcome]] = {}
        for o in self.outcomes.values():
            rows.setdefault(o.backend, []).append(o)
        return rows

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        folder = self.config.getoption("--conformance-report")
        if not folder or not self.outcomes:
            return
        from rich.console import Console

        console = Console(file=terminalreporter._tw, force_terminal=terminalreporter.hasmarkup, width=160)
        console.print(rep.rich_matrix(self.results(), self.ids))
        console.print(rep.summary(self.results(), self.ids), markup=False, highlight=False)
        write_reports(Path(folder), self.results(), self.ids)
        console.print(f"report written to {folder}/conformance.md and conformance.json", markup=False)


def write_reports(folder: Path, results: dict[str, list[rep.Outcome]], ids: list[str]) -> None:
    """``folder/conformance.md`` and ``folder/conformance.json``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "conformance.md").write_text(rep.markdown_report(results, ids), encoding="utf-8")
    (folder / "conformance.json").write_text(rep.json_report(results), encoding="utf-8")
