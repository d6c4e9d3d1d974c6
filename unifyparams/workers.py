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
_size = 0  # the pool's threads
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
    pool = executor()
    count = _size
    if count > 1:
        gate = threading.Barrier(count)
        futures = [pool.submit(gate.wait, 10.0) for _ in range(count)]  # each waits for all: one thread each
        try:
            for future in futures:
                future.result()
        except threading.BrokenBarrierError:  # the workers are busy elsewhere (another thread's work): they exist
            return
    _started = True


def executor() -> ThreadPoolExecutor:
    """The shared pool, started on first use."""
    global _pool, _size, _started
    if _pool is None:
        _size, _started = threads(), False
        _pool = ThreadPoolExecutor(max_workers=_size, thread_name_prefix="unifyparams")
    return _pool


__all__ = ["executor", "start", "threads"]
