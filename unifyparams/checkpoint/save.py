"""Saving any model as a portable checkpoint: :func:`save`, planned, written, then switched in.

The job is in three steps: :func:`plan_save` (which names are stored, in which shard, with which
metadata; refuses what cannot be saved before anything is written), :func:`write_shards`
(temporary files, streamed one tensor at a time) and :func:`switch_in` (the renames that make
the new checkpoint the one on disk, then the removal of the files it replaced).

>>> plan = SavePlan(Path("m.safetensors"), [["a", "b"]], [("a", 8), ("b", 4)], {}, [Path("m.safetensors")])
>>> plan.sharded, plan.total_size
(False, 12)
"""

from __future__ import annotations

import contextlib
import errno
import os
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..access import params
from ..capabilities import PortingFacts
from ..distributed import Collective, collective_for
from ..errors import CheckpointError
from ..layouts import Transpose
from ..param import format_shape
from ..paramset import ParamSet
from ..progress import Progress, ProgressArg, resolve
from .atomic import AtomicFile, fsync_dir
from .dtypes import code_for, stored_nbytes
from .format import plan_offsets, write_file
from .metadata import CheckpointMeta
from .order import facts_for
from .shards import (
    DEFAULT_NAME,
    Earlier,
    earlier_checkpoint,
    encode_index,
    index_path,
    new_shard_names,
    parse_size,
    remove_stale_temporaries,
    split,
)


@dataclass
class SavePlan:
    """What one save writes: shard name lists, their sizes, the encoded metadata, the target files."""

    base: Path
    shards: list[list[str]]
    sizes: list[tuple[str, int]]
    metadata: dict[str, str]
    targets: list[Path]

    @property
    def sharded(self) -> bool:
        """True when the checkpoint is split over several files plus an index."""
        return len(self.shards) > 1

    @property
    def total_size(self) -> int:
        """Bytes of every stored tensor (tied tensors once)."""
        return sum(size for _, size in self.sizes)


def save(
    model: Any,
    path: str | os.PathLike[str],
    *,
    max_shard_size: int | str | None = None,
    metadata: Mapping[str, str] | None = None,
    format: str = "unifyparams",
    progress: ProgressArg = None,
) -> Path:
    """Save every parameter of ``model`` (any backend) to ``path``, atomically.

    ``format="transformers"`` writes a Hugging Face ``save_pretrained`` folder at ``path``
    (``config.json`` + ``model.safetensors``, sharded with an index beyond ``max_shard_size``)
    through the model's family recipe, which ``transformers.AutoModel.from_pretrained`` loads;
    it returns the folder.

    Tensors are streamed into the file one at a time. With ``max_shard_size`` (bytes, or
    ``"5GB"``/``"500MiB"``) a larger model is split into ``model-00001-of-0000N.safetensors``
    files plus ``model.safetensors.index.json``. ``metadata`` (str to str) is stored in the file.
    Returns the path to pass to :func:`~unifyparams.checkpoint.load`: the file, or the index.

    ``progress``: ``True`` a progress bar (bytes, rate, time left), ``False`` nothing, a
    ``callback(done, total)`` (bytes written, once per tensor and at the end); ``None`` (the
    default) a bar only on a terminal, outside CI, for a save still running after half a second
    (:mod:`unifyparams.progress`).

    A model sharded over processes (FSDP2, DTensor) is saved collectively: every rank calls
    ``save``, each writes its own blocks into its own file, and the index is written once every
    rank has finished (:mod:`unifyparams.checkpoint.collective`); it returns the index.

    >>> up.save(net, "model.safetensors", metadata={"step": "100"})
    PosixPath('model.safetensors')
    """
    if format == "transformers":
        return _save_transformers(model, path, max_shard_size, metadata, progress)
    if format != "unifyparams":
        raise CheckpointError(
            f"save() writes format='unifyparams' (canonical safetensors) or format='transformers' (a Hugging Face "
            f"folder); received format={format!r}"
        )
    ps = params(model)
    collective = collective_for(ps.values())
    if collective is not None:  # sharded over processes: every rank writes its own blocks
        return _save_collective(model, ps, collective, path, max_shard_size, metadata, progress)
    plan = plan_save(ps, _base_path(path), max_shard_size, metadata)
    remove_stale_temporaries(plan.base)  # left by saves of this checkpoint that were killed mid-write
    earlier = earlier_checkpoint(plan.base)
    orders = facts_for(ps, model)  # dense weights after a channels-last flatten: stored channels-first

    def value_of(name: str) -> np.ndarray:
        return stored_value(ps[name], orders)

    with resolve(progress, "saving") as bar:
        return switch_in(plan, earlier, lambda: write_shards(plan, ps, value_of, progress=bar))


