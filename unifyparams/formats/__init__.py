"""Checkpoint file formats: safetensors (the core's own), and the formats adapters declare.

None of the readers runs code from the file. The core reads and writes safetensors files,
indexes and folders (:mod:`.safetensors`); every framework format (PyTorch state dicts, Gluon
``.params``, Keras ``.weights.h5``) is read by its adapter's ``native_files`` module, declared
on the adapter class and found through the ``unifyparams.adapters`` entry points
(:mod:`.registry`), so the core imports no framework and knows no framework's format.

:func:`read` picks the reader; :mod:`.writers` writes our format or a PyTorch state dict.

>>> format_for("model.safetensors")
'safetensors'
>>> "safetensors" in formats()
True
"""

from __future__ import annotations

from typing import Any

from .checkpoint import CANONICAL, NativeCheckpoint
from .detect import format_for, formats, read
from .registry import FileFormat, file_formats, format_function
from .writers import write_safetensors, write_torch

__all__ = [
    "CANONICAL",
    "FORMATS",
    "FileFormat",
    "NativeCheckpoint",
    "file_formats",
    "format_for",
    "format_function",
    "formats",
    "read",
    "write_safetensors",
    "write_torch",
]


def __getattr__(name: str) -> Any:
    if name == "FORMATS":  # {format: description}, computed from the adapters installed now
        return formats()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
