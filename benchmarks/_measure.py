"""Shared measuring helpers: round-robin timing, the process's peak resident memory, result records.

Peak memory comes from the kernel's high-water mark (``VmHWM`` in /proc/self/status), which sees
every allocation (tracemalloc sees only Python's): ``/proc/self/clear_refs`` resets it to the
current resident size before each call, and the call's figure is the peak above the resident size
just before it (the model, the interpreter and the frameworks already loaded). Where the reset is
not possible the figure is None. That high-water mark also counts the pages of a memory-mapped file
a load reads (the page cache, shared and reclaimable), so the untimed warm-up run also samples the
peak of anonymous memory (``RssAnon``: what the process itself allocated) every 2 ms. ``python -m benchmarks`` runs every measurement in a fresh
process, so memory freed by an earlier measurement cannot hide a later one's peak.

Byte-moving measurements pass ``fresh_memory``: before each timed call (ours and the references
alike) that many bytes are touched and freed, so memory the call allocates is memory the machine
has just used. On a virtual machine whose host takes back memory the guest leaves free (here after
about 2 s), the first touch of such memory costs up to ten times more than a touch of memory freed
a moment ago: 16 new 64 MiB arrays (``copying.empty_aligned`` + ``fill``) took 0.25-0.32 s after
such a touch (seven rounds between other work), 0.27-1.05 s without (five rounds), and 5.6 s as a
process's first allocation. That is the host's cost, not the library's, and it would fall on
whichever call happened to allocate after a pause.
"""

from __future__ import annotations

import gc
import os
import resource
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

MIB = 2**20


def keras_label() -> str:
    return f"keras[{os.environ.get('KERAS_BACKEND', 'tensorflow')}]"


#: Backends whose every write needs new memory (a JAX array cannot be written in place): their loads
#: and inits are judged against the floor that allocates, the other floor shown beside it.
WRITES_NEW_MEMORY = frozenset({"keras[jax]"})


def judged_first(label: str, in_place: tuple[str, Any], new_memory: tuple[str, Any]) -> list[tuple[str, Any]]:
    """The two references of a load or init, the one ``label``'s backend is judged against first.

    >>> [name for name, _ in judged_first("keras[jax]", ("in place", 1), ("new", 2))]
    ['new', 'in place']
    """
    return [new_memory, in_place] if label in WRITES_NEW_MEMORY else [in_place, new_memory]


def rss_bytes(field: str = "VmRSS") -> int:
    """Current (VmRSS) or peak (VmHWM) resident memory; falls back to getrusage's peak."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def reset_peak() -> bool:
    """Reset VmHWM to the current resident size (Linux >= 4.0); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
        return True
    except OSError:
        return False


class PeakMemory:
    """Peak anonymous resident memory above the level at entry, sampled every 2 ms in a thread."""

    def __init__(self, *, active: bool = True) -> None:
        self.active = active
        self.extra = 0

    def _rss(self) -> int:
        """Anonymous resident memory (``RssAnon``): what the process allocated, not the file pages
        a memory map makes resident (those are the page cache, shared, and counted by the kernel once)."""
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024
        raise RuntimeError("no RssAnon in /proc/self/status")

    def __enter__(self) -> PeakMemory:
        if not self.active:
            return self
        self.base = self._rss()
        self.peak = self.base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, self._rss())

    def __exit__(self, *exc: Any) -> None:
        if not self.active:
            return
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())
        self.extra = self.peak - self.base


def atomic_floor(overwritten: Sequence[Any], work: Callable[[], Any]) -> Callable[[], None]:
    """The least an all-or-nothing write moves: a new copy of the arrays it overwrites, then ``work``
    (the one-pass floor), the copies held until it is done."""

    def floor() -> None:
        kept = [np.array(a, copy=True) for a in overwritten]
        work()
        del kept

    return floor