def _save_transformers(model: Any, path: str | os.PathLike[str], max_shard_size: int | str | None,
                       metadata: Mapping[str, str] | None, progress: ProgressArg) -> Path:
    """``save(..., format="transformers")``: a Hugging Face folder, from one process only."""
    from .transformers_folder import save_transformers_folder

    sharded_over = collective_for(params(model).values())
    if sharded_over is not None:
        raise CheckpointError(
            f"format='transformers' writes one folder from one process; this model is sharded over "
            f"{sharded_over.size} processes. Save it with format='unifyparams' (every rank writes its own "
            f"blocks), then load that checkpoint into an unsharded model in one process and save the folder there"
        )
    return save_transformers_folder(model, path, max_shard_size=max_shard_size, metadata=metadata,
                                    progress=progress)


def _save_collective(model: Any, ps: ParamSet, collective: Collective, path: str | os.PathLike[str],
                     max_shard_size: int | str | None, metadata: Mapping[str, str] | None,
                     progress: ProgressArg) -> Path:
    """A model sharded over processes: every rank writes its own blocks into its own file."""
    from .collective import save_collective

    if max_shard_size is not None:
        raise CheckpointError(
            f"max_shard_size={max_shard_size!r}: a model sharded over {collective.size} processes is saved as one "
            f"file per rank (each rank's own blocks); save without max_shard_size"
        )
    return save_collective(ps, collective, _base_path(path), metadata=metadata, orders=facts_for(ps, model),
                           progress=progress)


def stored_value(p: Any, orders: Mapping[str, Any]) -> np.ndarray:
    """What a file stores for the whole parameter ``p``: canonical layout, and a dense weight read
    after a channels-last flatten in channels-first order (``orders``, from :func:`facts_for`)."""
    if p.name in orders:
        return orders[p.name].to_canonical(p.numpy())  # type: ignore[no-any-return]
    return canonical_copy(p)


def canonical_copy(p: Any) -> np.ndarray:
    """``p``'s canonical values for writing to a file: a transposed layout is transposed by the
    framework's own kernel where it reads its memory in place (``read_permuted``) or where the adapter
    has a faster ``transpose_copy`` than the core's; otherwise the parameter's own memory where its
    adapter lends it (:meth:`~unifyparams.adapter.Adapter.borrow`: no copy of a tensor the framework
    would read into new memory, as MXNet's do) or ``p.numpy()``, which the writer transposes a chunk
    at a time with the core's tiled copy."""
    layout = p.layout
    if isinstance(layout, Transpose):
        adapter = p.adapter
        native_shape = tuple(int(d) for d in p.native_shape)
        fast = adapter.read_permuted(p.native, native_shape, layout.perm)
        if fast is not None:
            return fast  # type: ignore[no-any-return]
        if type(adapter).transpose_copy is not PortingFacts.transpose_copy:
            return adapter.transpose_copy(adapter.read(p.native), layout.perm)  # type: ignore[no-any-return]
    borrowed = p.adapter.borrow(p.native)
    if borrowed is not None:
        return layout.to_canonical(borrowed)  # type: ignore[no-any-return]
    return p.numpy()  # type: ignore[no-any-return]


def _base_path(path: str | os.PathLike[str]) -> Path:
    """The ``.safetensors`` path a save writes (a folder gets ``model.safetensors``)."""
    base = Path(path)
    if base.is_dir():
        base = base / DEFAULT_NAME
    if base.name.endswith(".json"):
        raise CheckpointError(
            f"save() takes the checkpoint's .safetensors path; received {base.name!r}. The index of a "
            f"sharded checkpoint is written beside it (pass 'model.safetensors', get 'model.safetensors.index.json')."
        )
    return base


