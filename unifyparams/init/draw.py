"""Drawing one parameter's initial values: canonical values, written in the model's own order.

Values are drawn in NumPy from ``(seed, stream key)`` on the canonical shape, then put in the
parameter's native layout (:meth:`Param.prepare <unifyparams.param.Param.prepare>`). A dense
weight right after a flatten reads its inputs in the model's order: ``(H, W, C)`` in a
channels-last model, ``(C, H, W)`` (canonical) elsewhere. Its values are drawn in canonical order
and permuted into the model's order with the facts checkpoints and ports use
(:func:`unifyparams.porting.flatten.dense_facts`), so the same seed gives the same *function* in
every framework, CNNs included.

>>> orders = input_orders(up.params(keras_lenet), keras_lenet, ["6.weight"])   # doctest: +SKIP
>>> orders["6.weight"].describe()                                             # doctest: +SKIP
'a flattened 5x5x16 map (HWC order)'
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from ..adapter import Role
from ..dataflow import UNKNOWN, DenseInput
from ..errors import InitializerError, UnifyParamsError
from ..layouts import IDENTITY, Transpose
from ..memory_write import Fill
from ..param import Param
from ..paramset import ParamSet
from ..porting.flatten import advice, dense_facts
from ..porting.layers import group_layers
from . import streams
from .base import Initializer, ParamInfo
from .catalog import Ones, Zeros


def role_initializer(p: Param, init: Initializer) -> Initializer | None:
    """The initializer role-aware initialization gives ``p``: ``init`` for weights, zeros for
    biases, shifts and running means, ones for scales and running variances, None otherwise.

    >>> role_initializer(up.params(net)["0.bias"], up.init.XavierUniform())   # doctest: +SKIP
    Zeros()
    """
    role = p.role
    if role in (Role.BIAS, Role.SHIFT, Role.RUNNING_MEAN):
        return Zeros()
    if role in (Role.SCALE, Role.RUNNING_VAR):
        return Ones()
    if role == Role.WEIGHT:
        return init
    return None  # Role.OTHER: left alone without select


def known_shape(p: Param) -> tuple[int, ...]:
    """``p``'s canonical shape as ints (a parameter whose shape is known).

    >>> known_shape(up.params(net)["0.weight"])   # doctest: +SKIP
    (256, 20)
    """
    return tuple(int(d) for d in p.shape if d is not None)


class Scratch:
    """A reusable buffer per dtype for generated values: fresh pages for every parameter cost more
    than generating the values, and peak memory stays one parameter's worth.

    >>> Scratch().get((2, 3), np.dtype(np.float32)).shape
    (2, 3)
    """

    def __init__(self) -> None:
        self._buffers: dict[np.dtype, np.ndarray] = {}

    def get(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        size = int(np.prod(shape))
        buf = self._buffers.get(dtype)
        if buf is None or buf.size < size:
            self._buffers.pop(dtype, None)  # free the old one before allocating the new
            buf = self._buffers[dtype] = np.empty(size, dtype=dtype)
        return buf[:size].reshape(shape)


def builtin_value(
    p: Param, init: Initializer, seed: int, scratch: Scratch, direct: bool, stream: str = "",
    order: DenseInput | None = None,
) -> Callable[[], np.ndarray | None]:
    """A catalog initializer's values for ``p``, computed when the write reaches ``p`` (memory holds
    one generated parameter at a time).

    Into a reused scratch buffer: in *native* layout, or for a transposed layout in canonical
    layout, handed over as its native (transposed) view, which adapters write with their own
    transposing kernel (faster than NumPy's strided writes, and the values are drawn contiguously,
    in parallel). With ``direct`` the values go straight into the parameter's memory when the
    adapter offers it: as a :class:`~unifyparams.memory_write.Fill` for an initializer that streams
    (:meth:`Initializer.streams_into`), which the write makes last into the memory of
    :meth:`Adapter.write_target <unifyparams.adapter.Adapter.write_target>`, else through
    :meth:`Adapter.writable_view <unifyparams.adapter.Adapter.writable_view>` (the callable then
    returns None). A weight read in another ``order`` than canonical is drawn canonical, then
    permuted. Catalog output needs no checks (:meth:`Initializer.check` ran before).

    >>> write_all([(p, builtin_value(p, up.init.Zeros(), 0, Scratch(), False))])   # doctest: +SKIP
    """
    draw = _Draw(p, init, seed, scratch, direct, stream, order)
    layout = p.layout
    in_place = layout is IDENTITY or isinstance(layout, Transpose)  # to_canonical: a view of the same memory
    if direct and in_place and init.streams_into() and (order is None or not order.permutes) and (
            p.dtype in (np.float32, np.float64)):
        return Fill(draw.into, draw.compute, draw.reserve)
    return draw.compute


class _Draw:
    """One parameter's catalog draw, the ways :func:`builtin_value` hands it to a write."""

    def __init__(self, p: Param, init: Initializer, seed: int, scratch: Scratch, direct: bool, stream: str,
                 order: DenseInput | None) -> None:
        self.p, self.init, self.seed, self.scratch, self.direct, self.stream, self.order = (
            p, init, seed, scratch, direct, stream, order)

    def _info(self) -> tuple[tuple[int, ...], ParamInfo]:
        p = self.p
        shape = known_shape(p)
        return shape, ParamInfo(p.name, p.role, shape, p.dtype, p.backend, self.stream)

    def into(self, memory: np.ndarray) -> None:
        """Fill the parameter's native ``memory`` (a :class:`~unifyparams.memory_write.Fill`)."""
        shape, info = self._info()
        # a transposed layout (a Keras kernel) gives a strided canonical view: the streams draw it a
        # cache-sized band at a time and copy each band to its places (streams.reserve's buffers)
        _fill_into(self.p.layout.to_canonical(memory), self.init, shape, info, self.seed)

    def reserve(self) -> None:
        """Allocate the buffers :meth:`into` uses, before anything is written."""
        if self.p.layout is not IDENTITY:
            streams.reserve(self.p.dtype)

    def compute(self) -> np.ndarray | None:
        """The values in native layout, or None once written through ``writable_view``."""
        p, init, seed, scratch = self.p, self.init, self.seed, self.scratch
        shape, info = self._info()
        if self.order is not None and self.order.permutes:
            return p.prepare(self.order.to_model(np.asarray(init.fill(shape, info, seed))), cast=True)
        layout = p.layout
        as_view = layout is IDENTITY or isinstance(layout, Transpose)  # to_canonical: a view of the same memory
        view = p.adapter.writable_view(p.native) if self.direct and as_view else None
        if view is not None:
            _fill_into(layout.to_canonical(view), init, shape, info, seed)
            p.adapter.after_direct_write(p.native)
            return None
        if as_view and p.dtype in (np.float32, np.float64):
            if layout is not IDENTITY:
                # drawn in canonical order (contiguous, so by several threads), handed over as the
                # native view, which the adapter's write transposes with the framework's own kernel
                canonical = scratch.get(shape, p.dtype)
                _fill_into(canonical, init, shape, info, seed)
                return layout.to_native(canonical)
            native = scratch.get(tuple(int(d) for d in p.native_shape if d is not None), p.dtype)
            _fill_into(native, init, shape, info, seed)
            return native
        return p.prepare(init.fill(shape, info, seed), cast=True)


