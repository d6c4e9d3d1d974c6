"""``up.initialize``: role-aware, seeded initialization of any model, block, ParamSet or Param.

>>> up.initialize(net, up.init.XavierUniform(), seed=0)        # weights Xavier, biases 0, norms 1/0  # doctest: +SKIP
>>> up.initialize(net[2], up.init.Constant(42))                # per block: composes                    # doctest: +SKIP
>>> up.initialize(net, up.init.Normal(0, 0.01), select="*.weight")                                     # doctest: +SKIP

Values are drawn in NumPy from ``(seed, stream key)`` on the canonical shape and written
through the adapter, so the same seed gives bit-identical canonical values in every framework.
The stream key is the canonical name with positions renumbered among the layers that own
parameters (:mod:`unifyparams.init.keys`), so ``Sequential(Linear, ReLU, Linear)`` and a model
with the activation as an argument of the first layer get the same values.
Parameters whose shape is not known yet get their initializer recorded and applied as soon as
the shape becomes known (by :func:`unifyparams.materialize` or the user's own first forward pass).
"""

from __future__ import annotations

import numbers
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .access import params
from .adapter import Role
from .errors import InitializerError, UnifyParamsError
from .init import Initializer, Ones, ParamInfo, Uniform, Zeros, get
from .init.keys import relative_key, stream_keys
from .layouts import IDENTITY, Transpose
from .lazy import register_pending_applier, register_waiting_lookup
from .param import Param
from .paramset import ParamSet
from .transaction import after_write, register_filled_hook, write_all

#: MXNet's default for weights when no initializer is given (role-aware init is MXNet's idea).
DEFAULT_WEIGHT_INIT: Initializer = Uniform(-0.07, 0.07)

_global_rng = np.random.default_rng()


def seed(value: int) -> None:
    """Seed the process-wide generator used when :func:`initialize` gets no ``seed``.

    >>> up.seed(0); up.initialize(net, up.init.Normal())     # doctest: +SKIP
    """
    global _global_rng
    _global_rng = np.random.default_rng(_check_seed(value))


