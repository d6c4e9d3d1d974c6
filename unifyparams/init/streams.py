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
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

CHUNK = 1 << 22  # elements per independent stream (16 MiB of float32)
_pool: ThreadPoolExecutor | None = None


def _threads() -> int:
    return max(1, min(8, os.cpu_count() or 1))


def _executor() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=_threads(), thread_name_prefix="unifyparams-init")
    return _pool


def name_words(name: str) -> tuple[int, ...]:
    """A stable 128-bit key for a canonical name (Python's ``hash`` changes between processes)."""
    digest = hashlib.blake2b(name.encode(), digest_size=16).digest()
    return tuple(int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4))


def generator(seed: int, name: str, chunk: int = 0) -> np.random.Generator:
    """The stream for chunk ``chunk`` of parameter ``name`` under ``seed``."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(*name_words(name), chunk))))


def _fill(shape: Sequence[int], name: str, seed: int, dtype: np.dtype,
          draw: Callable[[np.random.Generator, np.ndarray], None], out: np.ndarray | None = None) -> np.ndarray:
    """Fill ``out`` (or a new array) chunk by chunk; ``out`` may be a parameter's own memory."""
    if out is None or out.dtype != dtype or not out.flags.c_contiguous:
        out = np.empty(tuple(shape), dtype=dtype)
    flat = out.reshape(-1)
    n = flat.size
    chunks = max(1, math.ceil(n / CHUNK))

    def work(k: int) -> None:
        draw(generator(seed, name, k), flat[k * CHUNK : (k + 1) * CHUNK])

    if chunks == 1:
        work(0)
    else:
        list(_executor().map(work, range(chunks)))
    return out


def _float_dtype(dtype: np.dtype) -> np.dtype:
    """Generate in float32 or float64; other dtypes are cast by the caller."""
    return np.dtype(np.float32) if np.dtype(dtype) == np.float32 else np.dtype(np.float64)


def uniform(shape: Sequence[int], name: str, seed: int, low: float, high: float, dtype: np.dtype,
            out: np.ndarray | None = None) -> np.ndarray:
    """U(low, high), in place chunk by chunk."""
    gen_dtype = _float_dtype(dtype)
    span, offset = high - low, low

    def draw(rng: np.random.Generator, out: np.ndarray) -> None:
        rng.random(dtype=gen_dtype, out=out)
        out *= span
        out += offset

    return _fill(shape, name, seed, gen_dtype, draw, out)


def normal(shape: Sequence[int], name: str, seed: int, mean: float, std: float, dtype: np.dtype,
           out: np.ndarray | None = None) -> np.ndarray:
    """N(mean, std**2) by the Box-Muller transform, in place chunk by chunk.

    About 2.7 times faster than NumPy's ziggurat for float32. Values are bit-identical for every
    backend on one machine; like any use of ``log``/``cos``, the last bit can differ between CPUs
    whose NumPy takes different SIMD paths. Float32 uniforms bound the tails at about 5.8 std.
    """
    gen_dtype = _float_dtype(dtype)
    two_pi = gen_dtype.type(2 * np.pi)

    def draw(rng: np.random.Generator, out: np.ndarray) -> None:
        n = out.size
        half = (n + 1) // 2
        radius = rng.random(dtype=gen_dtype, size=half)
        angle = rng.random(dtype=gen_dtype, size=half)
        np.subtract(gen_dtype.type(1), radius, out=radius)  # (0, 1]: log is finite
        np.log(radius, out=radius)
        np.multiply(radius, gen_dtype.type(-2 * std * std), out=radius)
        np.sqrt(radius, out=radius)
        np.multiply(angle, two_pi, out=angle)
        first, second = out[:half], out[half:]
        np.cos(angle, out=first)
        first *= radius
        np.sin(angle[: n - half], out=second)
        second *= radius[: n - half]
        if mean != 0.0:
            out += gen_dtype.type(mean)

    return _fill(shape, name, seed, gen_dtype, draw, out)


def truncated_normal(shape: Sequence[int], name: str, seed: int, mean: float, std: float,
                     a: float, b: float, dtype: np.dtype) -> np.ndarray:
    """N(mean, std**2) restricted to [a, b] (absolute bounds, as ``torch.nn.init.trunc_normal_``),
    by inverse-CDF sampling: exact for any bounds, no rejection loop."""
    from math import erf, sqrt

    def cdf(x: float) -> float:
        return 0.5 * (1.0 + erf((x - mean) / (std * sqrt(2.0))))

    lo, hi = cdf(a), cdf(b)
    u = uniform(shape, name, seed, lo, hi, np.dtype(np.float64))
    z = _norm_ppf(u)
    out = np.clip(mean + std * z, a, b)
    return out.astype(_float_dtype(dtype), copy=False)


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
