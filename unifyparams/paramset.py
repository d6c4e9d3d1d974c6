"""An ordered, read-only mapping of canonical names to :class:`~unifyparams.param.Param`.

>>> ps = up.params(net)
>>> list(ps.select("*.weight"))
['0.weight', '1.weight', '2.weight']
>>> ps.load({k: v * 0 for k, v in ps.numpy().items()}).missing
[]
>>> float(abs(ps["2.weight"].numpy()).max())
0.0
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, ItemsView, Iterator, KeysView, Mapping, ValuesView
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .display import Table, TreeNode, block_tree, shown, terminal_width, wrap
from .distributed import RegionSource, block_write, collective_for, collective_operation
from .errors import (
    LoadError,
    ParameterNotFoundError,
    UnifyParamsError,
    closest_names,
    describe_names,
)
from .param import Param
from .progress import ProgressArg, resolve
from .storage import overlapping
from .transaction import write_all
from .values import state_problems


@dataclass
class LoadReport:
    """What :meth:`ParamSet.load` did: names written, and names it skipped under ``strict=False``."""

    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)

    def summary(self) -> list[tuple[str, str]]:
        """``(what, detail)`` rows: the one model both the plain text and rich draw."""
        return [
            ("loaded", f"{len(self.loaded)} parameters"),
            ("missing", describe_names(self.missing)),
            ("unexpected", describe_names(self.unexpected)),
        ]

    def table(self) -> Table:
        """The summary as a :class:`~unifyparams.display.Table` (what rich draws)."""
        return Table(("", ""), [(what, detail) for what, detail in self.summary()], show_header=False)

    def text(self, width: int | None = None) -> str:
        """The summary on one line (wrapped at ``width``; None: never)."""
        return "\n".join(wrap("; ".join(f"{what} {detail}" for what, detail in self.summary()), width))

    def __str__(self) -> str:
        """``loaded 8 parameters; missing (none); unexpected (none)``, wrapped to the terminal's width."""
        return self.text(terminal_width())

    def __rich__(self) -> Any:
        """The summary as a rich table (``rich.print(report)``)."""
        return self.table().__rich__()


def _same_values(a: Any, b: Any) -> bool:
    """Equal values, NaN equal to NaN (a tied group may legitimately hold NaN); values read block
    by block (:func:`~unifyparams.distributed.block_write`) agree when they read one source."""
    if callable(a) or callable(b):
        return getattr(a, "source", a) is getattr(b, "source", b)
    return bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fc" and b.dtype.kind in "fc"))