def _check_seed(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise InitializerError(f"seed must be an int >= 0. Received: seed={value!r}")
    return int(value)


def _draw_seed() -> int:
    return int(_global_rng.integers(0, 2**63 - 1))


class Initialized(list[str]):
    """What :func:`initialize` returns: the names it initialized (or recorded), in model order.

    ``pending`` lists those whose shape is not known yet: their initializer waits and is applied
    when the shape becomes known.
    """

    pending: list[str]

    def __init__(self, names: Iterable[str] = (), pending: Iterable[str] = ()):
        super().__init__(names)
        self.pending = list(pending)


# --- initializers waiting for shapes ---------------------------------------------------------------


@dataclass
class _Waiting:
    """An initializer recorded for a parameter whose shape is not known yet."""

    initializer: Initializer
    seed: int
    name: str  # the canonical name it had when recorded: the stream key
    allow_nonfinite: bool
    owner: Any  # weak reference to the owning block, to recognise a reused id
    stream: str = ""  # its stream key when recorded (recomputed when applied: see apply_pending)


#: (id(owning block), leaf) -> waiting initializer. The block is the one thing that stays the same
#: across materialization in every framework (a Keras variable does not exist before build, a
#: PyTorch lazy tensor changes class); entries go when their block is garbage-collected.
_waiting: dict[tuple[Any, str], _Waiting] = {}
_watched_blocks: set[int] = set()


def _block_key(p: Param) -> tuple[Any, str]:
    block = p.slot.block
    if block is None:  # an adapter that reports no owning block: the storage is all we have
        return ("storage", p.storage_key), p.slot.leaf
    return id(block), p.slot.leaf


def _ref(obj: Any) -> Any:
    try:
        return weakref.ref(obj)
    except TypeError:
        return lambda: obj


def _forget_block(block_id: int) -> None:
    _watched_blocks.discard(block_id)
    for key in [k for k in _waiting if k[0] == block_id]:
        del _waiting[key]


def _record(p: Param, use: Initializer, seed_value: int, allow_nonfinite: bool, stream: str = "") -> None:
    block = p.slot.block
    _waiting[_block_key(p)] = _Waiting(use, seed_value, p.name, allow_nonfinite, _ref(block), stream or p.name)
    if block is not None and id(block) not in _watched_blocks:
        try:
            weakref.finalize(block, _forget_block, id(block))
            _watched_blocks.add(id(block))
        except TypeError:  # not weak-referenceable: the entry stays, checked by identity on use
            pass


def _entry(p: Param) -> _Waiting | None:
    entry = _waiting.get(_block_key(p))
    return entry if entry is not None and entry.owner() is p.slot.block else None


# --- parameters unifyparams initialized (for force=False) ------------------------------------------

_initialized: dict[int, Any] = {}  # id(native) -> weak reference (or the object) to the native parameter


def _mark(p: Param) -> None:
    _initialized[id(p.native)] = _ref(p.native)


def _was_initialized(p: Param) -> bool:
    ref = _initialized.get(id(p.native))
    return (ref is not None and ref() is p.native) or _entry(p) is not None


# --- choosing initializers -----------------------------------------------------------------------


def _role_init(p: Param, init: Initializer) -> Initializer | None:
    role = p.role
    if role in (Role.BIAS, Role.SHIFT, Role.RUNNING_MEAN):
        return Zeros()
    if role in (Role.SCALE, Role.RUNNING_VAR):
        return Ones()
    if role == Role.WEIGHT:
        return init
    return None  # Role.OTHER: left alone without select


def _targets(target: Any, select: Any) -> tuple[ParamSet, bool]:
    """The parameters to consider and whether they were chosen explicitly (no role rules)."""
    explicit = isinstance(target, (ParamSet, Param))
    ps = params(target)
    if select is None:
        return ps, explicit
    if isinstance(select, str):
        return ps.select(select), True
    if isinstance(select, ParamSet):
        return select, True
    if isinstance(select, Param):
        return params(select), True
    if isinstance(select, (list, tuple, set, frozenset)) and all(isinstance(n, str) for n in select):
        for name in select:
            ps[name]  # an unknown name raises ParameterNotFoundError with the closest names
        return ParamSet({n: p for n, p in ps.items() if n in select}, backend=ps.backend), True
    raise InitializerError(
        f"select must be a glob pattern (\"*.weight\"), a list of names, a ParamSet or a Param. "
        f"Received: select={select!r}"
    )


def _stream_keys(target: Any, chosen: ParamSet) -> dict[str, str]:
    """``{name: stream key}`` for the chosen parameters (:func:`unifyparams.init.keys.stream_keys`),
    renumbered among *every* parameter of the model they were read from, so that a selection (a
    ``select=``, a ParamSet, a Param) gets the keys, hence the values, the whole model gets."""
    model = target.model if isinstance(target, (ParamSet, Param)) else target
    scope = list(params(model)) if model is not None else list(chosen)
    if any(name not in scope for name in chosen):  # names not relative to that model (a renamed set)
        scope = list(chosen)
    return stream_keys(scope)


def _applied_stream(ps: ParamSet, p: Param, entry: _Waiting, now: dict[str, str]) -> str:
    """The stream key of a waiting parameter whose shape is now known, recomputed among the names
    ``ps`` has now: a layer that had no name before it was built (a Keras layer of a kind whose
    variables cannot be foreseen) counts now, as it does for an eager model. The key recorded is
    used when ``ps`` is not a model enclosing the one initialized."""
    if not now:
        now.update(stream_keys(ps))
    return relative_key(now[p.name], p.name, entry.name) or entry.stream


def _check_all(plan: list[tuple[Param, Initializer]]) -> None:
    """Everything that can be known before generating values, for every parameter: an error here
    leaves every parameter as it was."""
    for p, use in plan:
        try:
            use.check(p.shape, p.dtype, p.name)
        except InitializerError:
            raise
        except Exception as exc:
            raise InitializerError(f"{use!r} cannot initialize {p.name!r}: {exc}") from exc


# --- generating and writing values ---------------------------------------------------------------


def _known_shape(p: Param) -> tuple[int, ...]:
    return tuple(int(d) for d in p.shape if d is not None)


class _Scratch:
    """A reusable buffer per dtype for generated values: fresh pages for every parameter cost more
    than generating the values, and peak memory stays one parameter's worth."""

    def __init__(self) -> None:
        self._buffers: dict[np.dtype, np.ndarray] = {}

    def get(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        size = int(np.prod(shape))
        buf = self._buffers.get(dtype)
        if buf is None or buf.size < size:
            self._buffers.pop(dtype, None)  # free the old one before allocating the new
            buf = self._buffers[dtype] = np.empty(size, dtype=dtype)
        return buf[:size].reshape(shape)


def _builtin_value(
    p: Param, init: Initializer, seed_value: int, scratch: _Scratch, direct: bool, stream: str = ""
) -> Callable[[], np.ndarray | None]:
    """A catalog initializer's values for ``p``, computed when the write reaches ``p`` (so memory
    holds one generated parameter at a time): into a reused scratch buffer in *native* layout that
    goes to the adapter as it is. A transposed layout is filled through its canonical view (chunk by
    chunk, see :func:`unifyparams.init.streams._fill`), so no second copy is made. With ``direct``
    (a non-atomic initialize) the values go straight into the parameter's memory when the adapter
    offers it (:meth:`Adapter.writable_view`), and the callable returns None. Catalog output needs
    no checks (:func:`_check_all` ran before)."""

    def compute() -> np.ndarray | None:
        shape = _known_shape(p)
        info = ParamInfo(p.name, p.role, shape, p.dtype, p.backend, stream)
        layout = p.layout
        as_view = layout is IDENTITY or isinstance(layout, Transpose)  # to_canonical: a view of the same memory
        view = p.adapter.writable_view(p.native) if direct and as_view else None
        if view is not None:
            canonical = layout.to_canonical(view)
            result = init.fill(shape, info, seed_value, out=canonical)
            if result is not canonical:
                canonical[...] = result
            p.adapter.after_direct_write(p.native)
            return None
        if as_view and p.dtype in (np.float32, np.float64):
            native = scratch.get(tuple(int(d) for d in p.native_shape if d is not None), p.dtype)
            canonical = layout.to_canonical(native)
            result = init.fill(shape, info, seed_value, out=canonical)
            if result is not canonical:
                canonical[...] = result
            return native
        return p.prepare(init.fill(shape, info, seed_value), cast=True)

    return compute


def _values(
    p: Param, init: Initializer, seed_value: int, name: str, allow_nonfinite: bool, stream: str = ""
) -> np.ndarray:
    """Generate and validate values for ``p``; return them in native layout (nothing written)."""
    shape = _known_shape(p)
    info = ParamInfo(name, p.role, shape, p.dtype, p.backend, stream)
    try:
        value = np.asarray(init.fill(shape, info, seed_value))
    except UnifyParamsError as exc:
        raise InitializerError(f"initializing {p.name!r} with {init!r} failed: {exc}") from exc
    except Exception as exc:
        raise InitializerError(f"initializer {init!r} raised for {p.name!r} (shape {shape}): {exc!r}") from exc
    if value.shape != shape:
        raise InitializerError(
            f"initializer {init!r} returned shape {value.shape} for {p.name!r}, whose canonical shape is "
            f"{shape}; return an array of exactly the shape it is given. {p.name!r} keeps its old value."
        )
    if value.dtype.kind not in "biuf" and value.dtype != p.dtype:
        raise InitializerError(
            f"initializer {init!r} returned {value.dtype} values for {p.name!r} ({p.dtype}); return real "
            f"numbers. {p.name!r} keeps its old value."
        )
    if not allow_nonfinite and value.dtype.kind == "f" and not np.isfinite(value).all():
        raise InitializerError(
            f"initializer {init!r} returned non-finite values (nan or inf) for {p.name!r}; fix it, or pass "
            f"allow_nonfinite=True. {p.name!r} keeps its old value."
        )
    try:
        return p.prepare(value, cast=value.dtype.kind == "f" and p.dtype.kind not in "biuc")
    except UnifyParamsError as exc:
        raise InitializerError(
            f"initializer output does not fit {p.name!r}: {exc}. {p.name!r} keeps its old value."
        ) from exc


# --- the entry point -----------------------------------------------------------------------------


def initialize(
    target: Any,
    init: Any = None,
    *,
    select: Any = None,
    seed: int | None = None,
    force: bool = True,
    allow_nonfinite: bool = False,
    atomic: bool = True,
) -> Initialized:
    """Initialize ``target`` (a model, any sub-block, a ParamSet or a Param); the names initialized.

    For a model or block without ``select``, initialization is role-aware: weights get ``init``
    (default ``Uniform(-0.07, 0.07)``, MXNet's), biases and shifts zeros, normalization scales
    ones, running means zeros and running variances ones. With ``select`` (a glob, a list of
    names, a ParamSet or a Param), or when ``target`` is itself a ParamSet or a Param, ``init``
    goes to exactly those parameters. ``force=False`` skips parameters unifyparams initialized
    (or recorded an initializer for) before.

    ``seed`` fixes the values: each parameter's stream comes from ``(seed, stream key)``, so
    the same seed gives bit-identical canonical values in every backend, and initializing a
    subset (``select=``, a ParamSet, a Param) gives each parameter the value the whole model
    would get. The stream key is the canonical name with every numeric position renumbered among
    the siblings that own parameters (:mod:`unifyparams.init.keys`): layers without parameters
    (activations, pooling, dropout, flatten) do not count, so ``Sequential(Linear, ReLU, Linear)``
    gets the values of a model whose first layer takes the activation as an argument. Names are
    relative to ``target``: a sub-block's ``"weight"`` is another stream than the model's
    ``"2.weight"``. Without ``seed`` a fresh one comes from the generator :func:`seed` sets.

    Parameters whose shape is not known yet are recorded, returned (also in ``.pending``) and
    filled when their shape becomes known, with the values an eager model gets.

    Errors leave every parameter unchanged: what can be checked without values (names, shapes,
    fans, dtypes) is checked for all parameters first; a custom initializer's output is checked
    (shape, real dtype, finite values unless ``allow_nonfinite``) for every parameter before any
    write. Raises :class:`InitializerError` naming the parameter, or
    :class:`ParameterNotFoundError` (with the closest names) for a ``select`` matching nothing.

    The values are written through :func:`unifyparams.transaction.write_all`: whether every
    parameter can be written is checked first, and with ``atomic=True`` (the default) each
    parameter is copied just before it is overwritten (up to one model's worth of memory, held
    until the call ends) so that a write the framework refuses part way restores every parameter
    and raises :class:`~unifyparams.errors.WriteError`. ``atomic=False`` holds no copy and
    generates straight into the parameters' memory where the framework allows it (no extra
    memory), but is **not atomic**: such a refusal leaves the parameters written before it
    initialized (the error names them).
    """
    chosen, explicit = _targets(target, select)
    if init is None and explicit:
        raise InitializerError(
            "initializing chosen parameters (select=, or a ParamSet or Param as target) needs an "
            "initializer. Received: init=None"
        )
    initializer = get(init) if init is not None else DEFAULT_WEIGHT_INIT
    seed_value = _draw_seed() if seed is None else _check_seed(seed)

    plan: list[tuple[Param, Initializer]] = []
    for p in chosen.values():
        if not force and _was_initialized(p):
            continue
        use = initializer if explicit else _role_init(p, initializer)
        if use is not None:
            plan.append((p, use))
    _check_all(plan)

    seen: set[Any] = set()
    done: list[str] = []
    ready: list[tuple[Param, Initializer]] = []
    waiting: list[tuple[Param, Initializer]] = []
    for p, use in plan:
        key = p.storage_key
        if key in seen:  # tied: one storage, initialized once (under its first name)
            done.append(p.name)
            continue
        seen.add(key)
        (ready if p.materialized else waiting).append((p, use))

    # A custom initializer's output is generated and checked for every parameter before the first
    # write. Catalog initializers cannot produce a wrong value once _check_all has passed: they are
    # streamed one parameter at a time afterwards, so their scratch memory is one parameter at most.
    keys = _stream_keys(target, chosen)
    custom = {
        id(p): _values(p, use, seed_value, p.name, allow_nonfinite, keys[p.name]) for p, use in ready if not use.builtin
    }
    scratch = _Scratch()
    write_all(
        [
            (p, _builtin_value(p, use, seed_value, scratch, not atomic, keys[p.name]) if use.builtin else custom[id(p)])
            for p, use in ready
        ],
        atomic=atomic,
        what="initialize",
    )
    for p, _ in ready:
        _mark(p)
    done += [p.name for p, _ in ready]

    for p, use in waiting:
        _record(p, use, seed_value, allow_nonfinite, keys[p.name])
    if waiting:
        _watch(target, [p for p, _ in waiting])
    order = {n: i for i, n in enumerate(chosen)}
    names = sorted(done + [p.name for p, _ in waiting], key=lambda n: order.get(n, len(order)))
    return Initialized(names, pending=[p.name for p, _ in waiting])


def _watch(target: Any, waiting: list[Param]) -> None:
    """Ask the framework to call us when shapes become known on its own (the first forward pass):
    on the whole model, or, for a ParamSet or Param target, on each block owning a waiting one."""
    adapter = waiting[0].adapter
    if isinstance(target, (ParamSet, Param)):
        blocks = list({id(p.slot.block): p.slot.block for p in waiting if p.slot.block is not None}.values())
    else:
        blocks = [target]
    for block in blocks:

        def fill_waiting(block: Any = block) -> None:
            after_write(lambda: apply_pending(params(block)))  # not in the middle of a write

        adapter.on_materialized(block, fill_waiting)


def apply_pending(ps: ParamSet) -> list[str]:
    """Fill every parameter of ``ps`` that has a recorded initializer and now has its shape; the
    values are exactly those an eager model of the same shapes gets. The lazy-shapes machinery
    calls this after shapes become known; the names filled are returned. All or nothing: if the
    framework refuses a write, every parameter is restored and the initializers keep waiting."""
    ready: list[tuple[Param, tuple[Any, str], _Waiting]] = []
    for p in ps.values():
        key = _block_key(p)
        entry = _waiting.get(key)
        if entry is None or not p.materialized:
            continue
        if entry.owner() is not p.slot.block:
            _waiting.pop(key, None)  # a different block reused the same id: stale
            continue
        if any(key == k for _, k, _ in ready):
            continue  # one block reached under two names: filled once
        ready.append((p, key, entry))
    now: dict[str, str] = {}  # stream keys among the names the model has now (filled on first use)
    values = [
        (p, _values(p, e.initializer, e.seed, e.name, e.allow_nonfinite, _applied_stream(ps, p, e, now)))
        for p, _, e in ready
    ]
    write_all(values, what="initialize (waiting initializers)")
    for p, key, _ in ready:
        _waiting.pop(key, None)
        _mark(p)
    return [p.name for p, _, _ in ready]


def _forget_filled(p: Param) -> None:
    """A write gave values to a parameter that waited for its shape: the value written wins over an
    initializer waiting for it."""
    entry = _waiting.get(_block_key(p))
    if entry is not None and entry.owner() is p.slot.block:
        del _waiting[_block_key(p)]


def waiting_initializer(p: Param) -> Initializer | None:
    """The initializer recorded for ``p``, if it is waiting for its shape."""
    entry = _entry(p)
    return entry.initializer if entry is not None else None


register_pending_applier(apply_pending)
register_waiting_lookup(waiting_initializer)
register_filled_hook(_forget_filled)

__all__ = ["DEFAULT_WEIGHT_INIT", "Initialized", "apply_pending", "initialize", "seed", "waiting_initializer"]
