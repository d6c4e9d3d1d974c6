"""What every file reader returns: :class:`NativeCheckpoint` (the tensors of one file).

A reader turns one file into ``{name: numpy array}`` plus what is known about it: the format
label, the layout the values are in, whether the names are canonical, tie groups, metadata, and
notes for the user (entries dropped, caveats). Tied tensors are stored once: the first name of a
group holds the value, :meth:`NativeCheckpoint.expanded` gives every name.

>>> import numpy as np
>>> ckpt = NativeCheckpoint("m.pt", "torch", {"a": np.zeros(2, np.float32)}, ties=[("a", "b")])
>>> sorted(ckpt.expanded()), ckpt.scalars, ckpt.nbytes
(['a', 'b'], 2, 8)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import CheckpointError

#: Values are in the canonical (PyTorch) layout. Any other layout is a label its adapter chooses
#: (the Keras adapter's ``"keras-native"``); the core only tells canonical from not.
CANONICAL = "canonical"


@dataclass
class NativeCheckpoint:
    """The tensors of one checkpoint file and what is known about them.

    ``format`` is a short label (``"safetensors"``, ``"unifyparams"``, or a format an adapter
    declares); ``layout`` is :data:`CANONICAL` or the label of a framework's own layout
    (``"keras-native"``); ``canonical_names`` is False where the
    names are a framework's own paths that only a model can map; ``backend`` is the framework the
    values come from, when known.
    """

    path: str
    format: str
    tensors: dict[str, np.ndarray]
    layout: str = CANONICAL
    canonical_names: bool = True
    backend: str | None = None
    ties: list[tuple[str, ...]] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def canonical(self) -> bool:
        """True when names and layouts are canonical (the file can become a PyTorch state dict)."""
        return self.layout == CANONICAL and self.canonical_names

    @property
    def separator(self) -> str:
        """The character that separates levels in the names (``/`` for Keras paths)."""
        return "." if self.canonical_names else "/"

    @property
    def scalars(self) -> int:
        """Number of values stored (tied tensors counted once)."""
        return sum(math.prod(a.shape) for a in self.tensors.values())

    @property
    def nbytes(self) -> int:
        """Bytes of the values stored (tied tensors counted once)."""
        return sum(int(a.nbytes) for a in self.tensors.values())

    def expanded(self) -> dict[str, np.ndarray]:
        """Every name, tie aliases included (an alias gives the stored array of its group)."""
        out = dict(self.tensors)
        for group in self.ties:
            stored = next((name for name in group if name in self.tensors), None)
            if stored is None:
                continue
            for name in group:
                out.setdefault(name, self.tensors[stored])
        return out


def require_file(path: str | Path) -> Path:
    """``path`` as a :class:`Path` if it names an existing file; :class:`CheckpointError` otherwise.

    >>> require_file("no/such/file.pt")
    Traceback (most recent call last):
    ...
    unifyparams.errors.CheckpointError: no such file: no/such/file.pt
    """
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"no such file: {p}")
    if not p.is_file():
        raise CheckpointError(f"{p} is not a file")
    return p
