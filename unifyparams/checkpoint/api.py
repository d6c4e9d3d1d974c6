"""Portable checkpoints: :func:`save` from any backend, :func:`load` into any backend.

Files are safetensors with canonical names and layouts, so a checkpoint saved from a PyTorch
model loads into the same architecture in Keras or Gluon. Tied parameters are stored once and
come back tied. Loading validates everything before anything changes (through
:meth:`ParamSet.load <unifyparams.paramset.ParamSet.load>`): a checkpoint that does not fit
raises :class:`~unifyparams.errors.CheckpointError` and leaves the model as it was.

>>> up.save(net, "model.safetensors")                   # from any backend
PosixPath('model.safetensors')
>>> report = up.load(numpy_net(seed=7), "model.safetensors", strict=True)   # into any backend
>>> report.loaded[:2], report.converted
(['0.weight', '0.bias'], {})
>>> up.save(net, "model.safetensors", max_shard_size=64)            # shards and an index
PosixPath('model.safetensors.index.json')
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..access import params
from ..dataflow import DenseInput
from ..distributed import collective_for, collective_operation, region_of
from ..errors import CheckpointError, LoadError
from ..param import format_shape
from ..paramset import LoadReport, ParamSet
from ..progress import Progress, ProgressArg, resolve
from ..tying import TiePlan, check_pairs
from .order import facts_for, into_model_order
from .save import save
from .shards import Checkpoint, open_checkpoint

__all__ = ["CheckpointReport", "load", "save"]


@dataclass
class CheckpointReport(LoadReport):
    """What :func:`load` did, beyond :class:`~unifyparams.paramset.LoadReport`'s loaded/missing/unexpected.

    ``converted`` maps names whose dtype was cast to ``"float64 -> float32"``; ``tied`` lists the
    groups tied during the load (the checkpoint had them tied, the model did not); ``not_tied``
    the groups left untied under ``strict=False`` because the model cannot tie them; ``backend``
    is the backend the checkpoint was saved from, ``metadata`` the user metadata saved with it.
    """

    converted: dict[str, str] = field(default_factory=dict)
    tied: list[tuple[str, ...]] = field(default_factory=list)
    not_tied: list[tuple[str, ...]] = field(default_factory=list)
    backend: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    #: Entries of the file that are the framework's state, not parameters, left out: ``{name: why}``.
    dropped: dict[str, str] = field(default_factory=dict)
    #: For a load matched like a port (``match=``/``rename=``): the port's report, row by row.
    port: Any = None

    def summary(self) -> list[tuple[str, str]]:
        """``(what, detail)`` rows (plain text and rich draw them): the base rows, then conversions and ties."""
        rows = super().summary()
        if self.converted:
            rows.append(("converted", f"{len(self.converted)}: " + ", ".join(
                f"{n} ({c})" for n, c in list(self.converted.items())[:8]
            )))
        if self.tied:
            rows.append(("tied", str(self.tied)))
        if self.not_tied:
            rows.append(("left untied", str(self.not_tied)))
        if self.dropped:
            rows.append(("dropped", f"{len(self.dropped)}: " + ", ".join(
                f"{n} ({why})" for n, why in list(self.dropped.items())[:8])))
        return rows

    def __rich__(self) -> Any:
        """The summary, and for a load matched like a port the port's table, drawn by rich."""
        if self.port is None or not hasattr(self.port, "__rich__"):
            return super().__rich__()
        from rich.console import Group

        return Group(super().__rich__(), self.port.__rich__())


