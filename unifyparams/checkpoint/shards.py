"""Checkpoints in one file or in shards with an index, the convention of model hubs.

A large checkpoint ``model.safetensors`` is written as ``model-00001-of-00003.safetensors``, ...
plus ``model.safetensors.index.json``::

    {"metadata": {"total_size": 4000000000, ...}, "weight_map": {"0.weight": "model-00001-of-00003.safetensors", ...}}

:func:`open_checkpoint` accepts a single file, an index, a folder holding either, or the path a
sharded checkpoint was saved under, and checks that the index and its shards agree.

>>> split([("a", 6), ("b", 6), ("c", 1)], limit=10)
[['a'], ['b', 'c']]
>>> parse_size("2GB"), parse_size("1MiB"), parse_size(100)
(2000000000, 1048576, 100)
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from ..distributed import RegionSource
from ..errors import CheckpointError
from .atomic import stale_temporaries
from .format import HEADER_LIMIT, SafetensorsFile, TensorInfo, parse_json, read_metadata
from .metadata import ID_KEY, VERSION_KEY, CheckpointMeta
from .pieces import SHARDING_KEY, FileTensor, PiecedTensor, gather_pieces

SUFFIX = ".safetensors"
INDEX_SUFFIX = ".index.json"
DEFAULT_NAME = "model" + SUFFIX

_UNITS = {
    "": 1,
    "B": 1,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
    "KIB": 2**10,
    "MIB": 2**20,
    "GIB": 2**30,
    "TIB": 2**40,
}


def parse_size(size: int | str) -> int:
    """Bytes for ``size``: an int, or a string such as ``"5GB"`` (10^9) or ``"500MiB"`` (2^20)."""
    if isinstance(size, int) and not isinstance(size, bool):
        value = size
    else:
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", str(size))
        unit = match.group(2).upper() if match else ""
        if not match or unit not in _UNITS:
            raise CheckpointError(
                f"max_shard_size must be a number of bytes or a size such as '5GB' or '500MiB'; received {size!r}"
            )
        value = int(float(match.group(1)) * _UNITS[unit])
    if value <= 0:
        raise CheckpointError(f"max_shard_size must be positive; received {size!r}")
    return value


def split(sizes: Iterable[tuple[str, int]], limit: int) -> list[list[str]]:
    """Group names in order into shards of at most ``limit`` bytes (a larger tensor gets its own)."""
    shards: list[list[str]] = [[]]
    used = 0
    for name, nbytes in sizes:
        if shards[-1] and used + nbytes > limit:
            shards.append([])
            used = 0
        shards[-1].append(name)
        used += nbytes
    return shards


def index_path(base: Path) -> Path:
    """``model.safetensors`` -> ``model.safetensors.index.json``."""
    return base.with_name(base.name + INDEX_SUFFIX)


def shard_names(base: Path, count: int, tag: str | None = None) -> list[str]:
    """``model.safetensors``, 3 -> ``model-00001-of-00003.safetensors``, ... (``tag`` goes before the suffix)."""
    stem = base.name[: -len(SUFFIX)] if base.name.endswith(SUFFIX) else base.name
    extra = f".{tag}" if tag else ""
    return [f"{stem}-{i:05d}-of-{count:05d}{extra}{SUFFIX}" for i in range(1, count + 1)]


def encode_index(
    weight_map: Mapping[str, str], metadata: Mapping[str, str], total_size: int,
    slices: Mapping[str, Any] | None = None,
) -> bytes:
    """The index file's bytes; ``slices`` (a collective save's tensors in pieces) when given."""
    body: dict[str, Any] = {"metadata": {"total_size": total_size, **metadata}, "weight_map": dict(weight_map)}
    if slices:
        body["slices"] = dict(slices)
    return (json.dumps(body, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def _plain_file_name(name: Any) -> bool:
    return (
        isinstance(name, str)
        and name not in ("", ".", "..")
        and "/" not in name
        and "\\" not in name
        and "\0" not in name
    )


def read_index(path: Path) -> tuple[dict[str, str], dict[str, Any]]:
    """``(weight_map, metadata)`` of an index file, validated; shard names must be plain file names."""
    weight_map, metadata, _ = read_index_entries(path)
    return weight_map, metadata


def read_index_entries(path: Path) -> tuple[dict[str, str], dict[str, Any], dict[str, tuple[tuple[int, ...], list[str]]]]:
    """``(weight_map, metadata, slices)`` of an index file, validated.

    ``slices`` (written by a collective save) maps each tensor stored in pieces to its global
    shape and the files holding its pieces: ``{"0.weight": {"shape": [5, 3], "files": [...]}}``.
    Every file name must be a plain name in the index's folder.
    """
    source = str(path)
    try:
        with open(path, "rb") as f:
            raw = f.read(HEADER_LIMIT + 1)
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint index {source}: {exc.strerror or exc}") from exc
    if len(raw) > HEADER_LIMIT:
        raise CheckpointError(
            f"{source}: the index is over {HEADER_LIMIT} bytes; it is not a checkpoint index"
        )
    body = parse_json(raw, source)
    weight_map = body.get("weight_map") if isinstance(body, dict) else None
    metadata = body.get("metadata", {}) if isinstance(body, dict) else None
    listed = body.get("slices", {}) if isinstance(body, dict) else None
    if not isinstance(weight_map, dict) or not isinstance(metadata, dict) or not isinstance(listed, dict):
        raise CheckpointError(
            f'{source}: expected an index {{"metadata": {{...}}, "weight_map": {{name: file}}}}; '
            f"received {raw[:120]!r}"
        )
    slices: dict[str, tuple[tuple[int, ...], list[str]]] = {}
    for name, entry in listed.items():
        shape = entry.get("shape") if isinstance(entry, dict) else None
        files = entry.get("files") if isinstance(entry, dict) else None
        if (not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                                   for d in shape)
                or not isinstance(files, list) or not files or name in weight_map):
            raise CheckpointError(
                f'{source}: "slices" entry {name!r} must be {{"shape": [sizes], "files": [file, ...]}} for a tensor '
                f"the weight_map does not list; received {entry!r}"
            )
        slices[name] = (tuple(shape), files)
    names = [*weight_map.values(), *(f for _, files in slices.values() for f in files)]
    bad = [f for f in names if not _plain_file_name(f)]
    if bad:
        raise CheckpointError(
            f"{source}: the weight_map must name shard files in the index's folder; received {bad[0]!r}. "
            f"Paths with folders are refused so an index cannot point outside its folder."
        )
    return weight_map, metadata, slices


def locate(path: str | os.PathLike[str]) -> tuple[Path | None, list[Path]]:
    """``(index or None, shard files)`` for what :func:`open_checkpoint` accepts."""
    given = Path(path)
    if given.is_dir():
        found = [given / (DEFAULT_NAME + INDEX_SUFFIX), given / DEFAULT_NAME]
        found = [p for p in found if p.is_file()][:1] or sorted(given.glob("*" + SUFFIX + INDEX_SUFFIX))
        found = found or sorted(given.glob("*" + SUFFIX))
        if len(found) > 1 and all(_holds_pieces(p) for p in found):
            return None, found  # torch.distributed.checkpoint's files: one per rank, blocks at recorded offsets
        if len(found) != 1:
            raise CheckpointError(
                f"expected one checkpoint in folder {given}; received "
                f"{[p.name for p in found] or 'no *.safetensors file'}. Pass the file or index to load."
            )
        given = found[0]
    elif not given.exists() and index_path(given).is_file():
        given = index_path(given)
    if not given.is_file():
        raise CheckpointError(f"no checkpoint at {given} (nor an index {index_path(given).name} beside it)")
    if given.name.endswith(".json"):
        weight_map, _, slices = read_index_entries(given)
        named = [*weight_map.values(), *(f for _, files in slices.values() for f in files)]
        shards = [given.parent / name for name in dict.fromkeys(named)]
        for shard in shards:
            contained(given, shard)
        return given, shards
    return None, [given]


def _holds_pieces(path: Path) -> bool:
    """True for a file that records the offsets of the blocks it holds (a rank's file)."""
    try:
        return SHARDING_KEY in read_metadata(path)
    except CheckpointError:
        return False


def contained(index: Path, shard: Path) -> Path:
    """``shard``, once its real path (symlinks resolved) is known to be inside the index's folder.

    A shard that is a symlink out of the folder is refused, so an index cannot make a reader open
    an arbitrary file. The folder the index itself resolves to counts too: in a Hugging Face cache
    snapshot the index and its shards are all symlinks into one ``blobs/`` folder.
    """
    real = Path(os.path.realpath(shard))
    folders = {Path(os.path.realpath(index.parent)), Path(os.path.realpath(index)).parent}
    if not any(real.parent == folder for folder in folders):
        raise CheckpointError(
            f"{index.name} names the shard {shard.name!r}, which resolves to {real}, outside the index's "
            f"folder {index.parent}; expected every shard inside it. Symlinks out of the folder are refused "
            f"so an index cannot make a reader open other files; copy the shard into the folder."
        )
    return shard


class Checkpoint:
    """A validated checkpoint (one file, or an index and its shards), open for reading tensors.

    >>> index = up.save(net, "model.safetensors", max_shard_size=64)
    >>> with open_checkpoint(index) as ckpt:
    ...     ckpt.names[:3], len(ckpt.files), ckpt.meta.backend
    (['0.weight', '0.bias', '1.weight'], 3, 'numpy-test')
    """

    def __init__(self, index: Path | None, files: Sequence[SafetensorsFile], meta: CheckpointMeta,
                 shapes: Mapping[str, Sequence[int]] | None = None):
        self.index = index
        self.files = list(files)
        self.meta = meta
        self._where, self.pieced = gather_pieces(self.files, shapes)
        order = {n: i for i, n in enumerate(n for f in self.files for n in f.keys())}
        self._names = sorted([*self._where, *self.pieced], key=order.__getitem__)

    @property
    def names(self) -> list[str]:
        """Stored tensor names (tie aliases are not stored; see ``meta.ties``)."""
        return list(self._names)

    @property
    def paths(self) -> list[Path]:
        return ([self.index] if self.index else []) + [f.path for f in self.files]

    def info(self, name: str) -> TensorInfo:
        """Dtype and (global) shape of a tensor; for one stored in pieces, offsets 0 to its size."""
        if name in self.pieced:
            t = self.pieced[name]
            return TensorInfo(name, t.dtype, t.shape, 0, t.nbytes)
        return self._where[name].info(name)

    def tensor(self, name: str) -> np.ndarray:
        """The whole tensor: a view of the mapped file, or assembled from its pieces (a new array)."""
        if name in self.pieced:
            return self.pieced[name].whole()
        return self._where[name].tensor(name)

    def value(self, name: str) -> np.ndarray | PiecedTensor:
        """What a load writes: :meth:`tensor`, except that a tensor in pieces stays a
        :class:`~unifyparams.checkpoint.pieces.PiecedTensor`, read block by block when written."""
        return self.pieced[name] if name in self.pieced else self._where[name].tensor(name)

    def blocks(self, name: str) -> RegionSource:
        """The tensor as a source read block by block (a sharded parameter's load reads its own
        block's bytes only): the :class:`PiecedTensor`, or a :class:`FileTensor` of one file."""
        return self.pieced[name] if name in self.pieced else FileTensor(self._where[name], name)

    def prefetch(self, name: str) -> None:
        """See :meth:`SafetensorsFile.prefetch` (a tensor in pieces is read block by block instead)."""
        if name in self._where:
            self._where[name].prefetch(name)

    def close(self) -> None:
        for f in self.files:
            f.close()

    def __enter__(self) -> Checkpoint:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def open_checkpoint(path: str | os.PathLike[str], *, mmap: bool = True) -> Checkpoint:
    """Open and validate a checkpoint: every header, the index against its shards, the metadata."""
    index, paths = locate(path)
    files: list[SafetensorsFile] = []
    try:
        for p in paths:
            files.append(SafetensorsFile(p, mmap=mmap))
        if index is None:
            meta = CheckpointMeta.decode(files[0].metadata, str(paths[0]))
            return Checkpoint(index, files, meta)
        meta, shapes = _check_shards(index, files)
        return Checkpoint(index, files, meta, shapes)
    except BaseException:
        for f in files:
            f.close()
        raise


def _check_shards(
    index: Path, files: Sequence[SafetensorsFile]
) -> tuple[CheckpointMeta, dict[str, tuple[int, ...]]]:
    """The metadata of an index checked against its shards, and the global shapes of the tensors
    it records in pieces (the pieces' tiling is checked by the :class:`Checkpoint`)."""
    weight_map, index_meta, slices = read_index_entries(index)
    raw_meta = index_meta if any(k.startswith("unifyparams.") for k in index_meta) else files[0].metadata
    meta = CheckpointMeta.decode(raw_meta, str(index))
    owner: dict[str, Path] = {}
    for f in files:
        if meta.checkpoint_id and f.metadata.get("unifyparams.checkpoint_id") != meta.checkpoint_id:
            raise CheckpointError(
                f"{f.path} belongs to another save than {index.name} (checkpoint ids differ): the "
                f"checkpoint was partly overwritten. Save it again."
            )
        for name in f.keys():
            if name in slices:
                if f.path.name not in slices[name][1]:
                    raise CheckpointError(
                        f"{f.path.name} holds a piece of {name!r} but {index.name} lists its pieces in "
                        f"{slices[name][1]}; the index does not match its shards"
                    )
                owner[name] = f.path
                continue
            if name in owner:
                raise CheckpointError(
                    f"tensor {name!r} appears twice, in {owner[name].name} and {f.path.name}; expected "
                    f"each name in one shard. Save the checkpoint again."
                )
            owner[name] = f.path
            if weight_map.get(name) != f.path.name:
                raise CheckpointError(
                    f"{f.path.name} holds {name!r} but {index.name} maps it to "
                    f"{weight_map.get(name, '(nothing)')!r}; the index does not match its shards"
                )
    absent = [n for n in [*weight_map, *slices] if n not in owner]
    if absent:
        where = weight_map.get(absent[0]) or slices[absent[0]][1]
        raise CheckpointError(
            f"{index.name} lists {len(absent)} tensor(s) its shards do not hold, e.g. {absent[0]!r} in "
            f"{where!r}; a shard is missing or from another save"
        )
    return meta, {name: shape for name, (shape, _) in slices.items()}


@dataclass
class Earlier:
    """The checkpoint that a save to ``base`` replaces, as found before the save.

    ``removable`` lists the files the save may delete once the new checkpoint is in place: the
    file at ``base`` and the index beside it (the names the new checkpoint takes), and the shards
    of that index that are provably an earlier save by this library in this folder (see
    :func:`earlier_checkpoint`). ``stats`` records every file of the earlier checkpoint, so that
    a failed save can say truthfully whether it left that checkpoint unchanged.
    """

    removable: list[Path]
    stats: dict[Path, tuple[int, int, int] | None]

    def changed(self) -> list[Path]:
        """Files of the earlier checkpoint that differ now from when it was found."""
        return [path for path, before in self.stats.items() if _stat(path) != before]


def _stat(path: Path) -> tuple[int, int, int] | None:
    try:
        info = os.lstat(path)
    except OSError:
        return None
    return (info.st_ino, info.st_size, info.st_mtime_ns)


def is_shard_name(base: Path, name: str) -> bool:
    """True for the shard names :func:`shard_names` makes for ``base`` (any count, tagged or not)."""
    stem = re.escape(base.name[: -len(SUFFIX)] if base.name.endswith(SUFFIX) else base.name)
    return re.fullmatch(rf"{stem}-\d{{5}}-of-\d{{5}}(?:\.[0-9a-f]{{8}})?{re.escape(SUFFIX)}", name) is not None


def new_shard_names(base: Path, count: int, checkpoint_id: str) -> list[str]:
    """Shard names for a new save that no file in the folder has, so that writing them replaces
    nothing: the plain names, else names tagged with the save's id (``model-00001-of-00002.<id>.safetensors``)."""
    for tag in (None, checkpoint_id[:8]):
        names = shard_names(base, count, tag)
        if not any(os.path.lexists(base.parent / name) for name in names):
            return names
    raise CheckpointError(
        f"cannot choose shard names for {base}: files named {names[0]!r}, ... already exist in {base.parent}. "
        f"Remove them or save under another name."
    )


def _is_our_shard(path: Path, checkpoint_id: str) -> bool:
    """A regular file (not a symlink) whose header carries this library's metadata and ``checkpoint_id``."""
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return False
        with SafetensorsFile(path, mmap=False) as f:
            meta = f.metadata
    except (OSError, CheckpointError):
        return False
    return VERSION_KEY in meta and meta.get(ID_KEY) == checkpoint_id


def earlier_checkpoint(base: Path) -> Earlier:
    """What a save to ``base`` may replace, and what it must leave alone.

    A shard named by the index beside ``base`` is removable only when it is provably a shard of
    an earlier save by this library in this folder: its name is one :func:`shard_names` makes for
    ``base``, it is a regular file there, and its header carries our metadata with the index's
    checkpoint id. Any other file the index names (a stale or foreign index can name anything,
    ``train.py`` included) is never deleted.
    """
    index = index_path(base)
    removable = [p for p in (base, index) if os.path.lexists(p) and not os.path.isdir(p)]
    named: list[Path] = []
    if index in removable:
        try:
            weight_map, meta, slices = read_index_entries(index)
        except CheckpointError:
            weight_map, meta, slices = {}, {}, {}
        checkpoint_id = meta.get(ID_KEY)
        for name in sorted({*weight_map.values(), *(f for _, files in slices.values() for f in files)}):
            shard = base.parent / name
            if not os.path.lexists(shard):
                continue
            named.append(shard)
            if isinstance(checkpoint_id, str) and checkpoint_id and is_shard_name(base, name):
                if _is_our_shard(shard, checkpoint_id):
                    removable.append(shard)
    return Earlier(removable, {p: _stat(p) for p in [*removable, *named]})


def _our_temporary(path: Path) -> bool:
    """Recognizes the start of a file our writers make: a safetensors header or an index, with our metadata."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return False
    if head.startswith(b"{"):
        return b'"metadata": {' in head and VERSION_KEY.encode() in head
    return head[8:9] == b"{" and b'"__metadata__"' in head and VERSION_KEY.encode() in head


def remove_stale_temporaries(base: Path) -> list[Path]:
    """Delete the temporaries that crashed saves of the checkpoint at ``base`` left; returns them.

    Only files :func:`~unifyparams.checkpoint.atomic.stale_temporaries` proves ours and stale,
    for the names this checkpoint uses (``base``, its index, its shards).
    """
    names = {base.name, index_path(base).name}
    removed = []
    for path in stale_temporaries(base.parent, lambda t: t in names or is_shard_name(base, t), _our_temporary):
        with contextlib.suppress(OSError):
            path.unlink()
            removed.append(path)
    return removed
