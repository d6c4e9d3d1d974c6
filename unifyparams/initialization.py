"""``up.initialize``: role-aware, seeded initialization of any model, block, ParamSet or Param.

>>> up.initialize(net, up.init.XavierUniform(), seed=0)        # weights Xavier, biases 0, norms 1/0  # doctest: +SKIP
>>> up.initialize(net[2], up.init.Constant(42))                # per block: composes                    # doctest: +SKIP
>>> up.initialize(net, up.init.Normal(0, 0.01), select="*.weight")                                     # doctest: +SKIP

Values are drawn in NumPy from ``(seed, stream key)`` on the canonical shape and written
through the adapter (:mod:`unifyparams.init.draw`), so the same seed gives bit-identical
canonical values in every framework, and the same function: a dense weight that reads a
flattened channels-last map gets the canonical values in the model's own input order. The
stream key is the canonical name with positions renumbered among the layers that own parameters
(:mod:`unifyparams.init.keys`), so ``Sequential(Linear, ReLU, Linear)`` and a model with the
activation as an argument of the first layer get the same values. Parameters whose shape is not
known yet, and layers that have not even named theirs (a Keras ``Embedding`` or ``LSTM`` before
``build``), get their initializer recorded (:mod:`unifyparams.pending_work`) and applied as soon as the
shapes become known (by :func:`unifyparams.materialize` or the user's own first forward pass).
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from . import pending_work
from .access import params
from .dataflow import DenseInput
from .errors import InitializerError
from .init import Initializer, Uniform, get
from .init.draw import (
    Scratch,
    builtin_value,
    checked_value,
    input_orders,
    order_independent,
    role_initializer,
)
from .init.keys import stream_keys
from .param import Param
from .paramset import ParamSet
from .progress import Progress, ProgressArg, resolve
from .registry import adapter_for
from .transaction import write_all

#: MXNet's default for weights when no initializer is given (role-aware init is MXNet's idea).
DEFAULT_WEIGHT_INIT: Initializer = Uniform(-0.07, 0.07)

_global_rng = np.random.default_rng()

_Plan = list[tuple[Param, Initializer]]


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
    when the shape becomes known. ``pending_unnamed`` is True when part of the target has not even
    named its parameters yet (an unbuilt Keras ``Embedding`` or ``LSTM``): the initializer is
    recorded for those too and applied when they are built, exactly as for an eager model.

    >>> Initialized(["0.weight", "0.bias"], pending=["0.weight"]).pending
    ['0.weight']
    """

    pending: list[str]
    pending_unnamed: bool

    def __init__(self, names: Iterable[str] = (), *, pending: Iterable[str] = (), pending_unnamed: bool = False):
        super().__init__(names)
        self.pending = list(pending)
        self.pending_unnamed = pending_unnamed


# --- choosing parameters and initializers ------------------------------------------------------
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


def _scope(target: Any, chosen: ParamSet) -> tuple[Any, ParamSet]:
    """The model the chosen parameters were read from, and all of its parameters: stream keys and
    dense input orders are those of the whole model, so a selection gets the whole model's values.
    Chosen names not relative to that model (a renamed set) make ``chosen`` its own scope."""
    model = target.model if isinstance(target, (ParamSet, Param)) else target
    scope = params(model) if model is not None else chosen
    if any(name not in scope for name in chosen):
        scope = chosen
    return model, scope


def _plan(chosen: ParamSet, explicit: bool, initializer: Initializer, force: bool) -> _Plan:
    """``(param, initializer)`` for every parameter to initialize; every check that needs no
    values (names, shapes, fans, dtypes) runs here, for all of them, before anything changes."""
    plan: _Plan = []
    for p in chosen.values():
        if not force and pending_work.was_initialized(p):
            continue
        use = initializer if explicit else role_initializer(p, initializer)
        if use is not None:
            plan.append((p, use))
    for p, use in plan:
        try:
            use.check(p.shape, p.dtype, p.name)
        except InitializerError:
            raise
        except Exception as exc:
            raise InitializerError(f"{use!r} cannot initialize {p.name!r}: {exc}") from exc
    return plan


def _split(plan: _Plan) -> tuple[list[str], _Plan, _Plan]:
    """``(tied names, ready, later)``: a storage reached under several names is initialized once
    (under its first name); ready parameters have their shape, the others are pending."""
    seen: set[Any] = set()
    tied: list[str] = []
    ready: _Plan = []
    later: _Plan = []
    for p, use in plan:
        if p.storage_key in seen:
            tied.append(p.name)
            continue
        seen.add(p.storage_key)
        (ready if p.materialized else later).append((p, use))
    return tied, ready, later


