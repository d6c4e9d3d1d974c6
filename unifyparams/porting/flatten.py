"""Dense layers that read a flattened feature map in channels-last order.

A channels-first model flattens a feature map as ``(C, H, W)``, a channels-last one (Keras) as
``(H, W, C)``, so the first dense weight after a flatten orders its inputs differently. Ports and
checkpoints use PyTorch's (channels-first) order as canonical for those weights: a checkpoint
saved from a Keras CNN loads into the PyTorch one, and back.

>>> flatten_orders(up.params(keras_lenet))      # doctest: +SKIP
{'7.weight': 16}
"""

from __future__ import annotations

import numpy as np

from ..paramset import ParamSet
from .convert import permute_flatten_input
from .layers import group_layers
from .port import _channels_after, _is_channels_last


def flatten_orders(ps: ParamSet) -> dict[str, int]:
    """``{dense weight name: channels}`` for dense layers fed by a flattened channels-last map."""
    result: dict[str, int] = {}
    channels: int | None = None
    channels_last = False
    for layer in group_layers(ps):
        weight = layer.params.get("weight")
        if layer.family == "dense" and weight is not None and channels and channels_last:
            in_features = weight.shape[1] if len(weight.shape) == 2 else None
            if isinstance(in_features, int) and in_features % channels == 0 and in_features != channels:
                result[weight.name] = channels
        channels = _channels_after(layer, channels)
        if layer.family.startswith("conv"):
            channels_last = _is_channels_last(layer)
    return result


def to_canonical_order(value: np.ndarray, channels: int) -> np.ndarray:
    """A dense weight of a channels-last model, with its inputs in channels-first order."""
    return permute_flatten_input(value, channels, to_channels_last=False)


def to_model_order(value: np.ndarray, channels: int) -> np.ndarray:
    """The inverse of :func:`to_canonical_order`."""
    return permute_flatten_input(value, channels, to_channels_last=True)
