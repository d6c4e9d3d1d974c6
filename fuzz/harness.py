"""The harness every fuzzer shares: each input must load cleanly or raise a CheckpointError, in bounded memory.

A fuzzer calls :func:`fuzz` with a reader (``path -> NativeCheckpoint``) and a file suffix; atheris
(libFuzzer) mutates the seed corpus, and each input is written to a file and read. The run fails
(atheris reports the input and stops) when an input

- raises anything but :class:`~unifyparams.errors.CheckpointError` (a raw framework error, a
  ``MemoryError``, a ``RecursionError``...), or a ``CheckpointError`` raised because of a
  ``MemoryError`` (the reader tried to allocate what the file declared);
- makes the process's peak resident memory grow by more than ``MEMORY_FACTOR`` x the input's
  size plus ``MEMORY_SLACK`` (the peak is reset before each input through ``/proc/self/clear_refs``);
- crashes the process (a segfault in a native reader: libFuzzer reports it too).

The address space is also capped (``RLIMIT_AS``) a few GiB above what the imports took, so a
runaway allocation fails fast instead of taking the machine.

    python fuzz/fuzz_gluon.py WORK_CORPUS fuzz/corpus/gluon -max_total_time=20
"""

from __future__ import annotations

import contextlib
import os
import resource
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

#: Peak memory an input may add: this many times its size, plus a fixed allowance.
MEMORY_FACTOR = 16
MEMORY_SLACK = 64 << 20
#: Address space allowed above what the process had once the readers were imported.
ADDRESS_HEADROOM = 4 << 30


def _status_kib(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _memory_cause(exc: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, MemoryError) or "can't allocate memory" in str(current):
            return True
        current = current.__cause__ or current.__context__
    return False


def touch(ckpt: Any) -> None:
    """Read every value of a loaded checkpoint (memory maps and lazy views included)."""
    for array in ckpt.tensors.values():
        flat = np.asarray(array).reshape(-1)
        if flat.size:
            flat[:: max(1, flat.size // 64)].tobytes()


def fuzz(read: Callable[[str], Any], suffix: str) -> None:
    """Run atheris over ``read`` with inputs saved as ``*{suffix}`` files (``sys.argv`` holds libFuzzer's flags)."""
    seeds = [str(p) for arg in sys.argv[1:] if os.path.isdir(arg) for p in sorted(Path(arg).iterdir())]
    import atheris

    from unifyparams.errors import CheckpointError

    folder = tempfile.mkdtemp(prefix="unifyparams-fuzz-")
    path = os.path.join(folder, "input" + suffix)
    for seed in seeds:  # warm up: lazy imports (torch, h5py) and caches are not the inputs' doing
        with contextlib.suppress(Exception):
            touch(read(seed))
    can_measure = _reset_peak()
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = _status_kib("VmSize") * 1024 + ADDRESS_HEADROOM
    if hard == resource.RLIM_INFINITY or limit < hard:
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))

    def one_input(data: bytes) -> None:
        with open(path, "wb") as f:
            f.write(data)
        if can_measure:
            _reset_peak()
        before = _status_kib("VmRSS") * 1024
        try:
            touch(read(path))
        except CheckpointError as exc:
            if _memory_cause(exc):
                raise AssertionError(f"the reader ran out of memory on a {len(data)}-byte file: {exc}") from exc
        if can_measure:
            grown = _status_kib("VmHWM") * 1024 - before
            if grown > MEMORY_FACTOR * len(data) + MEMORY_SLACK:
                raise AssertionError(f"a {len(data)}-byte file made peak memory grow by {grown} bytes")

    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
