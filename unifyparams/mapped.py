"""Pages of read-only file maps, mapped in bulk just before a write copies them and let go after.

A load reads a checkpoint through a memory map (:class:`unifyparams.checkpoint.format.SafetensorsFile`).
Faulting its pages in one at a time while copying costs about as much as the copy, so they are
mapped in one system call first (``MADV_POPULATE_READ``); once a tensor is written its pages are
let go (``MADV_DONTNEED``: the data stays in the page cache, only this process's mapping of it is
dropped). The write path (:mod:`unifyparams.transaction`, :mod:`unifyparams.memory_write`) does
both for every value that lies in a registered map, one tensor at a time, so a load's resident
memory grows by about one tensor, not by the file. Only maps the library made itself, read-only
and file-backed, are registered: dropping the pages of any other map could lose data.

A value whose bytes go into memory as they are (no transpose, no cast) is not copied from the map
at all: :func:`reader` reads it from the open file straight into the destination, where the kernel
copies from the page cache without mapping it into this process.

>>> import mmap, tempfile
>>> with tempfile.TemporaryFile() as f:
...     _ = f.write(bytes(range(256)) * 256); f.flush()
...     m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ); register(m)
...     a = np.frombuffer(m, np.uint8)
...     populate(a); release(a)          # advice only: the values are the file's
...     int(a[:256].sum())
32640
"""

from __future__ import annotations

import mmap
import os
import sys
import weakref
from collections.abc import Callable
from typing import IO

import numpy as np

from .copying import byte_bounds

#: Values smaller than this are left alone: the two system calls cost more than the pages.
MIN_BYTES = 1 << 16
#: ``MADV_POPULATE_READ`` (Linux 5.14+; not yet named in Python's mmap module).
_POPULATE_READ = 22 if sys.platform == "linux" else None

_origins: weakref.WeakKeyDictionary[mmap.mmap, int] = weakref.WeakKeyDictionary()
#: The open file each registered map was made from, for :func:`reader`.
_files: weakref.WeakKeyDictionary[mmap.mmap, IO[bytes]] = weakref.WeakKeyDictionary()


def register(mapping: mmap.mmap, file: IO[bytes] | None = None) -> None:
    """Let :func:`populate` and :func:`release` act on arrays over ``mapping`` (a read-only map of a
    file), and :func:`reader` read them from ``file`` (the open file the map was made from) instead."""
    probe = np.frombuffer(mapping, np.uint8, 1)
    _origins[mapping] = int(probe.__array_interface__["data"][0])
    del probe  # no export of the map is kept: it can still be closed
    if file is not None:
        _files[mapping] = file


def in_file_map(array: np.ndarray) -> bool:
    """Whether ``array`` lies in a map :func:`register` was given (a checkpoint's read-only file),
    which no model's parameter can share.

    >>> in_file_map(np.zeros(3))
    False
    """
    return _mapping(array) is not None


def _mapping(array: np.ndarray) -> mmap.mmap | None:
    if not _origins:
        return None
    base: object = array
    while isinstance(base, np.ndarray) or (not isinstance(base, memoryview) and hasattr(base, "base")):
        base = base.base  # views, and as_strided's wrapper of the array it views
    if isinstance(base, memoryview):
        base = base.obj
    return base if isinstance(base, mmap.mmap) and base in _origins else None


def _span(array: np.ndarray) -> tuple[mmap.mmap, int, int] | None:
    """The registered map ``array`` lies in, and the page-aligned byte range it covers there."""
    if array.nbytes < MIN_BYTES:
        return None
    base = _mapping(array)
    if base is None:
        return None
    origin = _origins[base]
    low, high = byte_bounds(array)
    start = low - origin
    start -= start % mmap.PAGESIZE
    return base, start, high - origin - start


