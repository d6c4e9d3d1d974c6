"""What a port planned and did: :class:`PortReport`, one :class:`PortRow` per destination tensor."""

from __future__ import annotations

import io
from dataclasses import dataclass, field

from ..errors import UnifyParamsError


class PortError(UnifyParamsError, ValueError):
    """A port was refused; nothing was changed. ``.report`` has the plan and every problem
    (``None`` when the call itself was malformed)."""

    def __init__(self, message: str, report: PortReport | None):
        super().__init__(message)
        self.report = report


@dataclass
class PortRow:
    source: str
    destination: str
    shape: str
    conversion: str
    problem: str = ""
    #: Native layouts of the source and the destination (every row shows them, so a
    #: transposition between two square weights is never invisible).
    layouts: str = ""


@dataclass
class PortReport:
    """The plan (and, unless dry run, the result) of a port."""

    source_backend: str
    destination_backend: str
    match: str
    rows: list[PortRow] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    applied: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems

    def __str__(self) -> str:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"port {self.source_backend} -> {self.destination_backend} (match={self.match})")
        for column in ("source", "destination", "canonical shape", "conversion", "native layouts", "problem"):
            table.add_column(column)
        for r in self.rows:
            table.add_row(r.source, r.destination, r.shape, r.conversion, r.layouts, r.problem)
        console = Console(file=io.StringIO(), record=True, width=160, force_terminal=False)
        console.print(table)
        for w in self.warnings:
            console.print(f"warning: {w}", markup=False)
        for p in self.problems:
            console.print(f"problem: {p}", markup=False)
        state = "applied" if self.applied else "not applied"
        console.print(f"{len(self.rows)} parameter(s), {len(self.problems)} problem(s): {state}")
        return console.export_text()
