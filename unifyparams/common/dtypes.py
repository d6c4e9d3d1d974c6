"""The one dtype table: safetensors codes, NumPy/``ml_dtypes`` names and bit widths.

Adapters map their framework's dtype names to these, and the checkpoint formats map their codes
to them, so every reader knows the same kinds (the ``fnuz`` float8 variants, ``float8_e8m0fnu``
and the sub-byte ``float4``/``float6`` formats included). NumPy holds bfloat16, float8, float6
and float4 only through ``ml_dtypes`` (one byte per element even for the sub-byte kinds).

>>> EXTENDED_FLOATS["bfloat16"], EXTENDED_FLOATS["float8_e4m3fnuz"]
(2, 1)
>>> numpy_dtype("float32")
dtype('float32')
>>> SAFETENSORS["F4"], SAFETENSORS["F8_E8M0"]
('float4_e2m1fn', 'float8_e8m0fnu')
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np

#: ``{ml_dtypes name: bytes per element}``: the byte-sized floats NumPy has no type of its own for.
#: A framework name equal to one of these is that dtype (torch, Keras and JAX use the same names).
EXTENDED_FLOATS: dict[str, int] = {
    "bfloat16": 2,
    "float8_e4m3fn": 1,
    "float8_e5m2": 1,
    "float8_e4m3fnuz": 1,
    "float8_e5m2fnuz": 1,
    "float8_e8m0fnu": 1,
}

#: ``{ml_dtypes name: bits per element}``: floats narrower than a byte. ``ml_dtypes`` holds each in
#: one byte (the low bits); files pack them (safetensors ``F4``: two per byte, ``F6_*``: four in three).
SUB_BYTE_FLOATS: dict[str, int] = {
    "float4_e2m1fn": 4,
    "float6_e2m3fn": 6,
    "float6_e3m2fn": 6,
}

#: Every dtype code safetensors (0.8) defines -> the NumPy or ``ml_dtypes`` name it stands for.
SAFETENSORS: dict[str, str] = {
    "BOOL": "bool",
    "U8": "uint8",
    "I8": "int8",
    "U16": "uint16",
    "I16": "int16",
    "U32": "uint32",
    "I32": "int32",
    "U64": "uint64",
    "I64": "int64",
    "F16": "float16",
    "F32": "float32",
    "F64": "float64",
    "C64": "complex64",
    "BF16": "bfloat16",
    "F8_E4M3": "float8_e4m3fn",
    "F8_E5M2": "float8_e5m2",
    "F8_E4M3FNUZ": "float8_e4m3fnuz",
    "F8_E5M2FNUZ": "float8_e5m2fnuz",
    "F8_E8M0": "float8_e8m0fnu",
    "F4": "float4_e2m1fn",
    "F6_E2M3": "float6_e2m3fn",
    "F6_E3M2": "float6_e3m2fn",
}

#: The unsigned integer dtype of each width, to move extended floats as raw bits.
BITS: dict[int, np.dtype] = {1: np.dtype(np.uint8), 2: np.dtype(np.uint16)}


def needs_ml_dtypes(name: str) -> bool:
    """True for the names (:data:`EXTENDED_FLOATS`, :data:`SUB_BYTE_FLOATS`) only ``ml_dtypes`` provides."""
    return name in EXTENDED_FLOATS or name in SUB_BYTE_FLOATS


def bits_of(dtype: Any) -> int:
    """Bits one element of a dtype (or dtype name) takes in a file: 4 or 6 for the sub-byte floats."""
    name = dtype if isinstance(dtype, str) else np.dtype(dtype).name
    if name in SUB_BYTE_FLOATS:
        return SUB_BYTE_FLOATS[name]
    if name in EXTENDED_FLOATS:
        return 8 * EXTENDED_FLOATS[name]
    return 8 * np.dtype(name).itemsize


@cache
def extended_dtype(name: str) -> np.dtype | None:
    """The NumPy dtype ``ml_dtypes`` gives ``name`` (one of :data:`EXTENDED_FLOATS` or
    :data:`SUB_BYTE_FLOATS`), or ``None`` when ``name`` is not one or ``ml_dtypes`` lacks it."""
    if not needs_ml_dtypes(name):
        return None
    try:
        import ml_dtypes
    except ImportError:
        return None
    found = getattr(ml_dtypes, name, None)
    return None if found is None else np.dtype(found)


def numpy_dtype(name: Any) -> np.dtype:
    """The NumPy dtype of a framework dtype name (``"float32"``, ``"bfloat16"``, ``"float8_e5m2"``).

    Raises ``TypeError`` when neither NumPy nor ``ml_dtypes`` knows it (saying to install
    ``ml_dtypes`` when that would help).
    """
    text = str(name)
    extended = extended_dtype(text)
    if extended is not None:
        return extended
    try:
        return np.dtype(text)
    except TypeError:
        hint = " Install ml_dtypes (pip install ml_dtypes) to hold it in NumPy." if needs_ml_dtypes(text) else ""
        raise TypeError(f"NumPy has no dtype {text!r}.{hint}") from None
