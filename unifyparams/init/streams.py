"""Seeded random streams that give identical values in every backend, fast and in bounded memory.

Each parameter's values come from ``(seed, canonical name)``, not from its position, so per-block
initialization composes and a subset initialized alone gets the values the full model would. Large
parameters are filled in fixed-size chunks, each with its own stream ``(seed, name, chunk)``:
the values do not depend on how many threads fill them, and the chunks fill in parallel (NumPy
releases the GIL while generating).

>>> a = uniform((3, 4), "0.weight", seed=7, low=-1, high=1, dtype=np.float32)
>>> b = uniform((3, 4), "0.weight", seed=7, low=-1, high=1, dtype=np.float32)
>>> bool((a == b).all())
True
"""

from __future__ import annotations

import hashlib
import math
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .. import draw_kernel, transpose_kernel
from ..copying import copy_into
from ..workers import run_all as _run_all
from ..workers import threads as _threads

CHUNK = 1 << 22  # elements per independent stream (16 MiB of float32)


def name_words(name: str) -> tuple[int, ...]:
    """A stable 128-bit key for a canonical name (Python's ``hash`` changes between processes)."""
    digest = hashlib.blake2b(name.encode(), digest_size=16).digest()
    return tuple(int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4))


def generator(seed: int, name: str, chunk: int = 0) -> np.random.Generator:
    """The stream for chunk ``chunk`` of parameter ``name`` under ``seed``."""
    return np.random.Generator(_bits(seed, name, chunk))


def _bits(seed: int, name: str, chunk: int) -> np.random.PCG64:
    return np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(*name_words(name), chunk)))


def _fill(shape: Sequence[int], name: str, seed: int, dtype: np.dtype,
          draw: Callable[[np.random.Generator, np.ndarray], None] | None, out: np.ndarray | None = None,
          split: Split | None = None) -> np.ndarray:
    """Fill ``out`` (or a new array) chunk by chunk; chunk ``k`` holds the canonical elements
    ``[k * CHUNK, (k + 1) * CHUNK)`` in C order, drawn from stream ``(seed, name, k)``.

    ``out`` may be a parameter's own memory, and may be a strided view (the canonical view of a
    transposed native layout): then the values are drawn a band at a time into a cache-sized
    buffer and copied to their places from the cache (with a :class:`Split`; a whole chunk at a
    time otherwise), so the values are the same and no parameter-sized scratch is needed.
    With ``split`` (a drawer that can start part way through its stream), a contiguous ``out``
    of fewer chunks than threads has each chunk drawn in parts by several threads, bit-identical.
    """
    if out is None or out.dtype != dtype or out.shape != tuple(shape):
        out = np.empty(tuple(shape), dtype=dtype)
    n = out.size
    chunks = max(1, math.ceil(n / CHUNK))
    if split is not None and out.flags.c_contiguous:
        _fill_parts(out.reshape(-1), chunks, name, seed, dtype, split)
        return out
    if split is not None:
        _fill_bands(out, chunks, name, seed, dtype, split)
        return out

    def draw_chunk(k: int, values: np.ndarray) -> None:
        if split is not None:
            split.fill(lambda offset: stream_at(seed, name, k, offset, dtype), values, 0, split.units(values.size))
        else:
            assert draw is not None, "a drawer is either whole-chunk or a Split"
            draw(generator(seed, name, k), values)

    if out.flags.c_contiguous:
        flat = out.reshape(-1)

        def work(k: int) -> None:
            draw_chunk(k, flat[k * CHUNK : (k + 1) * CHUNK])

    else:

        def work(k: int) -> None:
            values = _thread_buffer(dtype)[: min(CHUNK, n - k * CHUNK)]
            draw_chunk(k, values)
            _scatter(out, k * CHUNK, values)

    _run_all(work, range(chunks))
    return out


