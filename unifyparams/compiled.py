"""Loading the package's optional compiled modules (``unifyparams/_native``) as ctypes libraries.

Each is a C library with a stub Python module around it, so that setuptools builds it for the
stable ABI; its functions take addresses and numbers, and :mod:`ctypes` releases the GIL while they
run. A module that was not built (no C compiler where the package was installed) is simply absent,
and ``UNIFYPARAMS_NO_NATIVE=1`` makes every one absent (the NumPy paths, for comparison).

>>> library("_no_such_module") is None
True
>>> functions("_no_such_module", {"f": [ctypes.c_size_t]}) is None
True
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
from collections.abc import Mapping, Sequence
from typing import Any


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


def functions(name: str, signatures: Mapping[str, Sequence[Any]], *, ready: str | None = None) -> dict[str, Any] | None:
    """The functions of ``unifyparams.<name>`` that ``signatures`` names, each given its argument
    types (ctypes types, in order) and no result, or None where the module is absent (see
    :func:`library`) or ``ready`` names a function of it that returns 0 here (a CPU without the
    instructions the module was built for)."""
    loaded = library(name)
    if loaded is None or ready is not None and not getattr(loaded, ready)():
        return None
    typed = {}
    for function_name, argument_types in signatures.items():
        function = getattr(loaded, function_name)
        function.argtypes = list(argument_types)
        function.restype = None
        typed[function_name] = function
    return typed


__all__ = ["functions", "library"]
