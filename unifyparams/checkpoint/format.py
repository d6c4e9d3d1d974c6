"""The safetensors binary format, read and written with NumPy alone.

A file is an 8-byte little-endian header length ``N``, ``N`` bytes of JSON
``{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}}``, then
the data buffer; offsets are relative to the buffer's start. Written here rather than through
the ``safetensors`` package so that writing streams tensor by tensor into the file, reading
maps the file instead of copying it, and every header is validated strictly before any tensor is
touched: a malformed file raises :class:`~unifyparams.errors.CheckpointError`, never another
exception, and nothing is ever unpickled.

>>> save_file({"w": np.ones((2, 3), np.float32)}, "w.safetensors")
>>> with SafetensorsFile("w.safetensors") as f:
...     f.keys(), f.tensor("w").shape
(['w'], (2, 3))
"""

from __future__ import annotations

import json
import math
import mmap as _mmap
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import numpy as np

from ..errors import CheckpointError
from .atomic import atomic_write
from .dtypes import code_for, dtype_for

#: Largest header accepted (the limit the reference implementation uses).
HEADER_LIMIT = 100_000_000
#: Key of the free-form ``{str: str}`` metadata in the header.
METADATA_KEY = "__metadata__"
#: Tensors are written in pieces of at most this many bytes (bounds the copy a layout change needs).
CHUNK_BYTES = 64 << 20

#: ``MADV_POPULATE_READ`` (Linux 5.14+; not yet named in Python's mmap module).
_MADV_POPULATE_READ = 22 if sys.platform == "linux" else None

_ENTRY_KEYS = frozenset({"dtype", "shape", "data_offsets"})


@dataclass(frozen=True)
class TensorInfo:
    """Where one tensor lives in a file: dtype, shape and ``[begin, end)`` in the data buffer."""

    name: str
    dtype: np.dtype
    shape: tuple[int, ...]
    begin: int
    end: int

    @property
    def nbytes(self) -> int:
        return self.end - self.begin

    def header_entry(self) -> dict[str, Any]:
        return {
            "dtype": code_for(self.dtype),
            "shape": list(self.shape),
            "data_offsets": [self.begin, self.end],
        }


# --- writing ------------------------------------------------------------------------------------
def plan_offsets(specs: Iterable[tuple[str, Any, Sequence[int]]]) -> list[TensorInfo]:
    """Offsets for ``(name, dtype, shape)`` specs, data ordered by item size, largest first.

    With the header padded to 8 bytes this keeps every tensor aligned to its item size, so a
    reader can map it without copying. The list keeps the order of ``specs``.
    """
    items = [(name, np.dtype(dtype), tuple(int(d) for d in shape)) for name, dtype, shape in specs]
    for _, dtype, _ in items:
        code_for(dtype)  # refuse unsupported dtypes before anything is written
    placed: dict[str, TensorInfo] = {}
    position = 0
    for name, dtype, shape in sorted(items, key=lambda item: -item[1].itemsize):
        size = math.prod(shape) * dtype.itemsize
        placed[name] = TensorInfo(name, dtype, shape, position, position + size)
        position += size
    return [placed[name] for name, _, _ in items]


def check_metadata(metadata: Mapping[Any, Any]) -> None:
    """The format stores only ``{str: str}`` metadata; refuse anything else before writing."""
    bad = {k: v for k, v in metadata.items() if not isinstance(k, str) or not isinstance(v, str)}
    if bad:
        raise CheckpointError(
            f"checkpoint metadata must map str to str; received {bad!r}. Convert the values "
            f"with str() or json.dumps() first."
        )


def encode_header(infos: Sequence[TensorInfo], metadata: Mapping[str, str] | None = None) -> bytes:
    """The length prefix and JSON header for ``infos``, padded with spaces to a multiple of 8."""
    header: dict[str, Any] = {}
    if metadata:
        check_metadata(metadata)
        header[METADATA_KEY] = dict(metadata)
    for info in infos:
        if info.name == METADATA_KEY:
            raise CheckpointError(f"a tensor cannot be named {METADATA_KEY!r}: the format reserves that key")
        header[info.name] = info.header_entry()
    raw = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    raw += b" " * (-len(raw) % 8)
    return len(raw).to_bytes(8, "little") + raw


def _little_endian(array: np.ndarray) -> np.ndarray:
    order = array.dtype.byteorder
    if order == ">" or (order == "=" and sys.byteorder == "big"):
        return array.byteswap().view(array.dtype.newbyteorder("<"))
    return array


