"""All-or-nothing writes without snapshots, where a write is only a copy into host memory.

An atomic write keeps a copy of each parameter before overwriting it, in case the framework
refuses a later write part way (:mod:`unifyparams.transaction`). That copy is a second pass over
fresh memory and one model's worth of it. It is only needed for writes that can fail: where the
adapter hands out a parameter's own memory (:meth:`Adapter.write_target
<unifyparams.adapter.Adapter.write_target>`: a plain CPU tensor, a CPU NDArray), a value already
computed and checked is copied in by NumPy alone (:func:`unifyparams.copying.copy_into`; 2-D
transposes of 4- and 2-byte elements by the compiled :mod:`~unifyparams.transpose_kernel`, which allocates
nothing either), which has nothing to refuse.

So :func:`plan` asks for the memory of every parameter that has some (and whose value is a
ready array of the same shape that does not overlap it, a :class:`Borrowed` view of a port's
source, or a :class:`Fill` of a seeded initializer) before anything is written: a failure there
changes no value. :mod:`~unifyparams.transaction` then writes every *other* parameter the usual way
(with snapshots, restored on failure), and only once all of them landed, :func:`copy_all` copies
the planned values in (or fills them), with signal handlers held (:func:`guarded`: a Ctrl-C
arrives once the write is done). A load, port or seeded init of a CPU PyTorch model holds no copy
of it and runs at the speed of one copy.

What stays possible is NumPy itself failing on valid arrays (a bug, or no memory left for a
few kilobytes); the error then says exactly which parameters hold new values.

>>> targets = plan(items, "load")           # doctest: +SKIP
>>> with guarded(items, targets):           # doctest: +SKIP
...     copy_all(targets, "load", None)
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from . import mapped, workers
from .capabilities import WriteSafety
from .copying import PARALLEL_BYTES, byte_bounds
from .distributed import region_of
from .errors import WriteError, describe_names
from .streamed import Source, StreamError, copy_streamed
from .uninterrupted import uninterrupted

if TYPE_CHECKING:
    from .capabilities import Staged
    from .param import Param


@dataclass(frozen=True)
class Target:
    """One planned write into ``memory``, the memory of ``param`` (the plan's ``position``): a
    copy of ``value``, or (``value`` None) ``fill(memory)``."""

    position: int
    param: Param
    memory: np.ndarray
    value: np.ndarray | None
    fill: Callable[[np.ndarray], None] | None = None


@dataclass(frozen=True)
class Borrowed:
    """A value that may be had without new memory: ``borrow()`` returns it as a view of memory that
    exists already (a source model's parameter, :meth:`Adapter.borrow
    <unifyparams.adapter.Adapter.borrow>`), or None where there is none; calling it computes the
    value the usual way (a port's value for one destination parameter). A write may borrow such
    values before anything is written, since holding them costs nothing.

    >>> Borrowed(lambda: None, lambda: np.zeros(2))()
    array([0., 0.])
    """

    borrow: Callable[[], np.ndarray | None]
    compute: Callable[[], np.ndarray | None]

    def __call__(self) -> np.ndarray | None:
        return self.compute()


@dataclass(frozen=True)
class Fill:
    """A value the library's own seeded streams write straight into memory (a catalog
    initializer's draw, :meth:`Initializer.streams_into <unifyparams.init.Initializer.streams_into>`):
    ``into(memory)`` fills the parameter's native memory; calling it computes the value the usual
    way. A write fills such parameters last, like plain copies.

    >>> out = np.empty(2); Fill(lambda m: m.fill(1.0), lambda: None).into(out); out
    array([1., 1.])
    """

    into: Callable[[np.ndarray], None]
    compute: Callable[[], np.ndarray | None]
    #: Called once the fill is planned, before anything is written: allocates what ``into`` will use.
    reserve: Callable[[], None] | None = None

    def __call__(self) -> np.ndarray | None:
        return self.compute()


def plan(items: list[tuple[Param, Any]], what: str) -> list[Target]:
    """The parameters of ``items`` that take their value by a plain copy, with their memory; a
    :class:`Borrowed` value is borrowed now and put in ``items`` in its place.

    Raises :class:`~unifyparams.errors.WriteError` (nothing written: no value has been copied yet)
    when an adapter fails to give memory it offers, or a value fails to be borrowed.
    """
    wanted: list[tuple[int, Param, Any]] = [(position, p, value) for position, (p, value) in enumerate(items)
              if isinstance(value, np.ndarray | Borrowed | Fill) and p.materialized and region_of(p) is None]
    memories = _memories(wanted, what)
    targets: list[Target] = []
    for (position, p, value), memory in zip(wanted, memories, strict=True):
        stage = "reading its value" if isinstance(value, Borrowed) else "reserving memory for its values"
        try:
            if memory is not None and isinstance(value, Borrowed):
                value = value.borrow()
            elif memory is not None and isinstance(value, Fill) and value.reserve is not None:
                value.reserve()
        except Exception as exc:
            raise _nothing_written(what, p.name, stage, exc) from exc
        if memory is not None and isinstance(value, Fill):
            if memory.dtype == p.dtype and memory.shape == tuple(p.native_shape):
                targets.append(Target(position, p, memory, None, value.into))
            continue
        if memory is None or value is None:
            continue
        items[position] = (p, value)
        if memory.shape != value.shape or not np.can_cast(value.dtype, memory.dtype, "same_kind"):
            continue
        if np.may_share_memory(memory, value):  # its own memory (a model's values loaded back): the usual way
            continue
        targets.append(Target(position, p, memory, value))
    return _distinct(targets)


def _memories(wanted: list[tuple[int, Param, Any]], what: str) -> list[np.ndarray | None]:
    """Each wanted parameter's :meth:`~unifyparams.adapter.Adapter.write_target`: asked one at a
    time, or, of an adapter that batches them, once for all of its parameters
    (:meth:`~unifyparams.adapter.Adapter.write_targets`)."""
    memories: list[np.ndarray | None] = [None] * len(wanted)
    by_adapter: dict[int, list[int]] = {}
    for i, (_, p, _) in enumerate(wanted):
        by_adapter.setdefault(id(p.adapter), []).append(i)
    for indices in by_adapter.values():
        params = [wanted[i][1] for i in indices]
        adapter = params[0].adapter
        if _batches(adapter) and len(params) > 1:
            given = _asked(what, params, adapter.write_targets, [p.native for p in params])
            if len(given) != len(params):
                raise WriteError(
                    f"{what} failed: {type(adapter).__name__}.write_targets gave {len(given)} memories for "
                    f"{len(params)} parameters (expected one per parameter, None where it offers none). No value "
                    f"had been written yet: the model is unchanged.",
                    changed=False,
                )
        else:
            given = [_asked(what, [p], adapter.write_target, p.native) for p in params]
        for i, memory in zip(indices, given, strict=True):
            memories[i] = memory
    return memories


def _batches(adapter: Any) -> bool:
    """Whether ``adapter`` asks its framework for several write targets at once (it overrides
    :meth:`~unifyparams.capabilities.WriteSafety.write_targets`)."""
    return "write_targets" in vars(adapter) or type(adapter).write_targets is not WriteSafety.write_targets


def _asked(what: str, params: list[Param], ask: Callable[[Any], Any], argument: Any) -> Any:
    """``ask(argument)``, an adapter giving the memory of ``params``; its failure as a :class:`WriteError`."""
    try:
        return ask(argument)
    except Exception as exc:
        names = params[0].name if len(params) == 1 else [p.name for p in params]
        raise _nothing_written(what, names, "giving its memory to write into", exc) from exc


def _nothing_written(what: str, names: str | list[str], stage: str, exc: Exception) -> WriteError:
    """The error for a write stopped before its first value (planning the copies, staging memory):
    at the parameter ``names`` (or one of several), in ``stage``."""
    where = f"at {names!r}" if isinstance(names, str) else f"at one of {describe_names(names)}"
    return WriteError(
        f"{what} failed {where}: {stage} failed: {exc}. No value had been written yet: the model is unchanged.",
        parameter=names if isinstance(names, str) else None,
        changed=False,
    )


@dataclass(frozen=True)
class StagedCopy:
    """A value to copy into new memory of its parameter's (``staged``, from :meth:`Adapter.stage_target
    <unifyparams.adapter.Adapter.stage_target>`), which ``staged.commit()`` then hands over; or, for a
    :class:`Fill`, its ``into``, which draws the value straight into that memory."""

    position: int
    param: Param
    staged: Staged
    value: np.ndarray | Callable[[np.ndarray], None]


def stage(items: list[tuple[Param, Any]], copies: Sequence[Target], what: str) -> list[StagedCopy]:
    """New memory, now, for every parameter of ``items`` whose value is a ready array or a
    :class:`Fill` and whose framework replaces tensors rather than write into them (TensorFlow,
    JAX), in ``items``' order: nothing is written yet, and the memory is only reserved (its pages
    come as it is filled). Run after :func:`plan` and :func:`unalias`; those of ``copies`` are left out.

    Raises :class:`~unifyparams.errors.WriteError` (nothing written) when an adapter fails to give it.
    """
    copied = {target.position for target in copies}
    out: list[StagedCopy] = []
    for position, (p, value) in enumerate(items):
        fill = isinstance(value, Fill)
        if (position in copied or not (fill or isinstance(value, np.ndarray) and value.size) or not p.materialized
                or region_of(p) is not None):
            continue
        stage = "giving new memory for its value"
        try:
            staged = p.adapter.stage_target(p.native)
            if fill and staged is not None and value.reserve is not None:
                stage = "reserving memory for its values"
                value.reserve()
        except Exception as exc:
            raise _nothing_written(what, p.name, stage, exc) from exc
        if staged is None:
            continue
        if fill:
            if staged.memory.shape == tuple(p.native_shape) and staged.memory.dtype == p.dtype:
                out.append(StagedCopy(position, p, staged, value.into))
        elif staged.memory.shape == value.shape and np.can_cast(value.dtype, staged.memory.dtype, "same_kind"):
            out.append(StagedCopy(position, p, staged, value))
    return out


def unalias(items: list[tuple[Param, Any]], targets: list[Target]) -> None:
    """Give every value that overlaps the memory of *another* parameter of the write its own copy, in
    ``items`` and ``targets`` alike: a value read from the model itself (two weights swapped) would
    otherwise be overwritten before it is written. The memory is that of the planned copies and,
    for parameters the framework writes, what :meth:`Adapter.borrow
    <unifyparams.adapter.Adapter.borrow>` shows of it (asked only when some value is an array that
    is not a checkpoint's mapped file). A value over its own parameter's memory alone stays as it
    is (the model's values loaded back).

    >>> unalias(items, memory_write.plan(items, "load"))   # doctest: +SKIP
    """
    values = [i for i, (_, value) in enumerate(items)
              if isinstance(value, np.ndarray) and value.size and not mapped.in_file_map(value)]
    if not values:
        return
    spans = [(*byte_bounds(t.memory), t.position) for t in targets]
    planned = {t.position for t in targets}
    for position, (p, _) in enumerate(items):
        if position not in planned and p.materialized:
            memory = _shown_memory(p)
            if memory is not None and memory.size:
                spans.append((*byte_bounds(memory), position))
    spans.sort()
    starts = [low for low, _, _ in spans]
    reach = list(itertools.accumulate((high for _, high, _ in spans), max))  # furthest end among the first k
    for position in values:
        p, value = items[position]
        low, high = byte_bounds(value)
        j = bisect.bisect_left(starts, high) - 1  # the spans starting before this value ends
        while j >= 0 and reach[j] > low:
            if spans[j][1] > low and spans[j][2] != position:
                items[position] = (p, np.array(value, copy=True))
                break
            j -= 1
    for i, target in enumerate(targets):
        value = items[target.position][1]
        if target.value is not None and value is not target.value:
            targets[i] = Target(target.position, target.param, target.memory, value)


def _shown_memory(p: Param) -> np.ndarray | None:
    """``p``'s memory as its adapter's ``borrow`` shows it, or None (none shown, or asking failed:
    a borrow is only ever a read)."""
    try:
        return p.adapter.borrow(p.native)
    except Exception:
        return None


def _distinct(targets: list[Target]) -> list[Target]:
    """Targets whose memory overlaps another's (a tie written twice, views of one buffer) go the usual way."""
    spans = sorted(
        ((t.memory.__array_interface__["data"][0], t.memory.nbytes, i) for i, t in enumerate(targets)),
    )
    shared: set[int] = set()
    end, last = -1, -1
    for start, size, i in spans:
        if start < end:
            shared.update((i, last))
        if start + size > end:
            end, last = start + size, i
    return [t for i, t in enumerate(targets) if i not in shared]


def guarded(items: Sequence[tuple[Param, Any]], targets: Sequence[Target]) -> AbstractContextManager[None]:
    """What a write with plain copies runs in: signal handlers held (:func:`uninterrupted`), since
    the copies cannot be taken back. Not needed (nothing) for a write of one small parameter, which
    NumPy copies in one call, or one without plain copies, which restores what it wrote when
    interrupted."""
    if not targets or (len(items) == 1 and targets[0].fill is None and targets[0].memory.nbytes < PARALLEL_BYTES):
        return nullcontext()
    workers.start()  # the copies and fills use the worker threads: none is started half way
    return uninterrupted()


def copy_all(targets: Sequence[Target], what: str, advance: Callable[[int], None] | None) -> None:
    """Copy every planned value into its memory (or fill it); ``advance(nbytes)`` after each, in
    order. Run it :func:`guarded`.

    Copies are streamed through the worker threads (:func:`unifyparams.streamed.copy_streamed`), a
    checkpoint's pages mapped part by part just before they are copied and let go after
    (:mod:`unifyparams.mapped`); fills are streamed the same way, a value to a thread where there
    are at least as many as threads (:func:`_fill_all`). A progress callback
    that raises does not stop the copies: its error is raised once they are done.
    """
    failed: BaseException | None = None
    done: list[str] = []

    def finished(target: Target) -> None:
        nonlocal failed
        done.append(target.param.name)
        if advance is not None and failed is None:
            try:
                advance(target.memory.nbytes)
            except BaseException as exc:
                failed = exc

    start = 0
    while start < len(targets):
        target = targets[start]
        if target.fill is not None:
            end = start
            while end < len(targets) and targets[end].fill is not None:
                end += 1
            _fill_all(targets[start:end], finished, what, targets, done)
            start = end
            continue
        end = start
        while end < len(targets) and targets[end].fill is None:
            end += 1
        batch = [t for t in targets[start:end] if t.value is not None]
        for t in targets[start:end]:
            if t.value is None:
                finished(t)
        try:
            copy_streamed([(t.memory, t.value) for t in batch if t.value is not None],
                          done=lambda k, batch=batch: finished(batch[k]), before=mapped.populate,  # type: ignore[misc]
                          after=mapped.release, direct=mapped.reader)
        except StreamError as exc:
            raise _stream_failed(what, exc, batch, targets, done) from exc
        start = end
    if failed is not None:
        raise failed


def _fill_all(fills: Sequence[Target], finished: Callable[[Target], None], what: str,
              targets: Sequence[Target], done: list[str]) -> None:
    """Run every fill, ``finished(t)`` after each in order, streamed like the copies
    (:func:`~unifyparams.streamed.copy_streamed` takes fill functions): with at least as many fills
    as worker threads, each value is drawn whole on one thread, since one value split over the
    threads waits for its last part and its parts write across each other's rows of a transposed
    kernel (16 Xavier fills of 1024 x 1024 float32 kernels ran at 1.5 GB/s split so, here); fewer
    run one at a time, each over every thread."""
    pairs: list[tuple[np.ndarray, Source]] = [(t.memory, t.fill) for t in fills if t.fill is not None]
    try:
        copy_streamed(pairs, done=lambda k: finished(fills[k]))
    except StreamError as exc:
        raise _stream_failed(what, exc, fills, targets, done) from exc


def _stream_failed(what: str, exc: StreamError, streamed: Sequence[Target], targets: Sequence[Target],
                   done: list[str]) -> WriteError:
    """:func:`_copy_failed` for a stream of ``streamed``: the values it copied whole count as written
    even where the failure came before their turn to be reported."""
    whole = done + [streamed[k].param.name for k in exc.done if streamed[k].param.name not in done]
    return _copy_failed(what, exc.cause, targets, whole, [streamed[k].param.name for k in exc.partial])


def _copy_failed(what: str, exc: BaseException, targets: Sequence[Target], done: list[str],
                 partial: list[str]) -> WriteError:
    """The error for a copy or fill that failed: which parameters hold new values, which may be
    partly written (``partial``, the failed one first), which keep their old ones."""
    rest = [t.param.name for t in targets if t.param.name not in done and t.param.name not in partial]
    return WriteError(
        f"{what} failed at {partial[0]!r} while copying values into parameters' memory ({exc}). These "
        f"copies are a write's last step and keep no copy of the old values: every parameter written "
        f"through the framework before them and {len(done)} copied ones ({describe_names(done)}) hold their "
        f"new values, {len(partial)} may be partly written ({describe_names(partial)}), and {len(rest)} keep "
        f"their old values ({describe_names(rest)}). Reload or re-initialize the model before using it.",
        parameter=partial[0],
        changed=True,
        not_restored=(*done, *partial),
    )


__all__ = ["Borrowed", "Fill", "StagedCopy", "Target", "copy_all", "guarded", "plan", "stage", "unalias"]
