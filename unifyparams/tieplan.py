"""Ties checked before the first change: :class:`TiePlan`, :func:`check_pairs`, :func:`tie_pairs`.

The all-or-nothing mechanics under :func:`unifyparams.tie` and ``up.load`` (a checkpoint's ties):
every pair is checked (names, shapes, dtypes, native layouts, the adapter's own reasons) before
the first tie is made, and a tie the framework refuses part way undoes those made before it.

>>> pairs = tie_pairs(net, "0", "2")              # doctest: +SKIP
>>> TiePlan.checked(net, pairs).apply()           # doctest: +SKIP
[('0.weight', '2.weight'), ('0.bias', '2.bias')]
"""

from __future__ import annotations

from typing import Any

from .access import params
from .errors import TieError, closest_names, describe_names
from .param import Param, format_shape
from .paramset import ParamSet


def resolve(ps: ParamSet, name: str) -> dict[str, Param]:
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
    """Raise :class:`TieError` when one storage cannot serve both (shapes, dtypes, layouts)."""
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
    sources = resolve(ps, source)
    targets = resolve(ps, target)
    if set(sources) != set(targets):
        raise TieError(
            f"cannot tie block {target!r} to block {source!r}: their parameters differ "
            f"({describe_names(sorted(targets))} vs {describe_names(sorted(sources))}). Nothing was changed."
        )
    return [(sources[leaf], targets[leaf]) for leaf in sources]


__all__ = ["TiePlan", "check_pairs", "resolve", "tie_pairs"]