def _fill_parts(flat: np.ndarray, chunks: int, name: str, seed: int, dtype: np.dtype, split: Split) -> None:
    """Contiguous values through a :class:`Split`: with fewer chunks than threads, each chunk is
    drawn in parts by several threads (the values are the same as drawn whole)."""
    threads = _threads()
    tasks: list[tuple[np.ndarray, int, int, int]] = []
    for k in range(chunks):
        view = flat[k * CHUNK : (k + 1) * CHUNK]
        units = split.units(view.size)
        parts = max(1, min(-(-threads // chunks), units // _MIN_PART)) if chunks < threads else 1
        tasks.extend((view, k, units * i // parts, units * (i + 1) // parts) for i in range(parts))

    def part(task: tuple[np.ndarray, int, int, int]) -> None:
        view, k, lo, hi = task
        split.fill(lambda offset: stream_at(seed, name, k, offset, dtype), view, lo, hi)

    _run_all(part, tasks)


def _fill_bands(out: np.ndarray, chunks: int, name: str, seed: int, dtype: np.dtype, split: Split) -> None:
    """A strided ``out`` through a :class:`Split`: each thread draws a band of :data:`BAND` values
    into a buffer that stays in its cache, then copies it to its places in ``out``. Drawing into
    ``out`` directly would write it with a stride; drawing it all first, then transposing, would
    pass over memory twice."""
    n = out.size
    tasks: list[tuple[int, int, int, int]] = []
    values = min(BAND, max(_MIN_PART, -(-n // _threads())))  # per band: every thread gets one, if big enough
    for k in range(chunks):
        m = min(CHUNK, n - k * CHUNK)
        units = split.units(m)
        per = max(1, values * units // m)  # units per band: a band's values fill one buffer
        tasks.extend((k, m, lo, min(lo + per, units)) for lo in range(0, units, per))

    def band(task: tuple[int, int, int, int]) -> None:
        k, m, lo, hi = task
        buffer = _bands.take(dtype)
        try:
            for start, values in split.pieces(lambda offset: stream_at(seed, name, k, offset, dtype), m, lo, hi, buffer):
                _scatter(out, k * CHUNK + start, values)
        finally:
            _bands.give(dtype, buffer)

    _run_all(band, tasks)


#: Values of one band of :func:`_fill_bands` (4 MiB of float32, in a core's cache): enough rows
#: that copying them to a transposed view writes each page of it a whole tile at a time.
BAND = 1 << 20


class _BandBuffers:
    """Reusable band buffers per dtype, shared by the worker threads (one each is in use at a time)."""

    def __init__(self) -> None:
        self._free: dict[np.dtype, list[np.ndarray]] = {}
        self._lock = threading.Lock()

    def reserve(self, dtype: np.dtype) -> None:
        """Allocate a buffer for every worker thread now, so a fill allocates nothing."""
        dtype = np.dtype(dtype)
        with self._lock:
            free = self._free.setdefault(dtype, [])
            free.extend(np.empty(BAND, dtype) for _ in range(_threads() + 1 - len(free)))

    def take(self, dtype: np.dtype) -> np.ndarray:
        with self._lock:
            free = self._free.get(np.dtype(dtype))
            if free:
                return free.pop()
        return np.empty(BAND, dtype)

    def give(self, dtype: np.dtype, buffer: np.ndarray) -> None:
        with self._lock:
            self._free.setdefault(np.dtype(dtype), []).append(buffer)


_bands = _BandBuffers()


def reserve(dtype: np.dtype) -> None:
    """Allocate, before a write starts, the buffers a fill of a strided ``out`` in ``dtype`` uses.

    >>> reserve(np.dtype(np.float32))
    """
    _bands.reserve(dtype)


#: Fewest units (values, or Box-Muller pairs) one thread draws of a chunk split between threads.
_MIN_PART = 1 << 18
#: Values drawn and transformed at a time: the temporaries stay in the CPU's cache.
_BLOCK = 1 << 16


class Split(ABC):
    """A drawer that can fill part of a chunk: ``units(m)`` independent positions in a chunk of
    ``m`` values, and ``fill(stream_at, chunk, lo, hi)`` draws units ``[lo, hi)`` into ``chunk``,
    with ``stream_at(offset)`` the chunk's stream after ``offset`` values of the fill's dtype."""

    def units(self, m: int) -> int:
        return m

    @abstractmethod
    def fill(self, stream_at: Callable[[int], np.random.Generator], chunk: np.ndarray, lo: int, hi: int) -> None:
        """Draw units ``[lo, hi)`` of ``chunk``."""

    @abstractmethod
    def pieces(self, stream_at: Callable[[int], np.random.Generator], m: int, lo: int, hi: int,
               buffer: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """Draw units ``[lo, hi)`` of a chunk of ``m`` values into ``buffer``; return the values as
        ``(position in the chunk, values)`` pieces, each a run of consecutive positions."""


def stream_at(seed: int, name: str, chunk: int, offset: int, dtype: np.dtype) -> np.random.Generator:
    """Chunk ``chunk``'s stream as it is after ``offset`` values of ``dtype`` (float32: a 32-bit draw
    each, two per 64-bit output; float64: one output each) were drawn with ``Generator.random``.

    >>> whole = generator(1, "w").random(7, dtype=np.float32)
    >>> bool((stream_at(1, "w", 0, 3, np.dtype(np.float32)).random(4, dtype=np.float32) == whole[3:]).all())
    True
    """
    bits = _bits(seed, name, chunk)
    if np.dtype(dtype) == np.float32:
        rng = np.random.Generator(bits.advance(offset // 2))
        if offset % 2:  # the low half of the next output was drawn; its high half is what comes next
            rng.random(1, dtype=np.float32)
        return rng
    return np.random.Generator(bits.advance(offset))


_local = threading.local()


def _thread_buffer(dtype: np.dtype) -> np.ndarray:
    """This thread's chunk-sized scratch for ``dtype`` (reused: fresh pages cost more than values)."""
    buffers: dict[np.dtype, np.ndarray] = _local.__dict__.setdefault("buffers", {})
    buf = buffers.get(dtype)
    if buf is None or buf.size < CHUNK:
        buf = buffers[dtype] = np.empty(CHUNK, dtype=dtype)
    return buf


_TILE = 1 << 17  # elements per block copy into a strided view (16 rows of 8192 measured fastest)


def _scatter(out: np.ndarray, start: int, values: np.ndarray) -> None:
    """Copy ``values`` to the C-order positions ``[start, start + len(values))`` of ``out``
    (any strides), whole rows in blocks of about :data:`_TILE` elements."""
    if out.ndim == 0:
        out[()] = values[0]
        return
    row = math.prod(out.shape[1:])
    rest = out.shape[1:]
    r, c = divmod(start, row)
    i, n = 0, values.size
    if c:  # the end of a row
        take = min(row - c, n)
        out[r].flat[c : c + take] = values[:take]
        i, r = take, r + 1
    # whole rows: all at once into a transposed view where the compiled transpose is built (its
    # tiles keep the pages it writes few), else in blocks of about _TILE values (NumPy's copy)
    tile = n if transpose_kernel.available() else _TILE
    while n - i >= row:
        rows = min((n - i) // row, max(1, tile // row))
        copy_into(out[r : r + rows], values[i : i + rows * row].reshape(rows, *rest), threaded=False)
        i, r = i + rows * row, r + rows
    if i < n:  # the start of a row
        out[r].flat[: n - i] = values[i:]


def _float_dtype(dtype: np.dtype) -> np.dtype:
    """Generate in float32 or float64; other dtypes are cast by the caller."""
    return np.dtype(np.float32) if np.dtype(dtype) == np.float32 else np.dtype(np.float64)


#: Low bits ``Generator.random`` drops from a 32-bit (float32) or 64-bit (float64) draw.
_DROPPED_BITS = {np.dtype(np.float32): 8, np.dtype(np.float64): 11}


def scaled_uniform(rng: np.random.Generator, out: np.ndarray, span: float = 1.0, offset: float = 0.0) -> None:
    """Fill the contiguous ``out`` (float32 or float64) with ``rng.random(dtype=out.dtype) * span +
    offset``, the same bits, about 1.7 times faster, and leave ``rng`` where that call would.

    ``Generator.random`` makes each value with a call through the bit generator; here the raw 64-bit
    words come out in bulk (``random_raw``) and are turned into values by the same arithmetic in
    cache-sized blocks: the top 24 (53) bits times ``2**-24`` (``2**-53``), both exact, so folding the
    scale into ``span`` rounds once, as ``u * span`` does. Float32 takes a word's low half first, as
    PCG64 hands out 32-bit draws.

    >>> a, b = np.empty(5, np.float32), np.empty(5, np.float32)
    >>> scaled_uniform(generator(0, "w"), a, 2.0, -1.0)
    >>> b[:] = generator(0, "w").random(5, dtype=np.float32); b *= 2.0; b -= 1.0
    >>> bool((a == b).all())
    True
    """
    dtype = out.dtype
    gen = dtype.type
    scale = gen(2.0 ** -(24 if dtype == np.float32 else 53))
    folded = gen(span) * scale  # exact (a power-of-two scaling) unless span is near underflow
    bits = rng.bit_generator
    if not isinstance(bits, np.random.PCG64):  # the word order below is PCG64's
        for lo in range(0, out.size, _BLOCK):
            block = out[lo : lo + _BLOCK]
            rng.random(dtype=dtype, out=block)
            block *= gen(span)
            block += gen(offset)
        return
    start = 0
    if dtype == np.float32 and bits.state["has_uint32"]:  # half a word is buffered: it comes first
        rng.random(dtype=dtype, out=out[:1])
        out[:1] *= gen(span)
        out[:1] += gen(offset)
        start = 1
    exact = abs(float(gen(span))) > 2.0 ** (-100 if dtype == np.float32 else -960) or span == 0.0
    if exact and _drawn_by_kernel(rng, out[start:], folded, gen(span), gen(offset)):
        return
    shift = _DROPPED_BITS[dtype]
    for lo in range(start, out.size, _BLOCK):
        block = out[lo : lo + _BLOCK]
        m = block.size
        words: np.ndarray
        if dtype == np.float32:
            words = bits.random_raw((m + 1) // 2).view(np.uint32)[:m]  # odd m: the last block of ``out``
            if m % 2:
                bits.advance(-1)  # the unused high half is what a later draw starts from: hand it back
                rng.random(dtype=dtype, out=np.empty(1, dtype))  # and buffer it again, as random() would
        else:
            words = bits.random_raw(m)
        np.right_shift(words, shift, out=words)
        np.copyto(block, words, casting="unsafe")  # exact: fewer bits than the mantissa holds
        if exact:
            block *= folded
        else:
            block *= scale
            block *= gen(span)
        block += gen(offset)


def _drawn_by_kernel(rng: np.random.Generator, out: np.ndarray, folded: Any, span: Any, offset: Any) -> bool:
    """``out = words * folded + offset`` by :mod:`unifyparams.draw_kernel` where it is built (the
    same bits, one pass), an odd float32 end by NumPy (``random() * span + offset``, buffering the
    unused half as ``random`` does); False, nothing drawn, where the kernel does not take it."""
    even = out.size - out.size % 2 if out.dtype == np.float32 else out.size
    if not draw_kernel.uniform(rng.bit_generator, out[:even], float(folded), float(offset)):
        return False
    if even < out.size:
        last = out[even:]
        rng.random(dtype=out.dtype, out=last)  # the low half of the next word; its high half stays buffered
        last *= span
        last += offset
    return True


def uniform(shape: Sequence[int], name: str, seed: int, low: float, high: float, dtype: np.dtype,
            out: np.ndarray | None = None) -> np.ndarray:
    """U(low, high), in place chunk by chunk."""
    gen_dtype = _float_dtype(dtype)
    drawer = _ScaledUniform(high - low, low)
    return _fill(shape, name, seed, gen_dtype, drawer.draw, out, drawer)


class _ScaledUniform(Split):
    """``span * U[0, 1) + offset``, scaled while in cache: one pass over memory. Any run of a
    chunk's positions can be drawn on its own (one uniform each)."""

    def __init__(self, span: float, offset: float) -> None:
        self.span, self.offset = span, offset

    def draw(self, rng: np.random.Generator, out: np.ndarray) -> None:
        scaled_uniform(rng, out, self.span, self.offset)

    def fill(self, stream_at: Callable[[int], np.random.Generator], chunk: np.ndarray, lo: int, hi: int) -> None:
        self.draw(stream_at(lo), chunk[lo:hi])

    def pieces(self, stream_at: Callable[[int], np.random.Generator], m: int, lo: int, hi: int,
               buffer: np.ndarray) -> list[tuple[int, np.ndarray]]:
        values = buffer[: hi - lo]
        self.draw(stream_at(lo), values)
        return [(lo, values)]


def normal(shape: Sequence[int], name: str, seed: int, mean: float, std: float, dtype: np.dtype,
           out: np.ndarray | None = None) -> np.ndarray:
    """N(mean, std**2) by the Box-Muller transform, in place chunk by chunk.

    About 2.7 times faster than NumPy's ziggurat for float32. Values are bit-identical for every
    backend on one machine; like any use of ``log``/``cos``, the last bit can differ between CPUs
    whose NumPy takes different SIMD paths. Float32 uniforms bound the tails at about 5.8 std.
    """
    gen_dtype = _float_dtype(dtype)
    return _fill(shape, name, seed, gen_dtype, None, out, _NormalPairs(mean, std, gen_dtype))


class _NormalPairs(Split):
    """Pair ``i`` of a chunk of ``m`` values: uniforms ``i`` and ``half + i`` of its stream, values
    ``i`` and ``half + i`` of the chunk."""

    def __init__(self, mean: float, std: float, dtype: np.dtype) -> None:
        self.mean, self.std, self.dtype = mean, std, dtype

    def units(self, m: int) -> int:
        return (m + 1) // 2

    def fill(self, stream_at: Callable[[int], np.random.Generator], chunk: np.ndarray, lo: int, hi: int) -> None:
        m = chunk.size
        half = (m + 1) // 2
        self._draw(stream_at, m, lo, hi, chunk[lo:hi], chunk[half + lo : half + max(lo, min(hi, m - half))])

    def pieces(self, stream_at: Callable[[int], np.random.Generator], m: int, lo: int, hi: int,
               buffer: np.ndarray) -> list[tuple[int, np.ndarray]]:
        half = (m + 1) // 2
        n, k = hi - lo, max(0, min(hi, m - half) - lo)
        first, second = buffer[:n], buffer[n : n + k]
        self._draw(stream_at, m, lo, hi, first, second)
        return [(lo, first), (half + lo, second)]

    def _draw(self, stream_at: Callable[[int], np.random.Generator], m: int, lo: int, hi: int,
              first: np.ndarray, second: np.ndarray) -> None:
        """Pairs ``[lo, hi)``: their first values into ``first``, their second into ``second``."""
        half = (m + 1) // 2
        radii, angles = stream_at(lo), stream_at(half + lo)
        size = min(_BLOCK, hi - lo)
        radius, angle = np.empty(size, self.dtype), np.empty(size, self.dtype)  # cache-sized temporaries
        for start in range(lo, hi, _BLOCK):
            end = min(start + _BLOCK, hi)
            r, a = radius[: end - start], angle[: end - start]
            scaled_uniform(radii, r)
            scaled_uniform(angles, a)
            self._pairs(r, a, first[start - lo : end - lo], second[start - lo : max(start, min(end, m - half)) - lo])

    def _pairs(self, radius: np.ndarray, angle: np.ndarray, first: np.ndarray, second: np.ndarray) -> None:
        """Box-Muller: ``first = r cos(angle)``, ``second = r sin(angle)`` (one value short at an odd end)."""
        gen = self.dtype.type
        np.subtract(gen(1), radius, out=radius)  # (0, 1]: log is finite
        np.log(radius, out=radius)
        np.multiply(radius, gen(-2), out=radius)
        np.sqrt(radius, out=radius)
        if self.std != 1.0:
            radius *= gen(self.std)  # not folded into the -2 above: std**2 can underflow float32
        np.multiply(angle, gen(2 * np.pi), out=angle)
        np.cos(angle, out=first)
        first *= radius
        k = second.size
        np.sin(angle[:k], out=second)
        second *= radius[:k]
        if self.mean != 0.0:
            first += gen(self.mean)
            second += gen(self.mean)


def truncated_normal(shape: Sequence[int], name: str, seed: int, mean: float, std: float,
                     a: float, b: float, dtype: np.dtype, out: np.ndarray | None = None) -> np.ndarray:
    """N(mean, std**2) restricted to [a, b] (absolute bounds, as ``torch.nn.init.trunc_normal_``),
    by inverse-CDF sampling: exact for any bounds, no rejection loop.

    Chunk by chunk like the others, computed in float64 on small slices so the scratch stays
    a few MiB per thread whatever the parameter's size. Bounds above the mean are mirrored below
    it, where the normal CDF keeps its precision.
    """
    flip = a > mean  # the upper tail: sample the mirror image [2m - b, 2m - a] and negate
    lo_x, hi_x = (2 * mean - b, 2 * mean - a) if flip else (a, b)

    def cdf(x: float) -> float:
        return 0.5 * math.erfc(-(x - mean) / (std * math.sqrt(2.0)))

    lo, hi = cdf(lo_x), cdf(hi_x)
    gen_dtype = _float_dtype(dtype)

    def draw(rng: np.random.Generator, out: np.ndarray) -> None:
        for start in range(0, out.size, _SLICE):
            part = out[start : start + _SLICE]
            u = rng.random(part.size)
            u *= hi - lo
            u += lo
            z = _norm_ppf(u)
            z *= -std if flip else std
            z += mean
            np.clip(z, a, b, out=z)
            part[...] = z

    return _fill(shape, name, seed, gen_dtype, draw, out)


#: Elements per float64 slice in :func:`truncated_normal` (temporaries stay in cache).
_SLICE = 1 << 16


def _norm_ppf(p: np.ndarray) -> np.ndarray:
    """Inverse standard normal CDF (Acklam's rational approximation, relative error < 1.2e-9)."""
    p = np.clip(p, 1e-300, 1 - 1e-16)
    a = [-3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02, 1.383577518672690e02,
         -3.066479806614716e01, 2.506628277459239e00]
    b = [-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02, 6.680131188771972e01,
         -1.328068155288572e01]
    c = [-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00, -2.549732539343734e00,
         4.374664141464968e00, 2.938163982698783e00]
    d = [7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00, 3.754408661907416e00]
    q = np.sqrt(-2 * np.log(np.minimum(p, 1 - p)))
    tail = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / (
        (((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1)
    tail = np.where(p < 0.5, tail, -tail)
    r = (p - 0.5) ** 2
    central = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * (p - 0.5) / (
        ((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1)
    return np.where((p > 0.02425) & (p < 1 - 0.02425), central, tail)
