"""Where the values of a Keras variable live when ``keras.distribution`` lays it out over devices.

On the JAX backend, a model built inside a ``keras.distribution.DataParallel`` or
``ModelParallel`` scope holds each variable as one ``jax.Array`` spread over a device mesh (a
``jax.sharding.NamedSharding``: the mesh and, per dimension, the mesh axis it is split over).
unifyparams already reads such a variable whole (``p.numpy()``), and writes, seeded
initialization and refused loads keep its sharding. This module answers the two questions a
distributed user asks next, without gathering anything:

* :func:`placement` -- how is this parameter laid out? The mesh's shape and axis names, the
  axis spec of each dimension (Keras' ``TensorLayout.axes``: ``(None, "model")`` for a Dense
  kernel split on its output axis), the same spec in the canonical order, and the device count.
* :func:`shards` -- what does each device hold? One :class:`Shard` per addressable shard, read
  from that device's own buffer, with its offsets and value in unifyparams' **canonical**
  layout (a Dense kernel is ``(in, out)`` natively and ``(out, in)`` canonically), or the native
  one with ``native=True``. Replicas (DataParallel) appear once per device, each at offset zero.

:func:`assemble` puts shards back together (checking that they cover every element and that
replicas agree); :func:`tiles` says whether they do.

An example (four devices: ``XLA_FLAGS=--xla_force_host_platform_device_count=4`` on a CPU)::

    import jax, keras, unifyparams as up
    from keras import distribution
    from unifyparams_keras import distribution as layout

    mesh = distribution.DeviceMesh((2, 2), ["batch", "model"], jax.devices()[:4])
    rules = distribution.LayoutMap(mesh)
    rules[".*dense.*kernel"] = (None, "model")
    with distribution.ModelParallel(layout_map=rules, batch_dim_name="batch").scope():
        net = keras.Sequential([keras.Input((20,)), keras.layers.Dense(16)])
    p = up.params(net)["0.weight"]             # canonical (16, 20); Keras keeps (20, 16)
    layout.placement(p).spec                   # (None, 'model'): Keras' own order
    layout.placement(p).canonical_spec         # ('model', None)
    [(s.device, s.offsets, s.value.shape) for s in layout.shards(p)]
    # [('cpu:0', (0, 0), (8, 20)), ('cpu:1', (8, 0), (8, 20)), ('cpu:2', (0, 0), (8, 20)), ('cpu:3', (8, 0), (8, 20))]
    assert (layout.assemble(layout.shards(p), p.shape) == p.numpy()).all()

Only the JAX backend spreads Keras variables over devices; on the others, and for a variable
on one device, :func:`placement` is ``None``. Importing this module imports no framework: it only
reads the ``sharding`` and ``addressable_shards`` of the JAX arrays Keras already holds.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from unifyparams.errors import UnifyParamsError
from unifyparams.layouts import Chain, Layout, Transpose
from unifyparams.param import Param

#: One dimension's entry of an axis spec: not split (None), split over one mesh axis, or over several.
AxisSpec = str | tuple[str, ...] | None

__all__ = ["Placement", "Shard", "assemble", "placement", "shards", "tiles"]


@dataclass(frozen=True)
class Placement:
    """How one variable is laid out over a device mesh."""

    #: Size of each mesh axis, e.g. ``(2, 2)``.
    mesh_shape: tuple[int, ...]
    #: Name of each mesh axis, e.g. ``("batch", "model")``.
    axis_names: tuple[str, ...]
    #: Per *native* dimension, the mesh axis (or axes) it is split over; ``None``: not split.
    spec: tuple[AxisSpec, ...]
    #: ``spec`` in the canonical order (``None`` when the layout is unknown or not a permutation).
    canonical_spec: tuple[AxisSpec, ...] | None
    #: Number of devices holding a part (or a copy) of the variable.
    devices: int

    @property
    def replicated(self) -> bool:
        """Every device holds the whole variable (no dimension is split)."""
        return all(axes is None for axes in self.spec)

    def __str__(self) -> str:
        mesh = ", ".join(f"{name}={size}" for name, size in zip(self.axis_names, self.mesh_shape))
        how = "replicated" if self.replicated else f"spec {self.spec}"
        return f"{how} over mesh ({mesh}), {self.devices} devices"


@dataclass(frozen=True, eq=False)
class Shard:
    """One device's part of a variable: where it starts in the global value, and its values
    (compared by identity: ``value`` is an array)."""

    #: The device holding it, as ``"<platform>:<id>"`` (``"cpu:0"``, ``"gpu:3"``).
    device: str
    #: Offset of the shard's first element in the global value, one per dimension.
    offsets: tuple[int, ...]
    #: The shard's values (a NumPy copy of that device's buffer).
    value: np.ndarray
    #: JAX's replica id: 0 for the first copy of a part, 1, 2, ... for further copies of it.
    replica: int = 0

    @property
    def index(self) -> tuple[slice, ...]:
        """The shard's region of the global value, as slices."""
        return tuple(slice(o, o + n) for o, n in zip(self.offsets, self.value.shape))