# --- load ---------------------------------------------------------------------------------------
def load(
    model: Any,
    path: str | os.PathLike[str],
    *,
    strict: bool = True,
    cast: bool = False,
    mmap: bool = True,
    atomic: bool = True,
    rollback: bool | None = None,
    match: str | Mapping[str, str] = "name",
    rename: Sequence[tuple[str, str]] = (),
    example_input: Any = None,
    dense_inputs: Mapping[str, DenseInput] | None = None,
    progress: ProgressArg = None,
) -> CheckpointReport:
    """Load a checkpoint (a file, an index, or a folder holding one) into ``model``; all or nothing.

    A Hugging Face ``save_pretrained`` folder (``config.json`` + safetensors) loads into any model
    its family's recipes describe (a keras-hub backbone, a gluonnlp model, a transformers model):
    names, fused tensors and file layouts converted, the configuration compared.

    Framework files load too, without running code from them: PyTorch state dicts
    (``.pt``/``.pth``/``.bin``, read with ``torch.load(weights_only=True)``) and Gluon ``.params``.

    ``strict=True`` refuses a checkpoint whose names differ from the model's; ``strict=False``
    loads the names both have and reports the rest. Safe dtype casts (float64 -> float32) happen
    and are reported in ``converted``; ``cast=True`` also allows lossy ones. Everything (header,
    offsets, names, shapes, dtypes, the ties recorded and whether the model can make them, whether
    the framework lets each parameter be written) is checked before the first write, so a bad file
    changes nothing. The values are then written, and the recorded ties made, as one transaction
    (:func:`unifyparams.transaction.write_all`): with ``atomic=True`` (the default) each parameter is
    copied just before it is overwritten (up to one model's worth of memory, held until the load
    ends), so that if the *framework* refuses a write or a tie part way every parameter is restored
    (verified) and a :class:`~unifyparams.errors.WriteError` says so. ``atomic=False`` holds no copy
    and is **not atomic**: such a refusal leaves the parameters written before it with the file's
    values (the error names them). ``rollback`` is the older name of ``atomic``. ``mmap=False``
    reads each tensor with a plain read instead of mapping the file.

    Into a model sharded over processes (FSDP2, DTensor) every rank calls ``load``: each checks
    the file, the verdicts are agreed (one rank that cannot load makes every rank refuse, nothing
    changed anywhere), and each rank reads only the byte ranges of its own blocks, from an
    ordinary checkpoint, a collective save's, or PyTorch's distributed checkpoint in safetensors.

    ``progress``: ``True`` a progress bar (bytes, rate, time left), ``False`` nothing, a
    ``callback(done, total)`` (bytes written into the model, once per tensor and at the end);
    ``None`` (the default) a bar only on a terminal, outside CI, for a load still running after
    half a second (:mod:`unifyparams.progress`).
    """
    if rollback is not None:
        atomic = rollback
    ps = params(model)
    collective = collective_for(ps.values())  # sharded over processes: every rank loads together
    orders = {"example_input": example_input, "dense_inputs": dense_inputs}
    with collective_operation(collective, "load"), resolve(progress, "loading") as bar:
        return _load_kind(model, path, ps, strict=strict, cast=cast, mmap=mmap, atomic=atomic, match=match,
                          rename=rename, orders=orders, progress=bar)


def _load_kind(
    model: Any, path: str | os.PathLike[str], ps: ParamSet, *, strict: bool, cast: bool, mmap: bool, atomic: bool,
    match: str | Mapping[str, str], rename: Sequence[tuple[str, str]], orders: Mapping[str, Any],
    progress: Progress | None,
) -> CheckpointReport:
    """:func:`load` by what ``path`` holds and how it is matched: a ``transformers`` folder, a
    matched load, a framework file, or a checkpoint of ours."""
    if _is_transformers_folder(path, match, rename):
        return _load_transformers(model, path, strict=strict, mmap=mmap, atomic=atomic, progress=progress)
    if match != "name" or rename:
        return _load_matched(model, path, match=match, rename=rename, strict=strict, mmap=mmap, atomic=atomic,
                             example_input=orders["example_input"], dense_inputs=orders["dense_inputs"],
                             progress=progress)
    kind = _native_kind(path)
    if kind is not None:
        return _load_native(model, path, kind, strict=strict, cast=cast, atomic=atomic, orders=orders,
                            progress=progress, ps=ps)
    with open_checkpoint(path, mmap=mmap) as ckpt:
        return _load_checkpoint(model, ckpt, str(path), strict=strict, cast=cast, atomic=atomic, orders=orders,
                                progress=progress, ps=ps)


