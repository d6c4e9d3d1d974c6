"""Portable checkpoints in the safetensors format: :func:`save` and :func:`load`.

>>> import unifyparams as up
>>> up.save(torch_net, "model.safetensors")                       # doctest: +SKIP
>>> print(up.load(gluon_net, "model.safetensors"))                # doctest: +SKIP
loaded 4 parameters; missing (none); unexpected (none)

Modules: :mod:`.format` (the binary format, strict reader and streaming writer), :mod:`.shards`
(sharded checkpoints and their index), :mod:`.metadata` (what unifyparams records in a file),
:mod:`.atomic` (crash-safe writes), :mod:`.dtypes` (dtype codes), :mod:`.api` (save/load).
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
