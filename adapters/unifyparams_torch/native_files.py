"""PyTorch state dicts (``torch.save``), read with ``torch.load(weights_only=True)`` only.

The weights-only unpickler rebuilds tensors and plain containers and refuses every other
object, so a file carrying code (a ``__reduce__`` payload) is rejected before anything runs; a
plain unpickler is never used. Nested dicts are flattened with dots, non-tensor entries are
skipped and reported, ``num_batches_tracked`` counters are dropped and reported, and names whose
tensors share storage (tied weights) become one tie group.

>>> ckpt = read_torch("model.pt")              # doctest: +SKIP
>>> ckpt.format, list(ckpt.tensors)[:2]        # doctest: +SKIP
('torch', ['0.weight', '0.bias'])
"""

from __future__ import annotations

import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from unifyparams.checkpoint.atomic import atomic_write
from unifyparams.errors import AdapterUnavailableError, CheckpointError
from unifyparams.native.base import NativeCheckpoint, require_file

#: torch dtypes NumPy lacks -> (torch dtype of the same width, ``ml_dtypes`` attribute).
_VIA_ML_DTYPES = {
    "bfloat16": ("int16", "bfloat16"),
    "float8_e4m3fn": ("uint8", "float8_e4m3fn"),
    "float8_e5m2": ("uint8", "float8_e5m2"),
}


def import_torch() -> Any:
    """The ``torch`` module, or :class:`AdapterUnavailableError` with how to install it."""
    try:
        import torch
    except ImportError as exc:
        raise AdapterUnavailableError(
            f"reading or writing PyTorch files needs PyTorch ({exc}): pip install torch"
        ) from None
    return torch


#: ``torch.save`` stores its records uncompressed; a file's tensors (and a compressed archive's
#: records) may hold at most this many times the file's size, so a small file cannot make the
#: reader (or what consumes its tensors) take much more memory than the file itself.
MAX_EXPANSION = 8


def check_archive(p: Path) -> None:
    """Refuse a zip archive whose records declare more bytes than :data:`MAX_EXPANSION` x its size.

    ``torch.load`` allocates each record's declared size before inflating it, so a few MB of
    deflated zeros would otherwise take gigabytes. Legacy (non-zip) files pass through.
    """
    size = p.stat().st_size
    with open(p, "rb") as f:
        if f.read(4) != b"PK\x03\x04":
            return
    try:
        with zipfile.ZipFile(p) as archive:
            records = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
        raise CheckpointError(f"{p}: not a readable PyTorch zip archive ({type(exc).__name__}: {exc})") from None
    declared = sum(record.file_size for record in records)
    if declared > MAX_EXPANSION * max(size, 1):
        raise CheckpointError(
            f"{p}: its zip records declare {declared} bytes in a {size}-byte file (over {MAX_EXPANSION}x; "
            f"torch.save writes them uncompressed); refused so a small file cannot take that much memory"
        )


def read_torch(path: str | Path) -> NativeCheckpoint:
    """Read a ``torch.save`` file (zip or legacy) holding a state dict, safely.

    Before ``torch.load`` sees it, a zip archive's declared sizes are bounded (:func:`check_archive`);
    after, the tensors' total size is (a view with zero strides could declare any size).
    """
    p = require_file(path)
    check_archive(p)
    torch = import_torch()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError, RuntimeError (corrupt zip), EOFError, ...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "weights only" in str(exc).lower() or "weights_only" in str(exc).lower():
            raise CheckpointError(
                f"{p}: refused: the file holds objects other than tensors and plain containers "
                f"(torch.load(weights_only=True) rejected it; nothing in it was run). Only state "
                f"dicts are read; re-save with torch.save(model.state_dict(), path)."
            ) from None
        raise CheckpointError(
            f"{p}: not a readable PyTorch file ({type(exc).__name__}: {first[:200]})"
        ) from None
    tensors: dict[str, Any] = {}
    skipped: list[str] = []
    _flatten(obj, "", tensors, skipped, torch)
    if not tensors and not skipped and not isinstance(obj, Mapping):
        raise CheckpointError(
            f"{p}: expected a state dict (a dict of tensors); received {type(obj).__name__}"
        )
    notes = []
    dropped = [name for name in tensors if name.rsplit(".", 1)[-1] == "num_batches_tracked"]
    for name in dropped:
        del tensors[name]
    if dropped:
        notes.append(
            f"dropped {len(dropped)} num_batches_tracked counter(s) (BatchNorm step counts, not parameters)"
        )
    if skipped:
        notes.append(f"skipped {len(skipped)} non-tensor entr(y/ies): {', '.join(skipped[:5])}")
    ties = _ties(tensors, torch)
    aliases = {name for group in ties for name in group[1:]}
    _check_sizes(p, {name: t for name, t in tensors.items() if name not in aliases})
    arrays = {name: to_numpy(t, name, torch) for name, t in tensors.items() if name not in aliases}
    return NativeCheckpoint(str(p), "torch", arrays, backend="torch", ties=ties, notes=notes)