def _load_checkpoint(
    model: Any, ckpt: Checkpoint, source: str, *, strict: bool, cast: bool, atomic: bool, orders: Mapping[str, Any],
    progress: Progress | None = None, ps: ParamSet | None = None,
) -> CheckpointReport:
    """Load an open safetensors checkpoint: checked whole, then written (with its ties) as one transaction
    (``ps``: the model's parameters when the caller has them already)."""
    ps = params(model) if ps is None else ps
    # a tensor in pieces stays a PiecedTensor (read block by block when written; it acts as an array)
    sharded = {name for name in ckpt.names if name in ps and region_of(ps[name]) is not None}
    # a sharded parameter reads its own block's bytes only; other tensors are mapped (or, in pieces,
    # read whole when written)
    state: dict[str, Any] = {name: ckpt.blocks(name) if name in sharded else ckpt.value(name) for name in ckpt.names}
    dropped = _drop_framework_state(ps, state)
    _into_model_order(ps, state, orders)
    _add_tie_aliases(ckpt.meta.ties, state)
    _fill_model_ties(ps, state)
    _check_shapes(ps, state, source)
    to_tie, not_tied = _plan_ties(ps, ckpt.meta.ties, strict, source)
    available = set(state)  # (each tensor's pages are mapped in bulk as it is written: unifyparams.mapped)
    converted = _conversions(ps, state)

    def make_ties() -> None:  # inside the write: a refused tie restores every value
        now = params(model)
        TiePlan.checked(model, [(now[s], now[t]) for s, t in to_tie]).apply()

    try:
        base = ps.load(state, strict=strict, cast=cast, atomic=atomic, finish=make_ties if to_tie else None,
                       progress=_given(progress))
    except LoadError as exc:
        raise CheckpointError(
            f"checkpoint {source} does not fit this {ps.backend or 'model'} model; nothing was "
            f"changed. {exc}\nHow to fix: load into the architecture the checkpoint was saved from; "
            f"strict=False loads the names both have, cast=True allows lossy dtype casts."
        ) from exc
    finally:
        state.clear()  # drop the views so the file can be unmapped
    return CheckpointReport(
        loaded=[name for name in ps if name in available], missing=base.missing, unexpected=base.unexpected,
        converted=converted, tied=_tie_groups(to_tie), not_tied=not_tied, backend=ckpt.meta.backend,
        metadata=ckpt.meta.user, files=[str(p) for p in ckpt.paths], dropped=dropped,
    )


def _drop_framework_state(ps: ParamSet, state: dict[str, Any]) -> dict[str, str]:
    """Remove the entries the model's adapter calls state that is not a parameter (and the model
    does not list); ``{name: why}`` for the report."""
    adapter = next((p.adapter for p in ps.values()), None)
    dropped: dict[str, str] = {}
    if adapter is None:
        return dropped
    for name in [n for n in state if n not in ps]:
        why = adapter.not_a_parameter(name)
        if why:
            dropped[name] = why
            del state[name]
    return dropped


def _given(progress: Progress | None) -> Progress | bool:
    """The load's Progress for :meth:`ParamSet.load`; none given means nothing (not its default)."""
    return progress if progress is not None else False


def _conversions(ps: ParamSet, state: Mapping[str, np.ndarray]) -> dict[str, str]:
    """``{name: "float64 -> float32"}`` for the values whose dtype differs from the parameter's."""
    return {n: f"{state[n].dtype} -> {ps[n].dtype}" for n in ps if n in state and state[n].dtype != ps[n].dtype}


def _tie_groups(pairs: Sequence[tuple[str, str]]) -> list[tuple[str, ...]]:
    """``[(a, b), (a, c)]`` -> ``[(a, b, c)]``: the ``(source, target)`` ties made, as groups."""
    tied: dict[str, list[str]] = {}
    for source_name, target in pairs:
        tied.setdefault(source_name, [source_name]).append(target)
    return [tuple(g) for g in tied.values()]


