"""Rename rules for a port's source names: ``[(regex, replacement), ...]``, applied in order.

>>> _rename("features.0.weight", [(r"^features\\.", "")])
'0.weight'
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..errors import UnifyParamsError
from ..param import Param
from ..paramset import ParamSet


def _rename(name: str, rules: Sequence[tuple[str, str]]) -> str:
    for pattern, repl in rules:
        name = re.sub(pattern, repl, name)
    return name


def renamed(ps: ParamSet, rules: Sequence[tuple[str, str]]) -> ParamSet:
    """``ps`` under the renamed names; two names becoming one is refused."""
    if not rules:
        return ps
    for rule in rules:
        if not (isinstance(rule, (tuple, list)) and len(rule) == 2 and all(isinstance(x, str) for x in rule)):
            raise UnifyParamsError(f"rename takes [(regex, replacement), ...] pairs of strings; received {rule!r}")
        try:
            re.compile(rule[0])
        except re.error as exc:
            raise UnifyParamsError(f"rename pattern {rule[0]!r} is not a regular expression: {exc}") from None
    result: dict[str, Param] = {}
    for name, p in ps.items():
        new = _rename(name, rules)
        if new in result:
            raise UnifyParamsError(f"rename maps two source names to {new!r} ({result[new].name!r} and {name!r})")
        result[new] = p
    return ParamSet(result, backend=ps.backend)
