"""Sharing parameters between layers: :func:`tie`, :func:`untie`, :func:`ties`.

>>> up.tie(net, "2", "4")        # every parameter of block 4 becomes the one of block 2  # doctest: +SKIP
>>> up.ties(net)                                                                          # doctest: +SKIP
[('2.weight', '4.weight'), ('2.bias', '4.bias')]
>>> up.untie(net, "4.weight")    # 4.weight gets its own storage again, same values        # doctest: +SKIP

Every check (names, shapes, dtypes, native layouts) runs before the first change, so a refused
tie changes nothing. Ties made natively (one module used twice, Gluon ``params=``, one Keras
layer called twice) are seen the same way as ties made here.
"""

from __future__ import annotations

import weakref
from typing import Any

from .access import params
from .errors import TieError, closest_names, describe_names
from .param import Param, format_shape
from .paramset import ParamSet
from .transaction import after_write


def _resolve(ps: ParamSet, name: str) -> dict[str, Param]:
    """``{leaf: Param}`` for a parameter name (leaf ``""``) or a block prefix."""
    if name in ps:
        return {"": ps[name]}
    prefix = name + "."
    found = {n[len(prefix) :]: p for n, p in ps.items() if n.startswith(prefix)}
    if not found:
        raise TieError(
            f"{name!r} is neither a parameter nor a block of this model; closest names: "
            f"{describe_names(closest_names(name, ps))}"
        )
    return found


def _check_pair(target: Param, source: Param) -> None:
    problems = []
    if target.shape != source.shape:
        problems.append(f"canonical shapes differ: {format_shape(source.shape)} vs {format_shape(target.shape)}")
    if target.dtype != source.dtype:
        problems.append(f"dtypes differ: {source.dtype} vs {target.dtype}")
    if not problems and (target.native_shape != source.native_shape or target.layout.tag != source.layout.tag):
        problems.append(
            f"the framework stores them in different layouts ({source.layout.tag} {format_shape(source.native_shape)} "
            f"vs {target.layout.tag} {format_shape(target.native_shape)}), so one storage cannot serve both"
        )
    if problems:
        raise TieError(
            f"cannot tie {target.name!r} to {source.name!r}: " + "; ".join(problems) + ". Nothing was changed."
        )


def check_pairs(pairs: list[tuple[Param, Param]]) -> list[str]:
    """Every reason a ``(source, target)`` pair cannot be tied (shapes, dtypes, native layouts, and the
    adapter's own :meth:`~unifyparams.adapter.Adapter.check_tie`: parameter vs buffer, devices...),
    for all pairs at once; nothing is changed."""
    problems = []
    for src, dst in pairs:
        try:
            _check_pair(dst, src)
            reason = src.adapter.check_tie(dst.slot, src.slot)
        except TieError as exc:
            problems.append(str(exc).removesuffix(" Nothing was changed."))
            continue
        if reason:
            problems.append(f"cannot tie {dst.name!r} to {src.name!r}: {reason}.")
    return problems


class TiePlan:
    """Ties checked and ready to make, all or nothing: :meth:`apply` makes them (undoing those it made
    if the framework refuses one), :meth:`undo` takes them back (``up.load`` does, when the values
    written with them are refused)."""

    def __init__(self, model: Any, pairs: list[tuple[Param, Param]]):
        self.model = model
        self.pairs = [(src, dst) for src, dst in pairs if src.storage_key != dst.storage_key]
        self.made: list[tuple[Param, Param]] = []

    @classmethod
    def checked(cls, model: Any, pairs: list[tuple[Param, Param]]) -> TiePlan:
        """The plan for ``pairs`` after checking every one; :class:`TieError` listing every problem."""
        problems = check_pairs(pairs)
        if problems:
            raise TieError(" ".join(problems) + " Nothing was changed.")
        return cls(model, pairs)

    def apply(self) -> list[tuple[str, str]]:
        """Make every tie; ``(source, target)`` names. If the framework refuses one part way, the ties
        already made are undone and a :class:`TieError` says whether that was verified."""
        try:
            for src, dst in self.pairs:
                src.adapter.tie(self.model, dst.slot, src.slot)
                self.made.append((src, dst))
        except Exception as exc:
            src, dst = self.pairs[len(self.made)]
            failed = self.undo()
            what = f"{dst.name!r} to {src.name!r}"
            outcome = (
                "the ties made before it were undone (verified); nothing was changed"
                if not failed
                else f"undoing the ties made before it failed for {describe_names(failed)}, which stay tied"
            )
            raise TieError(f"the framework refused to tie {what}: {exc}; {outcome}.") from exc
        return [(src.name, dst.name) for src, dst in self.made]

    def undo(self) -> list[str]:
        """Give every target tied by :meth:`apply` its own previous parameter object back (values as
        they were); the names that could not be, verified by identity."""
        failed = []
        for _src, dst in reversed(self.made):
            try:
                now = params(self.model)[dst.name]
                dst.adapter.tie(self.model, now.slot, dst.slot)  # the old object takes its place back
                ok = params(self.model)[dst.name].native is dst.native
            except Exception:
                ok = False
            if not ok:
                failed.append(dst.name)
        self.made = []
        return failed


