"""Fans and gains on the canonical (PyTorch) layout, as PyTorch computes them.

Dense weights are (out, in), convolutions (out, in/groups, *kernel): ``fan_in = in * receptive
field``, ``fan_out = out * receptive field``. Computing them on the canonical layout is what makes
``XavierUniform`` mean the same bound in every framework (each framework's own initializers read
fans from their own layouts, so running one on another's layout swaps fan_in and fan_out).

>>> compute_fans((256, 20))
(20, 256)
>>> round(calculate_gain("leaky_relu", 0.2), 4)
1.3868
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ..errors import InitializerError


def compute_fans(shape: Sequence[int], name: str = "") -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a canonical shape; at least two dimensions are needed."""
    if len(shape) < 2:
        where = f"parameter {name!r} " if name else "a parameter "
        raise InitializerError(
            f"fan-based initializers need at least 2 dimensions, but {where}has shape {tuple(shape)}. "
            f"Use them for weights (select='*.weight'), or a fan-free initializer (Normal, Uniform, Zeros)."
        )
    receptive = math.prod(shape[2:]) if len(shape) > 2 else 1
    return int(shape[1]) * receptive, int(shape[0]) * receptive


def fan_for(mode: str, shape: Sequence[int], name: str = "") -> float:
    fan_in, fan_out = compute_fans(shape, name)
    if mode == "fan_in":
        return float(fan_in)
    if mode == "fan_out":
        return float(fan_out)
    if mode == "fan_avg":
        return (fan_in + fan_out) / 2.0
    raise InitializerError(f"mode must be 'fan_in', 'fan_out' or 'fan_avg'; received mode={mode!r}")


_LINEAR = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
           "conv_transpose3d", "sigmoid", "identity")


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The recommended gain for a nonlinearity, as ``torch.nn.init.calculate_gain``."""
    if nonlinearity in _LINEAR:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        if isinstance(slope, bool) or not isinstance(slope, (int, float)):
            raise InitializerError(f"negative_slope must be a number. Received: param={param!r}")
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise InitializerError(
        f"unsupported nonlinearity; expected one of {', '.join(_LINEAR)}, tanh, relu, leaky_relu, selu. "
        f"Received: nonlinearity={nonlinearity!r}"
    )
