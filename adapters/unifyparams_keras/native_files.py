"""Keras weight files (``model.save_weights("m.weights.h5")``, or any HDF5), read with h5py, no Keras.

HDF5 holds typed arrays only; nothing is unpickled. Names are the file's dataset paths
(``layers/dense/vars/0``), kept as they are: mapping them to canonical names needs the model
(load the file into it with Keras, then use unifyparams). Values are in Keras's layout (Dense
kernels ``(in, out)``, channels-last convolution kernels), not the canonical one.

>>> read_keras_h5("m.weights.h5").tensors.keys()         # doctest: +SKIP
dict_keys(['layers/dense/vars/0', 'layers/dense/vars/1'])

:data:`FORMATS` declares the format to the core (``KerasAdapter.native_files``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from unifyparams.errors import AdapterUnavailableError, CheckpointError
from unifyparams.formats.checkpoint import NativeCheckpoint, require_file

#: Values are as Keras stores them (Dense kernels (in, out), convolutions channels-last, ...).
KERAS_NATIVE = "keras-native"

NAMES_NOTE = (
    "names are Keras layer paths; mapping them to canonical names needs the model "
    "(model.load_weights(path), then up.params(model))"
)
LAYOUT_NOTE = "values are in Keras's native layout (e.g. Dense kernels (in, out); canonical is (out, in))"
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"

#: The formats this adapter declares to the core (see :mod:`unifyparams.formats.registry`).
FORMATS: dict[str, dict[str, str]] = {
    "keras-h5": {
        "description": "Keras weights (.weights.h5 / .h5)",
        "suffixes": ".h5 .hdf5",
        "magic": HDF5_MAGIC.hex(),
        "read": "unifyparams_keras.native_files:read_keras_h5",
        "not_loadable": (
            "a Keras .weights.h5 file names tensors by Keras layer paths and keeps Keras's layouts, "
            "which only its own model can map. Load it with model.load_weights(path) into the Keras "
            "model, then up.save(model, 'model.safetensors') to make it portable."
        ),
    },
}


#: HDF5's built-in filters (deflate, shuffle, fletcher32, szip, nbit, scaleoffset) and h5py's LZF.
#: Any other filter id would make HDF5 look for a plugin library to load: refused.
BUILTIN_FILTERS = frozenset({1, 2, 3, 4, 5, 6, 32000})
#: A compressed dataset may hold at most this many times the bytes it stores in the file, so a
#: small file cannot make the reader allocate much more than its own size.
MAX_EXPANSION = 8


def read_keras_h5(path: str | Path) -> NativeCheckpoint:
    """Read every numeric dataset of an HDF5 weights file, keyed by its path in the file.

    Every dataset is checked before its values are read (:func:`check_dataset`): its data must
    lie inside this file (no external raw storage, no virtual datasets, no links to other
    files; soft links are not followed) and its declared size must be what the file stores,
    so a file cannot read other files or make the reader allocate more than a small multiple
    of its own size.
    """
    p = require_file(path)
    try:
        import h5py
    except ImportError as exc:
        raise AdapterUnavailableError(f"reading .h5 files needs h5py ({exc}): pip install h5py") from None
    file_size = p.stat().st_size
    arrays: dict[str, np.ndarray] = {}
    skipped: list[str] = []
    datasets: list[tuple[str, Any]] = []

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset):
            datasets.append((name, obj))

    try:
        with h5py.File(p, "r") as f:
            f.visititems(visit)  # hard links only: soft and external links are not followed
            for name, obj in datasets:
                if obj.shape is None or obj.dtype.kind not in "biufc" or obj.dtype.subdtype is not None:
                    skipped.append(name)
                    continue
                check_dataset(h5py, name, obj, file_size, str(p))
                arrays[name] = np.asarray(obj[()])
    except CheckpointError:
        raise
    except MemoryError:
        raise CheckpointError(f"{p}: not enough memory to read its datasets") from None
    except Exception as exc:  # h5py raises OSError, ValueError, KeyError, RuntimeError, TypeError...
        reason = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
        raise CheckpointError(f"{p}: not a readable HDF5 file ({type(exc).__name__}: {reason})") from None
    notes = [NAMES_NOTE, LAYOUT_NOTE]
    if skipped:
        notes.append(f"skipped {len(skipped)} non-numeric dataset(s): {', '.join(skipped[:5])}")
    return NativeCheckpoint(
        str(p), "keras-h5", arrays, layout=KERAS_NATIVE, canonical_names=False, backend="keras", notes=notes
    )


def check_dataset(h5py: Any, name: str, obj: Any, file_size: int, source: str) -> None:
    """Refuse a dataset whose values are not stored in this file, in the size it declares."""
    where = f"{source}: dataset {name!r}"
    nbytes = math.prod(obj.shape) * obj.dtype.itemsize
    plist = obj.id.get_create_plist()
    layout = plist.get_layout()
    if layout == h5py.h5d.VIRTUAL:
        raise CheckpointError(
            f"{where} is a virtual dataset (its values come from other files); expected values stored in "
            f"this file. Re-save the weights with model.save_weights()."
        )
    if plist.get_external_count() > 0:
        raise CheckpointError(
            f"{where} keeps its values in external file(s) {[e[0] for e in obj.external or []][:3]}; "
            f"expected values stored in this file. Such files are refused so an .h5 file cannot read "
            f"other files; re-save the weights with model.save_weights()."
        )
    if nbytes > MAX_EXPANSION * file_size:
        raise CheckpointError(
            f"{where} declares {obj.dtype}{list(obj.shape)} ({nbytes} bytes) but the file has only "
            f"{file_size} bytes; the file is corrupt or crafted"
        )
    if layout == h5py.h5d.CHUNKED:
        _check_chunks(obj, plist, nbytes, file_size, where)
    elif layout == h5py.h5d.CONTIGUOUS:
        offset, stored = obj.id.get_offset(), obj.id.get_storage_size()
        if nbytes and (offset is None or stored != nbytes or offset + stored > file_size):
            raise CheckpointError(
                f"{where} declares {nbytes} bytes but the file stores {stored} at offset {offset} (file size "
                f"{file_size}); expected the whole dataset inside the file. It is truncated or crafted."
            )
    elif layout != h5py.h5d.COMPACT:  # compact data lives in the object header, inside the file
        raise CheckpointError(f"{where} has storage layout {layout}; expected contiguous, chunked or compact")


def _check_chunks(obj: Any, plist: Any, nbytes: int, file_size: int, where: str) -> None:
    filters = [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]
    unknown = [f for f in filters if f not in BUILTIN_FILTERS]
    if unknown:
        raise CheckpointError(
            f"{where} uses HDF5 filter(s) {unknown}; expected only built-in ones {sorted(BUILTIN_FILTERS)} "
            f"(others would load plugin code)"
        )
    chunk = obj.chunks or ()
    chunk_bytes = math.prod(chunk) * obj.dtype.itemsize
    if chunk_bytes > MAX_EXPANSION * file_size:
        raise CheckpointError(f"{where}: chunks of {chunk_bytes} bytes in a {file_size}-byte file; it is crafted")
    if not nbytes:
        return
    expected = math.prod(-(-d // c) for d, c in zip(obj.shape, chunk))
    count = obj.id.get_num_chunks()
    if count != expected:
        raise CheckpointError(
            f"{where} stores {count} of its {expected} chunks; expected every chunk in the file (missing "
            f"chunks would read as fill values). It is truncated or crafted."
        )
    stored = 0
    for i in range(count):
        info = obj.id.get_chunk_info(i)
        if info.byte_offset is None or info.byte_offset + info.size > file_size:
            raise CheckpointError(f"{where}: chunk {i} lies outside the file ({file_size} bytes); it is crafted")
        if not filters and info.size != chunk_bytes:
            raise CheckpointError(f"{where}: chunk {i} stores {info.size} bytes; expected {chunk_bytes}")
        stored += info.size
    if nbytes > MAX_EXPANSION * max(stored, 1):
        raise CheckpointError(
            f"{where} expands from {stored} stored bytes to {nbytes}, over {MAX_EXPANSION}x; refused so a "
            f"small file cannot take much memory"
        )