def _load_matched(model: Any, path: str | os.PathLike[str], **options: Any) -> CheckpointReport:
    """A load matched like a port (``match``/``rename``): see :mod:`unifyparams.checkpoint.matched`."""
    from .matched import load_matched

    kind = _native_kind(path)
    native_state = None
    backend = None
    if kind is not None:
        ckpt = _read_loadable(path, kind)
        native_state, backend = ckpt.expanded(), ckpt.backend
    report, meta = load_matched(model, path, native_state=native_state, **options)
    loaded = [row.destination for row in report.rows if not row.problem]
    return CheckpointReport(
        loaded=loaded, backend=meta.backend if meta is not None else backend,
        metadata=dict(meta.user) if meta is not None else {}, files=[os.fspath(path)], port=report,
    )


def _is_transformers_folder(path: str | os.PathLike[str], match: Any, rename: Any) -> bool:
    from .transformers_folder import is_transformers_folder

    return match in ("name", "auto", "recipe") and not rename and is_transformers_folder(path)


def _load_transformers(model: Any, path: str | os.PathLike[str], **options: Any) -> CheckpointReport:
    """A Hugging Face ``save_pretrained`` folder, through the family's recipes."""
    from .transformers_folder import load_transformers_folder

    report, files = load_transformers_folder(model, path, **options)
    loaded = [row.destination for row in report.rows if not row.problem]
    return CheckpointReport(loaded=loaded, backend="transformers", files=files, port=report)


def _into_model_order(ps: ParamSet, state: dict[str, np.ndarray], orders: Mapping[str, Any] | None = None) -> None:
    """Files keep channels-first flatten order; a channels-last model reads its own order."""
    into_model_order(facts_for(ps, action="load", **dict(orders or {})), state)


def _native_kind(path: str | os.PathLike[str]) -> str | None:
    """The format an adapter declares for a framework's own file (``"torch"``...), None for safetensors."""
    from ..formats import format_for

    kind = format_for(os.fspath(path))
    return None if kind == "safetensors" else kind


def _read_loadable(path: str | os.PathLike[str], kind: str) -> Any:
    """Read a framework's file whose names map to canonical ones without the model.

    A format whose adapter declares it ``not_loadable`` (its names need the model, as Keras paths
    do) is refused before it is read, with the adapter's advice.
    """
    from ..formats import file_formats, read

    fmt = file_formats().get(kind)
    if fmt is not None and fmt.not_loadable:
        raise CheckpointError(f"{path}: {fmt.not_loadable}")
    return read(os.fspath(path), kind)


def _load_native(
    model: Any, path: str | os.PathLike[str], kind: str, *, strict: bool, cast: bool, atomic: bool = True,
    orders: Mapping[str, Any] | None = None, progress: Progress | None = None, ps: ParamSet | None = None,
) -> CheckpointReport:
    """A framework's own file (a PyTorch state dict, a Gluon ``.params`` file), read by its adapter
    without running code from it; all or nothing, like our format."""
    ckpt = _read_loadable(path, kind)
    ps = params(model) if ps is None else ps
    state = ckpt.expanded()
    _into_model_order(ps, state, orders)
    converted = _conversions(ps, state)
    try:
        base = ps.load(state, strict=strict, cast=cast, atomic=atomic, progress=_given(progress))
    except LoadError as exc:
        raise CheckpointError(
            f"{kind} checkpoint {path} does not fit this {ps.backend or 'model'} model; nothing was changed. "
            f"{exc}\nHow to fix: load into the architecture it was saved from; strict=False loads the "
            f"names both have."
        ) from exc
    return CheckpointReport(
        loaded=base.loaded, missing=base.missing, unexpected=base.unexpected, converted=converted,
        tied=[], not_tied=[], backend=ckpt.backend, metadata=dict(ckpt.metadata), files=[str(path)],
    )


