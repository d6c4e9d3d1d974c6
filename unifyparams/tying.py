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

import warnings
from typing import Any

from . import pending_work
from .access import params
from .errors import TieError, describe_names
from .param import Param, format_shape
from .tieplan import TiePlan, check_pairs, resolve, tie_pairs


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
def _tie_later(model: Any, pairs: list[tuple[Param, Param]]) -> list[tuple[str, str]]:
    """Record ties whose shapes are not known yet (:mod:`unifyparams.pending_work`); they are made as
    soon as both sides have their shapes, after the pending initializers and before the values are
    used (through the adapter's materialization hook), and by :func:`unifyparams.materialize`.
    Known dimensions must already agree."""
    for src, dst in pairs:
        known = all(a is None or b is None or a == b for a, b in zip(src.shape, dst.shape))
        if len(src.shape) != len(dst.shape) or not known or src.dtype != dst.dtype:
            raise TieError(
                f"cannot tie {dst.name!r} {format_shape(dst.shape)} {dst.dtype} to {src.name!r} "
                f"{format_shape(src.shape)} {src.dtype}: their known dimensions or dtypes differ. Nothing was changed."
            )
    names = [(src.name, dst.name) for src, dst in pairs]
    pending_work.record_ties(model, names)
    pending_work.watch(model, pairs[0][0].adapter)
    return names


def pending_ties(model: Any) -> list[tuple[str, str]]:
    """Ties recorded on ``model`` that wait for its shapes.

    >>> up.tie(lazy, "0.bias", "1.bias"); up.pending_ties(lazy)   # doctest: +SKIP
    [('0.bias', '1.bias')]
    """
    return pending_work.pending_ties(model)


def waiting_ties(model: Any) -> list[tuple[str, str]]:
    """Deprecated name of :func:`pending_ties` ("pending" is the one word for what waits for shapes)."""
    warnings.warn("up.waiting_ties is deprecated; use up.pending_ties", DeprecationWarning, stacklevel=2)
    return pending_work.pending_ties(model)


def untie(model: Any, name: str) -> list[str]:
    """Give ``name`` (a parameter or every shared parameter of a block) its own storage.

    The new storage starts with the current values. Returns the names untied. All or nothing: if
    the framework refuses one part way, those already untied are tied back.
    """
    ps = params(model)
    chosen = resolve(ps, name)
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
    :func:`pending_ties` for those still pending.
    """
    return params(model).storage_groups()


__all__ = ["TiePlan", "check_pairs", "pending_ties", "tie", "tie_pairs", "ties", "untie", "waiting_ties"]
