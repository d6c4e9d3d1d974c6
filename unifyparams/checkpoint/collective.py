"""The collective save of a model sharded over processes: each rank writes only its own blocks.

Every rank calls ``up.save(model, path)`` (which comes here when the model's parameters are
sharded, :func:`unifyparams.distributed.collective_for`). Each rank writes one file,
``model-0000<r+1>-of-0000<n>.safetensors``, holding its own block of every sharded tensor under
the tensor's canonical name and canonical layout, with the blocks' offsets in the file's metadata
(``DCP_SHARDING_INFO``, the key PyTorch's distributed checkpoint uses, so ``dcp.load`` with its
``HuggingFaceStorageReader`` reads the folder). Rank 0 also writes the ordinary tensors (buffers
every rank holds whole). No tensor is gathered: a rank's extra memory is one block (two while the
next is prepared during a write).

Then, once every rank has finished, rank 0 writes ``model.safetensors.index.json``, the switch
that makes the new checkpoint the one on disk, listing whole tensors in ``weight_map`` and each
tensor in pieces with its global shape and files under ``slices``. The ranks agree after each
step: a failure anywhere discards every rank's new files and raises the same error on every
rank; the earlier checkpoint at that path stays as it was until the index replaces it.

One process loads the result into any backend (``up.load(model, index)``), and a model sharded
over any number of ranks reads only its own byte ranges (:class:`~unifyparams.checkpoint.pieces.PiecedTensor`).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..distributed import Collective, Region, region_of, settle
from ..errors import CheckpointError
from ..paramset import ParamSet
from ..progress import ProgressArg, resolve
from .atomic import AtomicFile, atomic_write, fsync_dir
from .format import plan_offsets, write_file
from .metadata import CheckpointMeta
from .pieces import check_tiling, encode_offsets
from .shards import (
    Earlier,
    earlier_checkpoint,
    encode_index,
    index_path,
    new_shard_names,
    remove_stale_temporaries,
)

Block = tuple[str, Region | None]  # (name, canonical region; None: the whole tensor)
#: One stored block as the ranks tell rank 0: name, global shape (None: whole), offsets, dtype, shape.
Entry = tuple[str, tuple[int, ...] | None, tuple[int, ...], str, tuple[int, ...]]


def save_collective(
    ps: ParamSet, collective: Collective, base: Path, *, metadata: Mapping[str, str] | None,
    orders: Mapping[str, Any], progress: ProgressArg = None,
) -> Path:
    """Save a sharded model: every rank writes its blocks, rank 0 the index; see the module doc."""
    return _CollectiveSave(ps, collective, base, orders).run(metadata, progress)


class _CollectiveSave:
    """One collective save, step by step; every step ends with the ranks agreeing on its outcome."""

    def __init__(self, ps: ParamSet, collective: Collective, base: Path, orders: Mapping[str, Any]):
        self.ps, self.collective, self.base, self.orders = ps, collective, base, orders
        self.rank = collective.rank
        self.pending: AtomicFile | None = None  # this rank's file, before it is put in place
        self.placed: Path | None = None  # ... and after
        self.earlier: Earlier | None = None  # on rank 0: the checkpoint this save replaces

    def run(self, metadata: Mapping[str, str] | None, progress: ProgressArg) -> Path:
        meta, blocks = self._step(lambda: self._plan(metadata))
        proposal = self._step(self._propose_names)  # no collective inside a step: a failing rank must reach settle
        checkpoint_id, names = self.collective.all_gather(proposal)[0]
        meta.checkpoint_id = checkpoint_id
        file_name = str(names[self.rank])
        entries = self._step(lambda: self._write_own_file(file_name, blocks, meta, progress), self._drop)
        manifests = self.collective.all_gather((file_name if blocks else None, entries))
        weight_map, slices = self._step(lambda: self._commit_own_file(manifests), self._drop)
        index = index_path(self.base)
        self._step(lambda: self._write_index(index, manifests, weight_map, slices, meta), self._drop)
        if self.rank == 0 and self.earlier is not None:
            from .save import _remove_replaced

            _remove_replaced(self.earlier, {index, *(self.base.parent / f for f, _ in manifests if f)})
        self.collective.barrier()  # every rank returns once the checkpoint is complete on disk
        return index

    def _step(self, work: Callable[[], Any], cleanup: Callable[[], None] | None = None) -> Any:
        """``work()`` on this rank (local work only: no collective, so that a rank failing in it meets
        the others here), then every rank's outcome: if any failed, clean up and raise the same error."""
        error: BaseException | None = None
        result = None
        try:
            result = work()
        except Exception as exc:
            error = exc
        common = settle(self.collective, f"saving {self.base}", error)
        if common is None:
            return result
        if cleanup is not None:
            cleanup()
        if error is not None:
            raise common from error
        raise common

    def _plan(self, metadata: Mapping[str, str] | None) -> tuple[CheckpointMeta, list[Block]]:
        """What this rank stores, and the metadata; refuses what cannot be saved before any write."""
        from .save import _families, stored_names

        ps = self.ps
        stored, groups = stored_names(ps)
        reordered = [n for n in stored if n in self.orders and region_of(ps[n]) is not None]
        if reordered:
            raise CheckpointError(
                f"{reordered[0]!r} is sharded and needs its flatten order converted, which a collective save "
                f"does not do block by block; save from an unsharded model"
            )
        meta = CheckpointMeta(backend=ps.backend or None, ties=groups, user=dict(metadata or {}), layers=_families(ps))
        meta.encode()  # refuses bad user metadata before anything is written
        return meta, _my_blocks(ps, stored, self.rank)

    def _propose_names(self) -> tuple[str, list[str]] | None:
        """On rank 0: the save's id and every rank's file name (new names, so nothing of the earlier
        checkpoint is replaced before the index); None on the other ranks."""
        if self.rank != 0:
            return None
        remove_stale_temporaries(self.base)
        self.earlier = earlier_checkpoint(self.base)
        checkpoint_id = uuid.uuid4().hex
        return checkpoint_id, new_shard_names(self.base, self.collective.size, checkpoint_id)

    def _write_own_file(
        self, file_name: str, blocks: list[Block], meta: CheckpointMeta, progress: ProgressArg,
    ) -> list[Entry]:
        """This rank's blocks into its file, under a temporary name (none when it stores nothing)."""
        if not blocks:
            return []
        ps = self.ps
        offsets = {n: (r.offsets if r is not None else (0,) * ps[n].ndim) for n, r in blocks}
        shapes = {n: (r.shape if r is not None else tuple(int(d or 0) for d in ps[n].shape)) for n, r in blocks}
        infos = plan_offsets((n, ps[n].dtype, shapes[n]) for n, _ in blocks)  # type: ignore[misc]
        regions = dict(blocks)
        self.pending = pending = AtomicFile(self.base.parent / file_name)
        with resolve(progress if self.rank == 0 else False, "saving") as bar:
            if bar is not None and bar.active:
                bar.start(sum(i.nbytes for i in infos))

            def value_of(name: str) -> np.ndarray:
                value = _block_value(ps, name, regions[name], self.orders)
                if bar is not None and bar.active:
                    bar.advance(value.nbytes)
                return value

            write_file(pending.file, infos, value_of, {**meta.encode(), **encode_offsets(offsets)})
        pending.finish()
        return [(n, r.global_shape if r is not None else None, offsets[n], str(ps[n].dtype), shapes[n])
                for n, r in blocks]

    def _commit_own_file(self, manifests: list[Any]) -> tuple[dict[str, str], dict[str, Any]]:
        """Rank 0 checks that the blocks tile every tensor; every rank puts its file in place."""
        entries = _index_entries(manifests) if self.rank == 0 else ({}, {})
        if self.pending is not None:
            if self.pending.path.exists():
                raise CheckpointError(f"a file appeared under the new shard's name {self.pending.path.name} while saving")
            self.pending.commit()
            self.placed = self.pending.path
        return entries

    def _write_index(
        self, index: Path, manifests: list[Any], weight_map: dict[str, str], slices: dict[str, Any],
        meta: CheckpointMeta,
    ) -> None:
        """The switch, on rank 0: the index naming every rank's file, written atomically."""
        if self.rank != 0:
            return
        try:
            fsync_dir(self.base.parent)
            total = sum(int(np.prod(s)) * np.dtype(d).itemsize for _, m in manifests for _, _, _, d, s in m)
            with atomic_write(index) as out:
                out.write(encode_index(weight_map, meta.encode(), total, slices))
        except Exception as exc:
            kept = self.earlier is None or not self.earlier.changed()
            raise CheckpointError(
                f"writing the index {index} failed: {exc}." + (" The earlier checkpoint there is unchanged (verified)."
                                                              if kept and self.earlier is not None else "")
            ) from exc

    def _drop(self) -> None:
        """Remove this rank's new file, whether still temporary or already in place."""
        if self.pending is not None:
            self.pending.discard()
        if self.placed is not None:
            with contextlib.suppress(OSError):
                self.placed.unlink()


