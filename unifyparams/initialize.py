"""``up.initialize``: role-aware, seeded initialization of any model, block, ParamSet or Param.

>>> up.initialize(net, up.init.XavierUniform(), seed=0)        # weights Xavier, biases 0, norms 1/0  # doctest: +SKIP
>>> up.initialize(net[2], up.init.Constant(42))                # per block: composes                    # doctest: +SKIP
>>> up.initialize(net, up.init.Normal(0, 0.01), select="*.weight")                                     # doctest: +SKIP

Values are drawn in NumPy from ``(seed, canonical name)`` on the canonical shape and written
through the adapter, so the same seed gives bit-identical canonical values in every framework.
Parameters whose shape is not known yet get their initializer recorded and applied as soon as
the shape becomes known (by :func:`unifyparams.materialize` or the user's own first forward pass).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np

from .access import params
from .adapter import Role
from .errors import InitializerError, UnifyParamsError
from .init import Initializer, Ones, ParamInfo, Uniform, Zeros, get
from .layouts import IDENTITY
from .lazy import register_pending_applier, register_waiting_lookup
from .param import Param
from .paramset import ParamSet

#: MXNet's default for weights when no initializer is given (role-aware init is MXNet's idea).
DEFAULT_WEIGHT_INIT: Initializer = Uniform(-0.07, 0.07)

_global_rng = np.random.default_rng()


def seed(value: int) -> None:
    """Seed the process-wide generator used when :func:`initialize` gets no ``seed``."""
    global _global_rng
    _global_rng = np.random.default_rng(value)


def _draw_seed() -> int:
    return int(_global_rng.integers(0, 2**63 - 1))


@dataclass
class _Waiting:
    """An initializer recorded for a parameter whose shape is not known yet."""

    initializer: Initializer
    seed: int
    name: str  # the canonical name it had when recorded: the stream key
    allow_nonfinite: bool
    owner: Any  # weak reference to the owning block, to drop stale entries


_waiting: dict[tuple[int, str], _Waiting] = {}
_initialized: dict[int, Any] = {}  # id(native) -> weakref (or the object) of parameters we initialized


def _block_key(p: Param) -> tuple[int, str]:
    """Stable across materialization in every framework: (owning block, leaf) — a Keras variable
    does not exist before build, a PyTorch lazy tensor changes class, but the block stays."""
    return id(p.slot.block), p.name.rsplit(".", 1)[-1]


def _ref(obj: Any) -> Any:
    try:
        return weakref.ref(obj)
    except TypeError:
        return lambda: obj


def _role_init(p: Param, init: Initializer) -> Initializer | None:
    role = p.role
    if role in (Role.BIAS, Role.SHIFT, Role.RUNNING_MEAN):
        return Zeros()
    if role in (Role.SCALE, Role.RUNNING_VAR):
        return Ones()
    if role == Role.WEIGHT:
        return init
    return None  # Role.OTHER: left alone without select


class _Scratch:
    """One reusable buffer per dtype for generated values: fresh pages for every parameter cost
    more than generating them, and peak memory stays one parameter's worth."""

    def __init__(self) -> None:
        self._buffers: dict[np.dtype, np.ndarray] = {}

    def get(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        size = int(np.prod(shape))
        buf = self._buffers.get(dtype)
        if buf is None or buf.size < size:
            buf = self._buffers[dtype] = np.empty(size, dtype=dtype)
        return buf[:size].reshape(shape)


def _fill_builtin(p: Param, init: Initializer, seed_value: int, name: str, scratch: _Scratch) -> None:
    """A catalog initializer: straight into the parameter's memory when the adapter offers it,
    else into the scratch buffer and written through the adapter. Its output needs no checks."""
    shape = tuple(int(d) for d in p.shape if d is not None)
    info = ParamInfo(name, p.role, shape, p.dtype, p.backend)
    view = p.adapter.writable_view(p.native) if p.layout is IDENTITY else None
    if view is not None:
        result = init.fill(shape, info, seed_value, out=view)
        if result is not view:
            view[...] = result
        p.adapter.after_direct_write(p.native)
        return
    out = scratch.get(shape, p.dtype) if p.dtype in (np.float32, np.float64) else None
    value = init.fill(shape, info, seed_value, out=out)
    p.write_native(p.prepare(value, cast=True))


def _values(p: Param, init: Initializer, seed_value: int, name: str, allow_nonfinite: bool) -> np.ndarray:
    """Generate and validate values for ``p``; return them in native layout (nothing written)."""
    shape = tuple(int(d) for d in p.shape if d is not None)
    info = ParamInfo(name, p.role, shape, p.dtype, p.backend)
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
    if value.dtype.kind not in "biuf":
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
        return p.prepare(value, cast=value.dtype.kind == "f" and p.dtype.kind == "f")
    except UnifyParamsError as exc:
        raise InitializerError(f"initializer output does not fit {p.name!r}: {exc}") from exc


def _targets(target: Any, select: Any) -> ParamSet:
    ps = params(target)
    if select is None:
        return ps
    if isinstance(select, str):
        return ps.select(select)
    if isinstance(select, ParamSet):
        return select
    raise InitializerError(f"select must be a glob pattern or a ParamSet; received {type(select).__name__}")


def initialize(
    target: Any,
    init: Any = None,
    *,
    select: Any = None,
    seed: int | None = None,
    force: bool = True,
    allow_nonfinite: bool = False,
) -> list[str]:
    """Initialize ``target`` (a model, any sub-block, a ParamSet or a Param); the names initialized.

    Without ``select`` initialization is role-aware: weights get ``init`` (default
    ``Uniform(-0.07, 0.07)``, MXNet's), biases and shifts zeros, normalization scales ones,
    running means zeros and running variances ones. With ``select`` (a glob or a ParamSet),
    ``init`` goes to exactly the selected parameters. ``force=False`` skips parameters that
    unifyparams has initialized before. Parameters whose shape is not known yet are recorded,
    listed in the result, and filled when the shape is known (see :func:`unifyparams.pending`).
    Each parameter's stream is keyed by its canonical name relative to ``target``.

    A custom initializer's output is checked before anything is written (shape, real dtype, finite
    values): on an error no parameter of this call changes.
    """
    chosen = _targets(target, select)
    initializer = get(init) if init is not None else (DEFAULT_WEIGHT_INIT if select is None else None)
    if initializer is None:
        raise InitializerError("initialize with select= needs an initializer; received init=None")
    seed_value = _draw_seed() if seed is None else int(seed)

    plan: list[tuple[Param, Initializer]] = []
    for p in chosen.values():
        if not force and id(p.native) in _initialized and _initialized[id(p.native)]() is p.native:
            continue
        use = initializer if select is not None else _role_init(p, initializer)
        if use is not None:
            plan.append((p, use))

    # Built-in initializers cannot produce a wrong shape: stream them one parameter at a time (the
    # peak memory is one parameter). A custom one is run for every parameter and checked first.
    trusted = all(init_.builtin for _, init_ in plan)
    seen: set[Any] = set()
    done: list[str] = []
    pending_plan: list[tuple[Param, Initializer]] = []
    ready: list[tuple[Param, Initializer]] = []
    for p, use in plan:
        key = p.storage_key
        if key in seen:  # tied: one storage, initialized once (under its first name)
            done.append(p.name)
            continue
        seen.add(key)
        (ready if p.materialized else pending_plan).append((p, use))

    if trusted:
        scratch = _Scratch()
        for p, use in ready:
            _fill_builtin(p, use, seed_value, p.name, scratch)
            _mark(p)
            done.append(p.name)
    else:
        prepared = [(p, _values(p, use, seed_value, p.name, allow_nonfinite)) for p, use in ready]
        for p, native in prepared:
            p.write_native(native)
            _mark(p)
            done.append(p.name)

    if pending_plan:
        for p, use in pending_plan:
            _waiting[_block_key(p)] = _Waiting(use, seed_value, p.name, allow_nonfinite, _ref(p.slot.block))
            done.append(p.name)
        _watch(target if not isinstance(target, (ParamSet, Param)) else None, pending_plan)
    order = {n: i for i, n in enumerate(chosen)}
    return sorted(done, key=lambda n: order.get(n, len(order)))


def _mark(p: Param) -> None:
    _initialized[id(p.native)] = _ref(p.native)


def _watch(model: Any, pending_plan: list[tuple[Param, Initializer]]) -> None:
    """Ask the framework to tell us when shapes become known on its own (first forward pass)."""
    if model is None:
        return
    adapter = pending_plan[0][0].adapter

    def fill_waiting() -> None:
        apply_pending(params(model))

    adapter.on_materialized(model, fill_waiting)


def apply_pending(ps: ParamSet) -> list[str]:
    """Fill every parameter of ``ps`` that has a recorded initializer and now has its shape;
    the values are exactly those an eager model of the same shapes gets."""
    filled: list[str] = []
    for p in ps.values():
        key = _block_key(p)
        entry = _waiting.get(key)
        if entry is None or not p.materialized:
            continue
        if entry.owner() is not p.slot.block:
            _waiting.pop(key, None)  # a different block reused the same id: stale
            continue
        del _waiting[key]
        p.write_native(_values(p, entry.initializer, entry.seed, entry.name, entry.allow_nonfinite))
        _mark(p)
        filled.append(p.name)
    return filled


def waiting_initializer(p: Param) -> Initializer | None:
    """The initializer recorded for ``p``, if it is waiting for its shape."""
    entry = _waiting.get(_block_key(p))
    return entry.initializer if entry is not None and entry.owner() is p.slot.block else None


register_pending_applier(apply_pending)
register_waiting_lookup(waiting_initializer)

__all__ = ["apply_pending", "initialize", "seed", "waiting_initializer"]
