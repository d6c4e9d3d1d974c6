"""Portable checkpoints in the safetensors format: :func:`save` and :func:`load`.

>>> import unifyparams as up
>>> up.save(net, "model.safetensors")           # any backend's model; here the tests' NumPy one
PosixPath('model.safetensors')
>>> print(up.load(numpy_net(seed=7), "model.safetensors"))
loaded 8 parameters; missing (none); unexpected (none)

Modules: :mod:`.format` (the binary format, strict reader and streaming writer), :mod:`.shards`
(sharded checkpoints and their index), :mod:`.metadata` (what unifyparams records in a file),
:mod:`.atomic` (crash-safe writes), :mod:`.dtypes` (dtype codes), :mod:`.save` (planned, written,
switched in), :mod:`.api` (load, and the report it returns).
"""

from __future__ import annotations

from .api import CheckpointReport, load, save
from .format import SafetensorsFile, load_file, read_metadata, save_file
from .shards import Checkpoint, open_checkpoint

__all__ = [
    "Checkpoint",
    "CheckpointReport",
    "SafetensorsFile",
    "load",
    "load_file",
    "open_checkpoint",
    "read_metadata",
    "save",
    "save_file",
]
