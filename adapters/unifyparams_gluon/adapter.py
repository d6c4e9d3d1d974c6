"""The MXNet Gluon adapter: ``gluon.Block`` parameters through the unifyparams primitives.

Gluon's layouts already are the canonical ones (dense (out, in), NCHW convolutions, PyTorch's gate
orders), so the adapter renames (``gamma`` -> ``weight``, ``l0_i2h_weight`` -> ``weight_ih_l0``)
and converts arrays. It works on plain and hybridized blocks, in NDArray and NumPy mode.

>>> mx = import_mxnet(); nn = mx.gluon.nn                                # doctest: +SKIP
>>> net = nn.HybridSequential(); net.add(nn.Dense(4, in_units=3)); net.initialize()  # doctest: +SKIP
>>> up.params(net)["0.weight"].shape, up.params(net)["0.weight"].native_name       # doctest: +SKIP
((4, 3), 'dense0_weight')
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar

import numpy as np

from unifyparams import Adapter, Slot
from unifyparams.errors import NotMaterializedError, TieError
from unifyparams.layouts import Shape

from . import structure
from .compat import INSTALL_HINT, import_mxnet


class GluonAdapter(Adapter):
    """Adapter for MXNet Gluon 1.9.1 blocks."""

    name: ClassVar[str] = "gluon"
    framework_module: ClassVar[str] = "mxnet"
    install_hint: ClassVar[str] = INSTALL_HINT
    priority: ClassVar[int] = 0
    builders: ClassVar[str] = "unifyparams_gluon.builders:GluonModels"

    def __init__(self) -> None:
        self.mx = import_mxnet()
        self.Block = self.mx.gluon.Block
        self.Parameter = self.mx.gluon.Parameter
        self.autograd = self.mx.autograd

    # --- discovery and enumeration --------------------------------------------------------------
    def owns(self, obj: Any) -> bool:
        return isinstance(obj, self.Block)

    def walk(self, root: Any) -> Iterator[Slot]:
        return structure.walk(root)

    # --- describing one Parameter ---------------------------------------------------------------
    def native_shape(self, native: Any) -> Shape:
        """Gluon marks dimensions it has not inferred yet as 0 (-1 in NumPy mode): ``None`` here."""
        shape = native.shape
        if shape is None:
            return ()
        if native._data is not None:
            return tuple(int(d) for d in shape)
        return tuple(None if int(d) <= 0 else int(d) for d in shape)

    def dtype(self, native: Any) -> np.dtype:
        return np.dtype(native.dtype)

    def trainable(self, native: Any) -> bool:
        return native.grad_req != "null"

    def has_values(self, native: Any) -> bool:
        return native._data is not None

    # --- values ---------------------------------------------------------------------------------
    def read(self, native: Any) -> np.ndarray:
        if native._data is None:
            raise NotMaterializedError(f"Gluon parameter {native.name!r} is not initialized yet")
        return native.list_data()[0].asnumpy()

    def write(self, native: Any, value: np.ndarray) -> None:
        """In place on every context, outside autograd; a deferred parameter is first given the
        value's shape and initialized (as Gluon's own deferred initialization would)."""
        if native._data is None:
            self._initialize_for(native, tuple(value.shape))
        with self.autograd.pause():
            for data in native.list_data():
                data[:] = self._array_like(data, value)

    def _array_like(self, data: Any, value: np.ndarray) -> Any:
        if isinstance(data, self.mx.np.ndarray):  # NumPy mode (a subclass of NDArray: test it first)
            return self.mx.np.array(value, dtype=value.dtype, ctx=data.ctx)
        return self.mx.nd.array(value, dtype=value.dtype, ctx=data.context)

    def _initialize_for(self, native: Any, shape: tuple[int, ...]) -> None:
        native.shape = shape
        if native._deferred_init:
            native._finish_deferred_init()
        else:
            native.initialize(ctx=self.mx.cpu())

    def grad(self, native: Any) -> np.ndarray | None:
        if native.grad_req == "null" or native._grad is None:
            return None
        return native.list_grad()[0].asnumpy()

    def to_numpy(self, value: Any) -> np.ndarray:
        if isinstance(value, (list, tuple)):
            value = value[0]
        return value.asnumpy() if hasattr(value, "asnumpy") else np.asarray(value)

    # --- running the model ----------------------------------------------------------------------
    def as_inputs(self, inputs: tuple[Any, ...]) -> list[Any]:
        """NumPy inputs as MXNet arrays of the kind the current mode expects."""
        make = self.mx.np.array if self.mx.util.is_np_array() else self.mx.nd.array
        return [make(np.asarray(x), dtype=np.asarray(x).dtype) for x in inputs]

    def backward(self, model: Any, inputs: tuple[Any, ...], loss: Callable[[Any], Any] | None = None) -> None:
        """``autograd.record()`` forward, then ``loss(output).backward()`` (default: sum of outputs)."""
        args = self.as_inputs(inputs)
        with self.autograd.record():
            out = model(*args)
            if isinstance(out, (list, tuple)):
                out = out[0]
            value = out.sum() if loss is None else loss(out)
        value.backward()

    def materialize(self, model: Any, inputs: tuple[Any, ...] | None, input_shape: tuple[int, ...] | None) -> None:
        """One forward pass, not recorded, resolves deferred shapes."""
        if inputs is None:
            if input_shape is None:
                raise NotMaterializedError("materialize needs inputs or input_shape; received neither")
            inputs = (np.zeros(input_shape, dtype=np.float32),)
        try:
            with self.autograd.pause(train_mode=False):
                model(*self.as_inputs(inputs))
        except Exception as exc:
            shapes = [tuple(np.shape(x)) for x in inputs]
            waiting = [s.name for s in self.walk(model) if s.native._data is None]
            where = f"; blocks still waiting: {', '.join(sorted({n.rsplit('.', 1)[0] for n in waiting})[:5])}" if waiting else ""
            raise NotMaterializedError(
                f"running {type(model).__name__} on inputs of shape {shapes} to infer parameter shapes failed"
                f"{where}: {exc}"
            ) from exc

    def on_materialized(self, model: Any, callback: Callable[[], None]) -> bool:
        """Gluon finishes deferred initialization inside the forward pass, right before it reads the
        values: wrap each waiting Parameter's ``_finish_deferred_init`` to call ``callback()`` after."""
        waiting = [s.native for s in self.walk(model) if s.native._data is None]
        for param in {id(p): p for p in waiting}.values():
            param._finish_deferred_init = _calling_after(param, param._finish_deferred_init, callback)
        return bool(waiting)

    # --- structure changes ----------------------------------------------------------------------
    def check_tie(self, target: Slot, source: Slot) -> str | None:
        if source.native._data is None or target.native._data is None:
            return "their shapes are not known yet (deferred initialization); call up.materialize first"
        if source.native.grad_req != target.native.grad_req:
            return f"grad_req differs ({source.native.grad_req!r} vs {target.native.grad_req!r})"
        return None

    def _install(self, block: Any, old: Any, new: Any) -> None:
        attr = structure.attribute_of(block, old)
        block._reg_params[attr] = new
        object.__setattr__(block, attr, new)  # Block.__setattr__ refuses to override a Parameter
        params = block._params._params
        params.pop(old.name, None)
        params[new.name] = new

    def tie(self, root: Any, target: Slot, source: Slot) -> None:
        reason = self.check_tie(target, source)
        if reason:
            raise TieError(f"cannot tie {target.name!r} to {source.name!r}: {reason}. Nothing was changed.")
        self._install(target.block, target.native, source.native)
        structure.clear_cached_graphs(root)

    def untie(self, root: Any, slot: Slot) -> None:
        old, block = slot.native, slot.block
        aliases = [s for s in self.walk(root) if s.native is old and s.name != slot.name]
        if aliases and all(s.block is block for s in aliases):
            raise TieError(
                f"{slot.name!r} is shared because its block is one object reached also as "
                f"{[s.name for s in aliases]}; give that position its own block instead"
            )
        fresh = self.Parameter(
            f"{old.name}_untied{id(block) % 10000}", grad_req=old.grad_req, shape=old.shape, dtype=old.dtype,
            init=old.init, allow_deferred_init=False,
        )
        fresh.initialize(ctx=old.list_ctx())
        with self.autograd.pause():
            fresh.set_data(old.data().copy())
        self._install(block, old, fresh)
        structure.clear_cached_graphs(root)

    # --- facts porting needs ----------------------------------------------------------------------
    def layer_config(self, block: Any) -> Mapping[str, float]:
        """Normalization eps and momentum (Gluon's momentum weighs the old value: PyTorch's is 1 - m)."""
        kwargs = getattr(block, "_kwargs", None)
        if not isinstance(kwargs, dict) or "eps" not in kwargs:
            return {}
        config = {"eps": float(kwargs["eps"])}
        if "momentum" in kwargs:
            config["momentum"] = 1.0 - float(kwargs["momentum"])
        return config

    def channels_last(self, block: Any) -> bool:
        layout = getattr(block, "_kwargs", {}).get("layout", "") if isinstance(getattr(block, "_kwargs", None), dict) else ""
        return bool(layout) and layout.endswith("C")


def _calling_after(param: Any, original: Callable[[], None], callback: Callable[[], None]) -> Callable[[], None]:
    def finish() -> None:
        original()
        param.__dict__.pop("_finish_deferred_init", None)  # back to the class's method
        callback()

    return finish


__all__ = ["GluonAdapter"]
