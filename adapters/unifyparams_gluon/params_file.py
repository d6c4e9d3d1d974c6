"""The MXNet NDArray file format (``.params``), parsed and bounded with NumPy alone; MXNet never reads it.

MXNet's own reader allocates whatever shape a file declares before reading its data (600 bytes
can make it allocate gigabytes) and trusts a negative ``ndim`` (a segfault), so hostile files
are parsed here instead, every count checked against the bytes left in the file before anything
is allocated. The layout, from MXNet 1.9.1's ``src/ndarray/ndarray.cc`` (``NDArray::Save/Load``),
all little-endian::

    u64 0x112 (list magic)   u64 reserved
    u64 n, then n arrays:    u32 magic (0xF993FAC9 v2, 0xF993FACA v3 = NumPy shape semantics,
                                        0xF993FAC8 v1 = no storage type)
                             i32 storage type (v2/v3; 0 dense; 1 row_sparse, 2 csr: refused)
                             i32 ndim, ndim x i64 dims
                             i32 device type, i32 device id, i32 dtype flag, the values (C order)
    u64 k (0 or n), then k names: u64 length, UTF-8 bytes

An array of ``ndim`` 0 is an empty (``None``) NDArray in v1/v2 and a scalar in v3. Anything else
(trailing bytes, duplicate names, unknown dtype flags, sparse storage) raises
:class:`~unifyparams.errors.CheckpointError`; a file never makes this reader allocate more than
its own size.

>>> arrays, named = read_params_file("net.params")        # doctest: +SKIP
>>> list(arrays)[:2], arrays["0.weight"].dtype     # doctest: +SKIP
(['0.weight', '0.bias'], dtype('float32'))
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import IO

import numpy as np

from unifyparams.common import EXTENDED_FLOATS, extended_dtype
from unifyparams.errors import CheckpointError

LIST_MAGIC = 0x112
V1_MAGIC = 0xF993FAC8
V2_MAGIC = 0xF993FAC9
V3_MAGIC = 0xF993FACA
#: More dimensions than any real tensor has; a larger ``ndim`` is corruption.
MAX_NDIM = 32
#: Bytes of the smallest array record (magic, storage type, ndim 0) and of the smallest name.
_MIN_ARRAY, _MIN_NAME = 12, 8
#: mshadow's ``TypeFlag`` (MXNet 1.9.1, 3rdparty/mshadow/mshadow/base.h) -> NumPy dtype name.
DTYPES = {
    0: "float32",
    1: "float64",
    2: "float16",
    3: "uint8",
    4: "int32",
    5: "int8",
    6: "int64",
    7: "bool",
    8: "int16",
    9: "uint16",
    10: "uint32",
    11: "uint64",
    12: "bfloat16",
}
_STORAGE = {1: "row_sparse", 2: "csr"}


class _Reader:
    """Reads fields from a file whose size is known, refusing any read past its end."""

    def __init__(self, file: IO[bytes], size: int, source: str):
        self.file, self.size, self.source = file, size, source

    @property
    def left(self) -> int:
        return self.size - self.file.tell()

    def need(self, nbytes: int, what: str) -> None:
        if nbytes > self.left:
            raise CheckpointError(
                f"{self.source}: {what} needs {nbytes} bytes at offset {self.file.tell()} but the file "
                f"has only {self.left} left; it is truncated or not an MXNet .params file"
            )

    def bytes(self, nbytes: int, what: str) -> bytes:
        self.need(nbytes, what)
        return self.file.read(nbytes)

    def int(self, nbytes: int, what: str, signed: bool = False) -> int:
        return int.from_bytes(self.bytes(nbytes, what), "little", signed=signed)


def _dtype(flag: int, where: str) -> np.dtype:
    name = DTYPES.get(flag)
    if name is None:
        raise CheckpointError(
            f"{where}: unknown dtype flag {flag}; expected one of {sorted(DTYPES)} (MXNet's type flags). "
            f"The file is corrupt or from an unsupported MXNet version."
        )
    if name in EXTENDED_FLOATS:  # bfloat16: NumPy holds it only through ml_dtypes
        dtype = extended_dtype(name)
        if dtype is None:
            raise CheckpointError(f"{where} is {name}; reading it needs ml_dtypes: pip install ml_dtypes")
        return dtype
    return np.dtype(name).newbyteorder("<")


def _shape(r: _Reader, where: str, v3: bool) -> tuple[int, ...] | None:
    """The dims of one array; None for MXNet's empty NDArray."""
    ndim = r.int(4, f"{where}: ndim", signed=True)
    if ndim == -1 and v3:
        return None  # NumPy semantics: unknown shape, an empty NDArray
    if not 0 <= ndim <= MAX_NDIM:
        raise CheckpointError(
            f"{where}: ndim is {ndim}; expected 0..{MAX_NDIM}. The file is corrupt or crafted."
        )
    dims = [r.int(8, f"{where}: dimension {i}", signed=True) for i in range(ndim)]
    if any(d < 0 for d in dims):
        raise CheckpointError(f"{where}: shape {tuple(dims)} has a negative dimension; the file is corrupt")
    if ndim == 0 and not v3:
        return None
    return tuple(dims)