# --- finding the variable, its array and its layout ---------------------------------------------
def _variable_and_layout(p: Any) -> tuple[Any, Layout | None]:
    if isinstance(p, Param):
        return p.native, p.slot.layout
    return p, None


def _array(variable: Any) -> Any:
    """The variable's ``jax.Array``, or None (another backend, or no values yet)."""
    if getattr(variable, "_value", True) is None:  # deferred: created in a stateless scope
        return None
    try:
        value = variable.value
    except Exception:  # noqa: BLE001 - an unbuilt stand-in or a backend without values here
        return None
    return value if hasattr(value, "sharding") and hasattr(value, "addressable_shards") else None


def _permutation(layout: Layout | None) -> tuple[int, ...] | None:
    """The canonical-from-native axis permutation of ``layout`` (canonical = native.transpose(perm)),
    or None when it is not a pure permutation (or unknown)."""
    if layout is None:
        return None
    steps = layout.steps if isinstance(layout, Chain) else (layout,)
    perm: tuple[int, ...] | None = None
    for step in steps:
        if step.is_identity:
            continue
        if not isinstance(step, Transpose):
            return None
        # x.transpose(a).transpose(b) == x.transpose([a[i] for i in b])
        perm = step.perm if perm is None else tuple(perm[i] for i in step.perm)
    return perm if perm is not None else ()


def _normalized_spec(spec: Sequence[Any], ndim: int) -> tuple[AxisSpec, ...]:
    entries: list[AxisSpec] = []
    for entry in tuple(spec)[:ndim]:
        if entry is None or isinstance(entry, str):
            entries.append(entry)
        elif isinstance(entry, (tuple, list)):
            names = tuple(str(e) for e in entry)
            entries.append(None if not names else names[0] if len(names) == 1 else names)
        else:  # PartitionSpec.UNCONSTRAINED and the like: not split over a named axis
            entries.append(None)
    return tuple(entries) + (None,) * (ndim - len(entries))


def _device_name(device: Any) -> str:
    return f"{device.platform}:{device.id}"


# --- public API ---------------------------------------------------------------------------------
def placement(p: Any) -> Placement | None:
    """The :class:`Placement` of a Param (``up.params(model)[name]``) or a Keras variable; ``None``
    for a variable that is not laid out over several devices (one device, another backend, or
    no ``keras.distribution`` layout).

    A variable that has no values yet (created in a stateless scope) is described by the
    ``TensorLayout`` Keras gave it, if any. ``canonical_spec`` needs a Param (a bare variable
    does not know its canonical layout) whose layout is the identity or a permutation.
    """
    variable, layout = _variable_and_layout(p)
    array = _array(variable)
    sharding: Any = getattr(array, "sharding", None)
    if sharding is None:
        keras_layout = getattr(variable, "_layout", None)
        sharding = getattr(keras_layout, "backend_layout", keras_layout)
    mesh, spec = getattr(sharding, "mesh", None), getattr(sharding, "spec", None)
    if mesh is None or spec is None:  # one device (SingleDeviceSharding), or no layout at all
        return None
    devices = len(sharding.device_set)
    if devices < 2:
        return None
    shape = tuple(getattr(variable, "_shape", None) or variable.shape)
    native_spec = _normalized_spec(spec, len(shape))
    perm = _permutation(layout)
    canonical: tuple[AxisSpec, ...] | None = None
    if perm == ():
        canonical = native_spec
    elif perm is not None:
        canonical = tuple(native_spec[a] for a in perm)
    names = tuple(str(n) for n in mesh.axis_names)
    sizes = tuple(int(n) for n in mesh.devices.shape)
    return Placement(sizes, names, native_spec, canonical, devices)


