"""The library's worker threads: one pool, sized to the CPUs this process may use.

Seeded initialization draws chunks in parallel and :mod:`unifyparams.copying` copies tiles in
parallel; NumPy releases the GIL in both, so threads use every core. One pool is shared so that
the library never holds more threads than CPUs, whatever runs.

>>> threads() >= 1
True
>>> list(executor().map(abs, [-1, -2]))
[1, 2]
>>> run_all(abs, [-3, -4])
[3, 4]

Work handed to the pool may itself be split (a fill of one value, drawn in parts): on a worker
thread, :func:`run_all` runs the parts in order on that thread, and :func:`on_worker` tells code
that would hand out parts itself to do the same. A task that waited for parts queued behind the
tasks holding every worker would wait forever.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

_Item = TypeVar("_Item")
_Result = TypeVar("_Result")

_pool: ThreadPoolExecutor | None = None
_size = 0  # the pool's threads
_started = False
_local = threading.local()  # ``worker``: True on the pool's threads


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
        _pool = ThreadPoolExecutor(max_workers=_size, thread_name_prefix="unifyparams", initializer=_mark_worker)
    return _pool


def _mark_worker() -> None:
    _local.worker = True


def on_worker() -> bool:
    """Whether this thread is one of the pool's (then hand nothing to the pool and wait for it)."""
    return bool(getattr(_local, "worker", False))


def run_all(function: Callable[[_Item], _Result], items: Iterable[_Item]) -> list[_Result]:
    """``[function(item) for item in items]``, over the worker threads; in order on this thread when
    it is one of them, or for a single item."""
    items = list(items)
    if len(items) <= 1 or on_worker():
        return [function(item) for item in items]
    return list(executor().map(function, items))


__all__ = ["executor", "on_worker", "run_all", "start", "threads"]