def reader(dst: np.ndarray, src: np.ndarray) -> Callable[[np.ndarray], None] | None:
    """A fill for ``dst`` (called with it) that reads ``src``'s bytes from its file straight into it (``os.preadv``),
    where ``src`` lies in a registered map whose file is still open and the copy is of bytes as they
    are (both C-contiguous, one dtype and shape, ``dst`` writable); None otherwise.

    Why: the kernel copies from the page cache through its own mapping, so neither the pages of the
    file nor their faults cost this process anything; from the map the same copy pays for mapping
    each page (1 GiB in 16 parts of 64 MiB: ``preadv`` on two threads 97-166 ms, the copy from the
    populated map about 170 ms, one ``readinto`` 166-169 ms, on this machine; 64 MiB into a PyTorch
    model: 6.4 ms against 11.7 ms).

    A read can fail where a copy from the map cannot (an I/O error is reported to ``preadv``; the
    map raises it as a fault), and a write into a parameter's own memory keeps no snapshot to undo
    it with (:mod:`unifyparams.memory_write`): so whatever the read leaves unread is copied from the
    map, exactly as it was before this path existed.

    >>> import tempfile
    >>> with tempfile.TemporaryFile() as f:
    ...     _ = f.write(np.arange(1 << 15, dtype=np.float32).tobytes()); f.flush()
    ...     m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ); register(m, f)
    ...     src = np.frombuffer(m, np.float32); dst = np.empty_like(src)
    ...     reader(dst, src)(dst); bool((dst == src).all()), reader(dst, src[::2]) is None
    (True, True)
    """
    if src.nbytes < MIN_BYTES or src.dtype != dst.dtype or src.shape != dst.shape:
        return None
    if not (src.flags.c_contiguous and dst.flags.c_contiguous and dst.flags.writeable):
        return None
    base = _mapping(src)
    file = _files.get(base) if base is not None else None
    if base is None or file is None or file.closed:
        return None
    offset = byte_bounds(src)[0] - _origins[base]
    return lambda out: _read_into(file, out.reshape(-1).view(np.uint8), src.reshape(-1).view(np.uint8), offset)


def _read_into(file: IO[bytes], target: np.ndarray, mapped_bytes: np.ndarray, offset: int) -> None:
    """Fill ``target`` with the file's bytes from ``offset``; what a read leaves (an error, the file
    shorter than it was) is copied from ``mapped_bytes``, the same bytes in the map."""
    done = _pread_into(file, target.data, offset)
    if done < target.size:
        np.copyto(target[done:], mapped_bytes[done:])


def _pread_into(file: IO[bytes], target: memoryview, offset: int) -> int:
    """Read the file's bytes from ``offset`` into ``target``: how many were read before the file
    ended or a read failed (all of them, normally)."""
    done = 0
    try:
        while done < len(target):
            got = os.preadv(file.fileno(), [target[done:]], offset + done)
            if got <= 0:
                break
            done += got
    except (OSError, ValueError):  # an I/O error, or the file closed meanwhile
        pass
    return done


def populate(array: np.ndarray) -> None:
    """Map the pages under ``array`` in one system call (a hint: nothing happens where it is refused)."""
    span = _span(array)
    if span is None:
        return
    advise_populate(*span)


def advise_populate(mapping: mmap.mmap, start: int, length: int) -> None:
    """Map ``length`` bytes of ``mapping`` from ``start`` (page-aligned) in bulk:
    ``MADV_POPULATE_READ``, else ``MADV_WILLNEED`` (read ahead), else nothing."""
    for advice in (_POPULATE_READ, getattr(mmap, "MADV_WILLNEED", None)):
        if advice is None:
            continue
        try:
            mapping.madvise(advice, start, length)
            return
        except (OSError, ValueError, AttributeError):
            continue


def release(array: np.ndarray) -> None:
    """Drop this process's mapping of the pages under ``array`` (they stay in the page cache, and
    are mapped again if read again)."""
    span = _span(array)
    advice = getattr(mmap, "MADV_DONTNEED", None)
    if span is None or advice is None:
        return
    mapping, start, length = span
    try:
        mapping.madvise(advice, start, length)
    except (OSError, ValueError):
        pass


__all__ = ["MIN_BYTES", "advise_populate", "in_file_map", "populate", "reader", "register", "release"]
