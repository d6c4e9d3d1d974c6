"""The collective save of a model sharded over processes: each rank writes only its own blocks.

Every rank calls ``up.save(model, path)`` (which comes here when the model's parameters are
sharded, :func:`unifyparams.distributed.collective_for`). Each rank writes one file,
``model-0000<r+1>-of-0000<n>.safetensors``, holding its own block of every sharded tensor under
the tensor's canonical name and canonical layout, with the blocks' offsets in the file's metadata
(``DCP_SHARDING_INFO``, the key PyTorch's distributed checkpoint uses, so ``dcp.load`` with its
``HuggingFaceStorageReader`` reads the folder). Rank 0 also writes the ordinary tensors (buffers
every rank holds whole). No tensor is gathered: a rank's extra memory is one block.

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
from collections.abc import Mapping
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
    earlier_checkpoint,
    encode_index,
    index_path,
    new_shard_names,
    remove_stale_temporaries,
)

Block = tuple[str, Region | None]  # (name, canonical region; None: the whole tensor)


def save_collective(
    ps: ParamSet, collective: Collective, base: Path, *, metadata: Mapping[str, str] | None,
    orders: Mapping[str, Any], progress: ProgressArg = None,
) -> Path:
    """Save a sharded model: every rank writes its blocks, rank 0 the index; see the module doc."""
    what = f"saving {base}"
    rank = collective.rank
    pending: AtomicFile | None = None
    placed: Path | None = None
    error: BaseException | None = None
    earlier = None
    blocks: list[Block] = []
    try:
        from .save import _families, stored_names

        stored, groups = stored_names(ps)
        sharded_orders = [n for n in stored if n in orders and region_of(ps[n]) is not None]
        if sharded_orders:
            raise CheckpointError(
                f"{sharded_orders[0]!r} is sharded and needs its flatten order converted, which a collective save "
                f"does not do block by block; save from an unsharded model"
            )
        blocks = _my_blocks(ps, stored, rank)
        meta = CheckpointMeta(backend=ps.backend or None, ties=groups, user=dict(metadata or {}), layers=_families(ps))
        meta.encode()  # refuses bad user metadata before anything is written
    except Exception as exc:
        error = exc
    _raise_settled(collective, what, error)

    # rank 0 names the files (new names: the earlier checkpoint stays whole until the index switch)
    names: list[str] | None = None
    checkpoint_id = uuid.uuid4().hex
    try:
        if rank == 0:
            remove_stale_temporaries(base)
            earlier = earlier_checkpoint(base)
            names = new_shard_names(base, collective.size, checkpoint_id)
    except Exception as exc:
        error = exc
    _raise_settled(collective, what, error)
    checkpoint_id, names = collective.all_gather((checkpoint_id, names))[0]
    meta.checkpoint_id = checkpoint_id
    assert names is not None
    mine = names[rank]

    # each rank writes its file under a temporary name
    manifest: list[tuple[str, tuple[int, ...] | None, tuple[int, ...], str, tuple[int, ...]]] = []
    try:
        if blocks:
            pending = AtomicFile(base.parent / mine)
            pending_file = pending
            offsets = {n: (r.offsets if r is not None else (0,) * ps[n].ndim) for n, r in blocks}
            shapes = {n: (r.shape if r is not None else tuple(int(d or 0) for d in ps[n].shape)) for n, r in blocks}
            infos = plan_offsets((n, ps[n].dtype, shapes[n]) for n, _ in blocks)  # type: ignore[misc]
            encoded = {**meta.encode(), **encode_offsets(offsets)}
            with resolve(progress if rank == 0 else False, "saving") as bar:
                if bar is not None and bar.active:
                    bar.start(sum(i.nbytes for i in infos))
                regions = dict(blocks)

                def value_of(name: str) -> np.ndarray:
                    value = _block_value(ps, name, regions[name], orders)
                    if bar is not None and bar.active:
                        bar.advance(value.nbytes)
                    return value

                write_file(pending_file.file, infos, value_of, encoded)
            pending.finish()
            for n, r in blocks:
                global_shape = r.global_shape if r is not None else None
                manifest.append((n, global_shape, offsets[n], str(ps[n].dtype), shapes[n]))
    except Exception as exc:
        error = exc
    _raise_settled(collective, what, error, cleanup=lambda: pending.discard() if pending else None)
    manifests = collective.all_gather((mine if blocks else None, manifest))

    # rank 0 checks that the blocks tile every tensor; then every rank puts its file in place
    try:
        weight_map, slices = _index_entries(manifests) if rank == 0 else ({}, {})
        if pending is not None:
            if (base.parent / mine).exists():
                raise CheckpointError(f"a file appeared under the new shard's name {mine} while saving")
            pending.commit()
            placed = pending.path
    except Exception as exc:
        error = exc

    def drop_mine() -> None:
        if pending is not None:
            pending.discard()
        if placed is not None:
            with contextlib.suppress(OSError):
                placed.unlink()

    _raise_settled(collective, what, error, cleanup=drop_mine)

    # the switch: rank 0 writes the index, then removes what the new checkpoint replaced
    index = index_path(base)
    try:
        if rank == 0:
            fsync_dir(base.parent)
            total = sum(int(np.prod(s)) * np.dtype(d).itemsize for _, m in manifests for _, _, _, d, s in m)
            with atomic_write(index) as out:
                out.write(encode_index(weight_map, meta.encode(), total, slices))
    except Exception as exc:
        left = "" if earlier is None or earlier.changed() else " The earlier checkpoint there is unchanged (verified)."
        error = CheckpointError(f"writing the index {index} failed: {exc}.{left}")
    _raise_settled(collective, what, error, cleanup=drop_mine)
    if rank == 0 and earlier is not None:
        from .save import _remove_replaced

        _remove_replaced(earlier, {index, *(base.parent / f for f, _ in manifests if f)})
    collective.barrier()  # every rank returns once the checkpoint is complete on disk
    return index


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
    p = ps[name]
    if region is None:
        value = p.numpy()
        return orders[name].to_canonical(value) if name in orders else value  # type: ignore[no-any-return]
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


def _raise_settled(collective: Collective, what: str, error: BaseException | None, cleanup: Any = None) -> None:
    """Every rank's outcome of one step; if any failed, clean up here and raise the same error."""
    common = settle(collective, what, error)
    if common is None:
        return
    if cleanup is not None:
        cleanup()
    if error is not None:
        raise common from error
    raise common


__all__ = ["save_collective"]
