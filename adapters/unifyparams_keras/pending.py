"""Stand-ins for the variables an unbuilt Keras layer will create, so lazy models have names.

A Keras layer creates its variables in ``build()``, once it sees its input shape: before that a
``Dense(256)`` has no variables at all. From the layer's configuration we know what ``build`` will
create (a ``(None, 256)`` kernel, a ``(256,)`` bias), so the walk reports those, with unknown input
dimensions as ``None``. Writing one builds the layer from the value's shape, then assigns it.

>>> import keras
>>> [(v.name, v.shape) for v in pending_variables(keras.layers.Dense(4))]   # doctest: +SKIP
[('kernel', (None, 4)), ('bias', (4,))]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from unifyparams.errors import NotMaterializedError

Shape = tuple[int | None, ...]


class PendingVariable:
    """A variable ``layer.build()`` will create under ``name`` with ``shape`` (``None`` = unknown)."""

    _value = None  # no values yet (read by KerasAdapter.has_values)

    def __init__(self, layer: Any, name: str, shape: Shape, trainable: bool, build_shape: Callable[[Shape], tuple]):
        self.layer = layer
        self.name = name
        self.shape = shape
        self.trainable = trainable
        self.dtype = getattr(layer, "variable_dtype", None) or "float32"
        self.path = f"{layer.name}/{name}"
        self._build_shape = build_shape

    def build_layer(self, value_shape: Shape) -> Any:
        """Build the layer for a value of ``value_shape`` (native layout); the real variable."""
        if not self.layer.built:
            self.layer.build(self._build_shape(value_shape))
        for v in list(self.layer._trainable_variables) + list(self.layer._non_trainable_variables):
            if v.name == self.name:
                return v
        for sub in getattr(self.layer, "_layers", []):  # recurrent cells
            for v in list(sub._trainable_variables) + list(sub._non_trainable_variables):
                if v.name == self.name:
                    return v
        raise NotMaterializedError(f"building {self.layer.name!r} created no variable named {self.name!r}")

    def __repr__(self) -> str:
        return f"<PendingVariable {self.path} shape={self.shape}>"


def _spatial_none(rank: int) -> tuple[None, ...]:
    return (None,) * rank


def pending_variables(layer: Any) -> list[PendingVariable]:
    """What ``build`` will create for the layer kinds whose variables follow from their config;
    empty for a built layer or an unknown kind (then nothing is listed until it is built)."""
    if layer.built:
        return []
    names = {c.__name__ for c in type(layer).__mro__}
    out: list[PendingVariable] = []

    def add(name: str, shape: Shape, build: Callable[[Shape], tuple], trainable: bool = True) -> None:
        out.append(PendingVariable(layer, name, shape, trainable, build))

    if "Dense" in names:
        units = int(layer.units)

        def dense_input(kernel: Shape) -> tuple:
            return (None, kernel[0])

        add("kernel", (None, units), dense_input)
        if layer.use_bias:
            add("bias", (units,), _needs_kernel(layer))
    elif "BaseConv" in names and "BaseConvTranspose" not in names and "BaseDepthwiseConv" not in names:
        rank = len(layer.kernel_size)
        filters = int(layer.filters)
        groups = int(getattr(layer, "groups", 1) or 1)
        channels_last = layer.data_format == "channels_last"

        def conv_input(kernel: Shape) -> tuple:
            channels = None if kernel[-2] is None else int(kernel[-2]) * groups
            spatial = _spatial_none(rank)
            return (None, *spatial, channels) if channels_last else (None, channels, *spatial)

        add("kernel", (*layer.kernel_size, None, filters), conv_input)
        if layer.use_bias:
            add("bias", (filters,), _needs_kernel(layer))
    elif "BatchNormalization" in names or "LayerNormalization" in names:
        if "BatchNormalization" in names and getattr(layer, "axis", -1) not in (-1, [-1]):
            return []  # channels on another axis: wait for build

        def norm_input(shape: Shape) -> tuple:
            return (None, shape[0])

        if layer.scale:
            add("gamma", (None,), norm_input)
        if layer.center:
            add("beta", (None,), norm_input)
        if "BatchNormalization" in names:
            add("moving_mean", (None,), norm_input, trainable=False)
            add("moving_variance", (None,), norm_input, trainable=False)
    return out


def _needs_kernel(layer: Any) -> Callable[[Shape], tuple]:
    """A bias alone cannot tell the layer's input size. Loading a lazy block whole writes the
    kernel first (walk order), which builds the layer; this only runs if the kernel is absent."""

    def build_shape(_shape: Shape) -> tuple:
        raise NotMaterializedError(
            f"{layer.name!r}: its bias cannot tell the input size; load its kernel too, or call "
            f"up.materialize(model, example_input)"
        )

    return build_shape
