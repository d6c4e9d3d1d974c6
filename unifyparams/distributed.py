"""Parameters sharded over processes: the adapter hooks, and one collective write for every rank.

An engine such as PyTorch's FSDP2 splits each parameter over several processes (ranks). The core
stays framework-free: an adapter whose framework shards parameters implements the
:class:`ShardedStorage` hooks, saying which part of the *global* tensor this process holds (a
:class:`Region`, in the native layout), reading and writing only that part, and giving the
:class:`Collective` (the group of processes) to agree over. With those, every feature works on
sharded models:

- ``p.numpy()`` stays the global value (the adapter's ``read``; a collective), ``p.local()`` this
  rank's part and its offsets, in the canonical layout;
- writes (``p.set``, ``ParamSet.load``, ``up.initialize``, ``up.port``, ``up.load``) are
  *collective*: every rank checks, the verdicts are agreed before anything is written, each rank
  writes its own part, and if one rank fails part way every rank puts its part back and raises
  the same error (:func:`collective_operation`);
- ``up.save`` writes each rank's own parts into its own file, and ``up.load`` reads only the
  byte ranges of this rank's parts (:mod:`unifyparams.checkpoint.collective`).

>>> r = Region(offsets=(3, 0), shape=(2, 4), global_shape=(5, 4))
>>> r.slices(), r.empty
((slice(3, 5, None), slice(0, 4, None)), False)
>>> from unifyparams.layouts import Transpose
>>> r.to_canonical(Transpose((1, 0)))
Region(offsets=(0, 3), shape=(4, 2), global_shape=(4, 5), owner=True)
"""

from __future__ import annotations

import contextlib
import math
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import errors
from .errors import CollectiveFailure, ShapeMismatchError, UnifyParamsError
from .layouts import Identity, Layout, Transpose
from .values import conform, shape_problem


@dataclass(frozen=True)
class Region:
    """The part of a global tensor this process holds: ``offsets`` and ``shape`` of the block in
    the tensor of ``global_shape``. ``owner`` is False on the processes whose block is a replica of
    another's (a replicated mesh dimension): a save stores each block once, from its owner."""

    offsets: tuple[int, ...]
    shape: tuple[int, ...]
    global_shape: tuple[int, ...]
    owner: bool = True

    def slices(self) -> tuple[slice, ...]:
        """The block as an index into the global tensor."""
        return tuple(slice(o, o + n) for o, n in zip(self.offsets, self.shape))

    @property
    def empty(self) -> bool:
        """True when this process holds no element (a last, empty chunk)."""
        return math.prod(self.shape) == 0

    def to_canonical(self, layout: Layout) -> Region:
        """The same block in the canonical layout of a parameter whose native layout is ``layout``.

        A permutation moves offsets and sizes with the axes; a layout that mixes elements of
        several blocks (a reshape, a gate reorder) has no block-wise canonical form and is refused.
        """
        if isinstance(layout, Identity):
            return self
        if isinstance(layout, Transpose):
            perm = layout.perm
            return Region(tuple(self.offsets[a] for a in perm), tuple(self.shape[a] for a in perm),
                          tuple(self.global_shape[a] for a in perm), self.owner)
        raise UnifyParamsError(
            f"a sharded parameter with the layout {layout!r} has no canonical block of its own (only identity and "
            f"transposed layouts do); gather it with p.numpy() or keep it unsharded"
        )


class Collective(ABC):
    """The processes a sharded model is spread over, as the core needs them: an adapter returns
    one from :meth:`ShardedStorage.collective` (PyTorch's: the default process group).

    Every method is a collective: each rank calls it, in the same order.
    """

    #: This process's rank, and the number of ranks.
    rank: int
    size: int

    @abstractmethod
    def all_gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj`` (picklable plain data: str, int, tuples, lists, dicts), by rank."""

    def any(self, flag: bool) -> bool:
        """True on every rank when ``flag`` is True on any."""
        return any(self.all_gather(bool(flag)))

    def barrier(self) -> None:
        """Wait until every rank got here."""
        self.all_gather(None)


class RegionSource(ABC):
    """A global tensor read block by block (a checkpoint tensor stored in pieces): a value that
    ``ParamSet.load`` writes into a sharded parameter by reading only this process's block.

    ``np.asarray(source)`` gives the whole tensor (one allocation of its size).
    """

    shape: tuple[int, ...]
    dtype: np.dtype

    @abstractmethod
    def read(self, offsets: Sequence[int], shape: Sequence[int]) -> np.ndarray:
        """A new array with the block of ``shape`` at ``offsets``."""

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def whole(self) -> np.ndarray:
        return self.read((0,) * len(self.shape), self.shape)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        value = self.whole()
        return value if dtype is None else value.astype(dtype)


class ShardedStorage:
    """Adapter hooks for parameters sharded over processes (defaults: nothing is sharded).

    ``region`` says which block of the global tensor this process holds (native layout), or None
    for an ordinary parameter; ``read_region``/``write_region`` move only that block (no
    collective); ``collective`` gives the group to agree over, or None outside a multi-process run.
    """

    def region(self, native: Any) -> Region | None:
        """This process's block of a sharded parameter, native layout; None for an ordinary one."""
        return None

    def read_region(self, native: Any) -> np.ndarray:
        """The values of this process's block (native layout), as a new array (no collective)."""
        raise UnifyParamsError(f"{type(self).__name__} shards no parameter: it has no read_region()")

    def write_region(self, native: Any, value: np.ndarray) -> None:
        """Overwrite this process's block with ``value`` (native layout, the block's shape)."""
        raise UnifyParamsError(f"{type(self).__name__} shards no parameter: it has no write_region()")

    def collective(self, native: Any) -> Collective | None:
        """The group a sharded parameter is spread over (None: one process)."""
        return None

    def describe_placement(self, native: Any) -> str | None:
        """How the framework lays the parameter out over processes or devices, in words for
        ``Param.placement`` and the tree (``"Shard(dim=0) over mesh (2,)"``); None when it does not."""
        return None


