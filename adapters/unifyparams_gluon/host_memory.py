"""Writing an MXNet CPU array's memory straight from NumPy, with MXNet told it was written.

MXNet's own ways to put NumPy values into an existing array copy them at about a quarter of memory
speed (``array[:] = values`` is a synchronous copy; ``mx.nd.array(values).copyto(array)`` copies
twice). ``MXNDArrayGetData`` gives the array's own memory after waiting for every pending operation
on it, and first puts an array that a oneDNN (MKLDNN) operator left in its own blocked layout back
into the default layout (MXNet 1.9's ``c_api.cc``: ``Reorder2DefaultAsync(); WaitToRead()``), so the
memory holds the values in C order. NumPy then copies at memory speed.

A write behind MXNet's engine does not advance the array's version, which cached operators (fused
oneDNN subgraphs keep reordered weights until the version changes) use to notice new values: after
the copy, one element is written again through the engine (``copyto``), which advances it.

>>> from unifyparams_gluon import import_mxnet; mx = import_mxnet()   # doctest: +SKIP
>>> a = mx.nd.zeros((2, 3)); write(mx, a, np.ones((2, 3), np.float32)); a.sum().asscalar()   # doctest: +SKIP
6.0
"""

from __future__ import annotations

import ctypes
from typing import Any

import numpy as np

#: Arrays smaller than this keep MXNet's own copies when read or written one at a time: below it, the
#: calls around a direct copy cost more than they save. Write targets (:func:`targets`) are asked for
#: all of a write's arrays at once, and take every size: with one wait for the engine for all, a
#: small array's target costs less than MXNet's copy and the wait after it (16 biases of a load:
#: about 4 ms less here).
MIN_BYTES = 1 << 20


def view(mx: Any, array: Any, nbytes: int, min_bytes: int | None = None) -> np.ndarray | None:
    """A writable NumPy array over ``array``'s own memory, or None where there is none to offer
    (``nbytes``, its size as the caller knows it without asking MXNet, below ``min_bytes``, by
    default :data:`MIN_BYTES`; not on the CPU, sparse storage, a dtype NumPy has no name for, no
    memory yet)."""
    if nbytes < (MIN_BYTES if min_bytes is None else min_bytes):
        return None
    if array.context.device_type != "cpu" or getattr(array, "stype", "default") != "default":
        return None
    try:
        dtype = np.dtype(array.dtype)
    except TypeError:
        return None
    lib, check_call = mx.base._LIB, mx.base.check_call
    check_call(lib.MXNDArrayWaitToWrite(array.handle))  # nothing reads or writes it meanwhile
    pointer = ctypes.c_void_p()
    check_call(lib.MXNDArrayGetData(array.handle, ctypes.byref(pointer)))
    if not pointer.value:
        return None
    shape = tuple(int(d) for d in array.shape)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    memory = (ctypes.c_char * nbytes).from_address(pointer.value)
    return np.frombuffer(memory, dtype=dtype).reshape(shape)


def borrowed(mx: Any, array: Any, nbytes: int) -> np.ndarray | None:
    """:func:`view` of ``array``, read-only, holding a reference to ``array`` (so its memory lives
    as long as the view); None where :func:`view` offers none."""
    memory = view(mx, array, nbytes)
    if memory is None:
        return None
    held = _Held(memory, array)
    out = np.asarray(held)
    out.flags.writeable = False
    return out


class _Held:
    """An array interface that keeps the MXNet array whose memory it exposes alive."""

    def __init__(self, memory: np.ndarray, owner: Any) -> None:
        self.__array_interface__ = memory.__array_interface__
        self._memory, self._owner = memory, owner


def targets(mx: Any, arrays: list[tuple[Any, int]]) -> list[np.ndarray | None]:
    """:func:`view` of each ``(array, nbytes)`` for a write that will copy into it later, its version
    advanced first: element 0 is written again with its own value through the engine (values
    unchanged), and the view is taken after that write finished; None where :func:`view` offers
    none. One wait for MXNet's engine for all: every version is advanced first, then each view is
    taken (one array at a time, each is a round trip through the engine's threads: 6 ms for sixteen
    arrays here, 1.4 ms so)."""
    ready = []
    for array, nbytes in arrays:
        # view() also puts a oneDNN-layout array back in the default layout, which a slice of it needs
        ready.append(nbytes > 0 and bool(array.shape) and view(mx, array, nbytes, 0) is not None)
    for (array, _), advance in zip(arrays, ready, strict=True):
        if advance:
            first = _first(mx, array)
            first.copy().copyto(first)  # an engine write of the same value: the version advances
    return [view(mx, array, nbytes, 0) if advance else None  # after that write finished
            for (array, nbytes), advance in zip(arrays, ready, strict=True)]


def _first(mx: Any, array: Any) -> Any:
    """Element 0 of ``array`` as a 1-element array sharing its memory (NDArray or mxnet.numpy)."""
    return array.reshape(-1)[0:1] if isinstance(array, mx.np.ndarray) else array.reshape((-1,))[0:1]


def write(mx: Any, array: Any, value: np.ndarray) -> bool:
    """Copy ``value`` (``array``'s shape) into ``array`` through :func:`view`, then advance its
    version; False (nothing written) where there is no view, and the caller copies MXNet's way."""
    if value.ndim == 0:
        return False
    target = view(mx, array, value.nbytes)
    if target is None or target.shape != value.shape:
        return False
    np.copyto(target, value, casting="same_kind")
    del target
    first = _first(mx, array)
    make = mx.np.array if isinstance(array, mx.np.ndarray) else mx.nd.array
    make(value.reshape(-1)[:1], dtype=array.dtype, ctx=array.context).copyto(first)  # the engine's write
    return True