def plan_save(
    ps: ParamSet, base: Path, max_shard_size: int | str | None, metadata: Mapping[str, str] | None,
    *, raw_metadata: Mapping[str, str] | None = None,
) -> SavePlan:
    """Decide what a save of ``ps`` writes; refuses unsavable parameters before anything is written.

    ``raw_metadata``: the file's metadata exactly (another library's file, as a ``transformers``
    folder's), instead of unifyparams' own.
    """
    stored, groups = stored_names(ps)
    sizes = [(name, stored_nbytes(ps[name].dtype, ps[name].shape, name)) for name in stored]  # type: ignore[arg-type]
    shards = split(sizes, parse_size(max_shard_size)) if max_shard_size is not None else [stored]
    meta = CheckpointMeta(backend=ps.backend or None, ties=groups, user=dict(metadata or {}), layers=_families(ps))
    targets = [base]
    if len(shards) > 1:  # new names: the earlier checkpoint stays whole until the new index replaces its own
        meta.checkpoint_id = uuid.uuid4().hex
        targets = [base.parent / n for n in new_shard_names(base, len(shards), meta.checkpoint_id)]
    encoded = meta.encode() if raw_metadata is None else dict(raw_metadata)
    return SavePlan(base, shards, sizes, encoded, targets)


def write_shards(
    plan: SavePlan, ps: ParamSet, value_of: Callable[[str], np.ndarray], *, progress: Progress | None = None
) -> list[AtomicFile]:
    """Write every shard (and the index of a sharded save) to temporary files, finished, not committed.

    Files are appended to the list as they are opened, so that a failure part way can discard them.
    ``progress`` is started with :attr:`SavePlan.total_size` and advanced by each tensor's bytes once
    they are written (the caller finishes it).
    """
    pending: list[AtomicFile] = []
    counted = _Counted(value_of, plan, progress) if progress is not None and progress.active else None
    try:
        for target, names in zip(plan.targets, plan.shards):
            pending.append(AtomicFile(target))
            infos = plan_offsets((n, ps[n].dtype, ps[n].shape) for n in names)  # type: ignore[misc]
            write_file(pending[-1].file, infos, counted if counted is not None else value_of, plan.metadata)
            if counted is not None:
                counted.flush()  # the shard's last tensor is written
            pending[-1].finish()
        if plan.sharded:
            weight_map = {n: t.name for t, names in zip(plan.targets, plan.shards) for n in names}
            pending.append(AtomicFile(index_path(plan.base)))
            pending[-1].file.write(encode_index(weight_map, plan.metadata, plan.total_size))
            pending[-1].finish()
    except BaseException:
        for p in pending:
            p.discard()
        raise
    return pending


class _Counted:
    """``value_of`` that reports progress: a tensor's bytes count once the writer asks for the next
    tensor (or the shard is done), i.e. once they are written, not when they are read."""

    def __init__(self, value_of: Callable[[str], np.ndarray], plan: SavePlan, progress: Progress):
        self.value_of = value_of
        self.sizes = dict(plan.sizes)
        self.progress = progress
        self.waiting = 0
        progress.start(plan.total_size)

    def __call__(self, name: str) -> np.ndarray:
        self.flush()
        value = self.value_of(name)
        self.waiting = self.sizes.get(name, 0)
        return value

    def flush(self) -> None:
        if self.waiting:
            waiting, self.waiting = self.waiting, 0
            self.progress.advance(waiting)


def switch_in(plan: SavePlan, earlier: Earlier, write: Callable[[], list[AtomicFile]]) -> Path:
    """Run ``write``, then make its files the checkpoint: new shards first, the switch last.

    A failure leaves the earlier checkpoint as it was (checked, and said in the error).
    """
    pending: list[AtomicFile] = []
    placed: list[Path] = []  # new shards renamed to their (new, unused) names before the switch
    try:
        pending = write()
        for shard in pending[:-1]:  # names no file had: nothing of the earlier checkpoint is touched
            if os.path.lexists(shard.path):
                raise FileExistsError(errno.EEXIST, "a file appeared under a new shard's name", str(shard.path))
            shard.commit()
            placed.append(shard.path)
        if plan.sharded:
            fsync_dir(plan.base.parent)
        pending[-1].commit()  # the switch: the new file, or the index naming the new shards
    except BaseException as exc:
        _undo(pending, placed, plan.base, earlier, exc)
        raise
    fsync_dir(plan.base.parent)
    _remove_replaced(earlier, {p.path for p in pending})
    return pending[-1].path


def _undo(pending: list[AtomicFile], placed: list[Path], base: Path, earlier: Earlier, exc: BaseException) -> None:
    """Discard what a failed save wrote; an OSError becomes a CheckpointError saying what is left."""
    for p in pending:
        p.discard()
    leftover = []
    for new in placed:
        try:
            new.unlink()
        except OSError:
            leftover.append(new.name)
    if isinstance(exc, OSError):
        raise CheckpointError(f"could not write the checkpoint {base}: {exc}. " + _after_failure(earlier, leftover)) from exc


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


def stored_names(ps: ParamSet) -> tuple[list[str], list[tuple[str, ...]]]:
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
