"""The compiled transposing copy of 4-byte and 2-byte elements, where it was built.

:func:`unifyparams.copying.copy_into` moves a transposed float32 matrix (a Keras kernel into a
PyTorch weight, a checkpoint's ``(out, in)`` into a Keras ``(in, out)``) with NumPy's tiled copy at
about a third of a plain copy's speed (a bfloat16 one at a sixth). ``unifyparams._transpose`` (C,
``unifyparams/_native``) moves 16 x 16 blocks through AVX2 registers, every cache line used whole:
near a plain copy's speed, at power-of-two widths too. It is optional: built where a C compiler is found, used where the CPU has
AVX2; :func:`available` says whether it is, and without it the NumPy path runs.

It takes addresses, not arrays, and is called through :mod:`ctypes`, which releases the GIL, so the
library's worker threads copy parts of one matrix at once.

>>> a = np.arange(64 * 48, dtype=np.float32).reshape(64, 48); out = np.empty((48, 64), np.float32)
>>> if not transpose(out, a.T):   # not built here: NumPy
...     out[...] = a.T
>>> bool((out == a.T).all())
True
"""

from __future__ import annotations

import ctypes
import itertools
from typing import Any

import numpy as np

from . import compiled
from .workers import executor, on_worker, threads

#: Fewest elements on each side for the kernel: smaller matrices are NumPy's (the blocks are 16 x 16).
MIN_SIDE = 16
#: Rows per thread's part, at least: smaller parts cost more to hand out than they save.
_MIN_ROWS = 64

_kernel: Any = None
_loaded = False


def _load() -> Any:
    """The kernel's entry point, or None where the module was not built or the CPU lacks AVX2
    (or ``UNIFYPARAMS_NO_NATIVE`` is set: the NumPy path, for comparison)."""
    global _kernel, _loaded
    if _loaded:
        return _kernel
    _loaded = True
    signature = [ctypes.c_void_p, ctypes.c_ssize_t, ctypes.c_void_p, ctypes.c_ssize_t, ctypes.c_size_t, ctypes.c_size_t]
    typed = compiled.functions("_transpose", {"up_transpose32": signature, "up_transpose16": signature},
                               ready="up_transpose32_available")
    _kernel = None if typed is None else {4: typed["up_transpose32"], 2: typed["up_transpose16"]}  # by element size
    return _kernel


def available() -> bool:
    """Whether the compiled kernel is built and runs on this CPU.

    >>> isinstance(available(), bool)
    True
    """
    return _load() is not None


def takes(dst: np.ndarray, src: np.ndarray) -> bool:
    """Whether :func:`transpose` copies ``src`` into ``dst`` (see there), without copying anything.

    >>> a = np.zeros((64, 48), np.float32)
    >>> takes(np.empty((48, 64), np.float32), a.T) == available()
    True
    """
    return _kernel_for(dst, src) is not None


def _kernel_for(dst: np.ndarray, src: np.ndarray) -> Any:
    kernels = _load()
    if kernels is None or dst.ndim != 2 or dst.shape != src.shape or dst.dtype != src.dtype:
        return None
    kernel = kernels.get(dst.itemsize)
    rows, cols = dst.shape
    size = dst.itemsize
    if kernel is None or rows < MIN_SIDE or cols < MIN_SIDE or dst.strides[1] != size or src.strides[0] != size:
        return None
    dst_step, src_step = dst.strides[0], src.strides[1]
    if dst_step % size or src_step % size or dst_step < cols * size or src_step < rows * size:
        return None  # rows that overlap or are not whole elements apart: NumPy's
    return kernel


def transpose(dst: np.ndarray, src: np.ndarray, parts: int | None = None) -> bool:
    """Copy ``src`` into ``dst`` with the kernel and return True, when both are 2-D arrays of the same
    4-byte or 2-byte dtype with ``dst`` unit-stride along its rows and ``src`` along its columns (``src``
    is the transposed view of a row-major matrix) and each side has :data:`MIN_SIDE` elements or more;
    otherwise copy nothing and return False. The arrays must not overlap. ``parts``: how many worker
    threads share the rows (default: every one).
    """
    kernel = _kernel_for(dst, src)
    if kernel is None:
        return False
    if not dst.flags.writeable:
        raise ValueError("transpose: the destination is read-only")
    rows, cols = dst.shape
    size = dst.itemsize
    dst_step, src_step = dst.strides[0], src.strides[1]
    dst_at = int(dst.__array_interface__["data"][0])
    src_at = int(src.__array_interface__["data"][0])
    dst_stride, src_stride = dst_step // size, src_step // size
    parts = max(1, min(threads() if parts is None else parts, rows // _MIN_ROWS))
    if on_worker():  # a worker's own task: its parts here would wait behind it
        parts = 1
    if parts == 1:
        kernel(src_at, src_stride, dst_at, dst_stride, rows, cols)
        return True
    bounds = [rows * i // parts // 16 * 16 for i in range(parts)] + [rows]  # whole blocks per part
    futures = [executor().submit(kernel, src_at + lo * size, src_stride, dst_at + lo * dst_step, dst_stride, hi - lo, cols)
               for lo, hi in itertools.pairwise(bounds) if hi > lo]
    for future in futures:
        future.result()
    return True


__all__ = ["MIN_SIDE", "available", "takes", "transpose"]
