"""The MXNet Gluon adapter: ``gluon.Block`` parameters through the unifyparams primitives.

Gluon's layouts already are the canonical ones (dense (out, in), NCHW convolutions, PyTorch's gate
orders), so the adapter mostly renames (``gamma`` -> ``weight``, ``l0_i2h_weight`` ->
``weight_ih_l0``) and moves arrays. It works on plain and hybridized blocks, in NDArray and NumPy
mode (``npx.set_np()``), and with deferred initialization (unknown dimensions read as ``None``).

>>> from unifyparams_gluon import import_mxnet; mx = import_mxnet(); nn = mx.gluon.nn  # doctest: +SKIP
>>> net = nn.HybridSequential(); net.add(nn.Dense(4, in_units=3)); net.initialize()  # doctest: +SKIP
>>> p = up.params(net)["0.weight"]; p.shape, p.native_name                            # doctest: +SKIP
((4, 3), 'dense0_weight')
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from unifyparams import Adapter, Slot
from unifyparams.adapter import family_by_class
from unifyparams.common import calling_after, check_loss, primary_output
from unifyparams.errors import NotMaterializedError, UnifyParamsError
from unifyparams.layouts import Shape

from . import host_memory, native_files, rules, running, sharing, structure
from .compat import INSTALL_HINT, import_mxnet


class GluonAdapter(Adapter):
    """Adapter for MXNet Gluon 1.9.1 blocks (``mxnet.gluon.Block`` and its subclasses)."""

    name: ClassVar[str] = "gluon"
    framework_module: ClassVar[str] = "mxnet"
    install_hint: ClassVar[str] = INSTALL_HINT
    priority: ClassVar[int] = 0
    #: Gluon ``.params`` files, read with MXNet's binary reader (no pickle).
    native_files: ClassVar[Mapping[str, Mapping[str, str]]] = native_files.FORMATS

    def __init__(self) -> None:
        self.mx = import_mxnet()  # applies the numpy.bool shim; AdapterUnavailableError if it cannot load
        self.Block = self.mx.gluon.Block
        self.autograd = self.mx.autograd

    # --- discovery and enumeration --------------------------------------------------------------
    def owns(self, obj: Any) -> bool:
        return isinstance(obj, self.Block)

    def walk(self, root: Any) -> Iterator[Slot]:
        return structure.walk(root)

    # --- describing one Parameter ---------------------------------------------------------------
    def native_shape(self, native: Any) -> Shape:
        """Gluon marks dimensions it has not inferred yet as 0 (shown as -1 in NumPy mode): ``None``
        here. Read from ``_shape``, which does not depend on the global NumPy-shape flag."""
        shape = native._shape
        if shape is None:
            return ()
        if native._data is not None:
            return tuple(int(d) for d in native._data[0].shape)
        return tuple(None if int(d) <= 0 else int(d) for d in shape)

    def dtype(self, native: Any) -> np.dtype:
        return np.dtype(native.dtype)

    def trainable(self, native: Any) -> bool:
        return native.grad_req != "null"

    def has_values(self, native: Any) -> bool:
        """False until Gluon initialized the Parameter (deferred, or ``initialize()`` not called)."""
        return native._data is not None

    # --- values ---------------------------------------------------------------------------------
    def read(self, native: Any) -> np.ndarray:
        """A copy of the first context's values, at memory speed from a CPU array's own memory
        (:mod:`unifyparams_gluon.host_memory`), else ``asnumpy()``; NDArray and mxnet.numpy alike."""
        if native._data is None:
            raise NotMaterializedError(_not_initialized(native))
        array = native._data[0]
        try:  # the Parameter's own shape and dtype: no call into MXNet for small parameters
            nbytes = math.prod(native.shape) * np.dtype(native.dtype).itemsize
        except TypeError:
            nbytes = 0
        memory = host_memory.view(self.mx, array, nbytes)
        return np.array(memory, copy=True) if memory is not None else array.asnumpy()

    def write(self, native: Any, value: np.ndarray) -> None:
        """In place on every context, outside autograd recording; the Parameter object stays.

        As ``Parameter.set_data`` does, a Trainer that keeps its own copy on a kvstore is told to
        refresh it. A Parameter without values yet (deferred shape, or ``initialize()`` never
        called) is initialized with ``value`` itself, on the contexts it was meant for.
        """
        if native._data is None:
            self._initialize_with(native, value)
            return
        trainer = native._trainer
        if trainer is not None and trainer._kv_initialized and trainer._update_on_kvstore:
            if native not in trainer._params_to_init:
                trainer._reset_kvstore()
        self._copy_into(native._data, value)

    def borrow(self, native: Any) -> np.ndarray | None:
        """A CPU array's own memory, read-only (:func:`unifyparams_gluon.host_memory.view`), for a
        Parameter of 1 MiB or more with values on one context; it keeps the array alive."""
        data = native._data
        if data is None or len(data) != 1:
            return None
        try:
            nbytes = math.prod(native.shape) * np.dtype(native.dtype).itemsize
        except TypeError:
            return None
        return host_memory.borrowed(self.mx, data[0], nbytes)

    def write_target(self, native: Any) -> np.ndarray | None:
        """A CPU array's own memory (:func:`unifyparams_gluon.host_memory.targets`, its version
        advanced now through MXNet's engine) for a Parameter with values on one context; several
        contexts, or a Trainer that keeps its own copy on a kvstore, are written through MXNet
        (:meth:`write`)."""
        return self.write_targets([native])[0]

    def write_targets(self, natives: Sequence[Any]) -> list[np.ndarray | None]:
        """:meth:`write_target` of each, with one wait for MXNet's engine for all
        (:func:`unifyparams_gluon.host_memory.targets`)."""
        wanted = [(i, array, nbytes) for i, native in enumerate(natives)
                  for array, nbytes in [self._target_array(native)] if array is not None]
        memories: list[np.ndarray | None] = [None] * len(natives)
        with self.autograd.pause():
            given = host_memory.targets(self.mx, [(array, nbytes) for _, array, nbytes in wanted])
        for (i, _, _), memory in zip(wanted, given, strict=True):
            memories[i] = memory
        return memories

    def _target_array(self, native: Any) -> tuple[Any, int]:
        """The one array a plain copy would write for ``native``, and its bytes; ``(None, 0)`` where
        a write needs MXNet (no values, several contexts, a Trainer's copy on a kvstore)."""
        data = native._data
        if data is None or len(data) != 1:
            return None, 0
        trainer = native._trainer
        if trainer is not None and trainer._kv_initialized and trainer._update_on_kvstore:
            return None, 0
        try:
            nbytes = math.prod(native.shape) * np.dtype(native.dtype).itemsize
        except TypeError:
            return None, 0
        return data[0], nbytes

    def _copy_into(self, arrays: list[Any], value: np.ndarray) -> None:
        """Copy ``value`` into each array, outside autograd: straight into a CPU array's memory
        (:mod:`unifyparams_gluon.host_memory`), else with MXNet's own copy (``copyto``).

        ``array[:] = numpy_array`` reads the destination as a plain buffer, which MXNet refuses once
        an inference forward left a convolution weight in MKLDNN's own layout (``Check failed:
        !IsMKLDNNData()``); copying from an MXNet array of the same kind (NDArray, or mxnet.numpy
        in NumPy mode) reorders as needed. Waiting for each copy makes a refusal surface here, at
        this parameter, rather than at some later, unrelated read.
        """
        mx = self.mx
        with self.autograd.pause():
            for array in arrays:
                if host_memory.write(mx, array, value):  # at memory speed, MXNet told
                    pass
                elif value.ndim == 0:  # 0-d: the plain path (MKLDNN never holds a scalar)
                    array[()] = value
                else:
                    make = mx.np.array if isinstance(array, mx.np.ndarray) else mx.nd.array
                    make(value, dtype=array.dtype, ctx=array.context).copyto(array)
                array.wait_to_read()

    def restore(self, native: Any, value: np.ndarray | None) -> None:
        """Put back a previous value (MXNet's own copy, as :meth:`write`), or, for ``None``, the state
        a Parameter had before :meth:`write` gave it its first values (deferred or never
        initialized), including the hook :meth:`on_materialized` had installed."""
        if value is not None:
            self._copy_into(native._data, value)
            return
        before = native.__dict__.pop(_BEFORE_VALUES, None)
        if before is None and native._data is None:
            return  # it was never given values
        if before is None:
            raise UnifyParamsError(
                f"Gluon parameter {native.name!r} had no values before, but what it looked like was not recorded"
            )
        native.__dict__.pop("_finish_deferred_init", None)
        native.__dict__.update(before)

    def _initialize_with(self, native: Any, value: np.ndarray) -> None:
        mx = self.mx
        # what restore(native, None) needs to put it back as it was (deferred state, shape, hook)
        kept = ("_shape", "_deferred_init", "_data", "_grad", "_ctx_list", "_ctx_map", "_finish_deferred_init")
        native.__dict__[_BEFORE_VALUES] = {k: native.__dict__[k] for k in kept if k in native.__dict__}
        native.shape = tuple(int(d) for d in value.shape)
        make = mx.np.array if mx.util.is_np_array() else mx.nd.array
        data = make(value, dtype=value.dtype, ctx=mx.cpu())
        if native._deferred_init:
            init, ctx, default_init, _ = native._deferred_init
            native._deferred_init = (init, ctx, default_init, data)
            native._finish_deferred_init()  # Gluon's own path, which runs the on_materialized hook:
            self._copy_into(native._data, value)  # a waiting initializer it applied must not win over value
        else:
            native._load_init(data, [mx.context.current_context()])  # where initialize() would put it

    def grad(self, native: Any) -> np.ndarray | None:
        """The gradient buffer; with several contexts, their sum (what a Trainer applies)."""
        if native.grad_req == "null" or native._grad is None:
            return None
        grads = [g.asnumpy() for g in native._grad]
        return grads[0] if len(grads) == 1 else np.sum(grads, axis=0)

    # --- running the model ----------------------------------------------------------------------
    def backward(self, model: Any, inputs: tuple[Any, ...], loss: Callable[[Any], Any] | None = None) -> None:
        """``autograd.record()`` forward (training mode, Gluon's default), then
        ``loss(output).backward()``; the default loss is the sum of the output. Gradient buffers
        are zeroed first, so they hold this pass only (also with ``grad_req='add'``). Runs in the
        array mode the model was built in (NumPy mode or not), whatever the global mode is."""
        with running.model_mode(model):
            args = running.as_inputs(model, inputs)
            self._zero_grads(model)
            with self.autograd.record():
                out = primary_output(model(*args))
                value = out.sum() if loss is None else loss(out)
                check_loss(value, self.mx.nd.NDArray, "MXNet")
            value.backward()

    def _zero_grads(self, model: Any) -> None:
        with self.autograd.pause():
            for param in running.parameters(model):
                if param.grad_req != "null" and param._grad is not None:
                    for g in param._grad:
                        g[:] = 0

    def infer_shapes(self, model: Any, inputs: tuple[np.ndarray, ...]) -> None:
        """One forward pass, not recorded and in inference mode, resolves deferred shapes.

        Parameters never initialized get Gluon's ``initialize()`` first (Gluon runs nothing before
        it); initialized ones keep their values.
        """
        for param in running.parameters(model):
            if param._data is None and not param._deferred_init:
                param.initialize()
        with running.model_mode(model), self.autograd.pause(train_mode=False):
            model(*running.as_inputs(model, inputs))

    def track_blocks(self, model: Any) -> Any:
        return running.BlockTracker(model)

    def on_materialized(self, model: Any, callback: Callable[[], None]) -> bool:
        """Gluon finishes deferred initialization inside the forward pass, right before it reads the
        values: wrap each waiting Parameter's ``_finish_deferred_init`` to call ``callback()`` after."""
        waiting = [p for p in running.parameters(model) if p._data is None]
        for param in waiting:
            # back to the class's method once it ran
            restore = functools.partial(param.__dict__.pop, "_finish_deferred_init", None)
            param._finish_deferred_init = calling_after(param._finish_deferred_init, callback, restore)
        return bool(waiting)

    # --- structure changes ----------------------------------------------------------------------
    def check_tie(self, target: Slot, source: Slot) -> str | None:
        if source.native._data is None or target.native._data is None:
            return "their shapes are not known yet (deferred initialization); call up.materialize first"
        return None

    def share(self, root: Any, target: Slot, source: Slot) -> None:
        """``target``'s block uses ``source``'s Parameter (which keeps its own grad_req)."""
        sharing.share(root, target.block, target.native, source.native)

    def separate(self, root: Any, slot: Slot) -> None:
        """``slot``'s block gets a new Parameter holding the current values (same grad_req)."""
        sharing.unshare(root, slot.block, slot.native)

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

    def layer_family(self, block: Any) -> str:
        return family_by_class(block, self._family_table)

    @property
    def _family_table(self) -> dict[type, str]:
        """Gluon classes (and so their subclasses) by framework-neutral layer family."""
        table: dict[type, str] | None = getattr(self, "_families", None)
        if table is None:
            nn, rnn = self.mx.gluon.nn, self.mx.gluon.rnn
            names = {
                "Dense": "dense", "Embedding": "embedding", "Conv1D": "conv1d", "Conv2D": "conv2d",
                "Conv3D": "conv3d", "Conv1DTranspose": "conv_transpose1d", "Conv2DTranspose": "conv_transpose2d",
                "Conv3DTranspose": "conv_transpose3d", "BatchNorm": "batchnorm", "SyncBatchNorm": "batchnorm",
                "LayerNorm": "layernorm", "GroupNorm": "groupnorm",
            }
            table = {getattr(nn, n): f for n, f in names.items() if hasattr(nn, n)}
            table.update({rnn.LSTM: "lstm", rnn.GRU: "gru", rnn.RNN: "rnn"})
            self._families = table
        return table

    def channels_last(self, block: Any) -> bool:
        return rules.channels_last(block)


#: Attribute on a Parameter holding its state from before :meth:`GluonAdapter.write` gave it values.
_BEFORE_VALUES = "_unifyparams_before_values"


def _not_initialized(native: Any) -> str:
    if native._deferred_init:
        return f"Gluon parameter {native.name!r} waits for its shape (deferred initialization)"
    return f"Gluon parameter {native.name!r} is not initialized: call initialize() on its block"


__all__ = ["GluonAdapter"]
