"""Pages of read-only file maps, mapped in bulk just before a write copies them and let go after.

A load reads a checkpoint through a memory map (:class:`unifyparams.checkpoint.format.SafetensorsFile`).
Faulting its pages in one at a time while copying costs about as much as the copy, so they are
mapped in one system call first (``MADV_POPULATE_READ``); once a tensor is written its pages are
let go (``MADV_DONTNEED``: the data stays in the page cache, only this process's mapping of it is
dropped). The write path (:mod:`unifyparams.transaction`, :mod:`unifyparams.memory_write`) does
both for every value that lies in a registered map, one tensor at a time, so a load's resident
memory grows by about one tensor, not by the file. Only maps the library made itself, read-only
and file-backed, are registered: dropping the pages of any other map could lose data.

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
import sys
import weakref

import numpy as np

from .copying import byte_bounds

#: Values smaller than this are left alone: the two system calls cost more than the pages.
MIN_BYTES = 1 << 16
#: ``MADV_POPULATE_READ`` (Linux 5.14+; not yet named in Python's mmap module).
_POPULATE_READ = 22 if sys.platform == "linux" else None

_origins: weakref.WeakKeyDictionary[mmap.mmap, int] = weakref.WeakKeyDictionary()


def register(mapping: mmap.mmap) -> None:
    """Let :func:`populate` and :func:`release` act on arrays over ``mapping`` (a read-only map of a file)."""
    probe = np.frombuffer(mapping, np.uint8, 1)
    _origins[mapping] = int(probe.__array_interface__["data"][0])
    del probe  # no export of the map is kept: it can still be closed


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


__all__ = ["MIN_BYTES", "advise_populate", "in_file_map", "populate", "register", "release"]
