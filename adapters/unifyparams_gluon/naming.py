"""Gluon parameter names -> canonical leaf names and roles.

Gluon names a block's parameters by attribute (``weight``, ``gamma``, ``l0_i2h_weight``); the
canonical names are PyTorch's. Layouts need no conversion: Gluon stores dense (out, in), NCHW
convolutions (out, in/groups, *kernel) and recurrent gates in PyTorch's orders.

>>> canonical_leaf("BatchNorm", "gamma")
('weight', 'scale')
>>> canonical_leaf("LSTM", "r1_h2h_bias")
('bias_hh_l1_reverse', 'bias')
"""

from __future__ import annotations

import re

from unifyparams import Role

_RNN = re.compile(r"^(?P<dir>[lr])(?P<k>\d+)_(?P<kind>i2h|h2h)_(?P<what>weight|bias)$")
_NORM_KINDS = ("BatchNorm", "SyncBatchNorm", "LayerNorm", "GroupNorm", "InstanceNorm")
_NORM = {"gamma": ("weight", Role.SCALE), "beta": ("bias", Role.SHIFT)}
_STATE = {"running_mean": ("running_mean", Role.RUNNING_MEAN), "running_var": ("running_var", Role.RUNNING_VAR)}


def canonical_leaf(block_kind: str, attr: str) -> tuple[str, str]:
    """``(canonical leaf, role)`` for the parameter ``attr`` of a block of class ``block_kind``."""
    if attr in _STATE:
        return _STATE[attr]
    if attr in _NORM and block_kind in _NORM_KINDS:
        return _NORM[attr]
    m = _RNN.match(attr)
    if m is not None:
        direction = "ih" if m.group("kind") == "i2h" else "hh"
        reverse = "_reverse" if m.group("dir") == "r" else ""
        role = Role.WEIGHT if m.group("what") == "weight" else Role.BIAS
        return f"{m.group('what')}_{direction}_l{m.group('k')}{reverse}", role
    if attr in _NORM:
        return _NORM[attr]
    if attr.endswith("weight"):
        return attr, Role.WEIGHT
    if attr.endswith("bias"):
        return attr, Role.BIAS
    return attr, Role.OTHER