def write_tensor(out: IO[bytes], info: TensorInfo, value: Any) -> None:
    """Stream one tensor's bytes (C order, little-endian) into ``out``.

    A non-contiguous array (a transposed layout) is copied a block of rows at a time, so the
    extra memory stays under :data:`CHUNK_BYTES` whatever the tensor's size.
    """
    array = np.asarray(value)
    if array.shape != info.shape or array.dtype != info.dtype:
        raise CheckpointError(
            f"tensor {info.name!r} changed while it was being saved: the header promised "
            f"{info.dtype}{list(info.shape)}, the model now gives {array.dtype}{list(array.shape)}. "
            f"Do not modify the model during save."
        )
    array = _little_endian(array)
    if array.size == 0:
        return
    if array.flags.c_contiguous:
        flat = array.reshape(-1).view(np.uint8)
        for start in range(0, flat.size, CHUNK_BYTES):
            out.write(flat[start : start + CHUNK_BYTES])  # type: ignore[call-overload]
        return
    rows = max(1, CHUNK_BYTES // max(1, array[0].nbytes))
    for start in range(0, array.shape[0], rows):
        block = np.ascontiguousarray(array[start : start + rows])
        out.write(block.reshape(-1).view(np.uint8))  # type: ignore[call-overload]


def write_file(
    out: IO[bytes],
    infos: Sequence[TensorInfo],
    value_for: Callable[[str], Any],
    metadata: Mapping[str, str] | None = None,
) -> None:
    """Write a whole file to ``out``: the header, then each tensor's bytes in data order.

    ``value_for(name)`` is called once per tensor, just before its bytes are written, so only
    one tensor's values need to exist at a time (the model's own memory aside).
    """
    out.write(encode_header(infos, metadata))
    for info in sorted(infos, key=lambda i: i.begin):
        write_tensor(out, info, value_for(info.name))


def save_file(
    arrays: Mapping[str, Any], path: str | os.PathLike[str], metadata: Mapping[str, str] | None = None
) -> None:
    """Write ``{name: array}`` to ``path`` atomically (the counterpart of ``safetensors.numpy.save_file``)."""
    values = {name: np.asarray(value) for name, value in arrays.items()}
    infos = plan_offsets((name, v.dtype, v.shape) for name, v in values.items())
    with atomic_write(Path(path)) as out:
        write_file(out, infos, values.__getitem__, metadata)


# --- reading ------------------------------------------------------------------------------------
def _no_duplicates(source: str) -> Any:
    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in pairs:
            if key in result:
                raise CheckpointError(
                    f"{source}: the header names {key!r} twice; expected every name once. The file "
                    f"is corrupt or was written by a faulty tool; re-export it."
                )
            result[key] = value
        return result

    return hook


def _reject_constant(source: str) -> Any:
    def hook(name: str) -> Any:
        raise CheckpointError(
            f"{source}: the header contains {name}, which is not valid JSON here; the file is corrupt"
        )

    return hook


def parse_json(raw: bytes, source: str) -> Any:
    """Strict JSON: UTF-8, no duplicate keys, no NaN/Infinity; any failure is a CheckpointError."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CheckpointError(
            f"{source}: the header is not UTF-8 text ({exc}); the file is corrupt"
        ) from None
    try:
        return json.loads(
            text, object_pairs_hook=_no_duplicates(source), parse_constant=_reject_constant(source)
        )
    except CheckpointError:
        raise
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, over-long integers, deep nesting
        raise CheckpointError(
            f"{source}: the header is not valid JSON ({str(exc)[:200]}); the file is corrupt or "
            f"not a safetensors file"
        ) from None


def _is_count(value: Any) -> bool:
    return type(value) is int and value >= 0


def parse_header(
    raw: bytes, buffer_size: int, source: str = "checkpoint"
) -> tuple[dict[str, TensorInfo], dict[str, str]]:
    """Validate a header against a data buffer of ``buffer_size`` bytes.

    Checks every entry's fields, dtype, shape, and that the tensors tile the buffer exactly (no
    overlap, no gap, nothing out of range). Returns ``({name: info} in header order, metadata)``.
    """
    if not raw.lstrip(b" ").startswith(b"{"):
        raise CheckpointError(
            f"{source}: expected the header to be a JSON object starting with '{{'; received "
            f"{raw[:16]!r}. This is not a safetensors file (or it is corrupt)."
        )
    header = parse_json(raw, source)
    if not isinstance(header, dict):
        raise CheckpointError(f"{source}: expected a JSON object as header; received {type(header).__name__}")
    metadata = header.pop(METADATA_KEY, {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise CheckpointError(
            f"{source}: expected {METADATA_KEY!r} to map strings to strings; received {str(metadata)[:200]}"
        )
    infos: dict[str, TensorInfo] = {}
    for name, entry in header.items():
        infos[name] = _parse_entry(name, entry, source)
    _check_tiling(infos, buffer_size, source)
    return infos, metadata


def _parse_entry(name: str, entry: Any, source: str) -> TensorInfo:
    where = f"{source}: tensor {name!r}"
    if not isinstance(entry, dict) or set(entry) != _ENTRY_KEYS:
        got = sorted(entry) if isinstance(entry, dict) else type(entry).__name__
        raise CheckpointError(
            f"{where}: expected the fields {sorted(_ENTRY_KEYS)}; received {got}. The file is corrupt."
        )
    code = entry["dtype"]
    if not isinstance(code, str):
        raise CheckpointError(f"{where}: expected a dtype code such as 'F32'; received {code!r}")
    dtype = dtype_for(code)
    shape, offsets = entry["shape"], entry["data_offsets"]
    if not isinstance(shape, list) or not all(_is_count(d) for d in shape):
        raise CheckpointError(
            f"{where}: expected a shape of non-negative integers; received {str(shape)[:200]}"
        )
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(_is_count(o) for o in offsets):
        raise CheckpointError(f"{where}: expected data_offsets [begin, end]; received {str(offsets)[:200]}")
    begin, end = offsets
    if end < begin:
        raise CheckpointError(
            f"{where}: data_offsets [{begin}, {end}] end before they begin; the file is corrupt"
        )
    expected = math.prod(shape) * dtype.itemsize
    if end - begin != expected:
        raise CheckpointError(
            f"{where}: shape {shape} of {code} needs {expected} bytes but data_offsets [{begin}, {end}] "
            f"hold {end - begin}; the header is corrupt"
        )
    return TensorInfo(name, dtype, tuple(shape), begin, end)


def _check_tiling(infos: Mapping[str, TensorInfo], buffer_size: int, source: str) -> None:
    position, previous = 0, None
    for info in sorted(infos.values(), key=lambda i: (i.begin, i.end)):
        if info.end > buffer_size:
            raise CheckpointError(
                f"{source}: tensor {info.name!r} ends at byte {info.end} of the data buffer but the file "
                f"holds only {buffer_size} data bytes; the file is truncated (re-download or re-save it)"
            )
        if info.begin < position:
            raise CheckpointError(
                f"{source}: tensors {previous!r} and {info.name!r} overlap (one ends at byte {position}, "
                f"the other begins at {info.begin}); the header is corrupt"
            )
        if info.begin > position:
            raise CheckpointError(
                f"{source}: bytes {position}..{info.begin} of the data buffer belong to no tensor "
                f"(before {info.name!r}); the header is corrupt"
            )
        position, previous = info.end, info.name
    if position != buffer_size:
        raise CheckpointError(
            f"{source}: the header describes {position} data bytes but the file holds {buffer_size}; "
            f"the file is corrupt or has trailing data"
        )


class SafetensorsFile:
    """An open, validated safetensors file; tensors are read one at a time.

    With ``mmap=True`` (default) :meth:`tensor` returns read-only arrays backed by a memory map
    of the file, so nothing is copied until the values are used; with ``mmap=False`` each call
    reads one tensor into a fresh array. The header is validated when the file is opened. As with
    any memory map, a file truncated by another process while mapped makes reads fail hard
    (SIGBUS); use ``mmap=False`` for files that may change under you.

    >>> save_file({"0.weight": np.zeros((4, 3), np.float32)}, "model.safetensors")
    >>> with SafetensorsFile("model.safetensors") as f:
    ...     f.tensor("0.weight").shape, f.tensor("0.weight").flags.writeable
    ((4, 3), False)
    """

    def __init__(self, path: str | os.PathLike[str], *, mmap: bool = True):
        self.path = Path(path)
        self._source = str(self.path)
        self._map: _mmap.mmap | None = None
        try:
            self._file: IO[bytes] = open(self.path, "rb")  # noqa: SIM115 (closed in close())
        except OSError as exc:
            raise CheckpointError(f"cannot open checkpoint {self._source}: {exc.strerror or exc}") from exc
        try:
            self.infos, self.metadata = self._read_header()
            if mmap and self._data_start < self._size:
                self._map = _mmap.mmap(self._file.fileno(), 0, access=_mmap.ACCESS_READ)
        except BaseException:
            self._file.close()
            raise

    def _read_header(self) -> tuple[dict[str, TensorInfo], dict[str, str]]:
        size = os.fstat(self._file.fileno()).st_size
        prefix = self._file.read(8)
        if len(prefix) < 8:
            raise CheckpointError(
                f"{self._source}: the file has {size} bytes; a safetensors file starts with an 8-byte "
                f"header length. The file is truncated or empty; re-save or re-download it."
            )
        length = int.from_bytes(prefix, "little")
        if length > HEADER_LIMIT:
            raise CheckpointError(
                f"{self._source}: the header claims {length} bytes, over the {HEADER_LIMIT}-byte limit; "
                f"the file is corrupt or not a safetensors file"
            )
        if 8 + length > size:
            raise CheckpointError(
                f"{self._source}: the header claims {length} bytes but only {size - 8} follow the length "
                f"field; the file is truncated or corrupt"
            )
        raw = self._file.read(length)
        self._size, self._data_start = size, 8 + length
        return parse_header(raw, size - 8 - length, self._source)

    # --- access -----------------------------------------------------------------------------
    def keys(self) -> list[str]:
        """Tensor names in header order."""
        return list(self.infos)

    def info(self, name: str) -> TensorInfo:
        try:
            return self.infos[name]
        except KeyError:
            raise CheckpointError(f"{self._source} has no tensor named {name!r}") from None

    def tensor(self, name: str) -> np.ndarray:
        """The tensor's values (read-only when memory-mapped), in the file's dtype and shape."""
        info = self.info(name)
        count = math.prod(info.shape)
        try:
            if count == 0:
                array = np.empty(info.shape, info.dtype)
            elif self._map is not None:
                array = np.frombuffer(self._map, info.dtype, count, self._data_start + info.begin).reshape(
                    info.shape
                )
                if not array.flags.aligned:  # files from other writers need not align tensors
                    array = np.array(array, copy=True)
            else:
                array = self._read(info, count)
        except (ValueError, OverflowError, MemoryError) as exc:
            raise CheckpointError(
                f"{self._source}: tensor {name!r} cannot be represented here: {exc}"
            ) from None
        if self._map is not None:
            array.flags.writeable = False
        return array

    def prefetch(self, name: str) -> None:
        """Map a tensor's pages in one system call before its values are copied (memory maps only).

        Faulting pages in one at a time during the copy costs about as much as the copy itself;
        ``MADV_POPULATE_READ`` (Linux 5.14+) maps them in bulk, ``MADV_WILLNEED`` at least reads
        ahead. A no-op where neither is available.
        """
        info = self.info(name)
        if self._map is None or info.nbytes == 0:
            return
        start = self._data_start + info.begin
        aligned = start - start % _mmap.ALLOCATIONGRANULARITY
        for advice in (_MADV_POPULATE_READ, getattr(_mmap, "MADV_WILLNEED", None)):
            if advice is None:
                continue
            try:
                self._map.madvise(advice, aligned, start + info.nbytes - aligned)
                return
            except (OSError, ValueError, AttributeError):
                continue

    def _read(self, info: TensorInfo, count: int) -> np.ndarray:
        array = np.empty(info.shape, info.dtype)
        self._file.seek(self._data_start + info.begin)
        got = self._file.readinto(array.reshape(-1).view(np.uint8))  # type: ignore[attr-defined]
        if got != info.nbytes:
            raise CheckpointError(
                f"{self._source}: tensor {info.name!r} is cut short; the file changed while being read"
            )
        return array

    # --- lifetime ---------------------------------------------------------------------------
    def close(self) -> None:
        """Release the file; a still-referenced memory map stays valid until its arrays are gone."""
        if self._map is not None:
            try:
                self._map.close()
            except BufferError:  # arrays still use the map; it is unmapped when they are freed
                pass
            self._map = None
        self._file.close()

    def __enter__(self) -> SafetensorsFile:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def load_file(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read every tensor of a file into fresh, writable arrays (like ``safetensors.numpy.load_file``)."""
    with SafetensorsFile(path, mmap=False) as f:
        return {name: f.tensor(name) for name in f.keys()}


def read_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The ``__metadata__`` of a file (header only; the data is not read)."""
    with SafetensorsFile(path, mmap=False) as f:
        return dict(f.metadata)
