"""Conversions between a framework's native layout and the canonical (PyTorch) layout.

An adapter attaches one :class:`Layout` to each parameter. The core uses it for every read
(native -> canonical) and write (canonical -> native), so values seen through unifyparams are
in the same layout whatever framework holds them.

>>> import numpy as np
>>> dense = Transpose((1, 0))            # Keras kernel (in, out) -> canonical (out, in)
>>> dense.canonical_shape((20, 256))
(256, 20)
>>> dense.to_native(np.zeros((256, 20))).shape
(20, 256)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np

Shape = tuple[int | None, ...]


class Layout(ABC):
    """A bijection between native and canonical arrays of one parameter."""

    #: Short description shown in reports (``"identity"``, ``"transpose(1,0)"``).
    tag: str = "layout"

    @abstractmethod
    def canonical_shape(self, native_shape: Shape) -> Shape:
        """Canonical shape for a native shape (``None`` marks an unknown dimension)."""

    @abstractmethod
    def native_shape(self, canonical_shape: Shape) -> Shape:
        """Native shape for a canonical shape."""

    @abstractmethod
    def to_canonical(self, native: np.ndarray) -> np.ndarray:
        """Native array -> canonical array (a view where possible)."""

    @abstractmethod
    def to_native(self, canonical: np.ndarray) -> np.ndarray:
        """Canonical array -> native array (a view where possible)."""

    @property
    def is_identity(self) -> bool:
        return False

    def then(self, other: Layout) -> Layout:
        """Compose: apply ``self`` first, then ``other`` on the way to canonical."""
        if self.is_identity:
            return other
        if other.is_identity:
            return self
        return Chain((self, other))

    def __repr__(self) -> str:
        return f"<Layout {self.tag}>"


class Identity(Layout):
    """Native layout already is the canonical one."""

    tag = "identity"

    def canonical_shape(self, native_shape: Shape) -> Shape:
        return tuple(native_shape)

    def native_shape(self, canonical_shape: Shape) -> Shape:
        return tuple(canonical_shape)

    def to_canonical(self, native: np.ndarray) -> np.ndarray:
        return native

    def to_native(self, canonical: np.ndarray) -> np.ndarray:
        return canonical

    @property
    def is_identity(self) -> bool:
        return True


IDENTITY = Identity()


class Transpose(Layout):
    """Canonical array = ``native.transpose(perm)``.

    Keras dense kernels use ``Transpose((1, 0))``; Keras conv2d kernels ``Transpose((3, 2, 0, 1))``.
    """

    def __init__(self, perm: Sequence[int]):
        perm = tuple(int(a) for a in perm)
        if sorted(perm) != list(range(len(perm))):
            raise ValueError(f"Transpose needs a permutation of 0..{len(perm) - 1}; received perm={perm}")
        self.perm = perm
        self.inverse = tuple(int(a) for a in np.argsort(perm))
        self.tag = "transpose(" + ",".join(map(str, perm)) + ")"

    def canonical_shape(self, native_shape: Shape) -> Shape:
        return tuple(native_shape[a] for a in self.perm)

    def native_shape(self, canonical_shape: Shape) -> Shape:
        return tuple(canonical_shape[a] for a in self.inverse)

    def to_canonical(self, native: np.ndarray) -> np.ndarray:
        return native.transpose(self.perm)

    def to_native(self, canonical: np.ndarray) -> np.ndarray:
        return canonical.transpose(self.inverse)


class GateOrder(Layout):
    """Reorder equal-sized gate blocks along one axis.

    ``order[k]`` is the native block that becomes canonical block ``k``. A Keras GRU stores gates
    (z, r, h); PyTorch stores (r, z, n), so its kernel uses ``GateOrder((1, 0, 2), axis=0)`` after
    transposing.
    """

    def __init__(self, order: Sequence[int], axis: int):
        self.order = tuple(int(k) for k in order)
        self.inverse = tuple(int(k) for k in np.argsort(self.order))
        self.axis = int(axis)
        self.tag = f"gates{self.order}@axis{self.axis}"

    def canonical_shape(self, native_shape: Shape) -> Shape:
        return tuple(native_shape)

    def native_shape(self, canonical_shape: Shape) -> Shape:
        return tuple(canonical_shape)

    def _reorder(self, array: np.ndarray, order: tuple[int, ...]) -> np.ndarray:
        blocks = np.split(array, len(order), axis=self.axis)
        return np.concatenate([blocks[k] for k in order], axis=self.axis)

    def to_canonical(self, native: np.ndarray) -> np.ndarray:
        return self._reorder(native, self.order)

    def to_native(self, canonical: np.ndarray) -> np.ndarray:
        return self._reorder(canonical, self.inverse)


class Reshape(Layout):
    """Canonical array = ``native.reshape(canonical_shape)`` for fixed shapes.

    Used where frameworks fold axes differently (depthwise kernels).
    """

    def __init__(self, native: Sequence[int], canonical: Sequence[int]):
        self.native = tuple(int(d) for d in native)
        self.canonical = tuple(int(d) for d in canonical)
        if int(np.prod(self.native)) != int(np.prod(self.canonical)):
            raise ValueError(f"Reshape between sizes that differ: {self.native} -> {self.canonical}")
        self.tag = f"reshape{self.native}->{self.canonical}"

    def canonical_shape(self, native_shape: Shape) -> Shape:
        return self.canonical

    def native_shape(self, canonical_shape: Shape) -> Shape:
        return self.native

    def to_canonical(self, native: np.ndarray) -> np.ndarray:
        return native.reshape(self.canonical)

    def to_native(self, canonical: np.ndarray) -> np.ndarray:
        return canonical.reshape(self.native)


class Chain(Layout):
    """Several layouts applied in order on the way to canonical."""

    def __init__(self, steps: Sequence[Layout]):
        self.steps = tuple(steps)
        self.tag = " then ".join(s.tag for s in self.steps)

    def canonical_shape(self, native_shape: Shape) -> Shape:
        for step in self.steps:
            native_shape = step.canonical_shape(native_shape)
        return native_shape

    def native_shape(self, canonical_shape: Shape) -> Shape:
        for step in reversed(self.steps):
            canonical_shape = step.native_shape(canonical_shape)
        return canonical_shape

    def to_canonical(self, native: np.ndarray) -> np.ndarray:
        for step in self.steps:
            native = step.to_canonical(native)
        return native

    def to_native(self, canonical: np.ndarray) -> np.ndarray:
        for step in reversed(self.steps):
            canonical = step.to_native(canonical)
        return canonical
