"""The library's worker threads: one pool, sized to the CPUs this process may use.

Seeded initialization draws chunks in parallel and :mod:`unifyparams.copying` copies tiles in
parallel; NumPy releases the GIL in both, so threads use every core. One pool is shared so that
the library never holds more threads than CPUs, whatever runs.

>>> threads() >= 1
True
>>> list(executor().map(abs, [-1, -2]))
[1, 2]
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

_pool: ThreadPoolExecutor | None = None
_started = False


def threads() -> int:
    """Worker threads: the CPUs this process may use, at most 8."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(8, cpus))


def start() -> None:
    """Start every worker thread now (once): work that must not fail half way (plain copies into a
    model, :mod:`unifyparams.memory_write`) then never has to start one."""
    global _started
    if _started:
        return
    pool, count = executor(), threads()
    if count > 1:
        gate = threading.Barrier(count)
        for future in [pool.submit(gate.wait, 10.0) for _ in range(count)]:  # each waits for all: one thread each
            future.result()
    _started = True


def executor() -> ThreadPoolExecutor:
    """The shared pool, started on first use."""
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=threads(), thread_name_prefix="unifyparams")
    return _pool


__all__ = ["executor", "start", "threads"]
