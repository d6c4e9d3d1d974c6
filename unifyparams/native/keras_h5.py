"""Keras weight files (``model.save_weights("m.weights.h5")``, or any HDF5), read with h5py.

HDF5 holds typed arrays only; nothing is unpickled. Names are the file's dataset paths
(``layers/dense/vars/0``), kept as they are: mapping them to canonical names needs the model
(load the file into it with Keras, then use unifyparams). Values are in Keras's layout (Dense
kernels ``(in, out)``, channels-last convolution kernels), not the canonical one.

>>> read_keras_h5("m.weights.h5").tensors.keys()         # doctest: +SKIP
dict_keys(['layers/dense/vars/0', 'layers/dense/vars/1'])
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import AdapterUnavailableError, CheckpointError
from .base import KERAS_NATIVE, NativeCheckpoint, require_file

NAMES_NOTE = (
    "names are Keras layer paths; mapping them to canonical names needs the model "
    "(model.load_weights(path), then up.params(model))"
)
LAYOUT_NOTE = "values are in Keras's native layout (e.g. Dense kernels (in, out); canonical is (out, in))"
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def read_keras_h5(path: str | Path) -> NativeCheckpoint:
    """Read every numeric dataset of an HDF5 weights file, keyed by its path in the file."""
    p = require_file(path)
    try:
        import h5py
    except ImportError as exc:
        raise AdapterUnavailableError(f"reading .h5 files needs h5py ({exc}): pip install h5py") from None
    arrays: dict[str, np.ndarray] = {}
    skipped: list[str] = []

    def visit(name: str, obj: Any) -> None:
        if not isinstance(obj, h5py.Dataset):
            return
        if obj.dtype.kind not in "biufc":
            skipped.append(name)
            return
        arrays[name] = np.asarray(obj[()])

    try:
        with h5py.File(p, "r") as f:
            f.visititems(visit)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise CheckpointError(f"{p}: not a readable HDF5 file ({str(exc).splitlines()[0][:200]})") from None
    notes = [NAMES_NOTE, LAYOUT_NOTE]
    if skipped:
        notes.append(f"skipped {len(skipped)} non-numeric dataset(s): {', '.join(skipped[:5])}")
    return NativeCheckpoint(
        str(p), "keras-h5", arrays, layout=KERAS_NATIVE, canonical_names=False, backend="keras", notes=notes
    )