# --- writing what is ready, recording what is not ----------------------------------------------
def _orders(
    model: Any, scope: ParamSet, ready: _Plan, seed_value: int, keys: Mapping[str, str],
    example_input: Any, dense_inputs: Mapping[str, DenseInput] | None,
) -> dict[str, DenseInput]:
    """The dense input orders of the ready weights; refuses, before any write, a weight whose
    order is not established when its values depend on it (a constant never does)."""
    orders, problems = input_orders(scope, model, [p.name for p, _ in ready], example_input, dense_inputs)
    for p, use in ready:
        if p.name in problems and not order_independent(checked_value(p, use, seed_value, p.name, True, keys[p.name])):
            raise InitializerError(
                f"cannot initialize {p.name!r} so that the same seed gives the same model in every framework: "
                f"{problems[p.name]} (here: up.initialize(..., example_input=... or dense_inputs=...)). "
                f"Nothing was changed."
            )
    return orders


def _write(
    ready: _Plan, seed_value: int, keys: Mapping[str, str], orders: Mapping[str, DenseInput],
    allow_nonfinite: bool, atomic: bool, progress: Progress | None = None,
) -> None:
    """Write the ready parameters in one all-or-nothing write (see :func:`initialize`).

    A custom initializer's output is generated and checked for every parameter before the first
    write; catalog initializers cannot produce a wrong value once checked, so they are streamed
    one parameter at a time (their scratch memory is one parameter at most)."""
    custom = {
        id(p): checked_value(p, use, seed_value, p.name, allow_nonfinite, keys[p.name], orders.get(p.name))
        for p, use in ready
        if not use.builtin
    }
    scratch = Scratch()
    # straight into the parameters' memory where adapters offer it: an atomic write has taken its
    # snapshot of a parameter before its values are computed, and puts it back if anything fails
    values = [
        (p, builtin_value(p, use, seed_value, scratch, True, keys[p.name], orders.get(p.name))
         if use.builtin else custom[id(p)])
        for p, use in ready
    ]
    write_all(values, atomic=atomic, what="initialize", progress=progress)
    for p, _ in ready:
        pending_work.mark_initialized(p)


def _record(target: Any, later: _Plan, seed_value: int, keys: Mapping[str, str], allow_nonfinite: bool) -> None:
    """Record the initializers of parameters whose shape is not known, and ask the framework to
    apply them when it infers the shapes: on the model the parameters belong to."""
    for p, use in later:
        pending_work.record_initializer(p, pending_work.PendingInit(use, seed_value, p.name, allow_nonfinite, keys[p.name]))
    if not later:
        return
    adapter = later[0][0].adapter
    model = target.model if isinstance(target, (ParamSet, Param)) else target
    if model is not None:
        pending_work.watch(model, adapter)
        return
    for block in {id(p.slot.block): p.slot.block for p, _ in later if p.slot.block is not None}.values():
        pending_work.watch(block, adapter)