def shards(p: Any, *, native: bool = False) -> list[Shard]:
    """Every addressable shard of a variable, each read from its own device (nothing is
    gathered), ordered as JAX lists them (by device).

    Offsets and values are in the canonical layout of ``p`` (a Param), or in the variable's own
    layout with ``native=True`` (required for a bare Keras variable, which does not know its
    canonical layout). A variable on one device gives one shard at offset zero. Raises
    :class:`~unifyparams.errors.UnifyParamsError` for a variable without a JAX array (another
    backend, or no values yet), and for a canonical request whose layout is neither the identity
    nor a permutation of axes (gate reorders, reshapes), where a shard is not one block of the
    canonical value.
    """
    variable, layout = _variable_and_layout(p)
    name = getattr(p, "name", None) or getattr(variable, "path", None) or repr(variable)
    array = _array(variable)
    if array is None:
        raise UnifyParamsError(
            f"variable {name!r} has no JAX array: shards exist only on Keras' JAX backend, for a variable "
            "with values (build the model, outside a stateless scope)"
        )
    perm: tuple[int, ...] | None = ()
    if not native:
        if layout is None:
            raise UnifyParamsError(
                f"{name!r} is a bare Keras variable, whose canonical layout is unknown: pass its Param "
                "(up.params(model)[name]) for canonical shards, or native=True for the variable's own layout"
            )
        perm = _permutation(layout)
        if perm is None:
            raise UnifyParamsError(
                f"the canonical layout of {name!r} ({layout.tag}) is neither the identity nor a permutation of "
                "axes, so a device's shard is not one block of the canonical value; use shards(p, native=True) "
                "for native offsets and values (p.layout converts the whole value)"
            )
    result = []
    for shard in array.addressable_shards:
        value = np.array(shard.data, copy=True)  # this device's buffer only
        offsets = tuple(0 if s.start is None else int(s.start) for s in shard.index)
        if perm:
            value = np.ascontiguousarray(value.transpose(perm))
            offsets = tuple(offsets[a] for a in perm)
        result.append(Shard(_device_name(shard.device), offsets, value, int(getattr(shard, "replica_id", 0))))
    return result


def assemble(parts: Iterable[Shard], shape: Sequence[int], dtype: Any = None) -> np.ndarray:
    """The global value put together from ``parts`` (all in one layout, of global ``shape``).

    Every element must be covered by at least one shard, and shards that overlap (replicas) must
    hold identical values (bit for bit; NaNs equal to NaNs); otherwise
    :class:`~unifyparams.errors.UnifyParamsError` says which element or shard is at fault.
    """
    parts = list(parts)
    shape = tuple(int(d) for d in shape)
    if dtype is None:
        dtype = parts[0].value.dtype if parts else np.float32
    result = np.zeros(shape, dtype)
    covered = np.zeros(shape, bool)
    for part in parts:
        if len(part.offsets) != len(shape) or part.value.ndim != len(shape):
            raise UnifyParamsError(
                f"shard on {part.device} has {part.value.ndim} dimensions (offsets {part.offsets}); "
                f"expected {len(shape)} for shape {shape}"
            )
        stops = tuple(o + n for o, n in zip(part.offsets, part.value.shape))
        if any(o < 0 or s > d for o, s, d in zip(part.offsets, stops, shape)):
            raise UnifyParamsError(
                f"shard on {part.device} at {part.offsets} of shape {part.value.shape} lies outside {shape}"
            )
        region = part.index
        seen = covered[region]
        if seen.any():
            old, new = result[region][seen], part.value[seen]
            if not np.array_equal(old, new, equal_nan=old.dtype.kind in "fc"):
                raise UnifyParamsError(
                    f"shard on {part.device} at {part.offsets} disagrees with another shard covering the same "
                    "elements (replicas must be equal)"
                )
        result[region] = part.value
        covered[region] = True
    if not covered.all():
        missing = tuple(int(i) for i in np.argwhere(~covered)[0])
        raise UnifyParamsError(
            f"the shards leave {int((~covered).sum())} of {covered.size} elements uncovered (first: {missing})"
        )
    return result


def tiles(parts: Iterable[Shard], shape: Sequence[int]) -> bool:
    """True when ``parts`` cover every element of ``shape`` and overlapping shards agree."""
    try:
        assemble(parts, shape)
    except UnifyParamsError:
        return False
    return True
