"""The one table of floating dtypes NumPy holds only through ``ml_dtypes`` (bfloat16, float8).

Adapters map their framework's dtype names to these, and the checkpoint formats map their codes
to them, so every reader knows the same kinds (the ``fnuz`` float8 variants included).

>>> EXTENDED_FLOATS["bfloat16"], EXTENDED_FLOATS["float8_e4m3fnuz"]
(2, 1)
>>> numpy_dtype("float32")
dtype('float32')
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np

#: ``{ml_dtypes name: bytes per element}``: the dtypes NumPy has no type of its own for. A
#: framework name equal to one of these is that dtype (torch, Keras and JAX use the same names).
EXTENDED_FLOATS: dict[str, int] = {
    "bfloat16": 2,
    "float8_e4m3fn": 1,
    "float8_e5m2": 1,
    "float8_e4m3fnuz": 1,
    "float8_e5m2fnuz": 1,
}

#: The unsigned integer dtype of each width, to move extended floats as raw bits.
BITS: dict[int, np.dtype] = {1: np.dtype(np.uint8), 2: np.dtype(np.uint16)}


@cache
def extended_dtype(name: str) -> np.dtype | None:
    """The NumPy dtype ``ml_dtypes`` gives ``name`` (one of :data:`EXTENDED_FLOATS`), or ``None``
    when ``name`` is not one or ``ml_dtypes`` is not installed."""
    if name not in EXTENDED_FLOATS:
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
        hint = " Install ml_dtypes (pip install ml_dtypes) to hold it in NumPy." if text in EXTENDED_FLOATS else ""
        raise TypeError(f"NumPy has no dtype {text!r}.{hint}") from None
