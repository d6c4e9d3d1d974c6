"""Portable checkpoints: :func:`save` from any backend, :func:`load` into any backend.

Files are safetensors with canonical names and layouts, so a checkpoint saved from a PyTorch
model loads into the same architecture in Keras or Gluon. Tied parameters are stored once and
come back tied. Loading validates everything before anything changes (through
:meth:`ParamSet.load <unifyparams.paramset.ParamSet.load>`): a checkpoint that does not fit
raises :class:`~unifyparams.errors.CheckpointError` and leaves the model as it was.

>>> up.save(torch_net, "model.safetensors")                        # doctest: +SKIP
>>> report = up.load(keras_net, "model.safetensors", strict=True)  # doctest: +SKIP
>>> report.loaded, report.converted                                # doctest: +SKIP
(['0.weight', '0.bias', '2.weight', '2.bias'], {})
>>> up.save(big_net, "model.safetensors", max_shard_size="2GB")    # doctest: +SKIP
PosixPath('model.safetensors.index.json')
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..access import params
from ..adapter import Adapter
from ..dataflow import DenseInput
from ..errors import CheckpointError, LoadError
from ..param import format_shape
from ..paramset import LoadReport, ParamSet
from ..tying import TiePlan, check_pairs
from .atomic import AtomicFile, fsync_dir
from .dtypes import code_for
from .format import plan_offsets, write_file
from .metadata import CheckpointMeta
from .order import facts_for, into_model_order
from .shards import (
    DEFAULT_NAME,
    Earlier,
    earlier_checkpoint,
    encode_index,
    index_path,
    new_shard_names,
    open_checkpoint,
    parse_size,
    remove_stale_temporaries,
    split,
)


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
    #: For a load matched like a port (``match=``/``rename=``): the port's report, row by row.
    port: Any = None

    def __str__(self) -> str:
        text = super().__str__()
        if self.converted:
            text += f"; converted {len(self.converted)}: " + ", ".join(
                f"{n} ({c})" for n, c in list(self.converted.items())[:8]
            )
        if self.tied:
            text += f"; tied {self.tied}"
        if self.not_tied:
            text += f"; left untied {self.not_tied}"
        return text


# --- save ---------------------------------------------------------------------------------------
def save(
    model: Any,
    path: str | os.PathLike[str],
    *,
    max_shard_size: int | str | None = None,
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Save every parameter of ``model`` (any backend) to ``path``, atomically.

    Tensors are streamed into the file one at a time. With ``max_shard_size`` (bytes, or
    ``"5GB"``/``"500MiB"``) a larger model is split into ``model-00001-of-0000N.safetensors``
    files plus ``model.safetensors.index.json``. ``metadata`` (str to str) is stored in the file.
    Returns the path to pass to :func:`load`: the file, or the index.
    """
    ps = params(model)
    base = Path(path)
    if base.is_dir():
        base = base / DEFAULT_NAME
    if base.name.endswith(".json"):
        raise CheckpointError(
            f"save() takes the checkpoint's .safetensors path; received {base.name!r}. The index of a "
            f"sharded checkpoint is written beside it (pass 'model.safetensors', get 'model.safetensors.index.json')."
        )
    stored, groups = _stored_names(ps)
    sizes = [(name, math.prod(ps[name].shape) * ps[name].dtype.itemsize) for name in stored]  # type: ignore[arg-type]
    shards = split(sizes, parse_size(max_shard_size)) if max_shard_size is not None else [stored]
    meta = CheckpointMeta(backend=ps.backend or None, ties=groups, user=dict(metadata or {}), layers=_families(ps))
    sharded = len(shards) > 1
    if sharded:
        meta.checkpoint_id = uuid.uuid4().hex
    encoded = meta.encode()
    remove_stale_temporaries(base)  # left by saves of this checkpoint that were killed mid-write
    earlier = earlier_checkpoint(base)
    targets = [base]
    if sharded:  # new names: the earlier checkpoint stays whole until the new index replaces its own
        targets = [base.parent / n for n in new_shard_names(base, len(shards), meta.checkpoint_id or "")]

    orders = facts_for(ps, model)  # dense weights after a channels-last flatten: stored channels-first

    def value_of(name: str) -> np.ndarray:
        value = ps[name].numpy()
        return orders[name].to_canonical(value) if name in orders else value

    pending: list[AtomicFile] = []
    placed: list[Path] = []  # new shards renamed to their (new, unused) names before the switch
    try:
        for target, names in zip(targets, shards):
            pending.append(AtomicFile(target))
            infos = plan_offsets((n, ps[n].dtype, ps[n].shape) for n in names)  # type: ignore[misc]
            write_file(pending[-1].file, infos, value_of, encoded)
            pending[-1].finish()
        result = base
        if sharded:
            result = index_path(base)
            weight_map = {n: t.name for t, names in zip(targets, shards) for n in names}
            pending.append(AtomicFile(result))
            pending[-1].file.write(encode_index(weight_map, encoded, sum(s for _, s in sizes)))
            pending[-1].finish()
            for shard in pending[:-1]:  # names no file had: nothing of the earlier checkpoint is touched
                if os.path.lexists(shard.path):
                    raise FileExistsError(errno.EEXIST, "a file appeared under a new shard's name", str(shard.path))
                shard.commit()
                placed.append(shard.path)
            fsync_dir(base.parent)
        pending[-1].commit()  # the switch: the new file, or the index naming the new shards
    except BaseException as exc:
        for p in pending:
            p.discard()
        leftover = []
        for new in placed:
            try:
                new.unlink()
            except OSError:
                leftover.append(new.name)
        if not isinstance(exc, OSError):
            raise
        raise CheckpointError(f"could not write the checkpoint {base}: {exc}. " + _after_failure(earlier, leftover)) from exc
    fsync_dir(base.parent)
    _remove_replaced(earlier, {p.path for p in pending})
    return result