def _record_unnamed(
    target: Any, select: Any, explicit: bool, init: Initializer, seed_value: int, allow_nonfinite: bool, force: bool
) -> bool:
    """For a model or block with layers that have not named their parameters yet (unbuilt Keras
    layers whose variables cannot be foreseen), record the initializer for the parameters they
    will create, so they are never silently left with the framework's defaults. True if recorded."""
    if isinstance(target, (ParamSet, Param)) or not (select is None or isinstance(select, str)):
        return False  # exactly the parameters chosen: nothing more can appear
    adapter = adapter_for(target)
    if not adapter.has_unbuilt(target):
        return False
    rule = pending_work.PendingRule(init, seed_value, explicit, select, allow_nonfinite, set(params(target)), force)
    pending_work.record_rule(target, rule)
    pending_work.watch(target, adapter)
    return True


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
    example_input: Any = None,
    dense_inputs: Mapping[str, DenseInput] | None = None,
    progress: ProgressArg = None,
) -> Initialized:
    """Initialize ``target`` (a model, any sub-block, a ParamSet or a Param); the names initialized.

    For a model or block without ``select``, initialization is role-aware: weights get ``init``
    (default ``Uniform(-0.07, 0.07)``, MXNet's), biases and shifts zeros, normalization scales
    ones, running means zeros and running variances ones. With ``select`` (a glob, a list of
    names, a ParamSet or a Param), or a ParamSet or Param as ``target``, ``init`` goes to exactly
    those parameters. ``force=False`` skips parameters unifyparams initialized (or recorded an
    initializer for) before.

    ``seed`` fixes the values: each parameter's stream comes from ``(seed, stream key)``
    (:mod:`unifyparams.init.keys`), so the same seed gives the same model in every backend, and
    a subset gets the values the whole model would get; without ``seed`` a fresh one comes from
    :func:`seed`'s generator. A dense weight that reads a flattened channels-last map (a Keras
    CNN) gets the canonical values in the model's own order; where that order cannot be
    established (a subclassed Keras CNN) it is refused unless stated with ``dense_inputs`` or
    traced from ``example_input``, as :func:`unifyparams.save` does. Parameters whose shape is not
    known yet (``.pending``), and those of layers that have not named them yet
    (``.pending_unnamed``), are filled when the shapes become known, as an eager model would be.

    Errors leave every parameter unchanged: everything that can be checked without values is
    checked for all parameters first, a custom initializer's output (shape, real dtype, finite
    unless ``allow_nonfinite``) before any write. Raises :class:`InitializerError` naming the
    parameter, or :class:`ParameterNotFoundError` for a ``select`` matching nothing. With
    ``atomic=True`` (the default) a write the framework refuses part way restores every parameter
    (:func:`unifyparams.transaction.write_all`); ``atomic=False`` holds no copy and generates
    straight into the parameters' memory where it can, but is **not atomic**.

    ``progress``: ``True`` a progress bar, ``False`` nothing, a ``callback(done, total)`` (bytes,
    once per parameter written and at the end); ``None`` (the default) a bar only on a terminal,
    outside CI, for work still running after half a second (:mod:`unifyparams.progress`).

    >>> net = torch.nn.Sequential(torch.nn.Linear(3, 4))              # doctest: +SKIP
    >>> up.initialize(net, up.init.XavierUniform(), seed=0)           # doctest: +SKIP
    ['0.weight', '0.bias']
    """
    chosen, explicit = _targets(target, select)
    initializer = _initializer(init, explicit)
    seed_value = _draw_seed() if seed is None else _check_seed(seed)
    tied, ready, later = _split(_plan(chosen, explicit, initializer, force))
    model, scope = _scope(target, chosen)
    keys = stream_keys(scope)
    orders = _orders(model, scope, ready, seed_value, keys, example_input, dense_inputs)
    with resolve(progress, "initializing") as bar:
        _write(ready, seed_value, keys, orders, allow_nonfinite, atomic, bar)
    _record(target, later, seed_value, keys, allow_nonfinite)
    unnamed = _record_unnamed(target, select, explicit, initializer, seed_value, allow_nonfinite, force)
    return _initialized(chosen, tied, ready, later, unnamed)


def _initialized(chosen: ParamSet, tied: list[str], ready: _Plan, later: _Plan, unnamed: bool) -> Initialized:
    """:func:`initialize`'s answer: the names initialized (now or pending), in the model's order."""
    order = {n: i for i, n in enumerate(chosen)}
    names = sorted(tied + [p.name for p, _ in ready + later], key=lambda n: order.get(n, len(order)))
    return Initialized(names, pending=[p.name for p, _ in later], pending_unnamed=unnamed)


def _initializer(init: Any, explicit: bool) -> Initializer:
    """``init`` resolved (names, classes, callables); the default only for role-aware init."""
    if init is None and explicit:
        raise InitializerError(
            "initializing chosen parameters (select=, or a ParamSet or Param as target) needs an "
            "initializer. Received: init=None"
        )
    return get(init) if init is not None else DEFAULT_WEIGHT_INIT


# --- names kept from the module's former name (unifyparams.initialize) ---------------------------
def apply_pending(ps: ParamSet) -> list[str]:
    """Deprecated: use :func:`unifyparams.pending_work.settle` on the model (initializers, then ties)."""
    warnings.warn("apply_pending is deprecated; use unifyparams.pending_work.settle(model)", DeprecationWarning, stacklevel=2)
    return pending_work.settle(ps.model) if ps.model is not None else []


def waiting_initializer(p: Param) -> Initializer | None:
    """Deprecated: use :func:`unifyparams.pending_work.initializer_for` (``.initializer``)."""
    warnings.warn("waiting_initializer is deprecated; use unifyparams.pending_work.initializer_for", DeprecationWarning,
                  stacklevel=2)
    entry = pending_work.initializer_for(p)
    return entry.initializer if entry is not None else None


__all__ = ["DEFAULT_WEIGHT_INIT", "Initialized", "apply_pending", "initialize", "seed", "waiting_initializer"]
