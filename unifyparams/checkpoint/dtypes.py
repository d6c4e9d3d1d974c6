"""The safetensors dtype codes and the NumPy dtypes they stand for, and sub-byte packing.

Codes are the ones the safetensors format defines (``"F32"``, ``"BF16"``, ``"F4"``, ...), from the
core's one table :data:`unifyparams.common.dtypes.SAFETENSORS`. Bfloat16, float8, float6 and
float4 have no NumPy dtype of their own; they are available when ``ml_dtypes`` is importable.

The sub-byte kinds are packed in files and unpacked in memory (``ml_dtypes`` takes one byte per
element): element ``i`` occupies bits ``[b*i, b*(i+1))`` of the little-endian bit stream, so an
``F4`` byte holds element ``2k`` in its low nibble and ``2k+1`` in its high nibble (the layout of
torch's ``float4_e2m1fn_x2``), and three ``F6_*`` bytes hold four elements.

>>> code_for(np.dtype("float32")), dtype_for("I64")
('F32', dtype('int64'))
>>> unpack_bits(pack_bits(np.array([1, 2, 3, 15], np.uint8), 4), 4, 4).tolist()
[1, 2, 3, 15]
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..common.dtypes import SAFETENSORS, bits_of, extended_dtype, needs_ml_dtypes
from ..errors import CheckpointError

#: Every code the format defines (some may be unavailable here, without ``ml_dtypes``).
KNOWN_CODES: tuple[str, ...] = tuple(SAFETENSORS)


def _little(dtype: np.dtype) -> np.dtype:
    """``dtype`` in little-endian order (as it is, on a little-endian machine: ``dtype('int64')``)."""
    return dtype.newbyteorder("<") if dtype.str.startswith(">") else dtype


def _build() -> dict[str, np.dtype]:
    table: dict[str, np.dtype] = {}
    for code, name in SAFETENSORS.items():
        dtype = extended_dtype(name) if needs_ml_dtypes(name) else _little(np.dtype(name))
        if dtype is not None:
            table[code] = dtype
    return table


_BY_CODE: dict[str, np.dtype] = _build()
_BY_DTYPE: dict[np.dtype, str] = {dtype: code for code, dtype in _BY_CODE.items()}


def dtype_for(code: str) -> np.dtype:
    """The little-endian NumPy dtype for a safetensors code; :class:`CheckpointError` if unknown."""
    try:
        return _BY_CODE[code]
    except (KeyError, TypeError):
        pass
    if code in SAFETENSORS:
        raise CheckpointError(
            f"the checkpoint holds {code} tensors, which NumPy can only represent with the "
            f"ml_dtypes package (>= 0.5); received no such ml_dtypes here. Install it: pip install -U ml_dtypes"
        )
    raise CheckpointError(
        f"unknown tensor dtype {code!r} in the checkpoint header; expected one of "
        f"{', '.join(sorted(KNOWN_CODES))}. The file is corrupt or was written by a newer tool."
    )


def code_for(dtype: np.dtype) -> str:
    """The safetensors code for a NumPy dtype (either byte order); :class:`CheckpointError` if none."""
    key = np.dtype(dtype).newbyteorder("<") if np.dtype(dtype).byteorder == ">" else np.dtype(dtype)
    code = _BY_DTYPE.get(key)
    if code is None:
        raise CheckpointError(
            f"cannot store a {np.dtype(dtype)} parameter in a safetensors checkpoint; the format "
            f"holds {', '.join(sorted(_BY_CODE))}. Cast the parameter to one of these first."
        )
    return code


def sub_byte_bits(dtype: np.dtype) -> int | None:
    """4 or 6 for the packed float kinds, ``None`` for every dtype stored a whole number of bytes each."""
    bits = bits_of(dtype)
    return bits if bits % 8 else None


def stored_nbytes(dtype: np.dtype, shape: Sequence[int], name: str = "tensor") -> int:
    """Bytes a tensor takes in a file (packed for the sub-byte kinds, which must fill whole bytes)."""
    count = math.prod(shape)
    bits = bits_of(dtype)
    if count * bits % 8:
        raise CheckpointError(
            f"cannot store {name!r}: {count} {np.dtype(dtype).name} values take {count * bits} bits, not a "
            f"whole number of bytes (the format packs them with no padding); pad the tensor to a multiple "
            f"of {8 // math.gcd(8, bits)} elements"
        )
    return count * bits // 8


def unpack_bits(raw: np.ndarray, bits: int, count: int) -> np.ndarray:
    """``count`` elements of ``bits`` bits each from packed bytes ``raw``, one per byte (low bits)."""
    raw = np.asarray(raw, np.uint8).reshape(-1)
    if bits == 4:
        out = np.empty(raw.size * 2, np.uint8)
        np.bitwise_and(raw, 0x0F, out=out[0::2])
        np.right_shift(raw, 4, out=out[1::2])
        return out[:count]
    if bits == 6:
        groups = raw[: raw.size - raw.size % 3].reshape(-1, 3).astype(np.uint32)
        word = groups[:, 0] | (groups[:, 1] << 8) | (groups[:, 2] << 16)
        out = np.empty((word.size, 4), np.uint8)
        for k in range(4):
            out[:, k] = (word >> (6 * k)) & 0x3F
        return out.reshape(-1)[:count]
    raise ValueError(f"no packing for {bits}-bit elements")


def pack_bits(values: np.ndarray, bits: int) -> np.ndarray:
    """The inverse of :func:`unpack_bits`: elements (low ``bits`` bits of each byte) packed into bytes."""
    flat = np.asarray(values).reshape(-1).view(np.uint8)
    mask = (1 << bits) - 1
    if bits == 4:
        if flat.size % 2:
            flat = np.concatenate([flat, np.zeros(1, np.uint8)])
        return ((flat[0::2] & mask) | ((flat[1::2] & mask) << 4)).astype(np.uint8)
    if bits == 6:
        if flat.size % 4:
            flat = np.concatenate([flat, np.zeros(-flat.size % 4, np.uint8)])
        quads = (flat.reshape(-1, 4) & mask).astype(np.uint32)
        word = quads[:, 0] | (quads[:, 1] << 6) | (quads[:, 2] << 12) | (quads[:, 3] << 18)
        out = np.empty((word.size, 3), np.uint8)
        for k in range(3):
            out[:, k] = (word >> (8 * k)) & 0xFF
        return out.reshape(-1)
    raise ValueError(f"no packing for {bits}-bit elements")
