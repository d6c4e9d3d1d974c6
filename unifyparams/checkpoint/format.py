"""The safetensors binary format: read through the ``safetensors`` package, written here.

A file is an 8-byte little-endian header length ``N``, ``N`` bytes of JSON
``{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}}``, then
the data buffer; offsets are relative to the buffer's start. Headers are validated by
``safetensors.safe_open`` (after the length is bounded here, so no file decides how much we
allocate), and every refusal becomes a :class:`~unifyparams.errors.CheckpointError` naming the file
and what is wrong; nothing is ever unpickled. Tensors are read from a memory map of the file
(zero-copy, as the package's NumPy framework cannot produce bfloat16, float8, float6 or float4)
and parts of tensors through ``get_slice``. Writing streams tensor by tensor into the file, so
only one tensor's bytes need to exist at a time; it writes every dtype the reader reads.

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
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import numpy as np
from safetensors import SafetensorError, safe_open

from .. import mapped
from ..common.dtypes import SAFETENSORS, bits_of, needs_ml_dtypes
from ..copying import copy_into
from ..errors import CheckpointError
from .atomic import atomic_write
from .dtypes import KNOWN_CODES, code_for, dtype_for, pack_bits, stored_nbytes, sub_byte_bits, unpack_bits

#: Largest header accepted (the limit the reference implementation uses).
HEADER_LIMIT = 100_000_000
#: Key of the free-form ``{str: str}`` metadata in the header.
METADATA_KEY = "__metadata__"
#: Tensors are written in pieces of at most this many bytes (bounds the copy a layout change needs).
CHUNK_BYTES = 64 << 20


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
#: Where the data after the header starts: a multiple of this many bytes (a cache line, and the
#: alignment TensorFlow and oneDNN want before they use memory in place).
DATA_ALIGNMENT = 64


def plan_offsets(specs: Iterable[tuple[str, Any, Sequence[int]]]) -> list[TensorInfo]:
    """Offsets for ``(name, dtype, shape)`` specs, data ordered by item size, largest first.

    With the header padded so that the data starts at a multiple of 64 bytes, this keeps every
    tensor aligned to its item size (and the first, and every one after tensors of whole 64-byte
    blocks, to 64: what frameworks need to use mapped memory in place), so a reader can map it
    without copying. The list keeps the order of ``specs``.
    """
    items = [(name, np.dtype(dtype), tuple(int(d) for d in shape)) for name, dtype, shape in specs]
    for _, dtype, _ in items:
        code_for(dtype)  # refuse unsupported dtypes before anything is written
    placed: dict[str, TensorInfo] = {}
    position = 0
    for name, dtype, shape in sorted(items, key=lambda item: -item[1].itemsize):
        size = stored_nbytes(dtype, shape, name)
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
    """The length prefix and JSON header for ``infos``, padded with spaces so that the data after
    it starts at a multiple of 64 bytes (the format allows padding; its own writer pads to 8)."""
    header: dict[str, Any] = {}
    if metadata:
        check_metadata(metadata)
        header[METADATA_KEY] = dict(metadata)
    for info in infos:
        if info.name == METADATA_KEY:
            raise CheckpointError(f"a tensor cannot be named {METADATA_KEY!r}: the format reserves that key")
        header[info.name] = info.header_entry()
    raw = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    raw += b" " * (-(8 + len(raw)) % DATA_ALIGNMENT)
    return len(raw).to_bytes(8, "little") + raw


def _little_endian(array: np.ndarray) -> np.ndarray:
    order = array.dtype.byteorder
    if order == ">" or (order == "=" and sys.byteorder == "big"):
        return array.byteswap().view(array.dtype.newbyteorder("<"))
    return array


#: A tensor at least this large is prepared (read, and a transposed layout copied into C order) in a
#: thread while the one before it is written, so the copies and the file write overlap (one more
#: tensor in memory, at most :data:`CHUNK_BYTES` of it a copy).
PREPARE_AHEAD_BYTES = 1 << 20


class Scratch:
    """One buffer for the blocks a file's non-contiguous tensors are copied through, kept for the
    whole file: new memory for every tensor costs its page faults again (and on a virtual machine
    the host backing those pages), which made saving transposed layouts half as fast as the write.

    >>> s = Scratch(); a = s.take(np.dtype(np.float32), (2, 3)); b = s.take(np.dtype(np.int8), (4,))
    >>> a.shape, b.dtype, np.shares_memory(a, b)
    ((2, 3), dtype('int8'), True)
    """

    def __init__(self) -> None:
        self._memory = np.empty(0, np.uint8)

    def take(self, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
        """An uninitialized array of ``shape`` in the buffer (grown when it is too small)."""
        nbytes = math.prod(shape) * dtype.itemsize
        if self._memory.nbytes < nbytes:
            self._memory = np.empty(nbytes, np.uint8)
        return self._memory[:nbytes].view(dtype).reshape(shape)


def _checked(info: TensorInfo, value: Any) -> np.ndarray:
    """``value`` as the little-endian array the header promised for ``info``, or an error."""
    array = np.asarray(value)
    if array.shape != info.shape or array.dtype != info.dtype:
        raise CheckpointError(
            f"tensor {info.name!r} changed while it was being saved: the header promised "
            f"{info.dtype}{list(info.shape)}, the model now gives {array.dtype}{list(array.shape)}. "
            f"Do not modify the model during save."
        )
    return _little_endian(array)


def prepare_tensor(info: TensorInfo, value: Any, scratch: Scratch) -> np.ndarray:
    """``value`` ready to be written: a non-contiguous array of at most :data:`CHUNK_BYTES` (a
    transposed layout) is copied into C order in ``scratch``, so that copy can run while the tensor
    before it is written (:func:`write_file`); anything else as it is."""
    array = _checked(info, value)
    if (array.flags.c_contiguous or array.size == 0 or array.nbytes > CHUNK_BYTES
            or sub_byte_bits(array.dtype) is not None):
        return array
    ready = scratch.take(array.dtype, array.shape)
    copy_into(ready, array)  # tiled: NumPy's strided copy is several times slower
    return ready


def write_tensor(out: IO[bytes], info: TensorInfo, value: Any, scratch: Scratch | None = None) -> None:
    """Stream one tensor's bytes (C order, little-endian) into ``out``.

    A non-contiguous array (a transposed layout) is copied a block of rows at a time through
    ``scratch`` (a buffer of its own where none is given), so the extra memory stays under
    :data:`CHUNK_BYTES` whatever the tensor's size.
    """
    array = _checked(info, value)
    if array.size == 0:
        return
    bits = sub_byte_bits(array.dtype)
    if bits is not None:  # packed: whole chunks of a multiple of 8 elements pack independently
        elements = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
        step = max(8, CHUNK_BYTES - CHUNK_BYTES % 8)
        for start in range(0, elements.size, step):
            out.write(pack_bits(elements[start : start + step], bits))  # type: ignore[call-overload]
        return
    if array.flags.c_contiguous:
        flat = array.reshape(-1).view(np.uint8)
        for start in range(0, flat.size, CHUNK_BYTES):
            out.write(flat[start : start + CHUNK_BYTES])  # type: ignore[call-overload]
        return
    rows = max(1, CHUNK_BYTES // max(1, array[0].nbytes))
    buffer = (scratch or Scratch()).take(array.dtype, (min(rows, array.shape[0]), *array.shape[1:]))
    for start in range(0, array.shape[0], rows):
        block = buffer[: min(rows, array.shape[0] - start)]
        copy_into(block, array[start : start + rows])  # tiled: NumPy's strided copy is several times slower
        out.write(block.reshape(-1).view(np.uint8))  # type: ignore[call-overload]


def write_file(
    out: IO[bytes],
    infos: Sequence[TensorInfo],
    value_for: Callable[[str], Any],
    metadata: Mapping[str, str] | None = None,
) -> None:
    """Write a whole file to ``out``: the header, then each tensor's bytes in data order.

    ``value_for(name)`` is called once per tensor, in data order, just before its bytes are
    written, or for a tensor of :data:`PREPARE_AHEAD_BYTES` or more in a worker thread while the
    tensor before it is written, and there put in C order (:func:`prepare_tensor`): at most two
    tensors' values exist at a time (the model's own memory aside). ``value_for`` must be safe to
    call from that thread (framework reads are). Two buffers take the copies in turn (one being
    written, one being filled), each kept for the whole file (:class:`Scratch`).
    """
    out.write(encode_header(infos, metadata))
    ordered = sorted(infos, key=lambda i: i.begin)
    scratches = (Scratch(), Scratch())

    def prepared(info: TensorInfo, scratch: Scratch) -> np.ndarray:
        return prepare_tensor(info, value_for(info.name), scratch)

    with ThreadPoolExecutor(1, thread_name_prefix="unifyparams-save") as ahead:
        coming: Future[Any] | None = None
        for position, info in enumerate(ordered):
            value = coming.result() if coming is not None else value_for(info.name)
            coming = None
            later = ordered[position + 1] if position + 1 < len(ordered) else None
            if later is not None and later.nbytes >= PREPARE_AHEAD_BYTES:  # while this one is written
                coming = ahead.submit(prepared, later, scratches[(position + 1) % 2])
            write_tensor(out, info, value, scratches[position % 2])


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
    return type(value) is int and 0 <= value < 2**64


def _entry_problem(entry: Any) -> str | None:
    """What is wrong with one header entry's fields and their types, or None (for messages only)."""
    if not isinstance(entry, dict) or set(entry) != _ENTRY_KEYS:
        got = sorted(entry) if isinstance(entry, dict) else type(entry).__name__
        return f"expected the fields {sorted(_ENTRY_KEYS)}; received {got}. The file is corrupt."
    code, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if not isinstance(code, str):
        return f"expected a dtype code such as 'F32'; received {code!r}"
    if code not in KNOWN_CODES:
        return (
            f"unknown tensor dtype {code!r}; expected one of {', '.join(sorted(KNOWN_CODES))}. The file is "
            f"corrupt or was written by a newer tool."
        )
    if not isinstance(shape, list) or not all(_is_count(d) for d in shape):
        return f"expected a shape of non-negative integers; received {str(shape)[:200]}"
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(_is_count(o) for o in offsets):
        return f"expected data_offsets [begin, end] of non-negative integers; received {str(offsets)[:200]}"
    return None


