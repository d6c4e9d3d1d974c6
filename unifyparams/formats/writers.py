"""Writing a :class:`NativeCheckpoint` as our safetensors format or as a PyTorch state dict.

Both writers replace the destination atomically and call ``step(name, nbytes)`` after each
tensor, for progress bars.

>>> from unifyparams.formats import NativeCheckpoint
>>> ckpt = NativeCheckpoint("net.params", "gluon", {"0.weight": np.ones((2, 3), np.float32)})
>>> write_safetensors(ckpt, "net.safetensors").name
'net.safetensors'
>>> up.checkpoint.read_metadata("net.safetensors")["unifyparams.source_format"]
'gluon'
>>> write_torch(ckpt, "net.pt")                  # through the PyTorch adapter   # doctest: +SKIP
PosixPath('net.pt')
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..checkpoint.atomic import atomic_write
from ..checkpoint.format import plan_offsets, write_file
from ..checkpoint.metadata import LAYOUT_KEY, PREFIX, CheckpointMeta
from .checkpoint import CANONICAL, NativeCheckpoint

#: Metadata key recording the format a converted file came from (``"torch"``, ``"keras-h5"``...).
SOURCE_FORMAT_KEY = PREFIX + "source_format"

Step = Callable[[str, int], None]


def _no_step(name: str, nbytes: int) -> None:
    return None


def conversion_metadata(ckpt: NativeCheckpoint) -> dict[str, str]:
    """Our metadata for ``ckpt``: version, backend, ties, source format, and the honest layout.

    A non-canonical layout is recorded as such (and ``format: pt`` left out), so that
    ``up.load`` and tools expecting PyTorch layouts refuse the file instead of misreading it.
    """
    user = {k: v for k, v in ckpt.metadata.items() if not k.startswith(PREFIX) and k != "format"}
    encoded = CheckpointMeta(backend=ckpt.backend, ties=list(ckpt.ties), user=user).encode()
    encoded[SOURCE_FORMAT_KEY] = ckpt.metadata.get(SOURCE_FORMAT_KEY, ckpt.format)
    if ckpt.layout != CANONICAL:
        encoded[LAYOUT_KEY] = ckpt.layout
        encoded.pop("format", None)
    return encoded


def write_safetensors(ckpt: NativeCheckpoint, dst: str | Path, step: Step = _no_step) -> Path:
    """Write ``ckpt`` to ``dst`` in our format, streaming one tensor at a time."""
    target = Path(dst)
    metadata = conversion_metadata(ckpt)
    infos = plan_offsets((name, a.dtype, a.shape) for name, a in ckpt.tensors.items())

    def value_for(name: str) -> Any:
        value = ckpt.tensors[name]
        step(name, int(value.nbytes))
        return value

    with atomic_write(target) as out:
        write_file(out, infos, value_for, metadata)
    return target


def write_torch(ckpt: NativeCheckpoint, dst: str | Path, step: Step = _no_step) -> Path:
    """Write ``ckpt`` as a PyTorch state dict, through the PyTorch adapter (the core imports no
    framework); canonical sources only."""
    from .registry import format_function

    result: Path = format_function("torch", "write")(ckpt, dst, step)
    return result