def tie_pairs(model: Any, source: str, target: str) -> list[tuple[Param, Param]]:
    """The ``(source, target)`` parameter pairs that tying block or parameter ``target`` to ``source`` means."""
    ps = params(model)
    sources = _resolve(ps, source)
    targets = _resolve(ps, target)
    if set(sources) != set(targets):
        raise TieError(
            f"cannot tie block {target!r} to block {source!r}: their parameters differ "
            f"({describe_names(sorted(targets))} vs {describe_names(sorted(sources))}). Nothing was changed."
        )
    return [(sources[leaf], targets[leaf]) for leaf in sources]


def tie(model: Any, source: str, target: str) -> list[tuple[str, str]]:
    """Make ``target`` share ``source``'s storage; both may be parameter names or block names.

    Tying blocks ties every parameter of ``target`` to the one with the same leaf name in
    ``source``. Returns the ``(source, target)`` name pairs tied. After the tie, a write through
    any name is seen through all, and gradients from every use accumulate in the one storage.
    All or nothing: every pair is checked before the first change (every problem is listed), and
    if the framework refuses a tie part way the ties already made are undone.
    """
    pairs = tie_pairs(model, source, target)
    if any(not (src.materialized and dst.materialized) for src, dst in pairs):
        return _tie_later(model, pairs)
    return TiePlan.checked(model, pairs).apply()


# --- ties made before the shapes are known -----------------------------------------------------------
#: id(model) -> (weak reference to the model, [(source name, target name)]): ties waiting for shapes.
_waiting_ties: dict[int, tuple[Any, list[tuple[str, str]]]] = {}


def _tie_later(model: Any, pairs: list[tuple[Param, Param]]) -> list[tuple[str, str]]:
    """Record ties whose shapes are not known yet; they are made as soon as both sides have their
    shapes, before the values are used (through the adapter's materialization hook), and by
    :func:`unifyparams.materialize`. Known dimensions must already agree."""
    for src, dst in pairs:
        known = all(a is None or b is None or a == b for a, b in zip(src.shape, dst.shape))
        if len(src.shape) != len(dst.shape) or not known or src.dtype != dst.dtype:
            raise TieError(
                f"cannot tie {dst.name!r} {format_shape(dst.shape)} {dst.dtype} to {src.name!r} "
                f"{format_shape(src.shape)} {src.dtype}: their known dimensions or dtypes differ. Nothing was changed."
            )
    entry = _waiting_ties.get(id(model))
    if entry is None or entry[0]() is not model:
        try:
            ref: Any = weakref.ref(model)
        except TypeError:
            ref = lambda: model  # noqa: E731
        entry = _waiting_ties[id(model)] = (ref, [])
    names = [(src.name, dst.name) for src, dst in pairs]
    entry[1].extend(n for n in names if n not in entry[1])
    adapter = pairs[0][0].adapter

    def tie_when_known() -> None:
        from .lazy import apply_waiting

        after_write(lambda: apply_waiting(model))  # waiting initializers first, then the ties; not mid-write

    adapter.on_materialized(model, tie_when_known)
    return names


def apply_waiting_ties(model: Any) -> list[tuple[str, str]]:
    """Make the recorded ties whose two sides now have their values; the ties made."""
    entry = _waiting_ties.get(id(model))
    if entry is None or entry[0]() is not model:
        return []
    ps = params(model)
    done = []
    for source, target in list(entry[1]):
        if source in ps and target in ps and ps[source].materialized and ps[target].materialized:
            entry[1].remove((source, target))
            done += tie(model, source, target)
    if not entry[1]:
        _waiting_ties.pop(id(model), None)
    return done


def waiting_ties(model: Any) -> list[tuple[str, str]]:
    """Ties recorded on ``model`` that wait for its shapes."""
    entry = _waiting_ties.get(id(model))
    return list(entry[1]) if entry is not None and entry[0]() is model else []


def untie(model: Any, name: str) -> list[str]:
    """Give ``name`` (a parameter or every shared parameter of a block) its own storage.

    The new storage starts with the current values. Returns the names untied. All or nothing: if
    the framework refuses one part way, those already untied are tied back.
    """
    ps = params(model)
    chosen = _resolve(ps, name)
    shared = [p for p in chosen.values() if p.shared_with]
    if not shared:
        raise TieError(f"{name!r} shares no storage with another parameter; nothing to untie")
    done: list[Param] = []
    try:
        for p in shared:
            p.adapter.untie(model, p.slot)
            done.append(p)
    except Exception as exc:
        failed = []
        for p in reversed(done):  # the untied name takes the shared object back
            try:
                p.adapter.tie(model, params(model)[p.name].slot, p.slot)
                ok = params(model)[p.name].native is p.native
            except Exception:
                ok = False
            if not ok:
                failed.append(p.name)
        outcome = (
            "those untied before it were tied back (verified); nothing was changed"
            if not failed
            else f"tying back those untied before it failed for {describe_names(failed)}, which stay untied"
        )
        raise TieError(f"the framework refused to untie {shared[len(done)].name!r}: {exc}; {outcome}.") from exc
    return [p.name for p in shared]


def ties(model: Any) -> list[tuple[str, ...]]:
    """Groups of names that share one storage, whoever created them (natively or with :func:`tie`).

    Ties recorded before the shapes were known are listed once they are made; see
    :func:`waiting_ties` for those still waiting.
    """
    return params(model).storage_groups()
