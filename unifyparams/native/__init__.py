"""Readers of native checkpoint files, none of which runs code from the file.

One module per format, each importing its framework (or h5py) only when called:

- PyTorch state dicts, ``torch.load(weights_only=True)`` only (sizes bounded first), and Gluon
  ``.params`` (a binary format parsed and bounded with NumPy, never by MXNet): read by their
  adapters (``unifyparams_torch.native_files``, ``unifyparams_gluon.native_files``), found
  through :mod:`.registry`, so the core imports no framework;
- :mod:`.keras_h5`: Keras ``.weights.h5`` (h5py), Keras paths and layouts kept;
- :mod:`.ours`: safetensors files, indexes and folders.

:func:`read` picks the reader; :mod:`.writers` writes our format or a PyTorch state dict.

>>> ckpt = read("model.pt")                               # doctest: +SKIP
>>> ckpt.format, len(ckpt.tensors), ckpt.notes            # doctest: +SKIP
('torch', 6, ['dropped 1 num_batches_tracked counter(s) ...'])
"""

from __future__ import annotations

from .base import CANONICAL, KERAS_NATIVE, NativeCheckpoint
from .detect import FORMATS, format_for, read
from .writers import write_safetensors, write_torch

__all__ = [
    "CANONICAL",
    "FORMATS",
    "KERAS_NATIVE",
    "NativeCheckpoint",
    "format_for",
    "read",
    "write_safetensors",
    "write_torch",
]
