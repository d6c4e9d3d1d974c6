"""Ties in PyTorch: which pairs can share one Parameter object, sharing it, and separating again.

PyTorch ties by registering one ``Parameter`` (or buffer) object on several modules; untying gives
one attribute a clone. The core's :meth:`unifyparams.Adapter.tie` and ``untie`` call these after
their own checks.

>>> import torch
>>> net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2))
>>> import unifyparams as up
>>> ps = up.params(net)
>>> tie_problem(ps["1.weight"].slot, ps["0.weight"].slot) is None
True
"""

from __future__ import annotations

from typing import Any

import torch

from unifyparams.adapter import Slot

from .structure import is_uninitialized


def tie_problem(target: Slot, source: Slot) -> str | None:
    """Why PyTorch cannot tie ``target`` to ``source``: a parameter and a buffer, lazy tensors,
    different devices, or a target not registered on its module; ``None`` if it can."""
    src, dst, block = source.native, target.native, target.block
    is_param = isinstance(dst, torch.nn.Parameter)
    if is_param != isinstance(src, torch.nn.Parameter):
        kinds = {True: "a parameter", False: "a buffer"}
        return f"{target.name!r} is {kinds[is_param]} and {source.name!r} {kinds[not is_param]}; PyTorch keeps them apart"
    if is_uninitialized(src) or is_uninitialized(dst):
        return "their shapes are not known yet (lazy modules); call up.materialize(model, example_input) first"
    if src.device != dst.device:
        return f"they live on different devices ({dst.device} and {src.device}); move the model to one device first"
    if not isinstance(block, torch.nn.Module) or target.leaf not in (block._parameters if is_param else block._buffers):
        return f"{target.name!r} is not registered on the module that should own it"
    return None


def share(target: Slot, source: Slot) -> None:
    """Register ``source``'s Parameter (or buffer) object on the module that owns ``target``."""
    # setattr, not register_parameter: it runs subclass bookkeeping (RNNBase's _flat_weights) and
    # keeps a buffer's persistence.
    setattr(target.block, target.leaf, source.native)


def separate(slot: Slot) -> None:
    """Give ``slot``'s module a new Parameter (or buffer) holding a clone of the current values."""
    native: Any = slot.native
    with torch.no_grad():
        fresh = native.detach().clone()
    if isinstance(native, torch.nn.Parameter):
        setattr(slot.block, slot.leaf, torch.nn.Parameter(fresh, requires_grad=native.requires_grad))
    else:
        setattr(slot.block, slot.leaf, fresh)  # stays a buffer, with its persistence