def _fill_into(canonical: np.ndarray, init: Initializer, shape: tuple[int, ...], info: ParamInfo, seed: int) -> None:
    result = init.fill(shape, info, seed, out=canonical)
    if result is not canonical:
        canonical[...] = result


def checked_value(
    p: Param, init: Initializer, seed: int, name: str, allow_nonfinite: bool, stream: str = "",
    order: DenseInput | None = None,
) -> np.ndarray:
    """Generate and validate values for ``p`` (shape, real dtype, finite); return them in native
    layout and the model's order (nothing written). Raises :class:`InitializerError` naming ``p``.

    >>> checked_value(p, lambda shape, rng: rng.normal(size=shape), 0, p.name, False)   # doctest: +SKIP
    """
    shape = known_shape(p)
    info = ParamInfo(name, p.role, shape, p.dtype, p.backend, stream)
    try:
        value = np.asarray(init.fill(shape, info, seed))
    except UnifyParamsError as exc:
        raise InitializerError(f"initializing {p.name!r} with {init!r} failed: {exc}") from exc
    except Exception as exc:
        raise InitializerError(f"initializer {init!r} raised for {p.name!r} (shape {shape}): {exc!r}") from exc
    _check_output(p, init, value, shape, allow_nonfinite)
    if order is not None and order.permutes:
        value = order.to_model(value)
    try:
        return p.prepare(value, cast=value.dtype.kind == "f" and p.dtype.kind not in "biuc")
    except UnifyParamsError as exc:
        raise InitializerError(
            f"initializer output does not fit {p.name!r}: {exc}. {p.name!r} keeps its old value."
        ) from exc


