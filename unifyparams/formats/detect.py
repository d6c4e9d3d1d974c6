"""Which reader a path needs: by suffix, else by the file's first bytes, as the formats declare.

>>> format_for("model.safetensors"), format_for("model.safetensors.index.json")
('safetensors', 'safetensors')
"""

from __future__ import annotations

from pathlib import Path

from ..errors import CheckpointError
from .checkpoint import NativeCheckpoint
from .registry import SAFETENSORS, FileFormat, file_formats, format_function


def format_for(path: str | Path) -> str:
    """The format of ``path``: from its suffix, a folder is safetensors, else from its magic bytes."""
    p = Path(path)
    known = file_formats()
    by_suffix = {s: fmt.name for fmt in reversed(known.values()) for s in fmt.suffixes}
    if p.suffix.lower() in by_suffix:
        return by_suffix[p.suffix.lower()]
    if p.is_dir():
        return SAFETENSORS
    if not p.exists():
        if Path(str(p) + ".index.json").is_file():
            return SAFETENSORS
        raise CheckpointError(f"no such file: {p}")
    with open(p, "rb") as f:
        head = f.read(16)
    return _by_content(p, head, known)


def _by_content(p: Path, head: bytes, known: dict[str, FileFormat]) -> str:
    for fmt in known.values():
        if fmt.matches_head(head):
            return fmt.name
    if len(head) > 8 and head[8:9] == b"{":  # safetensors: an 8-byte header length, then JSON
        return SAFETENSORS
    suffixes = sorted({s for fmt in known.values() for s in fmt.suffixes})
    raise CheckpointError(
        f"{p}: unknown checkpoint format (suffix {p.suffix or '(none)'!r}); expected one of "
        f"{', '.join(suffixes)}, or pass --format ({', '.join(known)})"
    )


def read(path: str | Path, format: str | None = None) -> NativeCheckpoint:
    """Read any supported checkpoint into a :class:`NativeCheckpoint` (``format`` overrides detection).

    >>> read("model.unknown", format="nonsense")
    Traceback (most recent call last):
    ...
    unifyparams.errors.CheckpointError: unknown format 'nonsense'; expected one of ...
    """
    kind = format or format_for(path)
    known = file_formats()
    if kind == SAFETENSORS:
        from .safetensors import read_safetensors

        return read_safetensors(path)
    if kind not in known:
        raise CheckpointError(f"unknown format {kind!r}; expected one of {', '.join(known)}")
    ckpt: NativeCheckpoint = format_function(kind, "read")(path)
    return ckpt


def formats() -> dict[str, str]:
    """``{format: description}`` of every readable format, for help texts.

    >>> formats()["safetensors"]
    "safetensors file, index or folder (ours, or any tool's)"
    """
    return {name: fmt.description for name, fmt in file_formats().items()}