def _offset_problem(name: str, entries: dict[str, Any], spans: list[tuple[int, int, str]], buffer_size: int,
                    source: str) -> CheckpointError:
    """Why tensor ``name``'s ``data_offsets`` were refused: reversed, past the end, overlapping the
    tensor before it (in offset order, ``spans``), or leaving a gap after it."""
    begin, end = entries[name]["data_offsets"]
    if end < begin:
        return CheckpointError(
            f"{source}: tensor {name!r}: data_offsets [{begin}, {end}] end before they begin; the file is corrupt"
        )
    if end > buffer_size:
        return _truncated(source, name, end, buffer_size)
    position, previous = 0, None
    for _, e, n in spans:
        if n == name:
            break
        position, previous = e, n
    if begin < position:
        return CheckpointError(
            f"{source}: tensors {previous!r} and {name!r} overlap (one ends at byte {position}, the "
            f"other begins at {begin}); the header is corrupt"
        )
    return CheckpointError(
        f"{source}: bytes {position}..{begin} of the data buffer belong to no tensor (before {name!r}); "
        f"the header is corrupt"
    )


def _size_problem(entries: dict[str, Any], source: str) -> CheckpointError | None:
    """The first tensor whose shape and dtype do not fill its ``data_offsets`` exactly, worded."""
    for name, entry in entries.items():
        code, shape, (begin, end) = entry["dtype"], entry["shape"], entry["data_offsets"]
        need = math.prod(shape) * bits_of(SAFETENSORS[code])
        if need % 8:
            return CheckpointError(
                f"{source}: tensor {name!r}: {math.prod(shape)} {code} values take {need} bits, not a whole "
                f"number of bytes; the header is corrupt"
            )
        if need // 8 != end - begin:
            return CheckpointError(
                f"{source}: tensor {name!r}: shape {shape} of {code} needs {need // 8} bytes but data_offsets "
                f"[{begin}, {end}] hold {end - begin}; the header is corrupt"
            )
    return None


