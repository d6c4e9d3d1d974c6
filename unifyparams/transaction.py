"""The one place that writes many parameters: all or nothing, on every backend.

Every API that writes values (``ParamSet.load``, ``Param.set``/``update``/``[...] =``,
``up.initialize``, ``up.port``, ``up.load``, pending initializers applied at materialization)
hands its prepared values to :func:`write_all`, which

1. asks the adapter whether each parameter can be written (:meth:`Adapter.check_writable
   <unifyparams.adapter.Adapter.check_writable>`: tensors frozen by the framework, read-only
   memory, the meta device) and, if any cannot, raises :class:`~unifyparams.errors.WriteError`
   listing every reason before anything changed;
2. writes the values one at a time, in plan order, parameters that hold no values yet last (a lazy
   layer is the hardest thing to take back, so it is given values only once everything else
   landed); with ``atomic=True`` each parameter is copied just before it is overwritten, except
   those whose write is a plain copy into memory the adapter hands out
   (:meth:`Adapter.write_target <unifyparams.adapter.Adapter.write_target>`): their memory is
   asked for before anything is written, and they are copied last, once every write that can fail
   landed, with NumPy alone and signal handlers held (:mod:`unifyparams.memory_write`), so they
   need no copy of their old values;
3. if the framework still refuses a write part way (or a value cannot be computed), restores every
   parameter written so far in reverse order, the failing one included (PyTorch writes an
   inference tensor and then raises), through :meth:`Adapter.restore
   <unifyparams.adapter.Adapter.restore>`, reads each back and compares it bit for bit, and raises
   one :class:`~unifyparams.errors.WriteError` naming the parameter and the framework's reason. It
   says that every parameter written before it was restored only when that was verified;
   otherwise it lists those that were not.

4. on a model sharded over processes (:mod:`unifyparams.distributed`) every rank runs the same
   write: the ranks' verdicts of step 1 are agreed before anything is written (one rank refusing
   makes every rank refuse), each rank keeps a copy of its own blocks only, and after the last
   value the ranks agree again: if one failed part way, every rank puts back its blocks (verified)
   and every rank raises the same error, saying what is true on each.

Memory: with ``atomic=True`` (the default) one copy of each parameter written through the
framework is held until the write ends: up to one model's worth of extra memory for a whole-model
load (plus, for callable values, the one value being written); on TensorFlow and JAX that copy is
the old tensor itself (nothing is copied, but its memory is held until the end); parameters written
by plain copies (a CPU PyTorch model, a CPU Gluon model) need none. ``atomic=False`` holds no copy and is **not atomic**: a
refusal part way leaves the parameters written before it with their new values, and the error
says which.

>>> write_all([(p, p.prepare(np.zeros(p.shape)))], what="set")   # doctest: +SKIP
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

from . import mapped, memory_write
from .distributed import agree, collective_for, collective_operation, region_of
from .errors import WriteError, describe_names
from .lifetime import ObjectMap
from .progress import Progress, nbytes_of
from .storage import overlapping
from .streamed import StreamError, copy_streamed

if TYPE_CHECKING:
    from .capabilities import Staged
    from .param import Param

#: Callbacks queued while a write gives values to parameters that had none (see :func:`after_write`).
_queued: list[list[Callable[[], object]]] = []
#: Parameters a successful write gave their first values: owner -> {leaf: write number}. Kept on the
#: owner's lifetime (:mod:`unifyparams.lifetime`); read by :func:`filled_since`.
_filled: ObjectMap[dict[str, int]] = ObjectMap()
_write_numbers = itertools.count(1)
_last_write = 0
#: Deprecated: hooks registered with :func:`register_filled_hook`.
_on_filled: list[Callable[[Param], None]] = []


def owner_and_leaf(p: Param) -> tuple[Any, str]:
    """What stays the same for a parameter across materialization in every framework: its owning
    block and leaf name (a Keras variable does not exist before build, a PyTorch lazy tensor changes
    class); the native object itself for an adapter that reports no block.

    >>> owner_and_leaf(up.params(net)["0.weight"])   # doctest: +SKIP
    (Linear(in_features=20, out_features=256, bias=True), 'weight')
    """
    block = p.slot.block
    return (p.native, "") if block is None else (block, p.slot.leaf)


def write_number() -> int:
    """The number of the last successful write that gave a parameter its first values (0: none yet).

    >>> before = write_number(); filled_since(p, before)   # doctest: +SKIP
    False
    """
    return _last_write


def filled_since(p: Param, number: int) -> bool:
    """True when a successful write gave ``p`` its first values after write ``number``
    (:func:`write_number`): a value written wins over an initializer pending for ``p``.

    >>> filled_since(up.params(lazy)["0.weight"], 0)   # doctest: +SKIP
    False
    """
    owner, leaf = owner_and_leaf(p)
    return (_filled.get(owner) or {}).get(leaf, 0) > number


def _note_filled(filled: list[Param]) -> None:
    global _last_write
    for p in filled:
        owner, leaf = owner_and_leaf(p)
        _last_write = next(_write_numbers)
        _filled.setdefault(owner, dict)[leaf] = _last_write
        for hook in _on_filled:
            hook(p)


def register_filled_hook(hook: Callable[[Param], None]) -> None:
    """Deprecated: call ``hook(param)`` for every parameter a successful write gave its first
    values. Use :func:`filled_since` instead (the record stays with the parameter's block).

    >>> register_filled_hook(print)   # doctest: +SKIP
    """
    warnings.warn(
        "register_filled_hook is deprecated; use unifyparams.transaction.filled_since", DeprecationWarning, stacklevel=2
    )
    if hook not in _on_filled:
        _on_filled.append(hook)


def after_write(callback: Callable[[], object]) -> None:
    """Run ``callback()`` now or, while :func:`write_all` is giving values to parameters that had
    none, right after it succeeds (dropped if it fails and restores them).

    Frameworks announce that a lazy layer got its shapes (the hooks behind
    :meth:`Adapter.on_materialized <unifyparams.adapter.Adapter.on_materialized>`) also when a load
    gives it values; pending initializers and ties (:mod:`unifyparams.pending_work`) must not run in the
    middle of a write that may still be taken back.

    >>> after_write(lambda: print("now"))   # no write under way: runs at once
    now
    """
    if _queued:
        _queued[-1].append(callback)
    else:
        callback()


@contextmanager
def _holding_callbacks(active: bool) -> Iterator[list[Callable[[], object]]]:
    queue: list[Callable[[], object]] = []
    if not active:
        yield queue
        return
    _queued.append(queue)
    try:
        yield queue
    finally:
        _queued.remove(queue)


class _NoValues:
    """Snapshot of a parameter that held no values (lazy): restoring puts it back pending."""

    def __repr__(self) -> str:
        return "<no values>"


NO_VALUES = _NoValues()


def _bits(array: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(array).reshape(-1).view(np.uint8)


def _short(exc: BaseException) -> str:
    """The framework's reason in one line: MXNet and TensorFlow put tracebacks in messages."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[-1] if lines else ""
    if len(lines) > 1:
        checks = [line for line in lines if "Check failed" in line or "Error" in line]
        text = checks[-1] if checks else text
    text = text if len(text) <= 400 else text[:397] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _snapshot(p: Param) -> np.ndarray | _NoValues:
    if not p.materialized:
        return NO_VALUES
    if region_of(p) is not None:  # a sharded parameter: this process's block only, no collective
        return p.adapter.read_region(p.native)
    value = p.adapter.snapshot(p.native)  # a copy-on-write read where the framework has one
    if value is not None:
        return value
    value = p.adapter.read(p.native)
    # read() returns a new array object; one that owns its memory (a framework's own copy) is a
    # snapshot already, anything else may share the parameter's memory and is copied.
    return value if value.flags.owndata else np.array(value, copy=True)


def _verified(p: Param, snapshot: np.ndarray | _NoValues) -> bool:
    if isinstance(snapshot, _NoValues):
        return not p.adapter.has_values(p.native)
    now = p.adapter.read_region(p.native) if region_of(p) is not None else p.adapter.read(p.native)
    return now.shape == snapshot.shape and now.dtype == snapshot.dtype and np.array_equal(_bits(now), _bits(snapshot))


def _restore(done: list[tuple[Param, np.ndarray | _NoValues]]) -> list[tuple[str, str]]:
    """Restore in reverse order; ``(name, why)`` for each parameter not verified restored."""
    failures: list[tuple[str, str]] = []
    for p, snapshot in reversed(done):
        value = None if isinstance(snapshot, _NoValues) else snapshot
        try:
            if _verified(p, snapshot):
                continue  # never written (refused before landing), or written back to the same bits
            if value is not None and region_of(p) is not None:
                p.adapter.write_region(p.native, value)
            else:
                p.adapter.restore(p.native, value)
            ok = _verified(p, snapshot)
        except Exception as exc:  # the restore itself failed: report it, keep restoring the rest
            failures.append((p.name, _short(exc)))
            continue
        if not ok:
            failures.append((p.name, "read back after restoring, it differs from its previous value"))
    return failures


def refusals(params: Sequence[Param]) -> list[tuple[list[str], str]]:
    """``(names, reason)`` for the parameters the adapter says cannot be written now, by reason."""
    by_reason: dict[str, list[str]] = {}
    for p in params:
        try:
            reason = p.adapter.check_writable(p.native)
        except Exception as exc:
            reason = f"checking whether it can be written failed: {_short(exc)}"
        if reason:
            by_reason.setdefault(reason, []).append(p.name)
    return [(names, reason) for reason, names in by_reason.items()]


def write_all(
    plan: Sequence[tuple[Param, np.ndarray | Callable[[], np.ndarray | None]]],
    *,
    atomic: bool = True,
    what: str = "load",
    finish: Callable[[], None] | None = None,
    progress: Progress | None = None,
) -> None:
    """Write every ``(param, value)`` of ``plan``; all or nothing when ``atomic`` (the default).

    Each value is already prepared (native layout and dtype, from :meth:`Param.prepare
    <unifyparams.param.Param.prepare>`), or a zero-argument callable returning such a value,
    called just before its write (so a port holds one converted tensor at a time); a callable may
    instead fill the parameter's own memory (:meth:`Adapter.writable_view
    <unifyparams.adapter.Adapter.writable_view>`) and return ``None``. ``what``
    names the operation in messages (``"load"``, ``"port"``, ``"initialize"``, ``"set"``).

    Raises :class:`~unifyparams.errors.WriteError`: before any write when a parameter cannot be
    written (every reason listed, nothing changed); or when the framework refuses a write (or a
    value cannot be computed) part way. With ``atomic=True`` every parameter written so far is then
    restored and verified (``err.changed`` is False), or the error lists those that could not be
    (``err.not_restored``). With ``atomic=False`` nothing is copied (no extra memory) and the write
    is **not atomic**: parameters written before the failure keep their new values, and the error
    says so and names them.

    ``finish`` (optional) runs once every value landed, still inside the write: if it raises, every
    parameter is restored as for a refused write (``up.load`` makes the checkpoint's ties there; a
    ``finish`` must undo its own changes before raising).

    ``progress`` (a :class:`~unifyparams.progress.Progress`, from :func:`unifyparams.progress.resolve`;
    ``None``: nothing reported) is started with the plan's bytes and advanced once per parameter
    written (an array's ``nbytes``; for a callable value, the parameter's size times its dtype's);
    the caller finishes it.
    """
    items = list(plan)
    collective = collective_for(p for p, _ in items)
    with collective_operation(collective, what) as operation:
        _refuse_unwritable(items, what)
        if operation is not None:
            agree(None)  # every rank's verdict: one that refuses makes every rank refuse, nothing written
        sizes = [nbytes_of(p, value) for p, value in items] if progress is not None and progress.active else None
        if sizes is not None and progress is not None:
            progress.start(sum(sizes))
        # Parameters whose write is a plain copy into their memory go last, without snapshots, once
        # every write that can fail has landed (:mod:`unifyparams.memory_write`); with such copies the
        # whole write holds signal handlers (a Ctrl-C arrives once it is done, not between two copies).
        copies = memory_write.plan(items, what) if operation is None and finish is None else []
        memory_write.unalias(items, copies)
        # Values whose framework replaces tensors (TensorFlow, JAX): their new memory now, the
        # copies into it streamed like the plain copies, each committed as soon as it is whole.
        staged = memory_write.stage(items, copies, what) if operation is None and finish is None else []
        with memory_write.guarded(items, copies):
            # an operation under way with parameters here that are not sharded (a port from a sharded
            # source): the values are computed with collectives, so the ranks agree after every one
            _write_all(items, copies, staged, sizes, atomic=atomic, what=what, finish=finish, progress=progress,
                       operation=operation, each=collective is None and operation is not None)


def _write_all(
    items: list[tuple[Param, np.ndarray | Callable[[], np.ndarray | None]]],
    copies: list[memory_write.Target],
    staged: list[memory_write.StagedCopy],
    sizes: list[int] | None,
    *,
    atomic: bool,
    what: str,
    finish: Callable[[], None] | None,
    progress: Progress | None,
    operation: Any,
    each: bool,
) -> None:
    # Parameters that already hold values first (those whose new memory was staged after the
    # others: their copies stream): giving a lazy layer values is the hardest thing to take back, so
    # it happens only once everything else landed; the plain copies after them.
    lazy = [not p.materialized for p, _ in items]
    skip = {target.position for target in copies} | {target.position for target in staged}
    held = [i for i, waits in enumerate(lazy) if not waits and i not in skip]
    waiting = [i for i, waits in enumerate(lazy) if waits]
    order = held + [target.position for target in staged] + waiting
    order += [target.position for target in copies]  # named in messages as not written yet
    writes = _Writes(items, order, atomic=atomic, what=what, sizes=sizes, progress=progress, operation=operation,
                     each=each)
    with _holding_callbacks(any(lazy)) as queue:
        for position in held:
            writes.one(position)
        if staged:
            writes.staged(staged)
        for position in waiting:
            writes.one(position)
        if copies:
            memory_write.copy_all(copies, what, None if sizes is None else _advance(progress, sizes, copies))
        if operation is not None:
            _agree_outcome(operation, None, writes.done, writes.written, atomic, None)
        if finish is not None:
            try:
                finish()
            except BaseException as exc:
                _reraise(writes.failure(None, exc, "finish"), exc)
    _note_filled([p for (p, _), waits in zip(items, lazy) if waits])
    for callback in queue:
        callback()


class _Writes:
    """The writes through the framework of one :func:`write_all`, in ``order``: what was written
    (``written``, names) and, when atomic, each one's snapshot taken before it (``done``), so that a
    failure restores them all and says what is true."""

    def __init__(self, items: list[tuple[Param, Any]], order: list[int], *, atomic: bool, what: str,
                 sizes: list[int] | None, progress: Progress | None, operation: Any, each: bool) -> None:
        self.items, self.order, self.atomic, self.what = items, order, atomic, what
        self.sizes, self.progress, self.operation, self.each = sizes, progress, operation, each
        self.done: list[tuple[Param, np.ndarray | _NoValues]] = []
        self.written: list[str] = []

    def failure(self, p: Param | None, exc: BaseException, stage: str) -> WriteError:
        """Restore what was written (atomic) and the one error that tells what is now true."""
        return _failure(self.what, p, exc, stage, self.items, self.order, self.written, self.done, self.atomic)

    def landed(self, p: Param, position: int) -> None:
        self.written.append(p.name)
        if self.sizes is not None and self.progress is not None:
            self.progress.advance(self.sizes[position])

    def one(self, position: int) -> None:
        """Snapshot (atomic), compute and write ``items[position]`` through its framework."""
        p, value = self.items[position]
        stage, operation = "snapshot", self.operation
        try:
            if self.atomic:
                self.done.append((p, _snapshot(p)))  # before the write: a framework may write, then raise
            stage = "compute"
            draw = _staged_fill(p, value)  # a seeded draw straight into memory the framework then takes
            if draw is not None:
                stage = "write"
                draw.commit()
            else:
                native = value() if callable(value) else value
                stage = "write"
                if native is not None:  # None: the callable wrote the parameter's memory itself
                    mapped.populate(native)  # a checkpoint's pages: in bulk now, let go after
                    p.write_native(native)
                    mapped.release(native)
        except BaseException as exc:
            failed = self.failure(p, exc, stage)
            if operation is None or not isinstance(exc, Exception):
                _reraise(failed, exc)
            if self.each:
                operation.collective.any(True)  # the other ranks learn it after this same value
            _agree_outcome(operation, failed, self.done, self.written, self.atomic, exc)
        if self.each and operation.collective.any(False):  # another rank failed at this value
            _agree_outcome(operation, None, self.done, self.written + [p.name], self.atomic, None)
        self.landed(p, position)

    def staged(self, staged: list[memory_write.StagedCopy]) -> None:
        """Values copied into staged memory (:meth:`Adapter.stage_target
        <unifyparams.adapter.Adapter.stage_target>`), streamed over the worker threads like plain
        copies (:mod:`unifyparams.streamed`); each committed on this thread as soon as its copy is
        whole, in order, after its snapshot, like any framework write. A copy into staged memory
        changes nothing the model holds: whatever fails, only the commits made so far are restored.

        Takes the list's items (it is left empty): once committed, a value's new memory is the
        framework's (or, where the framework copied it, garbage), and is not held until the write ends.
        """
        params = [(t.param, t.position) for t in staged]
        pairs = [(t.staged.memory, t.value) for t in staged]
        commits: list[Callable[[], None] | None] = [t.staged.commit for t in staged]
        staged.clear()
        stage, current = "compute", params[0][0]

        def commit(k: int) -> None:
            nonlocal stage, current
            (p, position), hand_over = params[k], commits[k]
            current, stage = p, "snapshot"
            if self.atomic:
                self.done.append((p, _snapshot(p)))
            stage = "write"
            assert hand_over is not None
            hand_over()
            commits[k], pairs[k] = None, _SPENT  # the new memory is the framework's now
            self.landed(p, position)
            stage = "compute"

        try:
            copy_streamed(pairs, done=commit, before=mapped.populate, after=mapped.release, direct=mapped.reader)
        except StreamError as exc:  # NumPy failed copying into new memory: that parameter is not written
            failed = params[exc.partial[0]][0] if exc.partial else current
            _reraise(self.failure(failed, exc.cause, "compute"), exc.cause)
        except BaseException as exc:
            _reraise(self.failure(current, exc, stage), exc)


#: What a committed value's place in the stream holds instead of its memory.
_SPENT = (np.empty(0), np.empty(0))


def _staged_fill(p: Param, value: object) -> Staged | None:
    """For a seeded initializer's :class:`~unifyparams.memory_write.Fill` of a parameter whose framework
    replaces tensors (:meth:`Adapter.stage_target <unifyparams.adapter.Adapter.stage_target>`): new
    memory with the values drawn straight into it, ready to commit; else None (computed, then written)."""
    if not isinstance(value, memory_write.Fill) or not p.materialized or region_of(p) is not None:
        return None
    staged = p.adapter.stage_target(p.native)
    if staged is None or staged.memory.shape != tuple(p.native_shape) or staged.memory.dtype != p.dtype:
        return None
    if value.reserve is not None:
        value.reserve()
    value.into(staged.memory)
    return staged


def _advance(
    progress: Progress | None, sizes: list[int], copies: Sequence[memory_write.Target]
) -> Callable[[int], None] | None:
    """Progress for the plain copies, by the sizes the progress was started with."""
    if progress is None:
        return None
    left = iter([sizes[target.position] for target in copies])
    return lambda _nbytes: progress.advance(next(left))


def _agree_outcome(
    operation: Any, failed: WriteError | None, done: list[tuple[Param, np.ndarray | _NoValues]], written: list[str],
    atomic: bool, cause: BaseException | None,
) -> None:
    """After every rank's writes: if one failed, every rank puts its own blocks back (verified) and
    raises one error, the same on every rank, saying what is true on each."""
    collective = operation.collective
    mine = None if failed is None else (failed.parameter, getattr(failed, "reason", str(failed)))
    outcomes = collective.all_gather(mine)
    failures = [(rank, o) for rank, o in enumerate(outcomes) if o is not None]
    if not failures:
        return
    if failed is not None:
        left = list(failed.not_restored)
    elif atomic:
        left = [name for name, _ in _restore(done)]
    else:
        left = list(written)
    lefts = collective.all_gather(left)
    rank, (parameter, message) = failures[0]
    others = [r for r, _ in failures[1:]]
    head = f"{operation.what} failed on rank {rank}" + (f" (and on rank(s) {others})" if others else "") + f": {message}"
    changed = {r: names for r, names in enumerate(lefts) if names}
    if not changed:
        tail = (f" Every rank put back every block it had written (verified by reading them back): the model is "
                f"unchanged on all {collective.size} ranks.")
    elif atomic:
        tail = " Not every block could be put back: " + "; ".join(
            f"rank {r}: {describe_names(n)}" for r, n in changed.items()) + (
            ". Reload or re-initialize those parameters on every rank before using the model.")
    else:
        tail = (" This write was not atomic (atomic=False): these parameters now hold new values: " + "; ".join(
            f"rank {r}: {describe_names(n)}" for r, n in changed.items()) + ".")
    error = WriteError(head + tail, parameter=parameter, changed=bool(changed),
                       not_restored=tuple(changed.get(collective.rank, ())))
    if cause is not None:
        raise error from cause
    raise error


def _refuse_unwritable(items: Sequence[tuple[Param, Any]], what: str) -> None:
    """Raise before any write when a parameter cannot be written, listing every reason."""
    refused = refusals([p for p, _ in items])
    refused += [
        ([a, b], "overlapping but different views of one memory (not a tie): writing both would leave part of "
                 "one with the other's values; write only one, or give one its own memory first")
        for a, b in overlapping(p for p, _ in items)
    ]
    if refused:
        count = sum(len(names) for names, _ in refused)
        raise WriteError(
            f"{what} refused: {count} parameter(s) cannot be written, so nothing was written and every "
            f"parameter keeps its value:\n  - " + "\n  - ".join(f"{describe_names(n)}: {why}" for n, why in refused),
        )


def _reraise(failed: WriteError, exc: BaseException) -> None:
    """After the restore: KeyboardInterrupt and the like go on as they were, errors as ``failed``."""
    if not isinstance(exc, Exception):
        raise exc
    raise failed from exc


def _failure(
    what: str,
    p: Param | None,
    exc: BaseException,
    stage: str,
    items: list[tuple[Param, Any]],
    order: list[int],
    written: list[str],
    done: list[tuple[Param, np.ndarray | _NoValues]],
    atomic: bool,
) -> WriteError:
    """Restore what was written (atomic) and build the one error that tells what is now true."""
    if p is None:  # the finishing step failed after every value landed
        return _finish_failure(what, exc, written, done, atomic)
    reason = {
        "snapshot": f"reading its current value (kept to restore it on failure) failed: {_short(exc)}",
        "compute": f"computing its value failed: {exc}",
        "write": f"the framework refused the write: {_short(exc)}",
    }[stage]
    head = f"{what} failed at {p.name!r}: {reason}."
    failed = _failure_told(what, p, head, items, order, written, done, atomic)
    failed.reason = head  # type: ignore[attr-defined]  # what went wrong, for the ranks' common error
    return failed


def _failure_told(
    what: str, p: Param, head: str, items: list[tuple[Param, Any]], order: list[int], written: list[str],
    done: list[tuple[Param, np.ndarray | _NoValues]], atomic: bool,
) -> WriteError:
    if not atomic:
        untouched = [items[i][0].name for i in order[len(written) + 1 :]]
        return WriteError(
            f"{head} This write was not atomic (atomic=False): {len(written)} parameter(s) written before it "
            f"now hold their new values ({describe_names(written)}), {p.name!r} may hold its old or its new "
            f"value, and {len(untouched)} were not written ({describe_names(untouched)}). Fix the cause and "
            f"write again, or use atomic=True to have a failure restore every parameter.",
            parameter=p.name,
            changed=True,
            not_restored=tuple(written) + (p.name,),
        )
    failures = _restore(done)
    if not failures:
        before = f"Every parameter written before it ({len(written)}) was restored" if written else (
            "No parameter had been written before it"
        )
        return WriteError(
            f"{head} {before}, and {p.name!r} itself holds its previous value (verified by reading them back): "
            f"the model is unchanged.",
            parameter=p.name,
            changed=False,
        )
    return WriteError(
        f"{head} Restoring failed for {len(failures)} parameter(s), which may hold new values: "
        + "; ".join(f"{name!r} ({why})" for name, why in failures)
        + f". The other {len(done) - len(failures)} parameter(s) written were restored and verified. Reload or "
        f"re-initialize the parameters listed before using the model.",
        parameter=p.name,
        changed=True,
        not_restored=tuple(name for name, _ in failures),
    )


def _finish_failure(
    what: str, exc: BaseException, written: list[str], done: list[tuple[Param, np.ndarray | _NoValues]], atomic: bool
) -> WriteError:
    head = f"{what} failed after its {len(written)} value(s) were written: {exc}."
    if not atomic:
        return WriteError(
            f"{head} This write was not atomic (atomic=False): those parameters keep their new values "
            f"({describe_names(written)}).",
            changed=True,
            not_restored=tuple(written),
        )
    failures = _restore(done)
    if not failures:
        return WriteError(
            f"{head} Every parameter written was restored (verified by reading them back): the values are unchanged.",
            changed=False,
        )
    return WriteError(
        f"{head} Restoring failed for {len(failures)} parameter(s), which may hold new values: "
        + "; ".join(f"{name!r} ({why})" for name, why in failures)
        + ". Reload or re-initialize them before using the model.",
        changed=True,
        not_restored=tuple(name for name, _ in failures),
    )


__all__ = [
    "NO_VALUES", "after_write", "filled_since", "owner_and_leaf", "refusals", "register_filled_hook", "write_all",
    "write_number",
]
