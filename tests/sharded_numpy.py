"""A NumPy "framework" whose variables are sharded over ranks simulated by threads.

Each rank (a thread) builds its own model; a :class:`ShardedVariable` holds only that rank's
block of the global value, cut along its native axis 0 as ``torch.chunk`` cuts (chunks of
``ceil(n / ranks)``, the last ones shorter or empty). The adapter implements the
:class:`unifyparams.distributed.ShardedStorage` hooks the way a real engine's adapter would:
``read`` is a collective (every rank's block, gathered), ``write`` takes a global value and keeps
this rank's block, and ``collective`` is the :class:`ThreadGroup` of the calling thread. The
core's collective writes, saves and loads are tested on it without any framework (NumPy 1 and 2).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from unifyparams.distributed import Collective, Region

from .numpy_framework import Dense, Module, Norm, NumpyAdapter, Sequential, Variable


class ThreadGroup:
    """``size`` ranks as threads: :meth:`run` calls ``fn(rank)`` on each and returns results by rank."""

    def __init__(self, size: int):
        self.size = size
        self._barrier = threading.Barrier(size, timeout=30)
        self._slots: list[Any] = [None] * size
        self._local = threading.local()

    def rank(self) -> int:
        return int(self._local.rank)

    def all_gather(self, obj: Any) -> list[Any]:
        self._barrier.wait()
        self._slots[self.rank()] = obj
        self._barrier.wait()
        out = list(self._slots)
        self._barrier.wait()
        return out

    def run(self, fn: Callable[[int], Any]) -> list[Any]:
        """Every rank's ``fn(rank)`` result, or the exception it raised."""
        results: list[Any] = [None] * self.size

        def body(rank: int) -> None:
            self._local.rank = rank
            try:
                results[rank] = fn(rank)
            except BaseException as exc:  # noqa: BLE001  (returned to the test)
                results[rank] = exc

        threads = [threading.Thread(target=body, args=(r,)) for r in range(self.size)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        return results


class ThreadCollective(Collective):
    def __init__(self, group: ThreadGroup):
        self.group = group
        self.rank = group.rank()
        self.size = group.size

    def all_gather(self, obj: Any) -> list[Any]:
        return self.group.all_gather(obj)


def chunk(n: int, rank: int, size: int) -> tuple[int, int]:
    """``(start, stop)`` of ``rank``'s chunk of ``n`` rows (torch.chunk's rule)."""
    step = -(-n // size) if n else 0
    start = min(step * rank, n)
    return start, min(start + step, n)


class ShardedVariable(Variable):
    """This rank's rows ``[start, stop)`` of a global value of ``shape``."""

    def __init__(self, full: np.ndarray, group: ThreadGroup, rank: int, trainable: bool = True):
        self.shape = tuple(full.shape)
        self.group = group
        self.start, self.stop = chunk(full.shape[0], rank, group.size)
        super().__init__(np.array(full[self.start:self.stop], copy=True), trainable)


def shard_model(model: Module, group: ThreadGroup, rank: int) -> Module:
    """Replace every variable of ``model`` with 2 or more rows by this rank's block of it."""
    for block in [model, *_blocks(model)]:
        for attr, var in list(block.variables()):
            if var.value.ndim >= 1 and var.value.shape[0] >= 2:
                setattr(block, attr, ShardedVariable(var.value, group, rank, var.trainable))
    return model


def _blocks(module: Module) -> list[Module]:
    found = []
    for _, child in module.children():
        found += [child, *_blocks(child)]
    return found


class ShardedSequential(Sequential):
    """The model class the sharded adapter owns (adapters are chosen by the model's class)."""


def build(seed: int = 0) -> ShardedSequential:
    """Dense(3 -> 5), Norm(5), Dense(5 -> 2): kernels stored (in, out), so native row blocks are
    canonical column blocks; 5 rows over 2 ranks are 3 + 2, over 4 ranks 2 + 2 + 1 + 0."""
    return ShardedSequential(Dense(3, 5, seed=seed), Norm(5), Dense(5, 2, seed=seed + 1))


class ShardedNumpyAdapter(NumpyAdapter):
    """:class:`NumpyAdapter` plus the sharding hooks, for models built by :func:`shard_model`."""

    name = "numpy-sharded"
    priority = 2
    fail_block_write_on: tuple[int, int] | None = None  # (rank, n): that rank's n-th block write fails

    def owns(self, obj: Any) -> bool:
        return isinstance(obj, ShardedSequential)

    def native_shape(self, native: Any) -> tuple[int | None, ...]:
        return native.shape if isinstance(native, ShardedVariable) else super().native_shape(native)

    def read(self, native: Any) -> np.ndarray:
        if not isinstance(native, ShardedVariable):
            return super().read(native)
        return np.concatenate(native.group.all_gather(native.value), axis=0)  # a collective

    def write(self, native: Any, value: np.ndarray) -> None:
        if isinstance(native, ShardedVariable):
            self.write_region(native, value[native.start:native.stop])
        else:
            super().write(native, value)

    def region(self, native: Any) -> Region | None:
        if not isinstance(native, ShardedVariable):
            return None
        rest = native.shape[1:]
        return Region((native.start,) + (0,) * len(rest), (native.stop - native.start, *rest), native.shape)

    def read_region(self, native: Any) -> np.ndarray:
        return np.array(native.value, copy=True)

    def write_region(self, native: Any, value: np.ndarray) -> None:
        plan = self.fail_block_write_on
        if plan is not None and native.group.rank() == plan[0]:
            counts = _counts.setdefault(id(self), {})
            counts[plan[0]] = counts.get(plan[0], 0) + 1
            if counts[plan[0]] == plan[1]:
                raise RuntimeError(f"simulated failure on rank {plan[0]}")
        native.value[...] = value

    def collective(self, native: Any) -> Collective | None:
        return ThreadCollective(native.group) if isinstance(native, ShardedVariable) else None


_counts: dict[int, dict[int, int]] = {}
