"""Leaf rules for Gluon: parameter attributes -> canonical leaf names, roles and layouts (as Keras' ``rules``).

Gluon names a block's parameters by attribute (``weight``, ``gamma``, ``l0_i2h_weight``); the
canonical names are PyTorch's. Most layouts need no conversion: Gluon stores dense weights
(out, in), NCHW convolutions (out, in/groups, *kernel), transposed convolutions (in, out/groups,
*kernel) and recurrent gates in PyTorch's orders (LSTM i, f, c, o; GRU r, z, n). Only channels-last
convolutions (``layout="NHWC"`` / ``"NDHWC"``) keep the input channels last in the kernel.

>>> canonical_leaf(("BatchNorm",), "gamma")
('weight', 'scale')
>>> canonical_leaf(("LSTM",), "r1_h2h_bias")
('bias_hh_l1_reverse', 'bias')
>>> canonical_leaf(("LSTMCell", "HybridRecurrentCell"), "i2h_weight")
('weight_ih', 'weight')
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from types import MappingProxyType
from typing import Any

from unifyparams import Role
from unifyparams.layouts import IDENTITY, Layout, Transpose

#: Classes (and base classes) whose ``gamma``/``beta`` are PyTorch's ``weight``/``bias``.
NORM_KINDS = frozenset({"_BatchNorm", "BatchNorm", "SyncBatchNorm", "LayerNorm", "GroupNorm", "InstanceNorm"})
#: Base classes of Gluon's recurrent cells (``i2h_weight`` -> ``weight_ih``).
CELL_KINDS = frozenset({"RecurrentCell", "HybridRecurrentCell"})
#: Base class of the fused recurrent layers (``l0_i2h_weight`` -> ``weight_ih_l0``).
RNN_KINDS = frozenset({"_RNNLayer", "RNN", "LSTM", "GRU"})

_LAYER = re.compile(r"^(?P<dir>[lr])(?P<k>\d+)_(?P<kind>i2h|h2h|h2r)_(?P<what>weight|bias)$")
_CELL = re.compile(r"^(?P<kind>i2h|h2h|h2r)_(?P<what>weight|bias)$")
_GATES = {"i2h": "ih", "h2h": "hh", "h2r": "hr"}  # h2r: the LSTM projection (PyTorch weight_hr_l0)
_NORM = {"gamma": ("weight", Role.SCALE), "beta": ("bias", Role.SHIFT)}
_STATE = {"running_mean": Role.RUNNING_MEAN, "running_var": Role.RUNNING_VAR}


def canonical_leaf(kinds: Iterable[str], attr: str) -> tuple[str, str]:
    """``(canonical leaf, role)`` for the parameter ``attr`` of a block whose class (and base
    classes) are named ``kinds``. Attributes no rule covers keep their Gluon name."""
    kinds = frozenset(kinds)
    if attr in _STATE:
        return attr, _STATE[attr]
    if kinds & NORM_KINDS and attr in _NORM:
        return _NORM[attr]
    if kinds & RNN_KINDS and (m := _LAYER.match(attr)):
        reverse = "_reverse" if m["dir"] == "r" else ""
        return f"{m['what']}_{_GATES[m['kind']]}_l{m['k']}{reverse}", _role(m["what"])
    if kinds & CELL_KINDS and (m := _CELL.match(attr)):
        return f"{m['what']}_{_GATES[m['kind']]}", _role(m["what"])
    return attr, _default_role(attr)


def _role(what: str) -> str:
    return Role.WEIGHT if what == "weight" else Role.BIAS


def _default_role(attr: str) -> str:
    """Role from the suffix, as MXNet's initializers dispatch (``*_gamma`` ones, ``*_beta`` zeros)."""
    for suffix, role in (("weight", Role.WEIGHT), ("bias", Role.BIAS), ("gamma", Role.SCALE), ("beta", Role.SHIFT)):
        if attr.endswith(suffix):
            return role
    return Role.OTHER


@lru_cache(maxsize=4096)
def canonical_leaves(kinds: tuple[str, ...], attrs: tuple[str, ...]) -> Mapping[str, tuple[str, str]]:
    """``{attr: (leaf, role)}`` for all parameters of one block; an attribute whose canonical leaf
    would collide with another's keeps its Gluon name, so names stay unique. Cached: a model
    repeats few (class, attributes) combinations."""
    mapped = {attr: canonical_leaf(kinds, attr) for attr in attrs}
    taken: dict[str, int] = {}
    for leaf, _ in mapped.values():
        taken[leaf] = taken.get(leaf, 0) + 1
    for attr in attrs:
        leaf, role = mapped[attr]
        if leaf != attr and (taken[leaf] > 1 or leaf in mapped):
            mapped[attr] = (attr, role)
    return MappingProxyType(mapped)


def native_layout(block: Any, attr: str) -> Layout:
    """The layout of ``block``'s parameter ``attr``: a channels-last convolution's kernel is
    (out, *kernel, in) (``(in, *kernel, out)`` when transposed) and becomes canonical with
    ``Transpose((0, n, 1, ..., n-1))``; everything else is already canonical."""
    if attr != "weight" or not channels_last(block):
        return IDENTITY
    rank = len(kernel_layout(block))  # "NHWC" -> 4
    return Transpose((0, rank - 1, *range(1, rank - 1)))


def kernel_layout(block: Any) -> str:
    """The ``layout`` argument of a convolution (``"NCHW"``, ``"NHWC"``...), ``""`` for other blocks."""
    kwargs = getattr(block, "_kwargs", None)
    layout = kwargs.get("layout") if isinstance(kwargs, Mapping) else None
    return layout if isinstance(layout, str) else ""


def channels_last(block: Any) -> bool:
    """True for a convolution or pooling layer whose layout keeps channels last (``NWC``, ``NHWC``...)."""
    layout = kernel_layout(block)
    return len(layout) >= 3 and layout.startswith("N") and layout.endswith("C")
