"""What waits for shapes: initializers and ties recorded on a lazy model, applied in one order.

``up.initialize`` and ``up.tie`` on parameters whose shapes are not known yet record what to do
here; it is done as soon as the shapes are known, by :func:`unifyparams.materialize` or by the
framework's own first forward pass (the adapter's :meth:`~unifyparams.adapter.Adapter.on_materialized`
hook), never in the middle of a write (:func:`unifyparams.transaction.after_write`). :func:`settle`
does it in one explicit order: **initializers first, then ties** (a tied parameter then shares its
source's storage and values).

Everything recorded lives exactly as long as the objects it is about (:mod:`unifyparams.lifetime`):

- an initializer for a named parameter, on its owning block under its leaf name (the one thing that
  stays the same across materialization in every framework);
- an initializer for parameters not even named yet (a Keras layer whose variables cannot be
  foreseen before ``build``), on the model or block initialized, as a :class:`PendingRule`;
- ties, on the model they were made on, by name;
- which parameters unifyparams initialized (``force=False``), on the native parameter.

A value written to a parameter (``load``, ``set``, ``port``) wins over a pending initializer for
it (:func:`unifyparams.transaction.filled_since`).

>>> net = torch.nn.Sequential(torch.nn.LazyLinear(4))         # doctest: +SKIP
>>> up.initialize(net, up.init.Ones()).pending                # doctest: +SKIP
['0.weight']
>>> initializer_for(up.params(net)["0.weight"]).initializer   # doctest: +SKIP
Ones()
>>> net(torch.zeros(1, 3)); initializer_for(up.params(net)["0.weight"])   # doctest: +SKIP
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .access import params
from .errors import InitializerError, describe_names
from .init import Initializer
from .init.draw import checked_value, input_orders, order_independent, role_initializer
from .init.keys import relative_key, stream_keys
from .lifetime import ObjectMap
from .param import Param
from .paramset import ParamSet
from .tieplan import TiePlan, tie_pairs
from .transaction import after_write, filled_since, owner_and_leaf, write_all, write_number


@dataclass
class PendingInit:
    """An initializer recorded for a named parameter whose shape is not known yet."""

    initializer: Initializer
    seed: int
    name: str  # its canonical name when recorded, relative to what was initialized
    allow_nonfinite: bool
    stream: str  # its stream key when recorded (recomputed when applied: see _stream)
    recorded_after: int = field(default_factory=write_number)  # a later write's value wins


@dataclass
class PendingRule:
    """An initializer for the parameters of a model or block that are not named yet (an unbuilt
    Keras layer of a kind whose variables cannot be foreseen): applied to every parameter that
    appears under it, role-aware unless ``explicit``, to those matching ``select`` if given."""

    initializer: Initializer
    seed: int
    explicit: bool
    select: str | None
    allow_nonfinite: bool
    known: set[str]  # names that existed when recorded (or were filled since): never touched
    force: bool = True


@dataclass
class _Recorded:
    """What is pending on one model or block: ties by name, and rules for parameters not named yet."""

    ties: list[tuple[str, str]] = field(default_factory=list)
    rules: list[PendingRule] = field(default_factory=list)


_initializers: ObjectMap[dict[str, PendingInit]] = ObjectMap()  # owning block -> {leaf: initializer}
_recorded: ObjectMap[_Recorded] = ObjectMap()  # model or block -> its ties and rules
_initialized: ObjectMap[bool] = ObjectMap()  # native parameters unifyparams initialized


# --- recording -----------------------------------------------------------------------------------
def record_initializer(p: Param, entry: PendingInit) -> None:
    """Remember ``entry`` for ``p`` until its shape is known (replacing one recorded before)."""
    owner, leaf = owner_and_leaf(p)
    _initializers.setdefault(owner, dict)[leaf] = entry


def initializer_for(p: Param) -> PendingInit | None:
    """The initializer pending for ``p``, or None (none recorded, applied, or a write won)."""
    owner, leaf = owner_and_leaf(p)
    entries = _initializers.get(owner)
    entry = entries.get(leaf) if entries else None
    if entry is not None and filled_since(p, entry.recorded_after):
        del entries[leaf]  # type: ignore[union-attr]
        return None
    return entry


def _forget_initializer(p: Param) -> None:
    owner, leaf = owner_and_leaf(p)
    entries = _initializers.get(owner)
    if entries is not None:
        entries.pop(leaf, None)


def record_rule(root: Any, rule: PendingRule) -> None:
    """Remember ``rule`` for the parameters ``root`` will name when it is built."""
    _recorded.setdefault(root, _Recorded).rules.append(rule)


def record_ties(model: Any, names: Iterable[tuple[str, str]]) -> None:
    """Remember ``(source, target)`` ties to make on ``model`` once both sides have their shapes."""
    ties = _recorded.setdefault(model, _Recorded).ties
    ties.extend(n for n in names if n not in ties)


def pending_ties(model: Any) -> list[tuple[str, str]]:
    """Ties recorded on ``model`` that wait for its shapes.

    >>> pending_ties(net)  # a model with nothing waiting
    []
    """
    state = _recorded.get(model)
    return list(state.ties) if state else []


def mark_initialized(p: Param) -> None:
    """Remember that unifyparams gave ``p`` its values (read by ``force=False``); an initializer
    pending for it is superseded."""
    _initialized.setdefault(p.native, lambda: True)
    _forget_initializer(p)


def was_initialized(p: Param) -> bool:
    """True when unifyparams initialized ``p``, or an initializer is pending for it."""
    return bool(_initialized.get(p.native)) or initializer_for(p) is not None


def watch(root: Any, adapter: Any) -> bool:
    """Ask the framework to :func:`settle` ``root`` when it infers shapes on its own (the first
    forward pass); False when the framework offers no such hook (then only materialize does)."""

    def on_shapes() -> None:
        after_write(lambda: settle(root))  # not in the middle of a write

    return bool(adapter.on_materialized(root, on_shapes))


# --- applying, in one order ----------------------------------------------------------------------
def settle(model: Any, *, final: bool = False) -> list[str]:
    """Do what waits on ``model`` now that shapes are known: **initializers first, then ties**.

    The initializers (recorded for named parameters, and rules for parameters named only once
    built) fill every parameter that has its shape now, with exactly the values an eager model of
    the same shapes gets, in one all-or-nothing write; then the recorded ties whose two sides have
    their shapes are made. Returns the names initialized.

    A dense weight whose input order cannot be established yet (the framework may still be
    building the model's graph) stays pending; with ``final`` (:func:`unifyparams.materialize`,
    once the model is built) that is an :class:`InitializerError` naming the way out.

    >>> settle(net)  # nothing waiting: nothing to apply
    []
    """
    ps = params(model)
    done = _fill(model, ps, final)
    _make_ties(model)
    return done


def _fill(model: Any, ps: ParamSet, final: bool) -> list[str]:
    """Write every pending initializer whose parameter has its shape now, in one write."""
    plan = _named(ps) + _unnamed(model, ps)
    if not plan:
        return []
    now = stream_keys(ps)
    orders, problems = input_orders(ps, model, [p.name for p, *_ in plan])
    values, refused = [], []
    for p, init, seed, name, allow_nonfinite, stream in plan:
        key = relative_key(now[p.name], p.name, name) or stream
        value = checked_value(p, init, seed, name, allow_nonfinite, key, orders.get(p.name))
        if p.name in problems and not order_independent(checked_value(p, init, seed, name, True, key)):
            refused.append(p)  # mid-build it stays pending: the dataflow may be known once built
            continue
        values.append((p, value))
    write_all(values, what="initialize (pending initializers)")
    for p, _ in values:
        mark_initialized(p)
    if final and refused:
        for p in refused:
            _forget_initializer(p)
        raise InitializerError(
            f"cannot apply the pending initializer of {describe_names([p.name for p in refused])}: "
            + "; ".join(problems[p.name] for p in refused)
            + ". The other pending initializers were applied; these keep the framework's initial values: "
            "initialize them again with dense_inputs= (see up.initialize)."
        )
    return [p.name for p, _ in values]


_Planned = tuple[Param, Initializer, int, str, bool, str]


def _named(ps: ParamSet) -> list[_Planned]:
    """The recorded initializers whose parameter has its shape now (one block reached under two
    names is filled once)."""
    plan: list[_Planned] = []
    seen: set[tuple[int, str]] = set()
    for p in ps.values():
        entry = initializer_for(p) if p.materialized else None
        if entry is None:
            continue
        owner, leaf = owner_and_leaf(p)
        if (id(owner), leaf) in seen:  # within this one pass, while both are alive
            continue
        seen.add((id(owner), leaf))
        plan.append((p, entry.initializer, entry.seed, entry.name, entry.allow_nonfinite, entry.stream))
    return plan


def _unnamed(model: Any, ps: ParamSet) -> list[_Planned]:
    """Parameters that appeared under ``model`` since rules were recorded on it, with the rule that
    applies (the latest one with ``force=True``, else the first); rules end once all is built."""
    state = _recorded.get(model)
    if state is None or not state.rules:
        return []
    plan: list[_Planned] = []
    taken: set[Any] = set()
    for name, p in ps.items():
        rule = _rule_for(state.rules, name)
        if rule is None or not p.materialized or p.storage_key in taken:
            continue
        use = rule.initializer if rule.explicit else role_initializer(p, rule.initializer)
        for r in state.rules:
            r.known.add(name)
        if use is None:
            continue
        taken.add(p.storage_key)
        plan.append((p, use, rule.seed, name, rule.allow_nonfinite, name))
    if not _unbuilt(model, ps):
        state.rules.clear()
    return plan


def _rule_for(rules: list[PendingRule], name: str) -> PendingRule | None:
    chosen = None
    for rule in rules:
        if name in rule.known or (rule.select is not None and not fnmatch.fnmatchcase(name, rule.select)):
            continue
        if chosen is None or rule.force:
            chosen = rule
    return chosen


def _unbuilt(model: Any, ps: ParamSet) -> bool:
    """True while part of ``model`` has not created (or not shaped) its parameters."""
    first = next(iter(ps.values()), None)
    unbuilt = first is not None and first.adapter.has_unbuilt(model)
    return unbuilt or any(not p.materialized for p in ps.values())


def _make_ties(model: Any) -> list[tuple[str, str]]:
    """Make the recorded ties whose two sides now have their shapes; the ties made."""
    state = _recorded.get(model)
    if state is None or not state.ties:
        return []
    ps = params(model)
    done: list[tuple[str, str]] = []
    for source, target in list(state.ties):
        if source in ps and target in ps and ps[source].materialized and ps[target].materialized:
            state.ties.remove((source, target))
            done += TiePlan.checked(model, tie_pairs(model, source, target)).apply()
    return done


__all__ = [
    "PendingInit", "PendingRule", "initializer_for", "mark_initialized", "pending_ties", "record_initializer",
    "record_rule", "record_ties", "settle", "was_initialized", "watch",
]
