"""The backend-by-scenario matrix: outcomes of one or more pytest runs, as rich, Markdown and JSON.

A parametrized scenario is one row of the matrix; its cell is the worst of its cases (a failing
case is named in the cell).

>>> rows = {"demo": [Outcome("access.gradient", "demo", "pass")]}
>>> print(markdown_report(rows, ["access.gradient"]).splitlines()[2])
| scenario | demo |
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

#: Worst first: a cell shows the first status any of its cases has.
SEVERITY = ("error", "fail", "xpass", "missing", "xfail", "skip", "pass")
FAILING = frozenset({"fail", "error", "xpass", "missing"})
STYLES = {"pass": "green", "fail": "red", "error": "red", "skip": "yellow", "xfail": "blue",
          "xpass": "magenta", "missing": "red"}
LABELS = {"fail": "FAIL", "error": "ERROR", "xpass": "XPASS", "missing": "no result"}


@dataclass
class Outcome:
    """The result of one scenario (or one case of it) on one matrix row."""

    scenario: str
    backend: str
    status: str  # "pass" | "fail" | "error" | "skip" | "xfail" | "xpass"
    reason: str = ""
    seconds: float = 0.0
    details: str = field(default="", repr=False)
    case: str = ""

    @property
    def label(self) -> str:
        """``scenario[case]``, as a known-failures entry names it."""
        return f"{self.scenario}[{self.case}]" if self.case else self.scenario

    def to_json(self) -> dict[str, Any]:
        """A plain dict (seconds rounded)."""
        return {**asdict(self), "seconds": round(self.seconds, 4)}


def cell(outcomes: Sequence[Outcome]) -> Outcome:
    """One cell of the matrix: the worst outcome of a scenario's cases (``missing`` if none)."""
    if not outcomes:
        return Outcome("", "", "missing", "no result")
    worst = min(outcomes, key=lambda o: SEVERITY.index(o.status))
    if len(outcomes) > 1 and worst.status != "pass":
        bad = [o.case for o in outcomes if o.status == worst.status]
        return Outcome(worst.scenario, worst.backend, worst.status, f"{', '.join(bad)}: {worst.reason}", worst.seconds,
                       worst.details, worst.case)
    return worst


def cells(results: Mapping[str, Iterable[Outcome]], scenario_ids: Sequence[str]) -> dict[tuple[str, str], Outcome]:
    """``{(row, scenario id): cell}`` for every row and scenario."""
    grouped: dict[tuple[str, str], list[Outcome]] = {}
    for row, outcomes in results.items():
        for o in outcomes:
            grouped.setdefault((row, o.scenario), []).append(o)
    return {(row, sid): cell(grouped.get((row, sid), [])) for row in results for sid in scenario_ids}


def rich_matrix(results: Mapping[str, Iterable[Outcome]], scenario_ids: Sequence[str]) -> Any:
    """The matrix as a rich ``Table``; row labels are plain text (``keras[torch]`` stays)."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title="unifyparams conformance: scenario x backend")
    table.add_column("scenario", style="bold")
    for row in results:
        table.add_column(Text(row), justify="center")
    grid = cells(results, scenario_ids)
    for sid in scenario_ids:
        row_cells = [grid[row, sid].status for row in results]
        table.add_row(Text(sid), *(Text(LABELS.get(s, s), style=STYLES[s]) for s in row_cells))
    return table


def markdown_report(results: Mapping[str, Iterable[Outcome]], scenario_ids: Sequence[str]) -> str:
    """The matrix as a Markdown table; cells other than pass carry their reason."""
    rows = list(results)
    grid = cells(results, scenario_ids)
    lines = ["# unifyparams conformance", "", "| scenario | " + " | ".join(rows) + " |", "|---|" + "---|" * len(rows)]
    for sid in scenario_ids:
        texts = []
        for row in rows:
            o = grid[row, sid]
            reason = f" ({o.reason})" if o.reason and o.status not in ("pass", "missing") else ""
            texts.append(("no result" if o.status == "missing" else o.status) + reason)
        lines.append(f"| {sid} | " + " | ".join(t.replace("|", "/").replace("\n", " ") for t in texts) + " |")
    return "\n".join(lines) + "\n"


def json_report(results: Mapping[str, Iterable[Outcome]]) -> str:
    """Every outcome (cases separately), by row."""
    return json.dumps({row: [o.to_json() for o in outcomes] for row, outcomes in results.items()}, indent=2)


def summary(results: Mapping[str, Iterable[Outcome]], scenario_ids: Sequence[str]) -> str:
    """``"4 backend row(s) x 48 scenario(s): 188 pass, 4 skip"`` (counted by cell)."""
    counts: dict[str, int] = {}
    for o in cells(results, scenario_ids).values():
        counts[o.status] = counts.get(o.status, 0) + 1
    text = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
    return f"{len(results)} backend row(s) x {len(scenario_ids)} scenario(s): {text}"


def failures(results: Mapping[str, Iterable[Outcome]], scenario_ids: Sequence[str]) -> list[Outcome]:
    """The cells that fail the run, in matrix order."""
    grid = cells(results, scenario_ids)
    return [_placed(grid[row, sid], row, sid) for sid in scenario_ids for row in results
            if grid[row, sid].status in FAILING]


def _placed(o: Outcome, row: str, sid: str) -> Outcome:
    """``o`` with its row and scenario filled in (a ``missing`` cell has neither)."""
    return Outcome(o.scenario or sid, o.backend or row, o.status, o.reason, o.seconds, o.details, o.case)
