"""What a port planned and did: :class:`PortReport`, one :class:`PortRow` per destination tensor."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..display import Table, shown, terminal_width, wrap
from ..errors import UnifyParamsError


class PortError(UnifyParamsError, ValueError):
    """A port was refused; nothing was changed. ``.report`` has the plan and every problem
    (``None`` when the call itself was malformed)."""

    def __init__(self, message: str, report: PortReport | None):
        super().__init__(message)
        self.report = report


@dataclass
class PortRow:
    """One destination tensor of a port: where its value comes from and how it is converted."""

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
        """True when the port has no problems (it can be, or was, applied)."""
        return not self.problems

    def table(self) -> Table:
        """The rows as a :class:`~unifyparams.display.Table` (plain with ``str()``, styled by rich)."""
        columns = ("source", "destination", "canonical shape", "conversion", "native layouts", "problem")
        rows = [(r.source, r.destination, r.shape, r.conversion, r.layouts, (r.problem, "red")) for r in self.rows]
        return Table(columns, list(rows), title=f"port {self.source_backend} -> {self.destination_backend} "
                     f"(match={self.match})")

    def footer(self) -> list[str]:
        """Warnings, problems, and the one-line outcome."""
        state = "applied" if self.applied else "not applied"
        return (
            [f"warning: {w}" for w in self.warnings]
            + [f"problem: {p}" for p in self.problems]
            + [f"{len(self.rows)} parameter(s), {len(self.problems)} problem(s): {state}"]
        )

    def text(self, width: int | None = None) -> str:
        """Plain text within ``width`` characters a line: the table (its widest columns cut with an
        ellipsis), then the footer (wrapped). None: columns as wide as their contents, never cut."""
        footer = [line for text in self.footer() for line in wrap(text, width)]
        return "\n".join([self.table().text(width), *footer])

    def __str__(self) -> str:
        """Plain text: the table, then the footer, fitted to the terminal's width (off a terminal,
        columns as wide as their contents, never cut).

        >>> report = PortReport("torch", "keras", "name", [PortRow("0.weight", "0.weight", "(4, 3)", "transpose")])
        >>> print(report)
        port torch -> keras (match=name)
        source    destination  canonical shape  conversion  native layouts  problem
        --------  -----------  ---------------  ----------  --------------  -------
        0.weight  0.weight     (4, 3)           transpose
        1 parameter(s), 0 problem(s): not applied
        """
        return shown(self, self.text(terminal_width()))

    def __rich__(self) -> Any:
        """The table and footer drawn by rich (``rich.print(report)``)."""
        from rich.console import Group
        from rich.text import Text

        return Group(self.table(), *[Text(line) for line in self.footer()])