def settle_memory(nbytes: int) -> None:
    """Touch ``nbytes`` of new memory and free it, so the next allocations reuse pages the host
    has backed (see the module's docstring)."""
    if nbytes > 0:
        touched = np.ones(nbytes // 8 + 1, dtype=np.float64)
        del touched


def run_once(fn: Callable[[], Any], fresh_memory: int = 0) -> tuple[float, int | None]:
    """(seconds, peak resident growth in bytes, or None where the peak cannot be reset) of one call,
    after :func:`settle_memory` of ``fresh_memory`` bytes."""
    gc.collect()
    settle_memory(fresh_memory)
    before = rss_bytes()
    precise = reset_peak()
    start = time.perf_counter()
    fn()
    seconds = time.perf_counter() - start
    return seconds, (max(0, rss_bytes("VmHWM") - before) if precise else None)


def measure(fns: Sequence[Callable[[], Any]], repeat: int, warmup: bool = True,
            fresh_memory: int = 0) -> list[dict[str, Any]]:
    """Median and best seconds, and the largest peak growth, of each function run round-robin,
    each timed call after :func:`settle_memory` of ``fresh_memory`` bytes.

    Interleaving spreads background noise evenly over the functions compared; the order alternates
    between rounds so no function always follows the same one.
    """
    anon: list[int | None] = [None] * len(fns)
    if warmup:  # untimed: where its peak anonymous memory is sampled, which would disturb the timing
        for i, fn in enumerate(fns):
            with PeakMemory(active=os.path.exists("/proc/self/status")) as peak:
                fn()
            anon[i] = peak.extra if peak.active else None
    samples: list[list[tuple[float, int | None]]] = [[] for _ in fns]
    for round_ in range(max(1, repeat)):
        order = list(range(len(fns)))
        for i in order if round_ % 2 == 0 else reversed(order):
            samples[i].append(run_once(fns[i], fresh_memory))
    results = []
    for runs, anon_peak in zip(samples, anon):
        peaks = [g for _, g in runs if g is not None]
        results.append({
            "seconds": statistics.median(t for t, _ in runs),
            "best_seconds": min(t for t, _ in runs),
            "peak_extra_bytes": max(peaks) if peaks else None,
            "peak_anon_bytes": anon_peak,
        })
    return results


def record(kind: str, backend: str, case: str, size: float, size_unit: str, nbytes: int,
           labelled: Sequence[tuple[str, dict[str, Any]]], *, ratio_kind: str, goal: float,
           **extra: Any) -> dict[str, Any]:
    """One result: ``labelled[0]`` is unifyparams, ``labelled[1]`` the reference, the rest more references.

    ``ratio_kind`` "time": ours' time over the reference's (the goal is an upper bound);
    "throughput": ours' throughput over the reference's (the goal is a lower bound).
    """
    measured = []
    for label, m in labelled:
        m = dict(m, label=label)
        m["gbps"] = nbytes / m["seconds"] / 1e9 if nbytes and m["seconds"] > 0 else None
        measured.append(m)
    ours, reference, *others = measured
    if ratio_kind == "time":
        ratio = ours["seconds"] / reference["seconds"]
        met, goal_text = ratio <= goal, f"<= {goal:g}x"
    else:
        ratio = reference["seconds"] / ours["seconds"]
        met, goal_text = ratio >= goal, f">= {goal:g}x"
    for m in others:
        m["ratio"] = (ours["seconds"] / m["seconds"] if ratio_kind == "time"
                      else m["seconds"] / ours["seconds"])
    return {
        "kind": kind, "backend": backend, "case": case, "size": size, "size_unit": size_unit,
        "nbytes": nbytes, "ours": ours, "reference": reference, "other_references": others,
        "ratio": ratio, "ratio_kind": ratio_kind, "goal": goal_text, "goal_value": goal, "met": bool(met),
        **extra,
    }


def square_width(size_mib: float, layers: int) -> int:
    """The width of ``layers`` square float32 matrices that hold ``size_mib`` MiB together."""
    return max(1, int((size_mib * MIB / 4 / layers) ** 0.5))


def describe(rec: dict[str, Any]) -> str:
    """One line for a script's own output."""
    ours, ref = rec["ours"], rec["reference"]

    def fig(m: dict[str, Any]) -> str:
        if rec["ratio_kind"] == "throughput" and m.get("gbps"):
            return f"{m['gbps']:6.2f} GB/s"
        return f"{m['seconds'] * 1e3:8.2f} ms"

    peak = ours.get("peak_extra_bytes")
    peak_text = f"  peak +{peak / MIB:.0f} MiB" if peak is not None else ""
    verdict = "met" if rec["met"] else "NOT met"
    return (f"{rec['backend']:<26} {rec['kind']:<9} {rec['case']:<15} {rec['size']:>6g} {rec['size_unit']:<7} "
            f"{ours['label']}: {fig(ours)}  {ref['label']}: {fig(ref)}  ratio {rec['ratio']:5.2f}x "
            f"(goal {rec['goal']}: {verdict}){peak_text}")