def _explain(error: Exception, raw: bytes, buffer_size: int, source: str) -> CheckpointError:
    """A :class:`CheckpointError` saying what is wrong with a header ``safetensors`` refused.

    ``safetensors`` decides whether a file is valid; this only words the reason, naming the
    tensor and its numbers (the package's own message is kept where nothing more specific fits).
    """
    text = str(error).removeprefix("Error while deserializing header: ")
    if not raw.lstrip(b" ").startswith(b"{"):
        return CheckpointError(
            f"{source}: expected the header to be a JSON object starting with '{{'; received "
            f"{raw[:16]!r}. This is not a safetensors file (or it is corrupt)."
        )
    try:
        header = parse_json(raw, source)  # UTF-8, syntax, NaN, duplicate names: the precise reason
    except CheckpointError as exc:
        return exc
    entries = {k: v for k, v in header.items() if k != METADATA_KEY} if isinstance(header, dict) else {}
    for name, entry in entries.items():
        problem = _entry_problem(entry)
        if problem is not None:
            return CheckpointError(f"{source}: tensor {name!r}: {problem}")
    metadata = header.get(METADATA_KEY) if isinstance(header, dict) else None
    if metadata is not None and (
        not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values())
    ):
        return CheckpointError(
            f"{source}: expected {METADATA_KEY!r} to map strings to strings; received {str(metadata)[:200]}"
        )
    if "invalid JSON" in text:
        return CheckpointError(f"{source}: the header is not a valid safetensors header ({text[:300]}); the file is corrupt")
    spans = sorted(((e["data_offsets"][0], e["data_offsets"][1], n) for n, e in entries.items()))
    bad = re.search(r"invalid offset for tensor `(.*)`", text, re.S)
    if bad and bad.group(1) in entries:
        return _offset_problem(bad.group(1), entries, spans, buffer_size, source)
    size_problem = _size_problem(entries, source)
    if size_problem is not None:
        return size_problem
    covered = spans[-1][1] if spans else 0
    if covered > buffer_size:
        return _truncated(source, spans[-1][2], covered, buffer_size)
    if covered != buffer_size:
        return CheckpointError(
            f"{source}: the header describes {covered} data bytes but the file holds {buffer_size}; the "
            f"file is corrupt or has trailing data"
        )
    return CheckpointError(f"{source}: not a valid safetensors file ({text[:300]})")


