"""Copies between host arrays at memory speed, transposes included.

``np.copyto(dst, src)`` runs at memory speed only when both arrays walk memory in the same order.
Moving a weight between frameworks usually transposes it (a Keras kernel ``(in, out)`` into a
PyTorch weight ``(out, in)``), and NumPy then reads one array with a large stride, a cache line per
element: about a tenth of memory speed, and a third of PyTorch's own transposing copy here.
:func:`copy_into` first merges the axes both arrays walk alike (a contiguous copy becomes one flat
copy, a conv kernel's ``(H, W)`` becomes one axis), then copies cache-sized tiles, so each tile's
strided reads hit the cache, and spreads the tiles over the library's worker threads (NumPy releases
the GIL while copying). Measured here (2 cores, float32): a 4096 x 4096 transpose in 22 ms against
PyTorch's 50 ms; a 3 x 3 x 512 x 512 conv kernel to ``(out, in, 3, 3)`` in 3 ms against 8 ms.

A 2-D transpose of 4- or 2-byte elements (dense kernels, embeddings, attention projections, in
float32, float16 or bfloat16) goes to the compiled kernel of :mod:`unifyparams.transpose_kernel`
where it is built, at close to a plain copy's speed: NumPy's strided loop moves one element a
step, and at power-of-two widths the strided rows share cache sets, so the tiles above stop at a
third of a plain copy.

It calls NumPy (and that kernel) only and allocates nothing the size of the arrays, so it cannot
be refused part way the way a framework's write can; :mod:`unifyparams.memory_write` relies on that.

>>> a = np.arange(6.0).reshape(2, 3); out = np.empty((3, 2))
>>> copy_into(out, a.T); bool((out == a.T).all())
True
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from . import transpose_kernel
from .workers import executor, on_worker, threads

#: Bytes of one tile of a reordering copy: its strided reads stay in the CPU's cache.
TILE_BYTES = 1 << 18
#: Copies smaller than this run on the calling thread: handing them out costs more than it saves.
PARALLEL_BYTES = 1 << 22
#: Transposes of 4- and 2-byte elements this large or larger go to :mod:`unifyparams.transpose_kernel`.
KERNEL_BYTES = 1 << 16
#: The least of each destination row one part of a split transpose writes (:func:`split`): measured
#: here on 4096 x 4096 float32 from a file mapping, bands of 128 columns ran at 3.9 GB/s and bands
#: of 1024 at 5.8 GB/s.
MIN_BAND_BYTES = 1 << 12
#: The size of a huge page on x86-64 and most ARM Linux (:func:`empty_aligned`).
HUGE_PAGE_BYTES = 1 << 21
#: New arrays this large or larger start at a huge page (NumPy asks for huge pages from 4 MiB).
HUGE_PAGE_ARRAY_BYTES = 1 << 22


def copy_into(dst: np.ndarray, src: np.ndarray, threaded: bool = True) -> None:
    """Copy ``src`` into ``dst`` (same shape; ``src`` cast to ``dst``'s dtype as NumPy's
    ``same_kind`` allows), whatever either's strides, at memory speed.

    The arrays must not overlap (NumPy would then copy through a temporary the size of ``src``).
    ``threaded=False`` copies on the calling thread alone (a worker thread's own part of a larger job).

    >>> out = np.zeros((2, 2), np.float32); copy_into(out, np.eye(2)); out.tolist()
    [[1.0, 0.0], [0.0, 1.0]]
    """
    if dst.shape != src.shape:
        raise ValueError(f"copy_into: shapes differ: destination {dst.shape}, source {src.shape}")
    same = dst.dtype == src.dtype
    kernel = same and dst.nbytes >= KERNEL_BYTES and transpose_kernel.available()
    tiled = same and threaded and dst.nbytes >= PARALLEL_BYTES and not on_worker()
    if not (kernel or tiled):
        np.copyto(dst, src, casting="same_kind")
        return
    d, s = _merged(dst, src)  # once, for the kernel and the tiles alike
    if kernel and d.ndim == 2:
        parts = threads() if tiled else 1
        if transpose_kernel.transpose(d, s, parts) or transpose_kernel.transpose(d.T, s.T, parts):
            return  # a 2-D transpose of 4- or 2-byte elements: the compiled kernel
    if not tiled:
        np.copyto(d, s)
        return
    tiles: list[tuple[slice, ...]]
    if d.ndim == 1:  # both walk memory alike: flat parts, one per thread
        parts = threads()
        bounds = [d.shape[0] * i // parts for i in range(parts + 1)]
        tiles = [(slice(lo, hi),) for lo, hi in itertools.pairwise(bounds) if hi > lo]
    else:
        tiles = _tiles(d.shape, max(1, TILE_BYTES // d.itemsize))
    _copy_tiles(d, s, tiles)


def split(
    dst: np.ndarray, src: np.ndarray, part_bytes: int, fill_threads: bool = True
) -> list[tuple[np.ndarray, np.ndarray]] | None:
    """``copy_into(dst, src)`` as parts of about ``part_bytes`` each, in order, every part's source one
    run of memory (so its pages can be mapped and let go part by part), each copied by
    ``copy_into(d, s, threaded=False)`` on any thread; or None where the copy does not split so (a
    cast, a reordering other than a 2-D transpose the compiled kernel takes): copy it whole.

    A plain copy splits into flat runs; a transpose into bands of the source's rows (columns of the
    destination), whole 64-byte lines of both sides but at the edges, each writing at least
    :data:`MIN_BAND_BYTES` of every destination row; narrower ones where ``fill_threads`` and there
    would be fewer bands than worker threads (a copy on its own; in a stream of copies the other
    values keep the threads busy, and narrow bands of 1024 x 1024 float32 into new memory ran at
    2.7 GB/s against 4.7 for whole matrices here).

    >>> a = np.arange(12.0); out = np.empty(12)
    >>> parts = split(out, a, 32); len(parts)
    3
    >>> for d, s in parts: copy_into(d, s, threaded=False)
    >>> bool((out == a).all())
    True
    """
    if dst.shape != src.shape or dst.dtype != src.dtype or not dst.size:
        return None
    d, s = _merged(dst, src)
    size = d.itemsize
    count = max(1, dst.nbytes // max(1, part_bytes))
    if d.ndim == 1:
        if d.strides[0] != size or s.strides[0] != size:
            return None
        bounds = [d.shape[0] * i // count for i in range(count + 1)]
        return [(d[lo:hi], s[lo:hi]) for lo, hi in itertools.pairwise(bounds) if hi > lo]
    if d.ndim != 2 or not transpose_kernel.available():
        return None
    if not transpose_kernel.takes(d, s):
        if not transpose_kernel.takes(d.T, s.T):
            return None
        d, s = d.T, s.T
    cols = d.shape[1]  # the source's rows
    step = 64 // size  # a cache line of elements
    # bands of at least MIN_BAND_BYTES of each destination row, unless that leaves a thread idle:
    # narrower bands of a tall matrix touch every destination page for a few lines each
    bands = max(1, cols * size // MIN_BAND_BYTES)
    if bands < threads() and fill_threads:
        bands = min(threads(), cols // max(step, transpose_kernel.MIN_SIDE))
    count = max(1, min(count, bands))
    bounds = [cols * i // count // step * step for i in range(count)] + [cols]
    return [(d[:, lo:hi], s[:, lo:hi]) for lo, hi in itertools.pairwise(bounds) if hi > lo]


def empty_aligned(shape: tuple[int, ...], dtype: np.dtype, alignment: int = 64) -> np.ndarray:
    """A new, uninitialized C-contiguous array of ``shape`` and ``dtype`` whose data starts at a
    multiple of ``alignment`` bytes (a power of two), and, from :data:`HUGE_PAGE_ARRAY_BYTES` up, at a
    multiple of :data:`HUGE_PAGE_BYTES`.

    NumPy aligns only to 16 bytes; a framework that takes host memory over without a copy may ask
    more (XLA's CPU client aliases a NumPy array in ``device_put`` only from 64 bytes, and copies it
    otherwise). New memory is paid for when it is first written (a page fault per page): NumPy asks
    Linux for huge pages on large arrays, and a huge page is used only where 2 MiB of the array start
    at a 2 MiB boundary. Measured here, a first copy into new 4 MiB arrays ran at 2.0-2.5 GB/s
    with NumPy's placement and 4.2-4.6 GB/s from a 2 MiB boundary. The array is a view of a larger
    byte buffer, which it keeps alive; the bytes before the boundary are never touched, so they cost
    address space only.

    >>> a = empty_aligned((3, 5), np.dtype("float32"))
    >>> a.ctypes.data % 64, a.shape, a.flags.c_contiguous
    (0, (3, 5), True)
    """
    if alignment <= 0 or alignment & (alignment - 1):
        raise ValueError(f"empty_aligned: alignment must be a power of two, got {alignment}")
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes >= HUGE_PAGE_ARRAY_BYTES:
        alignment = max(alignment, HUGE_PAGE_BYTES)
    raw = np.empty(nbytes + alignment, np.uint8)
    start = -raw.ctypes.data % alignment
    return raw[start:start + nbytes].view(dtype).reshape(shape)


def is_fast(src: np.ndarray) -> bool:
    """Whether :func:`copy_into` moves ``src`` into a new row-major array of its shape at about a
    plain copy's speed: it is in that order already, or it is a 2-D transpose the compiled kernel
    takes (:mod:`unifyparams.transpose_kernel`). An adapter may then copy a value into memory of its
    framework's own with :func:`copy_into` rather than with the framework's transpose.

    >>> is_fast(np.zeros((3, 4)))
    True
    """
    if src.flags.c_contiguous:
        return True
    if not transpose_kernel.available() or src.itemsize not in (2, 4):
        return False
    strides = [src.itemsize] * src.ndim
    for axis in range(src.ndim - 2, -1, -1):
        strides[axis] = strides[axis + 1] * src.shape[axis + 1]
    layout = np.lib.stride_tricks.as_strided(np.empty(1, src.dtype), src.shape, tuple(strides))  # no memory read
    d, s = _merged(layout, src)
    return d.ndim == 1 or (d.ndim == 2 and (transpose_kernel.takes(d, s) or transpose_kernel.takes(d.T, s.T)))


def byte_bounds(array: np.ndarray) -> tuple[int, int]:
    """The first and one-past-last byte addresses ``array``'s elements can occupy.

    >>> a = np.zeros(4, np.float32); low, high = byte_bounds(a[::-1]); high - low
    16
    """
    low = high = int(array.__array_interface__["data"][0])
    for n, stride in zip(array.shape, array.strides, strict=True):
        reach = (n - 1) * stride
        low, high = (low + reach, high) if reach < 0 else (low, high + reach)
    return low, high + array.itemsize


def _merged(dst: np.ndarray, src: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both arrays with size-1 axes dropped and neighbouring axes merged where *both* step through
    memory across them as one axis would (same elements, same order, fewer and longer axes)."""
    axes = [(n, a, b) for n, a, b in zip(dst.shape, dst.strides, src.strides, strict=True) if n != 1]
    merged: list[tuple[int, int, int]] = []
    for n, a, b in axes:
        if merged:
            m, ma, mb = merged[-1]
            if ma == a * n and mb == b * n:
                merged[-1] = (m * n, a, b)
                continue
        merged.append((n, a, b))
    if not merged:
        merged = [(1, dst.itemsize, src.itemsize)]
    shape = tuple(n for n, _, _ in merged)
    as_strided = np.lib.stride_tricks.as_strided
    d = as_strided(dst, shape=shape, strides=tuple(a for _, a, _ in merged), writeable=True)
    s = as_strided(src, shape=shape, strides=tuple(b for _, _, b in merged), writeable=False)
    return d, s