class ParamSet(Mapping[str, Param]):
    """Parameters of a model (or any part of one), by canonical name, in model order."""

    def __init__(self, params: Mapping[str, Param], *, title: str = "", backend: str = "", model: Any = None):
        self._params = dict(params)
        self._title = title
        self.backend = backend
        #: The model these parameters were read from (None for a set built by hand): ports and
        #: checkpoints ask its adapter about its dataflow.
        self.model = model

    # --- mapping --------------------------------------------------------------------------
    def __getitem__(self, name: str) -> Param:
        try:
            return self._params[name]
        except KeyError:
            raise ParameterNotFoundError(
                f"no parameter named {name!r}; closest names: "
                f"{describe_names(closest_names(name, self._params))}. "
                f"List all names with list(up.params(model))."
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._params)

    def __len__(self) -> int:
        return len(self._params)

    def __contains__(self, name: object) -> bool:
        return name in self._params

    # the dict's own views (read-only): the Mapping mixins would look every name up again
    def keys(self) -> KeysView[str]:
        return self._params.keys()

    def values(self) -> ValuesView[Param]:
        return self._params.values()

    def items(self) -> ItemsView[str, Param]:
        return self._params.items()

    # --- selection ------------------------------------------------------------------------
    def select(
        self,
        pattern: str | None = None,
        *,
        regex: str | None = None,
        trainable: bool | None = None,
        role: str | None = None,
        materialized: bool | None = None,
    ) -> ParamSet:
        """The parameters matching every criterion given.

        ``pattern`` is a glob on canonical names (``"*.weight"``, ``"encoder.*"``); ``regex`` a
        regular expression that must match the whole name. A pattern or regex that matches no
        name raises :class:`ParameterNotFoundError` listing the closest names.
        """
        chosen = list(self._params.values())
        if pattern is not None:
            chosen = [p for p in chosen if fnmatch.fnmatchcase(p.name, pattern)]
            if not chosen:
                raise self._nothing_matched(f"pattern {pattern!r}", pattern)
        if regex is not None:
            compiled = re.compile(regex)
            chosen = [p for p in chosen if compiled.fullmatch(p.name)]
            if not chosen:
                raise self._nothing_matched(f"regex {regex!r}", regex)
        if trainable is not None:
            chosen = [p for p in chosen if p.trainable == trainable]
        if role is not None:
            chosen = [p for p in chosen if p.role == role]
        if materialized is not None:
            chosen = [p for p in chosen if p.materialized == materialized]
        return ParamSet({p.name: p for p in chosen}, title=self._title, backend=self.backend, model=self.model)

    def _nothing_matched(self, what: str, text: str) -> ParameterNotFoundError:
        probe = text.replace("*", "").replace("?", "").strip(".") or text
        return ParameterNotFoundError(
            f"{what} matched no parameter; closest names: "
            f"{describe_names(closest_names(probe, self._params))}"
        )

    # --- values ---------------------------------------------------------------------------
    def numpy(self, *, copy: bool = False) -> dict[str, np.ndarray]:
        """``{name: values}`` in canonical layout: the framework-neutral state dict.

        With ``copy=False`` arrays are read-only and may share memory with the model.
        """
        return {name: p.numpy(copy=copy) for name, p in self._params.items()}

    def storage_groups(self) -> list[tuple[str, ...]]:
        """Groups of two or more names that share one storage, in model order."""
        groups: dict[Any, list[str]] = {}
        for name, p in self._params.items():
            groups.setdefault(p.storage_key, []).append(name)
        return [tuple(g) for g in groups.values() if len(g) > 1]

    def count(self) -> int:
        """Number of scalars in the known-shape parameters, shared storage (ties) counted once;
        overlapping but different views of one memory are separate parameters, counted each."""
        seen: set[Any] = set()
        total = 0
        for p in self._params.values():
            key = p.storage_key
            if key in seen:
                continue
            seen.add(key)
            total += p.size or 0
        return total

    def load(
        self,
        state: Mapping[str, Any],
        *,
        strict: bool = True,
        cast: bool = False,
        atomic: bool = True,
        rollback: bool | None = None,
        finish: Callable[[], None] | None = None,
        progress: ProgressArg = None,
    ) -> LoadReport:
        """Write many values at once (canonical names and layout); all or nothing.

        Every value is checked first (names, shapes, dtypes, whether the framework lets each
        parameter be written); if anything is wrong a :class:`LoadError` (or, for a parameter the
        framework will not let be written, a :class:`~unifyparams.errors.WriteError`) lists every
        problem and no parameter changes. With ``strict=False`` missing and unexpected names are
        reported instead of refused. ``cast=True`` allows casts that can lose information
        (float -> int).

        The values are then written through :func:`unifyparams.transaction.write_all`: with
        ``atomic=True`` (the default) each parameter is copied just before it is overwritten (up
        to one model's worth of memory, held until the load ends), so that if the *framework*
        refuses a write part way every parameter is restored (verified) and a ``WriteError`` says
        so. ``atomic=False`` holds no copy and is **not atomic**: such a refusal leaves the
        parameters written before it with their new values (the error names them).
        ``rollback`` is the older name of ``atomic``. ``finish`` runs once every value landed,
        inside the same transaction (``up.load`` makes the checkpoint's ties there).

        ``progress``: ``True`` a progress bar, ``False`` nothing, a ``callback(done, total)`` (bytes,
        once per parameter written and at the end); ``None`` (the default) a bar only on a terminal,
        outside CI, for a load still running after half a second (:mod:`unifyparams.progress`).
        """
        if rollback is not None:
            atomic = rollback
        # sharded over processes: a rank whose state does not fit makes every rank refuse
        with collective_operation(collective_for(self._params.values()), "load"):
            return self._load(state, strict=strict, cast=cast, atomic=atomic, finish=finish, progress=progress)

    def _load(
        self, state: Mapping[str, Any], *, strict: bool, cast: bool, atomic: bool, finish: Callable[[], None] | None,
        progress: ProgressArg,
    ) -> LoadReport:
        malformed = state_problems(state)  # not a mapping, or keys that are not names
        if malformed:
            raise LoadError("nothing was loaded; " + " ".join(malformed))
        missing = [n for n in self._params if n not in state]
        unexpected = [n for n in state if n not in self._params]
        problems = self._name_problems(missing, unexpected) if strict else []
        prepared = self._prepare(state, cast, problems)
        problems += self._overlap_problems(prepared)
        problems += self._incomplete_lazy_blocks(prepared)
        if problems:
            raise LoadError(
                "nothing was loaded; " + f"{len(problems)} problem(s):\n  - " + "\n  - ".join(problems)
            )
        with resolve(progress, "loading") as bar:
            write_all([(self._params[name], value) for name, value in prepared.items()], atomic=atomic, what="load",
                      finish=finish, progress=bar)
        return LoadReport(loaded=list(prepared), missing=missing, unexpected=unexpected)

    def _name_problems(self, missing: list[str], unexpected: list[str]) -> list[str]:
        """What a strict load says about names the state lacks or the model lacks."""
        problems: list[str] = []
        if missing:
            problems.append(f"missing {len(missing)} name(s): {describe_names(missing)}")
        if unexpected:
            hint = ""
            if self._params:
                hint = f" (closest to {unexpected[0]!r}: {describe_names(closest_names(unexpected[0], self._params), 3)})"
            problems.append(f"unexpected {len(unexpected)} name(s): {describe_names(unexpected)}{hint}")
        return problems

    def _prepare(self, state: Mapping[str, Any], cast: bool, problems: list[str]) -> dict[str, Any]:
        """Each value checked and in its native layout, one per storage (tied names must agree).

        What is wrong is appended to ``problems``.
        """
        prepared: dict[str, Any] = {}
        by_storage: dict[Any, tuple[str, Any]] = {}
        for name, p in self._params.items():
            if name not in state:
                continue
            try:
                value = state[name]
                native: Any = (block_write(p, value, cast=cast) if isinstance(value, RegionSource)
                               else p.prepare(value, cast=cast))
            except UnifyParamsError as exc:
                problems.append(str(exc))
                continue
            key = p.storage_key
            if key in by_storage:
                other, other_value = by_storage[key]
                if not _same_values(other_value, native):
                    problems.append(
                        f"{name!r} and {other!r} share one storage (tied) but received different "
                        f"values; give both the same value or untie them first"
                    )
                continue
            by_storage[key] = (name, native)
            prepared[name] = native
        return prepared

    def _overlap_problems(self, prepared: Mapping[str, np.ndarray]) -> list[str]:
        """Names that are overlapping but different views of one memory cannot both be written."""
        return [
            f"{a!r} and {b!r} are overlapping but different views of one memory (not a tie): writing "
            f"both would leave part of one with the other's values. Load only one of them (leave the "
            f"other out of the state and pass strict=False), or give one its own memory in the model first"
            for a, b in overlapping(self._params[n] for n in prepared)
        ]

    def _incomplete_lazy_blocks(self, prepared: Mapping[str, np.ndarray]) -> list[str]:
        """A block whose parameters wait for their shapes must be loaded whole: its framework
        infers all of them together, and a half-filled lazy block breaks that."""
        waiting: dict[int, list[str]] = {}
        for name, p in self._params.items():
            if not p.materialized:
                waiting.setdefault(id(p.slot.block), []).append(name)
        problems = []
        for names in waiting.values():
            given = [n for n in names if n in prepared]
            if given and len(given) != len(names):
                absent = [n for n in names if n not in prepared]
                problems.append(
                    f"{describe_names(given)} belong to a block whose shapes are not known yet; load the "
                    f"whole block together (missing {describe_names(absent)}) or materialize it first"
                )
        return problems

    # --- display --------------------------------------------------------------------------
    def tree_model(self) -> TreeNode:
        """The tree of blocks and parameters as data (see :mod:`unifyparams.display`)."""
        n = len(self._params)
        title = f"{self._title or 'model'}  {self.backend} · {n} tensors · {self.count():,} scalars"
        return block_tree(list(self._params.values()), title)

    def tree(self, *, width: int | None = None) -> str:
        """The tree of blocks and parameters as plain text (``print(ps)`` prints it), within
        ``width`` characters a line (None: no limit)."""
        return self.tree_model().text(width)

    def __str__(self) -> str:
        """The tree as plain text, fitted to the terminal's width (:mod:`unifyparams.display`)."""
        return shown(self, self.tree(width=terminal_width()))

    def __rich__(self) -> Any:
        """The same tree drawn by rich (``rich.print(ps)``)."""
        return self.tree_model().__rich__()

    def __repr__(self) -> str:
        names = describe_names(list(self._params), 4)
        return f"<ParamSet backend={self.backend!r} n={len(self._params)} names=[{names}]>"
