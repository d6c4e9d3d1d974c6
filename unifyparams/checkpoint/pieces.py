"""Tensors stored in pieces: each file holds a block of the global tensor, at recorded offsets.

A collective save (:mod:`unifyparams.checkpoint.collective`) writes one file per rank, each with
that rank's blocks under the tensors' canonical names, and so does PyTorch's distributed checkpoint
with its Hugging Face storage writer (``save_distributed=True``). Both record each block's
offsets in the file's metadata under ``DCP_SHARDING_INFO`` (torch's key, so that either library
reads the other's files): ``{"name": {"saved_offsets": [r, c]}}``.

:func:`gather_pieces` turns a set of such files into whole tensors (a name in one file at offset
zero, covering its shape) and :class:`PiecedTensor`\\ s, after checking that the pieces of every
tensor tile its global shape exactly (inside it, no overlap, no gap): anything else is a
:class:`~unifyparams.errors.CheckpointError`. A pieced tensor reads any block of the global
tensor from the pieces it overlaps, so a rank loads only the bytes of its own block.

>>> check_tiling("w", (4, 2), [((0, 0), (3, 2)), ((3, 0), (1, 2))])
>>> check_tiling("w", (4, 2), [((0, 0), (3, 2)), ((2, 0), (2, 2))])
Traceback (most recent call last):
    ...
unifyparams.errors.CheckpointError: tensor 'w': the pieces at (0, 0) and (2, 0) overlap; expected pieces that tile its shape (4, 2) exactly. The checkpoint is corrupt or mixes two saves.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..distributed import RegionSource
from ..errors import CheckpointError
from .format import SafetensorsFile

#: torch.distributed.checkpoint's metadata key for the offsets of each block in a file.
SHARDING_KEY = "DCP_SHARDING_INFO"
OFFSETS_KEY = "saved_offsets"
#: torch's format version for those files, written beside the offsets.
VERSION_KEY = "DCP_VERSION"
VERSION = "1.0"

Block = tuple[tuple[int, ...], tuple[int, ...]]


def encode_offsets(offsets: Mapping[str, Sequence[int]]) -> dict[str, str]:
    """The metadata entries that record each block's offsets (torch's format)."""
    body = {name: {OFFSETS_KEY: [int(o) for o in at]} for name, at in offsets.items()}
    return {SHARDING_KEY: json.dumps(body, separators=(",", ":")), VERSION_KEY: VERSION}


def recorded_offsets(f: SafetensorsFile) -> dict[str, tuple[int, ...]] | None:
    """``{name: offsets}`` a file records for its blocks, or None for an ordinary file.

    Every tensor of the file must be listed, with one non-negative offset per dimension.
    """
    text = f.metadata.get(SHARDING_KEY)
    if text is None:
        return None
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise CheckpointError(f"{f.path}: {SHARDING_KEY} in its metadata is not a JSON object; the file is corrupt")
    found: dict[str, tuple[int, ...]] = {}
    for name in f.keys():
        entry = body.get(name)
        at = entry.get(OFFSETS_KEY) if isinstance(entry, dict) else None
        shape = f.info(name).shape
        if (not isinstance(at, list) or len(at) != len(shape)
                or not all(isinstance(o, int) and not isinstance(o, bool) and o >= 0 for o in at)):
            raise CheckpointError(
                f"{f.path}: {SHARDING_KEY} gives tensor {name!r} the offsets {at!r}; expected {len(shape)} "
                f"non-negative integers (one per dimension of its shape {list(shape)}). The file is corrupt."
            )
        found[name] = tuple(at)
    return found


def check_tiling(name: str, shape: Sequence[int], blocks: Sequence[Block]) -> None:
    """Refuse ``blocks`` (``(offsets, shape)`` pairs) that do not tile ``shape`` exactly."""
    shape = tuple(shape)
    expected = f"expected pieces that tile its shape {shape} exactly"
    for offsets, size in blocks:
        if len(offsets) != len(shape) or any(o + n > d for o, n, d in zip(offsets, size, shape)):
            raise CheckpointError(
                f"tensor {name!r}: a piece of shape {tuple(size)} at {tuple(offsets)} reaches outside the tensor; "
                f"{expected}. The checkpoint is corrupt."
            )
    solid = [(o, n) for o, n in blocks if math.prod(n) > 0]
    for i, (a_at, a_size) in enumerate(solid):
        for b_at, b_size in solid[i + 1:]:
            if all(a < b + m and b < a + n for a, n, b, m in zip(a_at, a_size, b_at, b_size)):
                raise CheckpointError(
                    f"tensor {name!r}: the pieces at {tuple(a_at)} and {tuple(b_at)} overlap; {expected}. "
                    f"The checkpoint is corrupt or mixes two saves."
                )
    covered = sum(math.prod(n) for _, n in solid)
    if covered != math.prod(shape):
        raise CheckpointError(
            f"tensor {name!r}: its pieces cover {covered} of its {math.prod(shape)} elements; {expected}. "
            f"A rank's file is missing or from another save."
        )


@dataclass(frozen=True)
class Piece:
    """One block of a tensor: the file holding it and where it sits in the global tensor."""

    file: SafetensorsFile
    offsets: tuple[int, ...]
    shape: tuple[int, ...]


class PiecedTensor(RegionSource):
    """A tensor stored in pieces; :meth:`read` copies any block from the pieces it overlaps.

    ``np.asarray(t)`` (or :meth:`whole`) assembles the whole tensor, one allocation of its size.
    """

    def __init__(self, name: str, shape: tuple[int, ...], dtype: np.dtype, pieces: Sequence[Piece]):
        self.name = name
        self.shape = shape
        self.dtype = np.dtype(dtype)
        self.pieces = list(pieces)

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize

    def read(self, offsets: Sequence[int], shape: Sequence[int]) -> np.ndarray:
        """The block of ``shape`` at ``offsets``: a read-only view of the mapped file when one piece
        holds all of it (a load sharded as the save was), else a new array copied from the pieces."""
        for piece in self.pieces:
            if piece.file.mapped and all(b <= a and a + n <= b + m for a, n, b, m in
                                         zip(offsets, shape, piece.offsets, piece.shape)):
                within = tuple(a - b for a, b in zip(offsets, piece.offsets))
                piece.file.prefetch_block(self.name, within, shape)
                return piece.file.tensor(self.name)[tuple(slice(a, a + n) for a, n in zip(within, shape))]
        out = np.empty(tuple(shape), self.dtype)
        for piece in self.pieces:
            low = [max(a, b) for a, b in zip(offsets, piece.offsets)]
            high = [min(a + n, b + m) for a, n, b, m in zip(offsets, shape, piece.offsets, piece.shape)]
            if any(lo >= hi for lo, hi in zip(low, high)):
                continue
            source = tuple(slice(lo - b, hi - b) for lo, hi, b in zip(low, high, piece.offsets))
            target = tuple(slice(lo - a, hi - a) for lo, hi, a in zip(low, high, offsets))
            out[target] = piece.file.tensor(self.name)[source]
        return out

    def __repr__(self) -> str:
        return f"<PiecedTensor {self.name!r} {self.shape} {self.dtype} in {len(self.pieces)} piece(s)>"


class FileTensor(RegionSource):
    """A whole tensor of one file, read block by block: a rank loading its block of an ordinary
    checkpoint reads those bytes only (``SafetensorsFile.slice``), not the tensor."""

    def __init__(self, file: SafetensorsFile, name: str):
        info = file.info(name)
        self.file, self.name, self.shape, self.dtype = file, name, tuple(info.shape), np.dtype(info.dtype)

    def read(self, offsets: Sequence[int], shape: Sequence[int]) -> np.ndarray:
        """The block: a read-only view of the mapped file (its pages are read when the block is
        copied into the parameter), or only its bytes read (``SafetensorsFile.slice``)."""
        index = tuple(slice(o, o + n) for o, n in zip(offsets, shape))
        if math.prod(shape) == 0:
            return np.empty(tuple(shape), self.dtype)
        if self.file.mapped:
            self.file.prefetch_block(self.name, offsets, shape)
            return self.file.tensor(self.name)[index]
        return self.file.slice(self.name, index)

    def __repr__(self) -> str:
        return f"<FileTensor {self.name!r} {self.shape} {self.dtype} in {self.file.path.name}>"


def gather_pieces(
    files: Sequence[SafetensorsFile], shapes: Mapping[str, Sequence[int]] | None = None,
) -> tuple[dict[str, SafetensorsFile], dict[str, PiecedTensor]]:
    """``(whole tensors by name -> file, pieced tensors by name)`` of ``files``, names in file order.

    ``shapes`` gives global shapes where an index records them; otherwise a tensor's global shape
    is where its pieces end (torch's rule). Pieces of one tensor must agree on dtype and tile it.
    """
    blocks: dict[str, list[Piece]] = {}
    for f in files:
        recorded = recorded_offsets(f) or {}
        for name in f.keys():
            shape = tuple(f.info(name).shape)
            blocks.setdefault(name, []).append(Piece(f, recorded.get(name, (0,) * len(shape)), shape))
    whole: dict[str, SafetensorsFile] = {}
    pieced: dict[str, PiecedTensor] = {}
    for name, pieces in blocks.items():
        declared = tuple(shapes[name]) if shapes is not None and name in shapes else None
        first = pieces[0]
        if len(pieces) == 1 and not any(first.offsets) and (declared is None or declared == first.shape):
            whole[name] = first.file
            continue
        dtypes = {p.file.info(name).dtype for p in pieces}
        if len(dtypes) > 1:
            raise CheckpointError(
                f"tensor {name!r} is stored in pieces of different dtypes ({sorted(map(str, dtypes))}); expected one "
                f"dtype. The checkpoint mixes two saves."
            )
        shape = declared or tuple(max(p.offsets[d] + p.shape[d] for p in pieces) for d in range(len(first.shape)))
        check_tiling(name, shape, [(p.offsets, p.shape) for p in pieces])
        pieced[name] = PiecedTensor(name, shape, dtypes.pop(), pieces)
    return whole, pieced


def describe(pieced: Mapping[str, PiecedTensor]) -> dict[str, Any]:
    """The index's ``slices`` entry: every pieced tensor's global shape and its files."""
    return {name: {"shape": list(t.shape), "files": [p.file.path.name for p in t.pieces]} for name, t in pieced.items()}


__all__ = ["FileTensor", "Piece", "PiecedTensor", "check_tiling", "encode_offsets", "gather_pieces", "recorded_offsets"]