def _bits(array: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(array).reshape(-1).view(np.uint8)


def _fill_model_ties(ps: ParamSet, state: dict[str, np.ndarray]) -> None:
    """A name the model ties to a stored one needs no tensor of its own.

    Files that store a tied tensor once without recording the tie (``safetensors.torch.save_model``
    drops aliases) then load strictly into the tied model. Conflicting values for one storage are
    left for ParamSet.load to refuse.
    """
    for group in ps.storage_groups():
        present = [name for name in group if name in state]
        if present:
            for name in group:
                state.setdefault(name, state[present[0]])


def _add_tie_aliases(groups: list[tuple[str, ...]], state: dict[str, np.ndarray]) -> None:
    """Give every name of a recorded tie group the stored value; members stored twice must agree."""
    for group in groups:
        stored = [name for name in group if name in state]
        if not stored:
            raise CheckpointError(
                f"the checkpoint records the tie group {list(group)} but stores none of its names; "
                f"expected the first, {group[0]!r}. The file is corrupt."
            )
        first = state[stored[0]]
        for other in stored[1:]:
            value = state[other]
            if (
                value.shape != first.shape
                or value.dtype != first.dtype
                or not np.array_equal(_bits(value), _bits(first))
            ):
                raise CheckpointError(
                    f"{stored[0]!r} and {other!r} form one tied group in the checkpoint but hold different "
                    f"values ({first.dtype}{list(first.shape)} vs {value.dtype}{list(value.shape)}); "
                    f"a tied group has one value. The file is corrupt or was edited; re-save it."
                )
        for name in group:
            state.setdefault(name, first)


def _check_shapes(ps: ParamSet, state: Mapping[str, np.ndarray], source: str) -> None:
    """Exact shape agreement (ParamSet.load alone would broadcast a 0-d value)."""
    problems = []
    for name, value in state.items():
        if name not in ps:
            continue
        shape = ps[name].shape
        if len(shape) != value.ndim or any(d is not None and d != got for d, got in zip(shape, value.shape)):
            problems.append(
                f"{name!r}: the model has shape {format_shape(shape)}, the checkpoint {tuple(value.shape)}"
            )
    if problems:
        raise CheckpointError(
            f"checkpoint {source} does not fit this {ps.backend or 'model'} model; nothing was changed. "
            f"{len(problems)} shape(s) differ (canonical layout):\n  - "
            + "\n  - ".join(problems)
            + "\nHow to fix: build the model with the architecture the checkpoint was saved from."
        )


def _plan_ties(
    ps: ParamSet, groups: list[tuple[str, ...]], strict: bool, source: str
) -> tuple[list[tuple[str, str]], list[tuple[str, ...]]]:
    """``(source, target)`` ties to make after loading, and groups the model cannot tie."""
    plan: list[tuple[str, str]] = []
    refused: list[tuple[str, ...]] = []
    for group in groups:
        members = [name for name in group if name in ps]
        if len(members) < 2:
            continue
        head = ps[members[0]]
        targets = [m for m in members[1:] if ps[m].storage_key != head.storage_key]
        if not targets:
            continue
        reason = head.adapter.missing_capabilities.get("tie")  # derived from the hooks it implements
        for m in targets:
            p = ps[m]
            if reason is None and (p.dtype != head.dtype or p.native_shape != head.native_shape):
                reason = (
                    f"{m!r} is {p.dtype}{format_shape(p.native_shape)} natively but {head.name!r} is "
                    f"{head.dtype}{format_shape(head.native_shape)}"
                )
        ready = [(head, ps[m]) for m in targets if head.materialized and ps[m].materialized]
        if reason is None and ready:  # layouts, parameter vs buffer, devices: before any value is written
            problems = check_pairs(ready)
            reason = " ".join(problems) if problems else None
        if reason is not None:
            if strict:
                raise CheckpointError(
                    f"checkpoint {source} stores {list(members)} as one tied tensor, but this model cannot "
                    f"tie them ({reason}); nothing was changed. Pass strict=False to load the values "
                    f"untied (reported in not_tied)."
                )
            refused.append(tuple(members))
            continue
        plan.extend((head.name, m) for m in targets)
    return plan, refused
