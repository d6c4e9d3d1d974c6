"""Known failures: scenario ids expected to fail on one backend, each an xfail(strict=True).

Declared on the builders (:attr:`ModelBuilders.known_failures`) or by overriding the suite's
``known_failures`` fixture, as a mapping ``{scenario id: reason}`` or a file of
``scenario.id  # reason`` lines (blank and ``#`` lines ignored). An id may name one case of a
parametrized scenario (``access.layer_kinds[gru]``). Ids that match no scenario, and malformed
lines, are reported as a :class:`UserWarning` and ignored.

>>> parse_known_failures("access.gradient  # no autograd\\n\\n# a comment\\n", "kf.txt")
({'access.gradient': 'no autograd'}, [])
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..errors import closest_names

KnownFailures = Mapping[str, str] | str | os.PathLike[str]


def parse_known_failures(text: str, source: str) -> tuple[dict[str, str], list[str]]:
    """``({scenario id: reason}, [problems])`` from the text of a known-failures file."""
    known: dict[str, str] = {}
    problems: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        sid, _, reason = line.partition("#")
        sid = sid.strip()
        if not sid:
            continue
        if len(sid.split()) != 1:
            problems.append(f"{source}:{number}: expected 'scenario.id  # reason', received {line.strip()!r}")
            continue
        known[sid] = reason.strip() or f"listed in {Path(source).name}"
    return known, problems


def _read(spec: KnownFailures, base: Path) -> tuple[dict[str, str], list[str]]:
    if not isinstance(spec, (str, os.PathLike)):
        return {str(k): str(v) for k, v in dict(spec).items()}, []
    path = Path(spec) if Path(spec).is_absolute() else base / spec
    try:
        return parse_known_failures(path.read_text(encoding="utf-8"), str(path))
    except OSError as exc:
        return {}, [f"cannot read its known_failures file: {exc}"]


def unknown_ids(known: Iterable[str], ids: Mapping[str, Iterable[str]]) -> list[str]:
    """Problems for ids naming no scenario (``ids``: ``{scenario id: its case ids}``).

    >>> unknown_ids(["access.gradeint", "a.b[x]"], {"access.gradient": [], "a.b": ["x"]})
    ["'access.gradeint' names no scenario (closest: access.gradient); ignored"]
    """
    problems = []
    for sid in known:
        base, _, case = sid.partition("[")
        if base in ids and (not case or case.rstrip("]") in set(ids[base])):
            continue
        problems.append(f"{sid!r} names no scenario (closest: {', '.join(closest_names(sid, ids, 3))}); ignored")
    return problems


def load_known_failures(owner: Any, ids: Mapping[str, Iterable[str]]) -> dict[str, str]:
    """``{scenario id: reason}`` declared by ``owner`` (builders, or anything with ``known_failures``).

    ``ids`` are the scenarios that exist, ``{scenario id: its case ids}``. A relative file path is read next to the module of the class that declares it. Problems are
    warned about (``UserWarning``) and the entries concerned dropped.

    >>> class Kit:
    ...     known_failures = {"tie.bad_ties": "refuses ties with a different message"}
    >>> load_known_failures(Kit, {"tie.bad_ties": []})
    {'tie.bad_ties': 'refuses ties with a different message'}
    """
    cls = owner if isinstance(owner, type) else type(owner)
    spec = getattr(cls, "known_failures", None) or {}
    declaring = next((c for c in cls.__mro__ if "known_failures" in vars(c)), cls)
    module_file = getattr(sys.modules.get(declaring.__module__), "__file__", None)
    known, problems = _read(spec, Path(module_file).parent if module_file else Path.cwd())
    problems += unknown_ids(known, ids)
    label = getattr(cls, "backend", "") or cls.__name__
    for problem in problems:
        warnings.warn(f"{label!r} known_failures: {problem}", UserWarning, stacklevel=2)
    return {sid: reason for sid, reason in known.items() if not unknown_ids([sid], ids)}