def _truncated(source: str, name: str, end: int, buffer_size: int) -> CheckpointError:
    return CheckpointError(
        f"{source}: tensor {name!r} ends at byte {end} of the data buffer but the file holds only "
        f"{buffer_size} data bytes; the file is truncated (re-download or re-save it)"
    )


def _safetensors_path(file: IO[bytes], path: Path) -> str:
    """A path naming the very file already open (``/proc/self/fd/N`` on Linux), so that what
    ``safetensors`` validates is what is read, even if ``path`` is replaced meanwhile."""
    fd_path = f"/proc/self/fd/{file.fileno()}"
    return fd_path if sys.platform == "linux" and os.path.exists(fd_path) else str(path)


class SafetensorsFile:
    """An open, validated safetensors file; tensors are read one at a time.

    The header is validated by the ``safetensors`` package when the file is opened (dtypes,
    shapes, and that the tensors tile the data buffer exactly), after a bound on its length is
    checked here; names must be unique and entries hold exactly the format's fields. Every
    refusal is a :class:`~unifyparams.errors.CheckpointError` naming the file and the problem.

    With ``mmap=True`` (default) :meth:`tensor` returns read-only arrays backed by a memory map
    of the file, so nothing is copied until the values are used; with ``mmap=False`` each call
    reads one tensor into a fresh array. :meth:`slice` reads part of a tensor. The packed
    ``F4``/``F6_*`` kinds are unpacked into fresh arrays (one byte per element, ``ml_dtypes``).
    As with any memory map, a file truncated by another process while mapped makes reads fail
    hard (SIGBUS); use ``mmap=False`` for files that may change under you.

    >>> save_file({"0.weight": np.zeros((4, 3), np.float32)}, "model.safetensors")
    >>> with SafetensorsFile("model.safetensors") as f:
    ...     f.tensor("0.weight").shape, f.tensor("0.weight").flags.writeable, f.slice("0.weight", 1).shape
    ((4, 3), False, (3,))
    """

    def __init__(self, path: str | os.PathLike[str], *, mmap: bool = True):
        self.path = Path(path)
        self._source = str(self.path)
        self._map: _mmap.mmap | None = None
        self._handle: Any = None
        try:
            self._file: IO[bytes] = open(self.path, "rb")  # noqa: SIM115 (closed in close())
        except OSError as exc:
            raise CheckpointError(f"cannot open checkpoint {self._source}: {exc.strerror or exc}") from exc
        try:
            raw = self._read_header()
            self._handle = self._validate(raw, "mmap" if mmap else "pread")
            try:
                self.infos, self.metadata = self._entries(raw)
            except CheckpointError:
                raise
            except (SafetensorError, KeyError, TypeError, ValueError) as exc:
                raise CheckpointError(
                    f"{self._source}: the header changed while the file was opened ({exc}); open it again"
                ) from None
            if mmap and self._data_start < self._size:
                self._map = _mmap.mmap(self._file.fileno(), 0, access=_mmap.ACCESS_READ)
                mapped.register(self._map, self._file)  # writes read from the file, or map pages in bulk
        except BaseException:
            self.close()
            raise

    def _read_header(self) -> bytes:
        """The header's bytes, once its length is known to be within :data:`HEADER_LIMIT` and the file."""
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
        if len(raw) != length:
            raise CheckpointError(f"{self._source}: the header is cut short; the file changed while being read")
        self._size, self._data_start = size, 8 + length
        return raw

    def _validate(self, raw: bytes, backend: str) -> Any:
        """Open the file with ``safetensors``, which validates the header; its refusal is explained."""
        where = _safetensors_path(self._file, self.path)
        try:
            try:
                return safe_open(where, framework="numpy", backend=backend)
            except TypeError:  # safetensors < 0.8 has no backend choice (it always maps)
                return safe_open(where, framework="numpy")
        except SafetensorError as exc:
            raise _explain(exc, raw, self._size - self._data_start, self._source) from None
        except OSError as exc:
            raise CheckpointError(f"cannot open checkpoint {self._source}: {exc.strerror or exc}") from None

    def _entries(self, raw: bytes) -> tuple[dict[str, TensorInfo], dict[str, str]]:
        """``({name: info} in header order, metadata)`` from a header ``safetensors`` accepted.

        The offsets come from the JSON (the package does not expose them); the names, dtypes and
        shapes are checked against what the package read, and what it tolerates (a name given
        twice, extra fields) is refused.
        """
        header = parse_json(raw, self._source)
        metadata = self._handle.metadata() or {}
        infos: dict[str, TensorInfo] = {}
        for name, entry in header.items():
            if name == METADATA_KEY:
                continue
            if not isinstance(entry, dict) or set(entry) != _ENTRY_KEYS:
                raise CheckpointError(
                    f"{self._source}: tensor {name!r}: expected the fields {sorted(_ENTRY_KEYS)}; received "
                    f"{sorted(entry) if isinstance(entry, dict) else type(entry).__name__}. The file is corrupt."
                )
            view = self._handle.get_slice(name)
            code, shape = entry["dtype"], tuple(entry["shape"])
            if view.get_dtype() != code or tuple(view.get_shape()) != shape:
                raise CheckpointError(f"{self._source}: tensor {name!r} changed while the file was opened")
            begin, end = entry["data_offsets"]
            infos[name] = TensorInfo(name, dtype_for(code), shape, begin, end)
        listed = self._handle.offset_keys() if hasattr(self._handle, "offset_keys") else self._handle.keys()
        order = [infos[n].begin if n in infos else -1 for n in listed]
        if not hasattr(self._handle, "offset_keys"):
            order.sort()
        if len(order) != len(infos) or -1 in order or order != sorted(order):
            raise CheckpointError(f"{self._source}: the header changed while the file was opened")
        return infos, dict(metadata)

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
        bits = sub_byte_bits(info.dtype)
        try:
            if count == 0:
                array = np.empty(info.shape, info.dtype)
            elif bits is not None:
                packed = self._bytes(info)
                array = unpack_bits(packed, bits, count).view(info.dtype).reshape(info.shape)
            elif self._map is not None:
                array = np.frombuffer(self._map, info.dtype, count, self._data_start + info.begin).reshape(
                    info.shape
                )
                if not array.flags.aligned:  # files from other writers need not align tensors
                    array = np.array(array, copy=True)
            else:
                array = self._read(info, info.dtype, info.shape)
        except (ValueError, OverflowError, MemoryError) as exc:
            raise CheckpointError(
                f"{self._source}: tensor {name!r} cannot be represented here: {exc}"
            ) from None
        if self._map is not None:
            array.flags.writeable = False
        return array

    @property
    def mapped(self) -> bool:
        """True when :meth:`tensor` returns views of a memory map (nothing read until used)."""
        return self._map is not None

    def slice(self, name: str, index: Any) -> np.ndarray:
        """A fresh array of part of a tensor: ``index`` is basic NumPy indexing (integers, slices
        with positive steps, ``...``), as in ``f.slice("embed.weight", (slice(0, 1024), ...))``.

        Only the bytes of that region are read (through ``safetensors``' ``get_slice``); the
        ``ml_dtypes`` kinds, which its NumPy framework cannot produce, are indexed in the mapped
        tensor instead (the packed ``F4``/``F6_*`` kinds are unpacked whole first), and so are empty
        tensors (``get_slice`` refuses any index into them).
        """
        info = self.info(name)
        try:
            if not needs_ml_dtypes(info.dtype.name) and info.nbytes and self._handle is not None:
                return np.array(self._handle.get_slice(name)[index], dtype=info.dtype)
            return np.array(self.tensor(name)[index])
        except (SafetensorError, IndexError, TypeError, ValueError) as exc:
            raise CheckpointError(
                f"{self._source}: cannot read {index!r} of tensor {name!r} (shape {list(info.shape)}): "
                f"{str(exc)[:300]}"
            ) from None

    def prefetch(self, name: str) -> None:
        """Map a tensor's pages in one system call before its values are copied (memory maps only).

        Faulting pages in one at a time during the copy costs about as much as the copy itself;
        ``MADV_POPULATE_READ`` (Linux 5.14+) maps them in bulk, ``MADV_WILLNEED`` at least reads
        ahead. A no-op where neither is available.
        """
        info = self.info(name)
        self._populate(self._data_start + info.begin, info.nbytes)

    def prefetch_block(self, name: str, offsets: Sequence[int], shape: Sequence[int]) -> None:
        """:meth:`prefetch` for one block of a tensor: the bytes from its first element to its last
        (all of them for a block of whole rows, the rows it spans otherwise)."""
        info = self.info(name)
        if self._map is None or not info.nbytes or not math.prod(shape) or sub_byte_bits(info.dtype) is not None:
            return
        strides = [info.dtype.itemsize * math.prod(info.shape[d + 1:]) for d in range(len(info.shape))]
        first = sum(o * s for o, s in zip(offsets, strides))
        last = sum((o + n - 1) * s for o, n, s in zip(offsets, shape, strides))
        self._populate(self._data_start + info.begin + first, last - first + info.dtype.itemsize)

    def _populate(self, start: int, length: int) -> None:
        if self._map is None or length <= 0:
            return
        aligned = start - start % _mmap.ALLOCATIONGRANULARITY
        mapped.advise_populate(self._map, aligned, start + length - aligned)

    def _bytes(self, info: TensorInfo) -> np.ndarray:
        """A tensor's stored bytes (a view of the map, or read)."""
        if self._map is not None:
            return np.frombuffer(self._map, np.uint8, info.nbytes, self._data_start + info.begin)
        return self._read(info, np.dtype(np.uint8), (info.nbytes,))

    def _read(self, info: TensorInfo, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
        array = np.empty(shape, dtype)
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
        if self._handle is not None:
            self._handle.__exit__(None, None, None)
            self._handle = None
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
