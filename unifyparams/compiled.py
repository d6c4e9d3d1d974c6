"""Loading the package's optional compiled modules (``unifyparams/_native``) as ctypes libraries.

Each is a C library with a stub Python module around it, so that setuptools builds it for the
stable ABI; its functions take addresses and numbers, and :mod:`ctypes` releases the GIL while they
run. A module that was not built (no C compiler where the package was installed) is simply absent,
and ``UNIFYPARAMS_NO_NATIVE=1`` makes every one absent (the NumPy paths, for comparison).

>>> library("_no_such_module") is None
True
"""

from __future__ import annotations

import ctypes
import importlib.util
import os


def library(name: str) -> ctypes.CDLL | None:
    """``unifyparams.<name>`` loaded as a C library, or None where it was not built, cannot be
    loaded here, or ``UNIFYPARAMS_NO_NATIVE`` is set."""
    if os.environ.get("UNIFYPARAMS_NO_NATIVE"):
        return None
    try:
        spec = importlib.util.find_spec(f"unifyparams.{name}")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin:
        return None
    try:
        return ctypes.CDLL(spec.origin)
    except OSError:
        return None


__all__ = ["library"]
