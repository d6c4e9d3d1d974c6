"""One parameter of any framework, seen in the canonical name space and layout.

>>> p = up.params(net)["0.weight"]            # the NumPy model stores this kernel (in, out)
>>> p.shape, p.dtype, p.native_shape          # canonical (out, in), as in PyTorch
((4, 3), dtype('float32'), (3, 4))
>>> p.update(lambda w: w + 1); p[0, 0] = 42
>>> float(p.numpy()[0, 0]), float(net.layers[0].kernel.value[0, 0])
(42.0, 42.0)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from .distributed import Region, region_of
from .errors import NotMaterializedError
from .layouts import IDENTITY, Layout, Shape
from .transaction import write_all
from .values import assign, conform

if TYPE_CHECKING:
    from .adapter import Adapter, Slot


def format_shape(shape: Shape) -> str:
    """``(256, None)`` -> ``"(256, ?)"``."""
    inner = ", ".join("?" if d is None else str(d) for d in shape)
    return f"({inner},)" if len(shape) == 1 else f"({inner})"


class Param:
    """A live handle on one framework parameter; reads and writes go to the model."""

    __slots__ = ("_slot", "_adapter", "shared_with", "model", "__weakref__")

    def __init__(self, slot: Slot, adapter: Adapter, shared_with: tuple[str, ...] = (), model: Any = None):
        self._slot = slot
        self._adapter = adapter
        #: Other canonical names (in the same ParamSet) that share this parameter's storage.
        self.shared_with = shared_with
        #: The model this parameter was read from (None when unknown): its name is relative to it,
        #: and initializing this parameter alone keys its random stream among that model's names.
        self.model = model

    # --- identity -------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """Canonical name, e.g. ``"encoder.layers.0.weight"``."""
        return self._slot.name

    @property
    def native_name(self) -> str:
        """The framework's own name (``"dense_3/kernel"``, ``"dense0_weight"``, ``"0.weight"``)."""
        return self._slot.native_name

    @property
    def backend(self) -> str:
        return self._adapter.name

    @property
    def native(self) -> Any:
        """The framework's own parameter object."""
        return self._slot.native

    @property
    def role(self) -> str:
        """One of :class:`~unifyparams.adapter.Role`'s values; decides default initialization."""
        return self._slot.role

    @property
    def layout(self) -> Layout:
        return self._slot.layout

    @property
    def slot(self) -> Slot:
        return self._slot

    @property
    def adapter(self) -> Adapter:
        return self._adapter

    @property
    def storage_key(self) -> Any:
        return self._adapter.storage_key(self._slot.native)

    # --- description ----------------------------------------------------------------------
    @property
    def native_shape(self) -> Shape:
        return tuple(self._adapter.native_shape(self._slot.native))

    @property
    def shape(self) -> Shape:
        """Canonical shape; ``None`` for a dimension not yet known."""
        native = self._adapter.native_shape(self._slot.native)
        layout = self._slot.layout
        return tuple(native) if layout is IDENTITY else tuple(layout.canonical_shape(native))

    @property
    def ndim(self) -> int:
        return len(self.native_shape)

    @property
    def size(self) -> int | None:
        """Number of scalars, or ``None`` while the shape is not known."""
        shape = self.native_shape
        if any(d is None for d in shape):
            return None
        return math.prod(shape)  # type: ignore[arg-type]

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self._adapter.dtype(self._slot.native))

    @property
    def trainable(self) -> bool:
        return bool(self._adapter.trainable(self._slot.native))

    @property
    def materialized(self) -> bool:
        """True once every dimension of the shape is known and the values exist."""
        return all(d is not None for d in self.native_shape) and self._adapter.has_values(self._slot.native)

    # --- values ---------------------------------------------------------------------------
    def _require_materialized(self) -> None:
        if not self.materialized:
            raise NotMaterializedError(
                f"parameter {self.name!r} has shape {format_shape(self.shape)}: its values do not "
                f"exist until the input size is known. Run the model once on real data, or call "
                f"up.materialize(model, example_input) (or input_shape=...) first."
            )

    def numpy(self, *, copy: bool = False) -> np.ndarray:
        """Values in canonical layout.

        With ``copy=False`` the array is read-only and may share memory with the model (so it
        follows later updates); pass ``copy=True`` for an independent snapshot.
        """
        try:
            value = self._adapter.read(self._slot.native)
        except NotMaterializedError as exc:
            if self.size is None:
                self._require_materialized()
            raise NotMaterializedError(f"parameter {self.name!r} has no values yet: {exc}") from exc
        except Exception:
            self._require_materialized()  # a clearer error when that is the cause
            raise
        value = self._slot.layout.to_canonical(value)
        if copy:
            return np.array(value, copy=True)
        value.flags.writeable = False  # read() returns a new array object: this hides no one's data
        return value

    def grad(self) -> np.ndarray | None:
        """The most recent gradient in canonical layout, or ``None`` if there is none."""
        if not self.materialized:
            return None
        g = self._adapter.grad(self._slot.native)
        if g is None:
            return None
        return np.array(self._slot.layout.to_canonical(g), copy=True)

    # --- sharded over processes ------------------------------------------------------------
    @property
    def region(self) -> Region | None:
        """This process's block of a parameter sharded over processes (FSDP2, DTensor), in the
        canonical layout: offsets, shape and the global shape; None for an ordinary parameter."""
        region = region_of(self)
        return None if region is None else region.to_canonical(self._slot.layout)

    @property
    def placement(self) -> str | None:
        """How the framework lays this parameter out over processes or devices, in words
        (a DTensor's placements and mesh, a Keras variable's layout over a JAX mesh); None when
        it is not laid out over several."""
        return self._adapter.describe_placement(self._slot.native)

    def local(self) -> tuple[np.ndarray, tuple[int, ...]]:
        """``(this process's block as a new array, its offsets in the global tensor)``, canonical
        layout, no collective. An ordinary parameter gives its whole value at offset zero; the
        global value of a sharded one is :meth:`numpy` (a collective: every rank calls it)."""
        region = region_of(self)
        if region is None:
            return self.numpy(copy=True), (0,) * self.ndim
        value = self._slot.layout.to_canonical(self._adapter.read_region(self._slot.native))
        return np.array(value, copy=True), region.to_canonical(self._slot.layout).offsets

    def prepare(self, value: Any, *, cast: bool = False) -> np.ndarray:
        """Validate ``value`` for this parameter and return it in *native* layout and dtype.

        The rules (no broadcasting, integer narrowing only when every value fits or ``cast=True``,
        any strides) are :func:`unifyparams.values.conform`'s. Raises :class:`DtypeMismatchError`
        or :class:`ShapeMismatchError`; changes nothing.
        """
        array = conform(value, name=self.name, shape=self.shape, dtype=self.dtype, cast=cast)
        return self._slot.layout.to_native(array)

    def write_native(self, native_value: np.ndarray) -> None:
        """Write a value already prepared with :meth:`prepare` (native layout and dtype).

        The value may be a strided view (a transposed canonical array): adapters make it
        contiguous with their framework's own ops, several times faster than NumPy's.
        """
        self._adapter.write(self._slot.native, native_value)

    def set(self, value: Any, *, cast: bool = False) -> None:
        """Overwrite all values (canonical layout); the native object and its flags are kept.

        The write is atomic: if the framework refuses it, the parameter keeps its previous value
        and a :class:`~unifyparams.errors.WriteError` says why (one copy of the parameter is held
        while it is written).

        A parameter still waiting for its shape cannot be written alone (its block infers all its
        shapes together): load a whole state with ``ParamSet.load`` or materialize first.
        """
        if not self.materialized:
            raise NotMaterializedError(
                f"parameter {self.name!r} has no values yet (shape {format_shape(self.shape)}): write its "
                f"whole block at once with up.params(model).load(state), or call "
                f"up.materialize(model, example_input) first."
            )
        write_all([(self, self.prepare(value, cast=cast))], what="set")

    def update(self, fn: Callable[[np.ndarray], Any]) -> None:
        """Replace the values by ``fn(current_values)``, e.g. ``p.update(lambda w: w + 1)``."""
        self.set(fn(self.numpy(copy=True)))

    def __getitem__(self, index: Any) -> Any:
        return self.numpy()[index]

    def __setitem__(self, index: Any, value: Any) -> None:
        current = self.numpy(copy=True)
        assign(current, index, value, self.name)  # the dtype rules of a whole write; a bad index is named
        self.set(current)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        value = self.numpy(copy=True)
        return value if dtype is None else value.astype(dtype)

    def __repr__(self) -> str:
        flags = [] if self.trainable else ["trainable=False"]
        if self.shared_with:
            flags.append(f"shared_with={list(self.shared_with)}")
        extra = (", " + ", ".join(flags)) if flags else ""
        return (
            f"Param({self.name!r}, shape={format_shape(self.shape)}, dtype={self.dtype}, "
            f"backend={self.backend!r}{extra})"
        )
