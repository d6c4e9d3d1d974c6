"""Progress of long work (saving, loading, porting, initializing), counted in bytes.

Every API that writes many tensors takes ``progress=``:

- ``True``: a rich progress bar on stderr (bytes done and total, rate, time left);
- ``False``: nothing;
- a callable: called as ``callback(done, total)`` (bytes) once per tensor written, and with
  ``done == total`` at the end (``(0, 0)`` once when there is nothing to write);
- ``None`` (the default): a bar only when stderr is a terminal (``sys.stderr.isatty()``), not in
  CI (the environment variable ``CI`` set), and only for work that is still running after
  :data:`DELAY` seconds (half a second): the bar starts lazily, so quick calls print nothing.

:func:`resolve` turns any of these into a :class:`Progress`, which the work drives with
:meth:`~Progress.start`, :meth:`~Progress.advance` and :meth:`~Progress.finish` (or as a context
manager: leaving the block finishes it, or, on an error, only closes the bar).

>>> seen = []
>>> with resolve(lambda done, total: seen.append((done, total))) as progress:
...     progress.start(12)
...     progress.advance(8)
...     progress.advance(4)
>>> seen
[(8, 12), (12, 12)]
>>> calls = []
>>> with resolve(lambda done, total: calls.append((done, total))):
...     pass
>>> calls
[(0, 0)]
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Any, Union

#: Seconds the default (``progress=None``) waits before it shows a bar: quick work prints nothing.
DELAY = 0.5

#: What ``progress=`` accepts: True, False, None (the default rule), a ``callback(done, total)``
#: or a :class:`Progress` already made.
ProgressArg = Union[bool, None, Callable[[int, int], Any], "Progress"]


class Progress:
    """Bytes done out of a total, reported to a ``callback(done, total)`` and/or a rich bar.

    ``bar``: show a rich bar; ``delay``: seconds to wait before showing it (0: at once);
    ``console``: the rich console to draw on (default: stderr); ``label``: the bar's text.
    A Progress with neither a callback nor a bar does nothing (and costs almost nothing).
    """

    def __init__(
        self,
        callback: Callable[[int, int], Any] | None = None,
        *,
        bar: bool = False,
        delay: float = 0.0,
        console: Any = None,
        label: str = "",
    ):
        self.callback = callback
        self.bar = bar
        self.delay = delay
        self.console = console
        self.label = label
        self.total = 0
        self.done = 0
        self._started: float | None = None
        self._reported: tuple[int, int] | None = None
        self._finished = False
        self._rich: Any = None
        self._task: Any = None

    @property
    def active(self) -> bool:
        """True when anything is reported (a callback or a bar)."""
        return self.callback is not None or self.bar

    def start(self, total: int) -> None:
        """Begin work of ``total`` bytes (a second call adds to the total: more work was found)."""
        if self._started is None:
            self._started = time.monotonic()
            self.total = int(total)
            if self.bar and self.delay <= 0:
                self._show()
        else:
            self.total += int(total)
            if self._rich is not None:
                self._rich.update(self._task, total=max(self.total, 1))

    def advance(self, nbytes: int) -> None:
        """``nbytes`` more bytes are done."""
        if self._started is None:
            self.start(0)
        self.done += int(nbytes)
        if self.callback is not None:
            self._report()
        if self.bar:
            if self._rich is None and time.monotonic() - (self._started or 0.0) >= self.delay:
                self._show()
            if self._rich is not None:
                self._rich.update(self._task, completed=self.done)

    def finish(self) -> None:
        """The work is done: report ``done == total`` (once) and close the bar. Idempotent."""
        if self._finished:
            return
        self._finished = True
        if self._started is None:
            self.start(0)
        self.done = max(self.done, self.total)
        self.total = max(self.total, self.done)
        if self.callback is not None and self._reported != (self.total, self.total):
            self._report()
        if self._rich is not None:
            self._rich.update(self._task, completed=self.done)
        self.close()

    def close(self) -> None:
        """Stop drawing the bar without reporting the end (the work failed)."""
        self._finished = True
        if self._rich is not None:
            rich, self._rich = self._rich, None
            rich.stop()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.finish()
        else:
            self.close()

    def _report(self) -> None:
        assert self.callback is not None
        self._reported = (self.done, self.total)
        self.callback(self.done, self.total)

    def _show(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )
        from rich.progress import Progress as RichProgress

        columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                   TimeRemainingColumn())
        console = self.console if self.console is not None else Console(stderr=True)
        self._rich = RichProgress(*columns, console=console, transient=True)
        self._task = self._rich.add_task(self.label, total=max(self.total, 1), completed=self.done)
        self._rich.start()

    def __repr__(self) -> str:
        return f"<Progress {self.label!r} {self.done}/{self.total} bytes>"


def show_by_default() -> bool:
    """The default rule's first half: stderr is a terminal and this is not CI."""
    if os.environ.get("CI"):
        return False
    try:
        return bool(sys.stderr is not None and sys.stderr.isatty())
    except (AttributeError, ValueError):  # replaced or closed stream
        return False


def resolve(progress: ProgressArg, label: str = "", *, console: Any = None) -> Progress:
    """A :class:`Progress` for ``progress=`` (see the module): True, False, None, a callback, or
    a Progress already made (returned as it is, so that nested calls share one).

    >>> resolve(False).active, resolve(True).bar
    (False, True)
    """
    if isinstance(progress, Progress):
        return progress
    if progress is None:
        return Progress(bar=show_by_default(), delay=DELAY, console=console, label=label)
    if progress is True:
        return Progress(bar=True, console=console, label=label)
    if progress is False:
        return Progress(label=label)
    if callable(progress):
        return Progress(progress, label=label)
    raise TypeError(
        f"progress must be True, False, None or a callable(done, total); received {progress!r}"
    )


def nbytes_of(p: Any, value: Any) -> int:
    """Bytes a write of ``value`` into parameter ``p`` moves: the value's own for an array, the
    parameter's (its size times its dtype's) for a value computed later."""
    size = getattr(value, "nbytes", None)
    if size is not None and not callable(value):
        return int(size)
    count = p.size
    return int(count) * int(p.dtype.itemsize) if count is not None else 0


__all__ = ["DELAY", "Progress", "ProgressArg", "nbytes_of", "resolve", "show_by_default"]
