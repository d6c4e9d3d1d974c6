"""Parameters sharded by PyTorch ``DTensor`` (FSDP2's ``fully_shard``, ``distribute_tensor``).

A DTensor parameter is seen through its *global* value on every rank: ``up.params(model)`` gives
the global shape (``DTensor.shape``), ``ps.count()`` counts each global element once, and
``p.numpy()`` returns the full global value (``DTensor.full_tensor()``, a **collective**: every
rank must read the same parameters in the same order). Writes take global values and each rank
copies only its own slice into ``to_local()`` (what ``distribute_tensor`` would put there), so
``up.initialize(model, seed=S)`` gives the same global values on any mesh as on an unsharded model.

Every write to a DTensor parameter is a collective too: before anything is written each rank's
``check_writable`` verdict is agreed with an ``all_reduce`` (a rank that refuses makes every rank
refuse, nothing written anywhere), and atomic writes snapshot the global value (``full_tensor``).
Known limit: a failure that happens on one rank only *while* writing (after that agreement) makes
that rank restore and verify alone, which reads globally, and the ranks fall out of step.

Helpers here: :func:`placement` (mesh and placements of a parameter), :func:`local` (this rank's
shard and its offset in the global tensor), :func:`save` (every rank calls it; rank 0 writes the
file, gathering one tensor at a time) and :func:`load` (every rank calls it; checks the file on
every rank first, and all ranks refuse together).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unifyparams.errors import CheckpointError

from . import tensors


def is_dtensor(tensor: Any) -> bool:
    """True for a ``torch.distributed.tensor.DTensor`` (none exists until that module is imported)."""
    return tensors._is_dtensor(tensor)


# --- where this rank's shard sits --------------------------------------------------------------
def local_shape_and_offsets(tensor: Any) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``(local shape, offsets)`` of this rank's shard in the global tensor.

    ``Shard(dim)`` placements follow ``torch.chunk`` (chunks of ``ceil(n / k)``, the last ones
    shorter or empty), over meshes of any rank; ``Replicate`` leaves the dimension whole.
    ``Partial`` placements (pending reductions) are refused.
    """
    shape = [int(d) for d in tensor.shape]
    offsets = [0] * len(shape)
    mesh = tensor.device_mesh
    coordinate = mesh.get_coordinate()
    if coordinate is None:  # this rank is not in the mesh: it holds nothing
        return tuple(0 for _ in shape), tuple(offsets)
    for mesh_dim, placement in enumerate(tensor.placements):
        if placement.is_replicate():
            continue
        if not placement.is_shard():
            raise ValueError(f"placement {placement} is not supported (only Shard and Replicate)")
        dim = placement.dim if placement.dim >= 0 else placement.dim + len(shape)
        count = mesh.size(mesh_dim)
        chunk = -(-shape[dim] // count) if shape[dim] else 0
        start = min(chunk * coordinate[mesh_dim], shape[dim])
        stop = min(start + chunk, shape[dim])
        offsets[dim] += start
        shape[dim] = stop - start
    return tuple(shape), tuple(offsets)


def _slices(tensor: Any) -> tuple[slice, ...]:
    shape, offsets = local_shape_and_offsets(tensor)
    return tuple(slice(o, o + n) for o, n in zip(offsets, shape))


@dataclass(frozen=True)
class Placement:
    """How a parameter is laid out over ranks: mesh shape, one placement per mesh dimension, and
    this rank's shard (its shape and offsets in the global tensor)."""

    mesh_shape: tuple[int, ...]
    #: ``repr`` of each of ``DTensor.placements`` (``"Shard(dim=0)"``, ``"Replicate()"``).
    placements: tuple[str, ...]
    #: The tensor dimension each mesh dimension shards (None: not sharded there).
    shard_dims: tuple[int | None, ...]
    local_shape: tuple[int, ...]
    offsets: tuple[int, ...]

    def __str__(self) -> str:
        return f"{', '.join(self.placements)} over mesh {self.mesh_shape}; this rank {self.local_shape} at {self.offsets}"


def _native(p: Any) -> Any:
    return getattr(p, "native", p)


def placement(p: Any) -> Placement | None:
    """The :class:`Placement` of a Param (or tensor); None for an ordinary, unsharded tensor."""
    tensor = _native(p)
    if not is_dtensor(tensor):
        return None
    shape, offsets = local_shape_and_offsets(tensor)
    dims = tuple(int(pl.dim) if pl.is_shard() else None for pl in tensor.placements)
    return Placement(tuple(int(d) for d in tensor.device_mesh.shape), tuple(repr(pl) for pl in tensor.placements),
                     dims, shape, offsets)


def local(p: Any) -> tuple[np.ndarray, tuple[int, ...]]:
    """``(this rank's shard as NumPy, its offsets in the global tensor)`` in the *native* layout
    (PyTorch's: canonical except a transposed linear's weight); no collective. An unsharded tensor
    gives its whole value at offset zero."""
    tensor = _native(p)
    if not is_dtensor(tensor):
        return np.array(tensors.tensor_to_numpy(tensor), copy=True), (0,) * tensor.dim()
    shape, offsets = local_shape_and_offsets(tensor)
    value = np.array(tensors.tensor_to_numpy(tensor.to_local()), copy=True)
    if value.shape != shape:  # padded local storage: keep the real elements
        value = value[tuple(slice(0, n) for n in shape)]
    return value, offsets


# --- the adapter's primitives for DTensors -----------------------------------------------------
def read(tensor: Any) -> np.ndarray:
    """The full global value (``full_tensor()``: a collective). During :func:`save` on rank 0 the
    other ranks are told which parameter to gather."""
    if _serving is not None:
        _serving.announce(tensor)
    return tensors.tensor_to_numpy(tensor.full_tensor())


def write(tensor: Any, value: np.ndarray) -> None:
    """Copy this rank's slice of the global ``value`` into the local shard (no collective)."""
    part = value[_slices(tensor)]
    source = tensors.numpy_to_tensor(np.ascontiguousarray(part))
    target = tensor.to_local()
    with torch.no_grad():
        if tuple(target.shape) != tuple(part.shape):
            target = target[tuple(slice(0, n) for n in part.shape)]
        target.copy_(source)


def agree(reason: str | None) -> str | None:
    """Every rank's verdict on writing one DTensor parameter: a refusal anywhere is a refusal here."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return reason
    flag = torch.tensor([1 if reason else 0], dtype=torch.int64)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    if reason or not int(flag.item()):
        return reason
    return "another rank refuses to write it (every rank writes its shard or none does)"


# --- checkpoints ---------------------------------------------------------------------------------
_DONE, _FAILED = -1, -2


class _Server:
    """On rank 0 during :func:`save`: before each gather, broadcast which DTensor to gather."""

    def __init__(self, index: dict[int, int]):
        self.index = index

    def announce(self, tensor: Any) -> None:
        _broadcast_int(self.index[id(tensor)])


_serving: _Server | None = None


def _broadcast_int(value: int) -> int:
    import torch.distributed as dist

    box = torch.tensor([value], dtype=torch.int64)
    dist.broadcast(box, src=0)
    return int(box.item())


def _dtensors(model: Any) -> list[Any]:
    """The model's DTensor parameters, once each, in walk order (the same on every rank)."""
    from .structure import walk

    seen: dict[int, Any] = {}
    for slot in walk(model):
        if is_dtensor(slot.native):
            seen.setdefault(id(slot.native), slot.native)
    return list(seen.values())


def save(model: Any, path: str | os.PathLike[str], **options: Any) -> Path:
    """``up.save`` for a model with DTensor parameters: every rank calls it, rank 0 writes the file.

    Rank 0 runs ``up.save``; each DTensor it reads is gathered whole (``full_tensor``) one at a
    time, so the extra memory is one tensor, not the model, with the other ranks taking part in
    each gather as rank 0 announces it. The file is an ordinary checkpoint that one process loads
    into any backend. Every rank returns the path or raises the same error. (Next step: each rank
    writes its own slices, without gathering.)
    """
    import torch.distributed as dist

    global _serving
    import unifyparams as up

    if not dist.is_initialized() or dist.get_world_size() == 1:
        return up.save(model, path, **options)
    targets = _dtensors(model)
    error = ""
    result: Path | None = None
    if dist.get_rank() == 0:
        _serving = _Server({id(t): i for i, t in enumerate(targets)})
        try:
            result = up.save(model, path, **options)
        except Exception as exc:  # told to every rank below
            error = f"{type(exc).__name__}: {exc}"
        finally:
            _serving = None
        _broadcast_int(_FAILED if error else _DONE)
    else:
        while True:
            index = _broadcast_int(0)
            if index < 0:
                break
            targets[index].full_tensor()  # rank 0 keeps the gathered value
    box: list[Any] = [error, str(result) if result is not None else None]
    dist.broadcast_object_list(box, src=0)
    if box[0]:
        raise CheckpointError(f"saving the sharded model failed on rank 0: {box[0]}")
    return Path(box[1])


def load(model: Any, path: str | os.PathLike[str], **options: Any) -> Any:
    """``up.load`` for a model with DTensor parameters: every rank calls it, reads the file (mapped)
    and writes only its own slices.

    Each rank first checks that it can open the file and that its names and shapes fit; the
    verdicts are gathered, and if any rank fails every rank raises the same error before anything
    is written. The writes themselves agree once more per parameter (see :func:`agree`).
    """
    import torch.distributed as dist

    import unifyparams as up

    if not dist.is_initialized() or dist.get_world_size() == 1:
        return up.load(model, path, **options)
    problem = _preflight(model, path, options)
    verdicts: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(verdicts, problem)
    failed = [(rank, why) for rank, why in enumerate(verdicts) if why]
    if failed:
        rank, why = failed[0]
        raise CheckpointError(f"loading {path} refused on rank {rank}, so no rank changed anything: {why}")
    return up.load(model, path, **options)


def _preflight(model: Any, path: str | os.PathLike[str], options: dict[str, Any]) -> str | None:
    """Why this rank cannot load ``path``, or None: a unifyparams (safetensors) checkpoint is opened
    and its names (``strict`` loads by name) and shapes compared; another file (``.pt``, ``.params``)
    is only checked to be readable here (``up.load`` checks the rest, the same on every rank)."""
    try:
        import unifyparams as up
        from unifyparams.checkpoint.shards import open_checkpoint

        where = Path(path)
        if not where.is_dir() and where.suffix not in (".safetensors", ".json"):
            with open(where, "rb"):
                return None
        ps = up.params(model)
        by_name = options.get("match", "name") == "name" and not options.get("rename")
        with open_checkpoint(path, mmap=options.get("mmap", True)) as ckpt:
            names = set(ckpt.names)
            if not by_name:
                return None
            if options.get("strict", True) and names != set(ps):
                return (f"names differ: missing {sorted(set(ps) - names)[:5]}, "
                        f"unexpected {sorted(names - set(ps))[:5]}")
            for name in names & set(ps):
                shape = tuple(ckpt.tensor(name).shape)
                if shape != tuple(ps[name].shape):
                    return f"{name!r} has shape {shape} in the file, {tuple(ps[name].shape)} in the model"
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


__all__ = ["Placement", "agree", "is_dtensor", "load", "local", "local_shape_and_offsets", "placement", "save"]