def _check_sizes(p: Path, tensors: Mapping[str, Any]) -> None:
    """Refuse tensors that together view more than :data:`MAX_EXPANSION` x the file's bytes."""
    size = p.stat().st_size
    total = 0
    for name, t in tensors.items():
        total += t.numel() * t.element_size()
        if total > MAX_EXPANSION * max(size, 1):
            raise CheckpointError(
                f"{p}: its tensors (up to {name!r}, {tuple(t.shape)} {t.dtype}) view {total} bytes, over "
                f"{MAX_EXPANSION}x the file's {size} bytes (overlapping or zero-stride views of a small "
                f"storage); refused so a small file cannot make its readers take that much memory"
            )


def _flatten(obj: Any, prefix: str, out: dict[str, Any], skipped: list[str], torch: Any) -> None:
    if isinstance(obj, torch.Tensor):
        out[prefix or "tensor"] = obj
    elif isinstance(obj, Mapping):
        for key, value in obj.items():
            _flatten(value, f"{prefix}.{key}" if prefix else str(key), out, skipped, torch)
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            _flatten(value, f"{prefix}.{i}" if prefix else str(i), out, skipped, torch)
    else:
        skipped.append(prefix or type(obj).__name__)


def _ties(tensors: Mapping[str, Any], torch: Any) -> list[tuple[str, ...]]:
    """Groups of names that are the same view of the same storage (tied weights)."""
    groups: dict[tuple[Any, ...], list[str]] = {}
    for name, t in tensors.items():
        if t.numel() == 0 or t.layout != torch.strided:
            continue
        key = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), tuple(t.stride()), t.dtype)
        groups.setdefault(key, []).append(name)
    return [tuple(names) for names in groups.values() if len(names) > 1]


def to_numpy(tensor: Any, name: str, torch: Any) -> np.ndarray:
    """A CPU tensor's values as a NumPy array (bfloat16/float8 through ``ml_dtypes``)."""
    t = tensor.detach()
    if t.layout != torch.strided:
        t = t.to_dense()
    dtype_name = str(t.dtype).replace("torch.", "")
    if dtype_name in _VIA_ML_DTYPES:
        width, attr = _VIA_ML_DTYPES[dtype_name]
        try:
            import ml_dtypes
        except ImportError:
            raise CheckpointError(
                f"tensor {name!r} is {dtype_name}; reading it needs ml_dtypes: pip install ml_dtypes"
            ) from None
        return np.asarray(t.contiguous().view(getattr(torch, width)).numpy().view(getattr(ml_dtypes, attr)))
    try:
        return np.asarray(t.numpy())
    except (TypeError, RuntimeError) as exc:
        raise CheckpointError(
            f"tensor {name!r} has dtype {dtype_name}, which NumPy cannot hold ({exc})"
        ) from None


def from_numpy(array: np.ndarray, torch: Any) -> Any:
    """A fresh CPU tensor with ``array``'s values (bfloat16/float8 arrays included)."""
    array = np.ascontiguousarray(array)
    for dtype_name, (width, attr) in _VIA_ML_DTYPES.items():
        if array.dtype.name == attr:
            return torch.from_numpy(array.view(np.dtype(width)).copy()).view(getattr(torch, dtype_name))
    return torch.from_numpy(array.copy())


def write_state_dict(ckpt: NativeCheckpoint, dst: str | Path, step: Any = None) -> Path:
    """Write ``ckpt`` as a PyTorch state dict (``torch.save`` of tensors); canonical sources only.

    Tied names share one tensor, as in the state dict of a tied model.
    """
    if not ckpt.canonical:
        raise CheckpointError(
            f"{ckpt.path} is a {ckpt.format} file in layout {ckpt.layout!r} with "
            f"{'canonical' if ckpt.canonical_names else 'framework-specific'} names; a PyTorch state dict "
            f"needs canonical names and layouts. Load it into its model and save with unifyparams instead."
        )
    torch = import_torch()
    state: dict[str, Any] = {}
    for name, array in ckpt.tensors.items():
        state[name] = from_numpy(array, torch)
        if step is not None:
            step(name, int(array.nbytes))
    for group in ckpt.ties:
        stored = [n for n in group if n in state]
        for name in group if stored else ():
            state.setdefault(name, state[stored[0]])
    target = Path(dst)
    with atomic_write(target) as out:
        torch.save(state, out)
    return target
