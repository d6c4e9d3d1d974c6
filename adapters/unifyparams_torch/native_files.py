"""PyTorch state dicts (``torch.save``), read with ``torch.load(weights_only=True)`` only.

Zip archives (what ``torch.save`` writes) are memory-mapped (``mmap=True``), like safetensors
files. The weights-only unpickler rebuilds tensors and plain containers and refuses every other
object, so a file carrying code (a ``__reduce__`` payload) is rejected before anything runs; a
plain unpickler is never used. Nested dicts are flattened with dots, non-tensor entries are
skipped and reported, ``num_batches_tracked`` counters are dropped and reported, and names whose
tensors share storage (tied weights) become one tie group.

>>> ckpt = read_torch("model.pt")              # doctest: +SKIP
>>> ckpt.format, list(ckpt.tensors)[:2]        # doctest: +SKIP
('torch', ['0.weight', '0.bias'])
"""

from __future__ import annotations

import io
import pickletools
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from unifyparams.checkpoint.atomic import atomic_write
from unifyparams.common import EXTENDED_FLOATS
from unifyparams.errors import AdapterUnavailableError, CheckpointError
from unifyparams.formats.checkpoint import NativeCheckpoint, require_file

#: torch dtypes NumPy lacks -> (torch dtype of the same width, ``ml_dtypes`` attribute): the core's
#: one table (:data:`unifyparams.common.EXTENDED_FLOATS`), so the ``fnuz`` float8 kinds are read too.
_VIA_ML_DTYPES = {name: ({2: "int16", 1: "uint8"}[size], name) for name, size in EXTENDED_FLOATS.items()}


