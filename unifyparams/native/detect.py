"""Which reader a path needs: by suffix, else by the file's first bytes.

>>> format_for("model.pt"), format_for("net.params"), format_for("m.weights.h5")
('torch', 'gluon', 'keras-h5')
"""

from __future__ import annotations

from pathlib import Path

from ..errors import CheckpointError
from .base import NativeCheckpoint
from .keras_h5 import HDF5_MAGIC

#: Formats :func:`read` knows, with a short description for help texts.
FORMATS = {
    "safetensors": "safetensors file, index or folder (ours, or any tool's)",
    "torch": "PyTorch state dict (.pt/.pth/.bin/.ckpt), read with torch.load(weights_only=True)",
    "gluon": "MXNet Gluon .params (net.save_parameters)",
    "keras-h5": "Keras weights (.weights.h5 / .h5)",
}
_SUFFIXES = {
    ".safetensors": "safetensors",
    ".json": "safetensors",
    ".pt": "torch",
    ".pth": "torch",
    ".bin": "torch",
    ".ckpt": "torch",
    ".params": "gluon",
    ".h5": "keras-h5",
    ".hdf5": "keras-h5",
}
_MXNET_LIST_MAGIC = (0x112).to_bytes(8, "little")


def format_for(path: str | Path) -> str:
    """The format of ``path``: from its suffix, a folder is safetensors, else from its magic bytes."""
    p = Path(path)
    if p.suffix.lower() in _SUFFIXES:
        return _SUFFIXES[p.suffix.lower()]
    if p.is_dir():
        return "safetensors"
    if not p.exists():
        if Path(str(p) + ".index.json").is_file():
            return "safetensors"
        raise CheckpointError(f"no such file: {p}")
    with open(p, "rb") as f:
        head = f.read(16)
    if head.startswith(HDF5_MAGIC):
        return "keras-h5"
    if head.startswith(_MXNET_LIST_MAGIC):
        return "gluon"
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":
        return "torch"
    if len(head) > 8 and head[8:9] == b"{":
        return "safetensors"
    raise CheckpointError(
        f"{p}: unknown checkpoint format (suffix {p.suffix or '(none)'!r}); expected one of "
        f"{', '.join(sorted(_SUFFIXES))}, or pass --format ({', '.join(FORMATS)})"
    )


def read(path: str | Path, format: str | None = None) -> NativeCheckpoint:
    """Read any supported checkpoint into a :class:`NativeCheckpoint` (``format`` overrides detection)."""
    kind = format or format_for(path)
    if kind == "safetensors":
        from .ours import read_safetensors

        return read_safetensors(path)
    if kind in ("torch", "gluon"):  # framework formats: read by their adapters
        from .registry import native_function

        ckpt: NativeCheckpoint = native_function(kind, "read")(path)
        return ckpt
    if kind == "keras-h5":
        from .keras_h5 import read_keras_h5

        return read_keras_h5(path)
    raise CheckpointError(f"unknown format {kind!r}; expected one of {', '.join(FORMATS)}")
