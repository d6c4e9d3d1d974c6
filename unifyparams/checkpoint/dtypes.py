"""The safetensors dtype codes and the NumPy dtypes they stand for.

Codes are the ones the safetensors format defines (``"F32"``, ``"BF16"``, ...). Bfloat16 and the
float8 formats have no NumPy dtype of their own; they are available when ``ml_dtypes`` is
importable (it ships with JAX, TensorFlow and Keras).

>>> code_for(np.dtype("float32")), dtype_for("I64")
('F32', dtype('int64'))
"""

from __future__ import annotations

import numpy as np

from ..errors import CheckpointError

#: Codes with a plain NumPy dtype, always available. Arrays in a file are little-endian.
_BASE: dict[str, str] = {
    "F64": "<f8",
    "F32": "<f4",
    "F16": "<f2",
    "I64": "<i8",
    "I32": "<i4",
    "I16": "<i2",
    "I8": "i1",
    "U64": "<u8",
    "U32": "<u4",
    "U16": "<u2",
    "U8": "u1",
    "BOOL": "?",
    "C64": "<c8",
}

#: Codes whose dtype comes from ``ml_dtypes``: code -> attribute name there.
_ML_DTYPES: dict[str, str] = {
    "BF16": "bfloat16",
    "F8_E4M3": "float8_e4m3fn",
    "F8_E5M2": "float8_e5m2",
    "F8_E4M3FNUZ": "float8_e4m3fnuz",
    "F8_E5M2FNUZ": "float8_e5m2fnuz",
}

#: Every code the format defines that this module knows of (some may be unavailable here).
KNOWN_CODES: tuple[str, ...] = tuple(_BASE) + tuple(_ML_DTYPES)


def _build() -> dict[str, np.dtype]:
    table = {code: np.dtype(spec) for code, spec in _BASE.items()}
    try:
        import ml_dtypes
    except ImportError:
        return table
    for code, attr in _ML_DTYPES.items():
        if hasattr(ml_dtypes, attr):
            table[code] = np.dtype(getattr(ml_dtypes, attr))
    return table


_BY_CODE: dict[str, np.dtype] = _build()
_BY_DTYPE: dict[np.dtype, str] = {dtype: code for code, dtype in _BY_CODE.items()}


def dtype_for(code: str) -> np.dtype:
    """The little-endian NumPy dtype for a safetensors code; :class:`CheckpointError` if unknown."""
    try:
        return _BY_CODE[code]
    except (KeyError, TypeError):
        pass
    if code in _ML_DTYPES:
        raise CheckpointError(
            f"the checkpoint holds {code} tensors, which NumPy can only represent with the "
            f"ml_dtypes package; received no ml_dtypes here. Install it: pip install ml_dtypes"
        )
    raise CheckpointError(
        f"unknown tensor dtype {code!r} in the checkpoint header; expected one of "
        f"{', '.join(sorted(_BY_CODE))}. The file is corrupt or was written by a newer tool."
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