def _after_failure(earlier: Earlier, leftover: list[str]) -> str:
    """What a failed save left, checked rather than assumed."""
    changed = earlier.changed()
    text = (
        "The earlier checkpoint there is unchanged (verified)."
        if not changed
        else f"Files of the earlier checkpoint changed meanwhile (not by this save): {[p.name for p in changed]}."
    )
    if leftover:
        text += f" New shard files could not be removed: {leftover}; delete them by hand."
    return text


def _remove_replaced(earlier: Earlier, kept: set[Path]) -> None:
    """Once the new checkpoint is in place, delete what it replaced: the index first, so that the
    folder never names shards that are gone; only files :func:`earlier_checkpoint` allows."""
    index_first = sorted(earlier.removable, key=lambda p: not p.name.endswith(".json"))
    for old in index_first:
        if old not in kept:
            with contextlib.suppress(OSError):
                old.unlink()


def _families(ps: ParamSet) -> dict[str, str]:
    """``{layer path: family}`` recorded so that a file can be matched by layer order later."""
    from ..porting.layers import family_of

    families: dict[str, str] = {}
    for name, p in ps.items():
        families.setdefault(name.rpartition(".")[0], family_of(p))
    return families


def _stored_names(ps: ParamSet) -> tuple[list[str], list[tuple[str, ...]]]:
    """Names to store (one per storage, model order) and the tie groups; refuses unsavable params."""
    problems = []
    for name, p in ps.items():
        if not p.materialized:
            problems.append(
                f"{name!r} has shape {format_shape(p.shape)}: run the model once or call "
                f"up.materialize(model, ...) so its values exist"
            )
            continue
        try:
            code_for(p.dtype)
        except CheckpointError as exc:
            problems.append(f"{name!r}: {exc}")
    if problems:
        raise CheckpointError("cannot save this model; nothing was written:\n  - " + "\n  - ".join(problems))
    groups = ps.storage_groups()
    aliases = {name for group in groups for name in group[1:]}
    return [name for name in ps if name not in aliases], groups


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
) -> CheckpointReport:
    """Load a checkpoint (a file, an index, or a folder holding one) into ``model``; all or nothing.

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
    """
    if rollback is not None:
        atomic = rollback
    if match != "name" or rename:
        return _load_matched(model, path, match=match, rename=rename, strict=strict, mmap=mmap, atomic=atomic,
                             example_input=example_input, dense_inputs=dense_inputs)
    orders = {"example_input": example_input, "dense_inputs": dense_inputs}
    kind = _native_kind(path)
    if kind is not None:
        return _load_native(model, path, kind, strict=strict, cast=cast, atomic=atomic, orders=orders)
    ps = params(model)
    source = str(path)
    with open_checkpoint(path, mmap=mmap) as ckpt:
        state = {name: ckpt.tensor(name) for name in ckpt.names}
        _into_model_order(ps, state, orders)
        _add_tie_aliases(ckpt.meta.ties, state)
        _fill_model_ties(ps, state)
        _check_shapes(ps, state, source)
        to_tie, not_tied = _plan_ties(ps, ckpt.meta.ties, strict, source)
        available = set(state)
        if not strict or available == set(ps):  # the load can succeed: map the data in bulk
            for name in ckpt.names:
                if name in ps:
                    ckpt.prefetch(name)
        converted = {
            name: f"{state[name].dtype} -> {ps[name].dtype}"
            for name in ps
            if name in state and state[name].dtype != ps[name].dtype
        }

        def make_ties() -> None:  # inside the write: a refused tie restores every value
            now = params(model)
            TiePlan.checked(model, [(now[s], now[t]) for s, t in to_tie]).apply()

        try:
            base = ps.load(state, strict=strict, cast=cast, atomic=atomic, finish=make_ties if to_tie else None)
        except LoadError as exc:
            raise CheckpointError(
                f"checkpoint {source} does not fit this {ps.backend or 'model'} model; nothing was "
                f"changed. {exc}\nHow to fix: load into the architecture the checkpoint was saved from; "
                f"strict=False loads the names both have, cast=True allows lossy dtype casts."
            ) from exc
        finally:
            state.clear()  # drop the views so the file can be unmapped
        files = [str(p) for p in ckpt.paths]
        meta = ckpt.meta
    tied: dict[str, list[str]] = {}
    for source_name, target in to_tie:
        tied.setdefault(source_name, [source_name]).append(target)
    return CheckpointReport(
        loaded=[name for name in ps if name in available],
        missing=base.missing,
        unexpected=base.unexpected,
        converted=converted,
        tied=[tuple(g) for g in tied.values()],
        not_tied=not_tied,
        backend=meta.backend,
        metadata=meta.user,
        files=files,
    )


