"""The compiled drawer of uniform values from NumPy's PCG64 stream, where it was built.

Seeded initializers draw from PCG64 streams (:mod:`unifyparams.init.streams`) and turn its 64-bit
outputs into values as ``Generator.random`` does. In NumPy that is five passes over each block
(the outputs, a shift, a conversion, a multiply, an add); ``unifyparams._draws`` (C,
``unifyparams/_native/draws.c``) makes each output's values in one, with four PCG64 lanes
interleaved: the same bits, measured here at 3.5-4.2 GB/s of float32 a thread against 1.4-1.7 GB/s
for ``Generator.random``. It is optional, like :mod:`unifyparams.transpose_kernel`: :func:`available`
says whether it is built, and without it NumPy draws.

>>> bits = np.random.PCG64(0); out = np.empty(4, np.float32)
>>> if not uniform(bits, out, 2.0 ** -24, 0.0):   # not built here: NumPy
...     out[:] = np.random.Generator(bits).random(4, dtype=np.float32)
>>> bool((out == np.random.Generator(np.random.PCG64(0)).random(4, dtype=np.float32)).all())
True
"""

from __future__ import annotations

import ctypes
from typing import Any

import numpy as np

from . import compiled

_MASK = (1 << 64) - 1
_library: Any = None
_loaded = False


def _load() -> Any:
    """The drawing functions by name, their argument types set, or None where the module was not
    built or cannot draw here."""
    global _library, _loaded
    if _loaded:
        return _library
    _loaded = True
    words = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
    _library = compiled.functions("_draws", {"up_uniform32": [*words, ctypes.c_float, ctypes.c_float],
                                             "up_uniform64": [*words, ctypes.c_double, ctypes.c_double]},
                                  ready="up_draws_available")
    return _library


def available() -> bool:
    """Whether the compiled drawer is built and runs here.

    >>> isinstance(available(), bool)
    True
    """
    return _load() is not None


def uniform(bits: np.random.BitGenerator, out: np.ndarray, folded: float, offset: float) -> bool:
    """Fill ``out`` with the next values of ``bits``'s stream as ``Generator(bits).random(dtype=out.dtype)``
    draws them, each times ``folded * 2**24`` (float32; ``2**53``, float64) plus ``offset`` (``folded``:
    the scale already multiplied by ``2**-24`` or ``2**-53``, rounded once) and advance ``bits`` past
    them; return True. Return False, drawing nothing, where the kernel is not built, ``bits`` is not a
    PCG64, ``out`` is not a contiguous float32 array of even length or float64 array, or a float32 half
    output is buffered (the caller draws that one first).
    """
    library = _load()
    if library is None or type(bits) is not np.random.PCG64 or not out.flags.c_contiguous or not out.flags.writeable:
        return False
    if out.dtype == np.float32:
        if out.size % 2:
            return False
        function, words = library["up_uniform32"], out.size // 2
    elif out.dtype == np.float64:
        function, words = library["up_uniform64"], out.size
    else:
        return False
    state = bits.state
    if state["has_uint32"]:
        return False
    inner = state["state"]
    held = np.array([inner["state"] >> 64, inner["state"] & _MASK, inner["inc"] >> 64, inner["inc"] & _MASK], np.uint64)
    if words:
        function(held.ctypes.data, out.ctypes.data, words, folded, offset)
    inner["state"] = (int(held[0]) << 64) | int(held[1])
    bits.state = state
    return True


__all__ = ["available", "uniform"]
