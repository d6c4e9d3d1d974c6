"""MXNet Gluon ``.params`` files (``net.save_parameters``), read without MXNet.

The NDArray file format is binary (a magic number, shapes, raw data), never a pickle; it is
parsed and bounded by :mod:`.params_file`, never by MXNet's own loader (which trusts the
shapes a file declares).
``save_parameters`` keys are attribute paths (``0.weight``, ``1.gamma``); they become canonical
names: ``gamma``/``beta`` (only norm layers have them) -> ``weight``/``bias``, recurrent layers'
``_unfused.0.l_cell.i2h_weight`` (MXNet 1.9's compatibility form) or ``l0_i2h_weight`` ->
``weight_ih_l0``, the reverse direction ``r0_``/``r_cell`` -> ``..._reverse``, cells'
``i2h_weight`` -> ``weight_ih``. ``arg:``/``aux:`` prefixes of exported files are dropped.

>>> gluon_name("1.gamma"), gluon_name("2._unfused.0.r_cell.h2h_bias"), gluon_name("0.l1_i2h_weight")
('1.weight', '2.bias_hh_l0_reverse', '0.weight_ih_l1')
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from unifyparams.errors import AdapterUnavailableError, CheckpointError
from unifyparams.formats.checkpoint import NativeCheckpoint, require_file

#: Block kinds passed to ``canonical_leaf``: gamma/beta only occur in norm layers, ``lN_`` only in
#: fused recurrent layers, bare ``i2h_`` only in recurrent cells.
_KINDS = ("BatchNorm", "LSTM", "HybridRecurrentCell")
_UNFUSED = re.compile(
    r"^(?P<prefix>(?:.*\.)?)_unfused\.(?P<k>\d+)\.(?:(?P<dir>[lr])_cell\.)?(?P<attr>(?:i2h|h2h|h2r)_(?:weight|bias))$"
)
#: Notes for every Gluon file: the format cannot tell a channels-last kernel from a canonical one.
LAYOUT_NOTE = (
    "Gluon layouts are canonical except channels-last (layout='NHWC') convolution kernels, "
    "which a .params file cannot reveal"
)


#: The formats this adapter declares to the core (see :mod:`unifyparams.formats.registry`).
FORMATS: dict[str, dict[str, str]] = {
    "gluon": {
        "description": "MXNet Gluon .params (net.save_parameters)",
        "suffixes": ".params",
        "magic": (0x112).to_bytes(8, "little").hex(),  # an NDArray list file
        "read": "unifyparams_gluon.native_files:read_gluon",
    },
}


def gluon_name(key: str) -> str:
    """The canonical name of one ``save_parameters`` key."""
    from .rules import canonical_leaf

    key = key.split(":", 1)[1] if key.startswith(("arg:", "aux:")) else key
    m = _UNFUSED.match(key)
    if m:
        attr = f"{m['dir'] or 'l'}{m['k']}_{m['attr']}"
        return m["prefix"] + canonical_leaf(("LSTM",), attr)[0]
    parent, dot, attr = key.rpartition(".")
    return parent + dot + canonical_leaf(_KINDS, attr)[0]


def import_mx() -> Any:
    """The ``mxnet`` module (through ``unifyparams_gluon.import_mxnet``), or an install hint."""
    try:
        from .compat import import_mxnet

        return import_mxnet()
    except ImportError as exc:
        raise AdapterUnavailableError(
            f"reading Gluon .params files needs MXNet ({exc}): pip install 'mxnet<2'"
        ) from None


def read_gluon(path: str | Path) -> NativeCheckpoint:
    """Read a ``.params`` file and give its tensors canonical names.

    The file is parsed and bounded by :mod:`.params_file` (NumPy only): MXNet's own loader is
    never handed the bytes, so a crafted file cannot crash it or make it allocate what it
    declares, and reading needs no MXNet install.
    """
    from .params_file import read_params_file

    p = require_file(path)
    loaded, named = read_params_file(p)
    notes = [LAYOUT_NOTE]
    empty = [key for key, value in loaded.items() if value is None]
    if empty:
        raise CheckpointError(
            f"{p}: {len(empty)} entr(y/ies) hold an empty NDArray with no shape (e.g. {empty[0]!r}); "
            f"expected parameter values. Initialize the parameters (net.initialize() and one forward "
            f"pass) before net.save_parameters()."
        )
    if not named:
        notes.append("the file holds an unnamed list of arrays; names are their positions")
    renamed: dict[str, str] = {key: gluon_name(key) for key in loaded}
    if len(set(renamed.values())) != len(renamed):
        renamed = {key: key for key in loaded}
        notes.append("canonical names would collide; the file's own keys are kept")
    arrays: dict[str, np.ndarray] = {renamed[key]: value for key, value in loaded.items() if value is not None}
    changed = sum(1 for key, name in renamed.items() if key != name)
    if changed:
        notes.append(
            f"renamed {changed} Gluon key(s) to canonical names (gamma -> weight, l0_i2h_weight -> weight_ih_l0, ...)"
        )
    return NativeCheckpoint(str(p), "gluon", arrays, backend="gluon", notes=notes)