def _array(r: _Reader, index: int) -> np.ndarray | None:
    where = f"{r.source}: array {index}"
    magic = r.int(4, f"{where}: magic")
    if magic not in (V1_MAGIC, V2_MAGIC, V3_MAGIC):
        raise CheckpointError(
            f"{where}: magic 0x{magic:08X}; expected 0x{V2_MAGIC:08X} (MXNet >= 1.0) or 0x{V3_MAGIC:08X} / "
            f"0x{V1_MAGIC:08X}. Files from MXNet before 1.0 are not supported: load and save them again "
            f"with a later MXNet."
        )
    if magic != V1_MAGIC:
        stype = r.int(4, f"{where}: storage type", signed=True)
        if stype != 0:
            kind = _STORAGE.get(stype, f"unknown storage type {stype}")
            raise CheckpointError(
                f"{where}: {kind} storage; expected dense arrays (storage type 0). Convert the parameter "
                f"with .tostype('default') and save again."
            )
    shape = _shape(r, where, magic == V3_MAGIC)
    if shape is None:
        return None
    r.int(4, f"{where}: device type")
    r.int(4, f"{where}: device id")
    dtype = _dtype(r.int(4, f"{where}: dtype flag", signed=True), where)
    nbytes = math.prod(shape) * dtype.itemsize
    r.need(nbytes, f"{where} ({dtype}{list(shape)})")
    try:  # bounded: at most the bytes left in the file
        array = np.empty(shape, np.uint8 if dtype == np.bool_ else dtype)
    except ValueError as exc:  # dims whose product overflows (with a zero dim, nbytes is 0)
        raise CheckpointError(f"{where}: shape {list(shape)} cannot be represented ({exc})") from None
    if nbytes:
        got = r.file.readinto(array.reshape(-1).view(np.uint8))  # type: ignore[attr-defined]
        if got != nbytes:
            raise CheckpointError(f"{where}: cut short; the file changed while being read")
    return array != 0 if dtype == np.bool_ else array  # a bool byte other than 0/1 means True


def _names(r: _Reader, count: int) -> list[str]:
    r.need(8, "the names list")
    n = r.int(8, "the names list")
    if n not in (0, count):
        raise CheckpointError(
            f"{r.source}: the file holds {count} arrays but {n} names; expected as many names (or none). "
            f"The file is corrupt."
        )
    r.need(n * _MIN_NAME, f"{n} names")
    names = []
    for i in range(n):
        length = r.int(8, f"name {i}: length")
        raw = r.bytes(length, f"name {i}")
        try:
            names.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise CheckpointError(f"{r.source}: name {i} is not UTF-8 text ({raw[:40]!r}); the file is corrupt") from None
    return names


def read_params_file(path: str | os.PathLike[str]) -> tuple[dict[str, np.ndarray | None], bool]:
    """``({name: array}, named)`` of an NDArray file; an unnamed list (``named`` False) is keyed
    by positions.

    Empty NDArrays (no shape) come back as None. Raises :class:`CheckpointError` for anything
    that is not a well-formed file, before allocating more than the file's size.
    """
    source = str(path)
    try:
        with open(path, "rb") as f:
            r = _Reader(f, os.fstat(f.fileno()).st_size, source)
            return _parse(r)
    except OSError as exc:
        raise CheckpointError(f"cannot read {source}: {exc.strerror or exc}") from None
    except MemoryError:
        raise CheckpointError(f"{source}: not enough memory to hold its arrays") from None


def _parse(r: _Reader) -> tuple[dict[str, np.ndarray | None], bool]:
    if r.size < 24 or r.int(8, "the list magic") != LIST_MAGIC:
        raise CheckpointError(
            f"{r.source}: expected an MXNet NDArray file (starting with 0x112, as net.save_parameters "
            f"writes); received something else, or a file of {r.size} bytes"
        )
    r.int(8, "the reserved field")
    count = r.int(8, "the array count")
    r.need(count * _MIN_ARRAY + 8, f"{count} arrays")
    arrays = [_array(r, i) for i in range(count)]
    names = _names(r, count)
    named = bool(names) or not count
    names = names or [str(i) for i in range(count)]
    if r.left:
        raise CheckpointError(
            f"{r.source}: {r.left} bytes follow the names list; expected the file to end there. "
            f"The file is corrupt or not an MXNet .params file."
        )
    out: dict[str, np.ndarray | None] = {}
    for name, array in zip(names, arrays):
        if name in out:
            raise CheckpointError(f"{r.source}: the name {name!r} appears twice; the file is corrupt")
        out[name] = array
    return out, named


def write_params_file(arrays: dict[str, np.ndarray], path: str | os.PathLike[str]) -> None:
    """Write dense arrays in MXNet's v2 format (what ``mx.nd.save`` writes); for tests and fuzz seeds."""
    flags = {name: flag for flag, name in DTYPES.items()}
    parts = [LIST_MAGIC.to_bytes(8, "little"), bytes(8), len(arrays).to_bytes(8, "little")]
    for array in arrays.values():
        a = np.ascontiguousarray(array)
        parts += [V2_MAGIC.to_bytes(4, "little"), bytes(4), a.ndim.to_bytes(4, "little")]
        parts += [int(d).to_bytes(8, "little") for d in a.shape]
        parts += [(1).to_bytes(4, "little"), bytes(4), flags[a.dtype.name].to_bytes(4, "little")]
        parts.append(a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes())
    parts.append(len(arrays).to_bytes(8, "little"))
    for name in arrays:
        raw = name.encode("utf-8")
        parts += [len(raw).to_bytes(8, "little"), raw]
    Path(path).write_bytes(b"".join(parts))
