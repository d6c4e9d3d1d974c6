"""Parameters sharded by PyTorch ``DTensor`` (FSDP2's ``fully_shard``, ``distribute_tensor``).

A DTensor parameter is seen through its *global* value on every rank: ``up.params(model)`` gives
the global shape (``DTensor.shape``), ``ps.count()`` counts each global element once, and
``p.numpy()`` returns the full global value (``DTensor.full_tensor()``, a **collective**: every
rank must read the same parameters in the same order). ``p.local()`` is this rank's block and its
offsets, without a collective.

The adapter gives the core the hooks of :class:`unifyparams.distributed.ShardedStorage`: this
rank's block (:func:`region`: ``torch.chunk``'s split along each ``Shard`` dimension, a
``Replicate`` dimension whole, owned by coordinate 0), reading and writing only that block, and the
default process group. The core does the rest, the same for any framework: writes take global
values, each rank writes its own block, every rank agrees before the first write and after the
last (one failing rank makes every rank put its blocks back and raise the same error); ``up.save``
writes each rank's blocks into its own file; ``up.load`` reads only this rank's byte ranges.

On every rank of ``python -m torch.distributed.run --nproc_per_node 2 train.py``:

>>> fully_shard(model); p = up.params(model)["0.weight"]           # doctest: +SKIP
>>> p.shape, p.placement, p.local()[0].shape                        # doctest: +SKIP
((5, 3), 'Shard(dim=0) over mesh (2,); this rank (3, 3) at (0, 0)', (3, 3))
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unifyparams.distributed import Collective, Region

from . import tensors


def is_dtensor(tensor: Any) -> bool:
    """True for a ``torch.distributed.tensor.DTensor`` (none exists until that module is imported)."""
    return tensors._is_dtensor(tensor)


def reshard_fsdp(root: Any) -> None:
    """Put every FSDP2 module under ``root`` back to its sharded parameters (``FSDPModule.reshard``,
    no communication). After a forward FSDP2 may keep the gathered parameters registered on the
    module: plain tensors whose memory it frees later, so reading them through NumPy would make
    that memory impossible to free, and writing them would be lost. Does nothing unless FSDP2 is
    in use (its module is imported)."""
    fsdp = sys.modules.get("torch.distributed.fsdp")
    kind = getattr(fsdp, "FSDPModule", None)
    if kind is None or not hasattr(root, "modules"):
        return
    for module in root.modules():
        if isinstance(module, kind):
            module.reshard()


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
    (PyTorch's: canonical except a transposed linear's weight; ``Param.local()`` gives the
    canonical one); no collective. An unsharded tensor gives its whole value at offset zero."""
    tensor = _native(p)
    if not is_dtensor(tensor):
        return np.array(tensors.tensor_to_numpy(tensor), copy=True), (0,) * tensor.dim()
    return read_local(tensor), local_shape_and_offsets(tensor)[1]


# --- the adapter's primitives for DTensors -----------------------------------------------------
def read(tensor: Any) -> np.ndarray:
    """The full global value (``full_tensor()``: a collective: every rank reads it)."""
    return tensors.tensor_to_numpy(tensor.full_tensor())


def write(tensor: Any, value: np.ndarray) -> None:
    """Copy this rank's slice of the global ``value`` into the local shard (no collective)."""
    write_local(tensor, value[_slices(tensor)])


def region(tensor: Any) -> Region:
    """This rank's block of a DTensor (native layout), for the core's collective writes, saves and
    loads; ``owner`` is False where this rank's block is a replica of a lower coordinate's (a
    ``Replicate`` mesh dimension), so that a save stores each block once."""
    shape, offsets = local_shape_and_offsets(tensor)
    coordinate = tensor.device_mesh.get_coordinate()
    owner = coordinate is not None and all(
        coordinate[d] == 0 for d, placement in enumerate(tensor.placements) if placement.is_replicate()
    )
    return Region(offsets, shape, tuple(int(d) for d in tensor.shape), owner)


def read_local(tensor: Any) -> np.ndarray:
    """This rank's block as a new NumPy array (native layout; no collective)."""
    shape, _ = local_shape_and_offsets(tensor)
    value = np.array(tensors.tensor_to_numpy(tensor.to_local()), copy=True)
    if value.shape != shape:  # padded local storage: keep the real elements
        value = value[tuple(slice(0, n) for n in shape)]
    return value


def write_local(tensor: Any, value: np.ndarray) -> None:
    """Overwrite this rank's block with ``value`` (native layout, the block's shape; no collective)."""
    target = tensor.to_local()
    source = tensors.numpy_to_tensor(np.ascontiguousarray(value))
    with torch.no_grad():
        if tuple(target.shape) != tuple(value.shape):
            target = target[tuple(slice(0, n) for n in value.shape)]
        target.copy_(source)


class TorchCollective(Collective):
    """The default process group as the core's :class:`~unifyparams.distributed.Collective`."""

    def __init__(self) -> None:
        import torch.distributed as dist

        self._dist = dist
        self.rank = dist.get_rank()
        self.size = dist.get_world_size()

    def all_gather(self, obj: Any) -> list[Any]:
        out: list[Any] = [None] * self.size
        self._dist.all_gather_object(out, obj)
        return out

    def any(self, flag: bool) -> bool:
        box = torch.tensor([1 if flag else 0], dtype=torch.int64)
        self._dist.all_reduce(box, op=self._dist.ReduceOp.MAX)
        return bool(box.item())

    def barrier(self) -> None:
        self._dist.barrier()


def collective() -> TorchCollective | None:
    """The default process group, or None outside a multi-rank run."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return None
    return TorchCollective()


# --- checkpoints: up.save and up.load are collective themselves ----------------------------------
def save(model: Any, path: str | os.PathLike[str], **options: Any) -> Path:
    """``up.save`` (kept from before ``up.save`` was collective itself): every rank calls it, each
    rank writes its own blocks, and the index is written once every rank has finished."""
    import unifyparams as up

    return up.save(model, path, **options)


def load(model: Any, path: str | os.PathLike[str], **options: Any) -> Any:
    """``up.load`` (kept from before ``up.load`` was collective itself): every rank calls it and
    reads only its own blocks; a rank that cannot load makes every rank refuse, nothing changed."""
    import unifyparams as up

    return up.load(model, path, **options)


__all__ = [
    "Placement", "TorchCollective", "collective", "is_dtensor", "load", "local", "local_shape_and_offsets", "placement",
    "read_local", "region", "save", "write_local",
]