def collective_for(params: Iterable[Any]) -> Collective | None:
    """The :class:`Collective` of the first sharded parameter among ``params`` (Params), or None
    when none is sharded or the run has one process."""
    for p in params:
        adapter = p.adapter
        if type(adapter).region is ShardedStorage.region:
            continue  # an adapter that shards nothing: no per-parameter call
        if adapter.region(p.native) is not None:
            found = adapter.collective(p.native)
            if found is not None and found.size > 1:
                return found
            return None
    return None


def region_of(p: Any) -> Region | None:
    """``p``'s native :class:`Region` (None for an ordinary parameter)."""
    adapter = p.adapter
    if type(adapter).region is ShardedStorage.region:
        return None
    return adapter.region(p.native)  # type: ignore[no-any-return]


def block_write(p: Any, source: RegionSource, *, cast: bool = False) -> Callable[[], np.ndarray | None]:
    """The value :func:`~unifyparams.transaction.write_all` writes into ``p`` from ``source``: its
    shape and dtype are checked now (no values read); when written, a sharded parameter reads and
    writes only this process's block, an ordinary one the whole tensor.

    Raises :class:`~unifyparams.errors.ShapeMismatchError` or ``DtypeMismatchError`` (value-dependent
    casts, such as integer narrowing, are checked on the values when they are read).
    """
    problem = shape_problem(p.name, p.shape, source.shape)
    if problem is not None:
        raise ShapeMismatchError(problem)
    conform(np.empty((0,), source.dtype), name=p.name, shape=(0,), dtype=p.dtype, cast=cast)

    def write() -> np.ndarray | None:
        region = region_of(p)
        if region is None:
            return p.prepare(source.whole(), cast=cast)  # type: ignore[no-any-return]
        block = region.to_canonical(p.layout)
        value = conform(source.read(block.offsets, block.shape), name=p.name, shape=block.shape, dtype=p.dtype,
                        cast=cast)
        p.adapter.write_region(p.native, p.layout.to_native(value))
        return None

    write.source = source  # type: ignore[attr-defined]  # tied names given one source agree
    return write


# --- one operation, agreed over every rank -----------------------------------------------------
@dataclass
class _Operation:
    collective: Collective
    what: str
    agreed: bool = False
    notes: list[str] = field(default_factory=list)


class _Active(threading.local):
    """The operations under way, per thread (ranks simulated by threads each have their own)."""

    def __init__(self) -> None:
        self.stack: list[_Operation] = []


_active = _Active()


def current() -> _Operation | None:
    """The collective operation under way in this thread, if any."""
    return _active.stack[-1] if _active.stack else None


def _describe(exc: BaseException) -> tuple[str, str]:
    return type(exc).__name__, str(exc)


def _common_error(what: str, failures: list[tuple[int, str, str]], here: int) -> UnifyParamsError:
    """One error, the same on every rank, from the gathered ``(rank, class name, message)``."""
    rank, kind, message = failures[0]
    others = f" (and on rank(s) {', '.join(str(r) for r, _, _ in failures[1:])})" if failures[1:] else ""
    cls = getattr(errors, kind, None)
    if not (isinstance(cls, type) and issubclass(cls, UnifyParamsError)):
        cls = CollectiveFailure
    text = f"{what} failed on rank {rank}{others}: {message}"
    try:
        return cls(text)  # type: ignore[no-any-return]
    except TypeError:  # an error class with required extra arguments
        return CollectiveFailure(text)


def settle(collective: Collective, what: str, problem: BaseException | None) -> UnifyParamsError | None:
    """Every rank's outcome of one step (each rank calls it at the same point): the error every
    rank raises when a rank brought a problem (the same text everywhere, naming the first failing
    rank and its reason), None when none did."""
    mine = None if problem is None else (collective.rank, *_describe(problem))
    gathered = [tuple(g) for g in collective.all_gather(mine) if g is not None]
    return _common_error(what, gathered, collective.rank) if gathered else None


def agree(problem: BaseException | None) -> None:
    """Called by every rank at the same point of the operation under way (before its first
    write): if any rank brings a problem, every rank raises the same error; nothing is written."""
    op = current()
    if op is None or op.agreed:
        if problem is not None:
            raise problem
        return
    op.agreed = True
    error = settle(op.collective, op.what, problem)
    if error is not None:
        if problem is not None:
            raise error from problem
        raise error


@contextlib.contextmanager
def collective_operation(collective: Collective | None, what: str) -> Iterator[_Operation | None]:
    """Run one operation on every rank as a unit: an error raised on a rank before the ranks
    agreed (:func:`agree`) is brought to that agreement, so every rank raises the same error and
    no rank waits forever for the others. Nested operations join the outermost one.

    >>> with collective_operation(None, "load") as op:   # one process: nothing to agree
    ...     op is None
    True
    """
    if collective is None or _active.stack:
        yield current()
        return
    op = _Operation(collective, what)
    _active.stack.append(op)
    try:
        yield op
        if not op.agreed:  # nothing was written (nothing to write): the ranks still meet once
            agree(None)
    except BaseException as exc:
        if not op.agreed and isinstance(exc, Exception):
            agree(exc)  # raises the common error
        raise
    finally:
        _active.stack.remove(op)


__all__ = [
    "Collective", "CollectiveFailure", "Region", "RegionSource", "ShardedStorage", "agree", "block_write", "collective_for", "collective_operation",
    "current", "region_of", "settle",
]
