"""Run a block that must not stop half way: signal handlers wait until it ends.

Python runs a signal's handler between two bytecodes of the main thread, so Ctrl-C
(``KeyboardInterrupt``), or any handler that raises (a test timeout's ``SIGALRM``), can stop a loop
of copies after some and before others. :func:`uninterrupted` replaces, for the block, every
Python-level handler with one that only notes the signal, and afterwards puts the handlers back and
calls each noted signal's own handler: the interrupt still arrives, once the block is done. Signals
without a Python handler (``SIGKILL``, a default ``SIGTERM``) end the process, which leaves nothing
half written to see. Outside the main thread there is nothing to do: Python runs handlers only there.

>>> with uninterrupted():
...     total = sum(range(10))
>>> total
45
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

#: Every signal number this platform has (asked once: listing them costs more than holding them).
_SIGNALS = tuple(signal.valid_signals())


@contextmanager
def uninterrupted() -> Iterator[None]:
    """Hold every Python-level signal handler until the block ends, then deliver what arrived."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    arrived: list[tuple[int, FrameType | None]] = []

    def note(signum: int, frame: FrameType | None) -> None:
        arrived.append((signum, frame))

    held: dict[int, Callable[[int, FrameType | None], Any]] = {}
    for sig in _SIGNALS:
        handler = signal.getsignal(sig)
        if callable(handler):
            held[int(sig)] = handler
            signal.signal(sig, note)
    try:
        yield
    finally:
        for number, handler in held.items():
            signal.signal(number, handler)
        for number, frame in arrived:  # e.g. KeyboardInterrupt, raised now that the block is done
            held[number](number, frame)


__all__ = ["uninterrupted"]
