"""What a dense layer reads: plain features, or a flattened feature map in some axis order.

A dense layer after convolutions either reads pooled features (DenseNet's classifier reads 1024
globally pooled values) or a flattened feature map (VGG's ``fc1`` reads 512 x 7 x 7 values).
A flattened map is ordered ``(C, H, W)`` by a channels-first model and ``(H, W, C)`` by a
channels-last one, so the weight's input axis must be permuted when it moves between them.
Parameter shapes cannot tell these cases apart; the model's dataflow can. Each adapter reports
a :class:`DenseInput` per dense layer, from the framework's own graph information (Keras'
functional graph, a traced PyTorch forward...). Ports and checkpoints use PyTorch's
channels-first order as canonical for these weights.

>>> fact = DenseInput.flattened((2, 3), order=(1, 0))      # a 2-channel map of 3 positions, (S, C)
>>> w = np.arange(6.0).reshape(1, 6)                         # the model's own order
>>> fact.to_canonical(w)
array([[0., 2., 4., 1., 3., 5.]])
>>> fact.to_model(fact.to_canonical(w))
array([[0., 1., 2., 3., 4., 5.]])
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

#: ``transpose(array, axes) -> new C-contiguous array``.
Transposer = Callable[[np.ndarray, tuple[int, ...]], np.ndarray]

FEATURES = "features"
FLATTENED = "flattened"
CANONICAL = "canonical"
UNKNOWN = "unknown"


@dataclass(frozen=True)
class DenseInput:
    """How a dense layer's input vector is laid out.

    ``kind`` is one of:

    - ``"features"``: a vector with no spatial structure (pooled features, another dense layer);
    - ``"flattened"``: a flattened map of canonical shape ``map_shape = (C, *spatial)``, which the
      model flattens in axis ``order`` (a permutation of ``map_shape``'s axes: ``(0, 1, 2)`` is
      channels-first, ``(1, 2, 0)`` channels-last);
    - ``"canonical"``: not established from the dataflow, but in canonical order by the framework's
      convention (a channels-first framework flattens ``(C, H, W)``): safe to copy, nothing to check;
    - ``"unknown"``: could not be established; ``reason`` says why.
    """

    kind: str
    map_shape: tuple[int, ...] = ()
    order: tuple[int, ...] = ()
    reason: str = ""

    # --- constructors ---------------------------------------------------------------------
    @classmethod
    def features(cls, reason: str = "") -> DenseInput:
        return cls(FEATURES, reason=reason)

    @classmethod
    def flattened(
        cls, map_shape: tuple[int, ...], order: tuple[int, ...] | None = None, *, channels_last: bool = False,
        reason: str = "",
    ) -> DenseInput:
        """A flattened map of canonical shape ``(C, *spatial)``; ``channels_last=True`` is the
        order ``(*spatial, C)``, or give ``order`` itself."""
        shape = tuple(int(d) for d in map_shape)
        if order is None:
            order = tuple(range(1, len(shape))) + (0,) if channels_last else tuple(range(len(shape)))
        if sorted(order) != list(range(len(shape))):
            raise ValueError(f"order must be a permutation of {tuple(range(len(shape)))}; received order={order}")
        return cls(FLATTENED, shape, tuple(order), reason)

    @classmethod
    def canonical(cls, reason: str = "") -> DenseInput:
        return cls(CANONICAL, reason=reason)

    @classmethod
    def unknown(cls, reason: str) -> DenseInput:
        return cls(UNKNOWN, reason=reason)

    # --- facts ----------------------------------------------------------------------------
    @property
    def known(self) -> bool:
        return self.kind != UNKNOWN

    @property
    def spatial_size(self) -> int:
        """Positions of the flattened map (1 for features: one position)."""
        return math.prod(self.map_shape[1:]) if self.kind == FLATTENED else 1

    @property
    def permutes(self) -> bool:
        """True when the model's order differs from canonical for this input."""
        if self.kind != FLATTENED:
            return False
        axes = [a for a in self.order if self.map_shape[a] != 1]  # size-1 axes never reorder
        return axes != sorted(axes)

    @property
    def size(self) -> int | None:
        return math.prod(self.map_shape) if self.kind == FLATTENED else None

    def describe(self) -> str:
        if self.kind == FLATTENED:
            names = ["C"] + [f"S{i}" for i in range(len(self.map_shape) - 1)] if len(self.map_shape) != 3 else ["C", "H", "W"]
            order = "".join(names[a] for a in self.order)
            dims = "x".join(str(self.map_shape[a]) for a in self.order)
            return f"a flattened {dims} map ({order} order)"
        if self.kind == FEATURES:
            return "plain features"
        if self.kind == CANONICAL:
            return "inputs in canonical order (framework convention)"
        return f"an input order that could not be established ({self.reason})"

    # --- conversions ----------------------------------------------------------------------
    def to_canonical(self, weight: np.ndarray, transpose: Transposer | None = None) -> np.ndarray:
        """A dense weight ``(out, in)`` in this model's input order -> canonical order.

        ``transpose(array, axes)`` makes the transposing copy (default NumPy's; adapters offer
        their framework's faster one as ``transpose_copy``)."""
        if not self.permutes:
            return weight
        out = weight.shape[0]
        model_shape = [self.map_shape[a] for a in self.order]
        axes = (0, *(1 + self.order.index(i) for i in range(len(self.map_shape))))
        return (transpose or _numpy_transpose)(weight.reshape(out, *model_shape), axes).reshape(weight.shape)

    def to_model(self, weight: np.ndarray, transpose: Transposer | None = None) -> np.ndarray:
        """The inverse of :meth:`to_canonical`."""
        if not self.permutes:
            return weight
        out = weight.shape[0]
        axes = (0, *(1 + a for a in self.order))
        return (transpose or _numpy_transpose)(weight.reshape(out, *self.map_shape), axes).reshape(weight.shape)


def _numpy_transpose(array: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    return np.ascontiguousarray(array.transpose(axes))


def agreement(src: DenseInput, dst: DenseInput) -> str | None:
    """Why two layers' inputs cannot be the same function of the same features, or None.

    Both must be established for a check: features vs a flattened map of more than one position,
    or two flattened maps of different canonical shapes, are different functions.
    """
    established = (FEATURES, FLATTENED)
    if src.kind not in established or dst.kind not in established:
        return None
    if src.spatial_size == 1 and dst.spatial_size == 1:
        return None
    if src.kind == FLATTENED and dst.kind == FLATTENED:
        same = src.map_shape == dst.map_shape or (
            math.prod(src.map_shape) == math.prod(dst.map_shape)
            and src.map_shape[0] == dst.map_shape[0]
            and src.spatial_size == dst.spatial_size
        )
        if same:
            return None
    return f"the source reads {src.describe()}, the destination {dst.describe()}"
