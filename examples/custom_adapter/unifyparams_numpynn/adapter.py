"""The unifyparams adapter for numpynn: the few primitives of :class:`unifyparams.Adapter`.

numpynn is imported when the adapter is instantiated, never when this module is imported, so
``up.available_adapters()`` stays cheap.

numpynn convolutions keep channels last, so a Dense layer after a ``Flatten`` reads an
``(H, W, C)``-ordered map, which checkpoints and ports must reorder to the canonical ``(C, H, W)``.
What each Dense reads is established by :meth:`NumpyNNAdapter.dense_inputs` from one observed
forward pass (see :mod:`unifyparams_numpynn.dataflow`), never from parameter shapes: on the
``example_input`` given, or on zeros of the input shape the model itself knows (a ``Conv`` given
``input_size``, a ``Sequential`` given ``input_shape``, a custom model's ``self.input_shape``). A
model that knows no input shape, still has lazy layers, or computes a Dense input in its own NumPy
code gets "not established", and a checkpoint or port that needs the fact refuses with advice.

>>> import numpynn as nn, unifyparams as up
>>> up.params(nn.Sequential(nn.Dense(3, in_features=5)))["0.weight"].shape   # doctest: +SKIP
(3, 5)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

from unifyparams import Adapter, DenseInput, NotMaterializedError, Role, Slot
from unifyparams.common import BlockTracker
from unifyparams.layouts import IDENTITY, GateOrder, Layout, Transpose

DENSE_T = Transpose((1, 0))  # kernel (in, out) -> weight (out, in)
GRU_GATES = GateOrder((1, 0, 2), axis=0)  # numpynn (z, r, n) -> canonical (r, z, n)

#: ``{layer class name: {attribute: (canonical leaf, role, layout)}}``.
RULES: dict[str, dict[str, tuple[str, str, Layout]]] = {
    "Dense": {"kernel": ("weight", Role.WEIGHT, DENSE_T), "bias": ("bias", Role.BIAS, IDENTITY)},
    "Embedding": {"embeddings": ("weight", Role.WEIGHT, IDENTITY)},
    "LayerNorm": {"gamma": ("weight", Role.SCALE, IDENTITY), "beta": ("bias", Role.SHIFT, IDENTITY)},
    "BatchNorm": {
        "gamma": ("weight", Role.SCALE, IDENTITY),
        "beta": ("bias", Role.SHIFT, IDENTITY),
        "moving_mean": ("running_mean", Role.RUNNING_MEAN, IDENTITY),
        "moving_variance": ("running_var", Role.RUNNING_VAR, IDENTITY),
    },
    "LSTM": {
        "kernel": ("weight_ih_l0", Role.WEIGHT, DENSE_T),
        "recurrent_kernel": ("weight_hh_l0", Role.WEIGHT, DENSE_T),
        "bias": ("bias_l0", Role.BIAS, IDENTITY),
    },
    "GRU": {
        "kernel": ("weight_ih_l0", Role.WEIGHT, DENSE_T.then(GRU_GATES)),
        "recurrent_kernel": ("weight_hh_l0", Role.WEIGHT, DENSE_T.then(GRU_GATES)),
        "input_bias": ("bias_ih_l0", Role.BIAS, GRU_GATES),
        "recurrent_bias": ("bias_hh_l0", Role.BIAS, GRU_GATES),
    },
}


#: ``{layer class name: framework-neutral family}``, looked up along the class hierarchy.
FAMILIES = {
    "Dense": "dense",
    "Embedding": "embedding",
    "LayerNorm": "layernorm",
    "BatchNorm": "batchnorm",
    "LSTM": "lstm",
    "GRU": "gru",
}


def conv_layout(rank: int) -> Layout:
    """Kernel (*k, C, O) -> weight (O, C, *k)."""
    return Transpose((rank + 1, rank) + tuple(range(rank)))


def describe(block: Any, attr: str) -> tuple[str, str, Layout]:
    """Canonical leaf, role and layout of ``block.<attr>``; unknown variables keep their name."""
    for cls in type(block).__mro__:
        rule = RULES.get(cls.__name__, {}).get(attr)
        if rule is not None:
            return rule
        if cls.__name__ == "Conv" and attr in ("kernel", "bias"):
            return ("weight", Role.WEIGHT, conv_layout(block.rank)) if attr == "kernel" else ("bias", Role.BIAS, IDENTITY)
    return attr, Role.OTHER, IDENTITY


class NumpyNNAdapter(Adapter):
    """numpynn models for unifyparams: the seven primitives, then the optional groups numpynn
    supports (write safety, lazy shapes, tying hooks, gradients, porting facts), plus the dataflow
    tracer of :mod:`unifyparams_numpynn.dataflow`. The checks around ``tie``, ``untie`` and
    ``materialize`` come from the core."""

    name = "numpynn"
    block_noun = "numpynn layer"
    framework_module = "numpynn"
    install_hint = "pip install -e examples/custom_adapter"

    def __init__(self) -> None:
        import numpynn

        self.nn = numpynn

    def owns(self, obj: Any) -> bool:
        return isinstance(obj, self.nn.Module)

    def walk(self, root: Any) -> Iterator[Slot]:
        yield from self._walk(root, (), (), type(root).__name__)

    def _walk(self, block: Any, path: tuple[str, ...], kinds: tuple[str, ...], root_kind: str) -> Iterator[Slot]:
        for attr, var in block.variables():
            leaf, role, layout = describe(block, attr)
            native_name = "/".join(path + (attr,))
            yield Slot(".".join(path + (leaf,)), native_name, var, role, layout, path, kinds, block, root_kind)
        for name, child in block.children():
            yield from self._walk(child, path + (name,), kinds + (type(child).__name__,), root_kind)

    # --- one native variable ---------------------------------------------------------------
    def native_shape(self, native: Any) -> tuple[int | None, ...]:
        return native.shape

    def dtype(self, native: Any) -> np.dtype:
        return native.dtype

    def trainable(self, native: Any) -> bool:
        return native.trainable

    def has_values(self, native: Any) -> bool:
        return native.value is not None

    def read(self, native: Any) -> np.ndarray:
        if native.value is None:
            raise NotMaterializedError("this numpynn variable waits for its layer's first input")
        return native.value.view()

    def write(self, native: Any, value: np.ndarray) -> None:
        native.assign(value)

    def check_writable(self, native: Any) -> str | None:
        if native.value is not None and not native.value.flags.writeable:
            return "its array is read-only (flags.writeable is False); give the variable a writable array first"
        return None

    def restore(self, native: Any, value: np.ndarray | None) -> None:
        if value is None:  # it waited for its layer's first input: make it wait again
            native.value = None
        else:
            native.value[...] = value  # straight into the array: no assign() bookkeeping that could fail

    def writable_view(self, native: Any) -> np.ndarray | None:
        return native.value

    def grad(self, native: Any) -> np.ndarray | None:
        return native.grad

    # --- running ---------------------------------------------------------------------------
    def backward(self, model: Any, inputs: tuple[Any, ...], loss: Callable[[Any], Any] | None = None) -> None:
        if loss is not None:
            raise NotImplementedError("numpynn backpropagates only the default loss, the sum of the outputs")
        self.nn.backward(model, *inputs)

    def infer_shapes(self, model: Any, inputs: tuple[np.ndarray, ...]) -> None:
        model(*inputs)  # lazy layers build on their first input

    def track_blocks(self, model: Any) -> BlockTracker:
        return LayerErrors()

    def on_materialized(self, model: Any, callback: Callable[[], None]) -> bool:
        waiting = [m for m in model.modules() if not m.built]
        for module in waiting:
            module.add_build_callback(callback)
        return bool(waiting)

    # --- structure changes -----------------------------------------------------------------
    @staticmethod
    def _attr(slot: Slot) -> str:
        return slot.native_name.rsplit("/", 1)[-1]

    def share(self, root: Any, target: Slot, source: Slot) -> None:
        setattr(target.block, self._attr(target), source.native)

    def separate(self, root: Any, slot: Slot) -> None:
        old = slot.native
        fresh = self.nn.Variable(np.array(old.value, copy=True), trainable=old.trainable, dtype=old.dtype)
        setattr(slot.block, self._attr(slot), fresh)

    # --- facts porting needs ---------------------------------------------------------------
    def channels_last(self, block: Any) -> bool:
        return isinstance(block, self.nn.Conv)

    def layer_family(self, block: Any) -> str:
        for cls in type(block).__mro__:
            if cls.__name__ == "Conv" and hasattr(block, "rank"):
                return f"conv{block.rank}d"
            family = FAMILIES.get(cls.__name__)
            if family:
                return family
        return ""

    def dense_inputs(self, model: Any, inputs: tuple[np.ndarray, ...] | None) -> Mapping[int, DenseInput]:
        """From one forward pass observed layer by layer, on ``inputs`` (channels-last) or on zeros
        of the model's own ``input_shape``; "not established" when it cannot run the model
        without changing it (see the module docstring)."""
        if not isinstance(model, self.nn.Module):
            return {}
        from .dataflow import dense_inputs

        return dense_inputs(model, inputs)

    def layer_config(self, block: Any) -> dict[str, float]:
        return {"eps": float(block.eps)} if isinstance(block, (self.nn.LayerNorm, self.nn.BatchNorm)) else {}


class LayerErrors(BlockTracker):
    """numpynn names the failing layer in its own ``LayerError``: no hooks needed."""

    def failed(self, exc: BaseException | None = None) -> str | None:
        return f"block {exc.path!r}" if exc is not None and hasattr(exc, "path") else None

    def detail(self, exc: BaseException) -> str:
        return str(getattr(exc, "cause", exc))