#: The formats this adapter declares to the core (see :mod:`unifyparams.formats.registry`).
FORMATS: dict[str, dict[str, str]] = {
    "torch": {
        "description": "PyTorch state dict (.pt/.pth/.bin/.ckpt), read with torch.load(weights_only=True)",
        "suffixes": ".pt .pth .bin .ckpt",
        "magic": "504b0304 80",  # a zip archive (torch.save), or a legacy pickle stream
        "read": "unifyparams_torch.native_files:read_torch",
        "write": "unifyparams_torch.native_files:write_state_dict",
    },
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


def check_archive(p: Path) -> bool:
    """Refuse a zip archive whose records declare more bytes than :data:`MAX_EXPANSION` x its size.

    ``torch.load`` allocates each record's declared size before inflating it, so a few MB of
    deflated zeros would otherwise take gigabytes. Returns False for a file that is no zip archive.
    """
    size = p.stat().st_size
    with open(p, "rb") as f:
        if f.read(4) != b"PK\x03\x04":
            return False
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
    return True


#: Bytes per element of the storage types a legacy file names (an unknown type counts as 16).
_STORAGE_BYTES = {
    "DoubleStorage": 8, "FloatStorage": 4, "HalfStorage": 2, "BFloat16Storage": 2, "LongStorage": 8,
    "IntStorage": 4, "ShortStorage": 2, "CharStorage": 1, "ByteStorage": 1, "BoolStorage": 1,
    "ComplexFloatStorage": 8, "ComplexDoubleStorage": 16, "UntypedStorage": 1,
}
_UNKNOWN = object()


def legacy_storage_bytes(data: bytes, source: str) -> int:
    """Bytes the storages of a legacy (pre-zip) ``torch.save`` stream declare, read from its opcodes.

    ``torch.load`` allocates each storage at the size its persistent id declares before reading
    it, so the sizes are checked first. Nothing is unpickled: :func:`pickletools.genops` only
    decodes opcodes; the literal values that persistent ids are built from are tracked on a small
    stack, and a persistent id that is not such a literal tuple is refused.
    """
    stream = io.BytesIO(data)
    storages: dict[Any, int] = {}
    for _ in range(4):  # magic number, protocol version, system info, then the object itself
        stack: list[Any] = []
        memo: dict[Any, Any] = {}
        try:
            for op, arg, _pos in pickletools.genops(stream):
                name = op.name
                if name == "MARK":
                    stack.append(_MARK)
                elif name in _LITERALS:
                    stack.append(None if name == "NONE" else arg)
                elif name in ("GLOBAL", "STACK_GLOBAL"):
                    stack.append(str(arg).replace(" ", ".") if name == "GLOBAL" else _UNKNOWN)
                elif name in ("BINPUT", "LONG_BINPUT", "PUT"):
                    memo[arg] = stack[-1] if stack else _UNKNOWN
                elif name == "MEMOIZE":
                    memo[len(memo)] = stack[-1] if stack else _UNKNOWN
                elif name in ("BINGET", "LONG_BINGET", "GET"):
                    stack.append(memo.get(arg, _UNKNOWN))
                elif name == "TUPLE":
                    start = max((i for i, v in enumerate(stack) if v is _MARK), default=None)
                    items = tuple(stack[start + 1 :]) if start is not None else _UNKNOWN
                    del stack[start if start is not None else 0 :]
                    stack.append(items)
                elif name == "BINPERSID":
                    pid = stack.pop() if stack else _UNKNOWN
                    _record(pid, storages, source)
                    stack.append(_UNKNOWN)
                elif name == "STOP":
                    break
                else:
                    stack.clear()
        except (ValueError, EOFError, IndexError, KeyError, OverflowError, UnicodeDecodeError):
            break  # torch's unpickler stops at the same opcode, before any later storage: let it say why
    return sum(storages.values())


_MARK = object()
_LITERALS = frozenset({
    "NONE", "BININT", "BININT1", "BININT2", "LONG1", "LONG4", "INT", "LONG", "BINUNICODE", "SHORT_BINUNICODE",
    "UNICODE", "BINUNICODE8", "SHORT_BINSTRING", "BINSTRING", "STRING", "NEWTRUE", "NEWFALSE",
})


def _record(pid: Any, storages: dict[Any, int], source: str) -> None:
    if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage" and type(pid[4]) is int):
        raise CheckpointError(
            f"{source}: a storage reference in this legacy PyTorch file is not the (\'storage\', type, key, "
            f"location, size) tuple torch.save writes; its size cannot be checked before loading. Re-save the "
            f"state dict with a current PyTorch (torch.save writes the zip format)."
        )
    kind = str(pid[1]).rsplit(".", 1)[-1]
    storages[pid[2]] = max(0, pid[4]) * _STORAGE_BYTES.get(kind, 16)


def read_torch(path: str | Path) -> NativeCheckpoint:
    """Read a ``torch.save`` file (zip or legacy) holding a state dict, safely.

    Before ``torch.load`` sees it, a zip archive's declared sizes are bounded (:func:`check_archive`);
    after, the tensors' total size is (a view with zero strides could declare any size). A zip
    archive is loaded with ``mmap=True``: its tensors, and the NumPy arrays returned (bfloat16 and
    float8 through ``ml_dtypes``, as views), are copy-on-write maps of the file, so a big state dict
    takes no second copy in memory. A legacy (pre-zip) stream cannot be mapped and is read whole.
    """
    p = require_file(path)
    mapped = check_archive(p)  # a zip archive: memory-mapped, so its tensors are views of the file
    source: Any = p if mapped else _bounded_legacy(p)  # a legacy stream: bounded, read from memory
    torch = import_torch()
    obj = _load_weights_only(p, source, mapped, torch)
    tensors: dict[str, Any] = {}
    skipped: list[str] = []
    _flatten(obj, "", tensors, skipped, torch)
    if not tensors and not skipped and not isinstance(obj, Mapping):
        raise CheckpointError(
            f"{p}: expected a state dict (a dict of tensors); received {type(obj).__name__}"
        )
    notes = _drop_counters(tensors)
    if skipped:
        notes.append(f"skipped {len(skipped)} non-tensor entr(y/ies): {', '.join(skipped[:5])}")
    ties = _ties(tensors, torch)
    aliases = {name for group in ties for name in group[1:]}
    _check_sizes(p, {name: t for name, t in tensors.items() if name not in aliases})
    arrays = {name: to_numpy(t, name, torch) for name, t in tensors.items() if name not in aliases}
    return NativeCheckpoint(str(p), "torch", arrays, backend="torch", ties=ties, notes=notes)


def _bounded_legacy(p: Path) -> io.BytesIO:
    """A legacy (pre-zip) file's bytes, once its storages' declared sizes fit in them (no
    oversized reads: torch would allocate what the file declares)."""
    data = p.read_bytes()
    declared = legacy_storage_bytes(data, str(p))
    if declared > len(data):
        raise CheckpointError(
            f"{p}: its storages declare {declared} bytes but the file has {len(data)}; it is truncated or "
            f"crafted (refused before torch allocates them)"
        )
    return io.BytesIO(data)


def _load_weights_only(p: Path, source: Any, mapped: bool, torch: Any) -> Any:
    """``torch.load(weights_only=True)`` of ``source``, its failures as :class:`CheckpointError`
    saying why and what to do (nothing in the file is ever run)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(source, map_location="cpu", weights_only=True, mmap=mapped)
    except Exception as exc:  # UnpicklingError, RuntimeError (corrupt zip), EOFError, ...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if mapped and "mmap" in str(exc):
            raise CheckpointError(
                f"{p}: this PyTorch file cannot be memory-mapped ({first[:200]}); re-save it with a current "
                f"PyTorch (torch.save writes the zip format, which maps)"
            ) from None
        if "weights only" in str(exc).lower() or "weights_only" in str(exc).lower():
            raise CheckpointError(
                f"{p}: refused: the file holds objects other than tensors and plain containers "
                f"(torch.load(weights_only=True) rejected it; nothing in it was run). Only state "
                f"dicts are read; re-save with torch.save(model.state_dict(), path)."
            ) from None
        raise CheckpointError(
            f"{p}: not a readable PyTorch file ({type(exc).__name__}: {first[:200]})"
        ) from None


def _drop_counters(tensors: dict[str, Any]) -> list[str]:
    """Remove BatchNorm's ``num_batches_tracked`` step counts from ``tensors``; the note saying so."""
    dropped = [name for name in tensors if name.rsplit(".", 1)[-1] == "num_batches_tracked"]
    for name in dropped:
        del tensors[name]
    if not dropped:
        return []
    return [f"dropped {len(dropped)} num_batches_tracked counter(s) (BatchNorm step counts, not parameters)"]


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