def _tiles(shape: tuple[int, ...], budget: int) -> list[tuple[slice, ...]]:
    """Blocks covering ``shape`` of at most ``budget`` elements each, their sides as equal as the
    axes allow (the largest side is halved until the block fits)."""
    block = list(shape)
    while math.prod(block) > budget:
        axis = max(range(len(block)), key=block.__getitem__)
        block[axis] = (block[axis] + 1) // 2
    starts = [range(0, n, b) for n, b in zip(shape, block, strict=True)]
    return [tuple(slice(i, i + b) for i, b in zip(start, block, strict=True)) for start in itertools.product(*starts)]


def _copy_tiles(dst: np.ndarray, src: np.ndarray, tiles: list[tuple[slice, ...]]) -> None:
    def run(part: list[tuple[slice, ...]]) -> None:
        for tile in part:
            np.copyto(dst[tile], src[tile])

    workers = min(threads(), len(tiles))
    if workers <= 1:
        run(tiles)
        return
    bounds = [len(tiles) * i // workers for i in range(workers + 1)]
    futures = [executor().submit(run, tiles[lo:hi]) for lo, hi in itertools.pairwise(bounds)]
    for future in futures:
        future.result()


__all__ = [
    "HUGE_PAGE_ARRAY_BYTES", "HUGE_PAGE_BYTES", "KERNEL_BYTES", "MIN_BAND_BYTES", "PARALLEL_BYTES", "TILE_BYTES",
    "byte_bounds", "copy_into", "empty_aligned",
    "is_fast", "split",
]