def _my_blocks(ps: ParamSet, stored: list[str], rank: int) -> list[Block]:
    """What this rank stores: its owned, non-empty block of each sharded tensor (canonical), and
    on rank 0 the ordinary tensors whole."""
    blocks: list[Block] = []
    for name in stored:
        p = ps[name]
        region = region_of(p)
        if region is None:
            if rank == 0:
                blocks.append((name, None))
            continue
        canonical = region.to_canonical(p.layout)
        if canonical.owner and not canonical.empty:
            blocks.append((name, canonical))
    return blocks


def _block_value(ps: ParamSet, name: str, region: Region | None, orders: Mapping[str, Any]) -> np.ndarray:
    """This rank's block of ``name`` (canonical), or the whole tensor as a single-process save stores it."""
    from .save import stored_value

    p = ps[name]
    if region is None:
        return stored_value(p, orders)
    return p.layout.to_canonical(p.adapter.read_region(p.native))


def _index_entries(manifests: list[Any]) -> tuple[dict[str, str], dict[str, Any]]:
    """``(weight_map, slices)`` from every rank's ``(file, blocks)``; the blocks must tile."""
    weight_map: dict[str, str] = {}
    pieces: dict[str, tuple[tuple[int, ...], list[tuple[str, Any, Any]]]] = {}
    for file, blocks in manifests:
        for name, global_shape, offsets, _, shape in blocks:
            if global_shape is None:
                weight_map[name] = file
            else:
                pieces.setdefault(name, (tuple(global_shape), []))[1].append((file, tuple(offsets), tuple(shape)))
    slices: dict[str, Any] = {}
    for name, (shape, where) in pieces.items():
        check_tiling(name, shape, [(o, s) for _, o, s in where])
        slices[name] = {"shape": list(shape), "files": [f for f, _, _ in where]}
    return weight_map, slices


__all__ = ["save_collective"]