def _check_output(p: Param, init: Initializer, value: np.ndarray, shape: tuple[int, ...], allow_nonfinite: bool) -> None:
    if value.shape != shape:
        raise InitializerError(
            f"initializer {init!r} returned shape {value.shape} for {p.name!r}, whose canonical shape is "
            f"{shape}; return an array of exactly the shape it is given. {p.name!r} keeps its old value."
        )
    if value.dtype.kind not in "biuf" and value.dtype != p.dtype:
        raise InitializerError(
            f"initializer {init!r} returned {value.dtype} values for {p.name!r} ({p.dtype}); return real "
            f"numbers. {p.name!r} keeps its old value."
        )
    if not allow_nonfinite and value.dtype.kind == "f" and not np.isfinite(value).all():
        raise InitializerError(
            f"initializer {init!r} returned non-finite values (nan or inf) for {p.name!r}; fix it, or pass "
            f"allow_nonfinite=True. {p.name!r} keeps its old value."
        )


def input_orders(
    ps: ParamSet, model: Any, names: Iterable[str], example_input: Any = None,
    dense_inputs: Mapping[str, DenseInput] | None = None,
) -> tuple[dict[str, DenseInput], dict[str, str]]:
    """How the dense weights among ``names`` order their inputs, where it is not canonical.

    Returns ``({weight name: fact}, {weight name: problem})``: the facts that permute (the model
    reads a flattened map in another order than canonical), and, for weights whose order could not
    be established, what is missing and how to state it. Only 2-D weights of dense layers of
    ``ps`` (the parameters of ``model``) are considered; ``example_input`` and ``dense_inputs``
    are those of :func:`unifyparams.porting.flatten.dense_facts`.

    >>> input_orders(up.params(torch_lenet), torch_lenet, ["6.weight"])   # doctest: +SKIP
    ({}, {})
    """
    wanted = set(names)
    if not any(ps[n].role == Role.WEIGHT and len(ps[n].shape) == 2 for n in wanted if n in ps):
        return {}, {}
    weight_of = {layer.path: layer.params["weight"].name for layer in group_layers(ps) if "weight" in layer.params}
    facts: dict[str, DenseInput] = {}
    problems: dict[str, str] = {}
    for path, fact in dense_facts(ps, model, example_input, dense_inputs).items():
        name = weight_of[path]
        if name not in wanted:
            continue
        if fact.kind == UNKNOWN:
            problems[name] = f"how dense layer {path!r} orders its inputs is not established: {fact.reason}; {advice(path)}"
        elif fact.permutes:
            facts[name] = fact
    return facts, problems


def order_independent(value: np.ndarray) -> bool:
    """True when permuting a dense weight's inputs cannot change it (every row constant: zeros,
    ones, a constant), so its order does not matter.

    >>> order_independent(np.full((2, 3), 0.5)), order_independent(np.eye(2))
    (True, False)
    """
    return value.ndim != 2 or value.shape[1] == 0 or bool(np.all(value == value[:, :1]))


__all__ = [
    "Scratch", "builtin_value", "checked_value", "input_orders", "known_shape", "order_independent", "role_initializer",
]
