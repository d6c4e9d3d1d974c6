"""Safetensors checkpoints (ours, or any tool's), read without copying through memory maps.

A single file is opened leniently so that files converted from Keras (layout
``keras-native``) can be inspected and compared too; a sharded checkpoint (an index, or the path
it was saved under) goes through :func:`~unifyparams.checkpoint.open_checkpoint`, which checks
the index against its shards. Files without unifyparams metadata are canonical and untied.

>>> path = up.save(net, "model.safetensors")
>>> ckpt = read_safetensors(path)
>>> ckpt.format, ckpt.ties, ckpt.metadata["unifyparams.backend"], ckpt.tensors["0.weight"].shape
('unifyparams', [], 'numpy-test', (4, 3))
"""

from __future__ import annotations

from pathlib import Path

from ..checkpoint.format import SafetensorsFile
from ..checkpoint.metadata import BACKEND_KEY, LAYOUT_KEY, VERSION_KEY, CheckpointMeta
from ..checkpoint.shards import locate, open_checkpoint
from .checkpoint import CANONICAL, NativeCheckpoint


def read_safetensors(path: str | Path) -> NativeCheckpoint:
    """Read a safetensors file, index or folder; tensors are read-only memory-mapped arrays."""
    index, files = locate(path)
    if index is not None:
        with open_checkpoint(index) as ckpt:
            arrays = {name: ckpt.tensor(name) for name in ckpt.names}
            raw = dict(ckpt.files[0].metadata)
            meta, shown = ckpt.meta, str(index)
            notes = [f"sharded: {len(ckpt.files)} file(s) listed by {index.name}"]
    else:
        with SafetensorsFile(files[0]) as f:
            arrays = {name: f.tensor(name) for name in f.keys()}
            raw = dict(f.metadata)
        meta = CheckpointMeta.decode({k: v for k, v in raw.items() if k != LAYOUT_KEY}, str(files[0]))
        shown, notes = str(files[0]), []
    layout = raw.get(LAYOUT_KEY, CANONICAL)
    label = "unifyparams" if VERSION_KEY in raw else "safetensors"
    if layout != CANONICAL:
        notes.append(f"layout {layout!r}: up.load() refuses this file; it is not in the canonical layout")
    return NativeCheckpoint(
        shown,
        label,
        arrays,
        layout=layout,
        canonical_names=layout == CANONICAL,
        backend=raw.get(BACKEND_KEY),
        ties=list(meta.ties),
        metadata=raw,
        notes=notes,
    )