def _load_matched(model: Any, path: str | os.PathLike[str], **options: Any) -> CheckpointReport:
    """A load matched like a port (``match``/``rename``): see :mod:`unifyparams.checkpoint.matched`."""
    from .matched import load_matched

    kind = _native_kind(path)
    native_state = None
    backend = None
    if kind is not None:
        from ..native import read

        if kind == "keras-h5":
            _load_native(model, path, kind, strict=True, cast=False)  # raises with the route to take
        ckpt = read(os.fspath(path), kind)
        native_state, backend = ckpt.expanded(), ckpt.backend
    report, meta = load_matched(model, path, native_state=native_state, **options)
    loaded = [row.destination for row in report.rows if not row.problem]
    return CheckpointReport(
        loaded=loaded, backend=meta.backend if meta is not None else backend,
        metadata=dict(meta.user) if meta is not None else {}, files=[os.fspath(path)], port=report,
    )


def _into_model_order(ps: ParamSet, state: dict[str, np.ndarray], orders: Mapping[str, Any] | None = None) -> None:
    """Files keep channels-first flatten order; a channels-last model reads its own order."""
    into_model_order(facts_for(ps, action="load", **dict(orders or {})), state)


def _native_kind(path: str | os.PathLike[str]) -> str | None:
    """``"torch"``/``"gluon"``/``"keras-h5"`` for a framework's own file, None for ours."""
    from ..native import format_for

    kind = format_for(os.fspath(path))
    return None if kind == "safetensors" else kind


def _load_native(
    model: Any, path: str | os.PathLike[str], kind: str, *, strict: bool, cast: bool, atomic: bool = True,
    orders: Mapping[str, Any] | None = None,
) -> CheckpointReport:
    """A PyTorch state dict (read with ``weights_only=True``) or a Gluon ``.params`` file, whose
    names map to canonical names without the model; all or nothing, like our format."""
    from ..native import read

    if kind == "keras-h5":
        raise CheckpointError(
            f"{path}: a Keras .weights.h5 file names tensors by Keras layer paths and keeps Keras's "
            f"layouts, which only its own model can map. Load it with model.load_weights(path) into the "
            f"Keras model, then up.save(model, 'model.safetensors') to make it portable."
        )
    ckpt = read(os.fspath(path), kind)
    ps = params(model)
    state = ckpt.expanded()
    _into_model_order(ps, state, orders)
    converted = {n: f"{state[n].dtype} -> {ps[n].dtype}" for n in ps if n in state and state[n].dtype != ps[n].dtype}
    try:
        base = ps.load(state, strict=strict, cast=cast, atomic=atomic)
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
        reason = head.adapter.missing_capabilities.get("tie")
        if reason is None and type(head.adapter).tie is Adapter.tie:
            reason = f"the {head.adapter.name!r} adapter does not implement tying"
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
