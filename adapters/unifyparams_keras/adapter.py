"""The Keras 3 adapter, on the TensorFlow, torch and JAX backends alike.

Keras picks its backend when it is first imported (``KERAS_BACKEND``); the adapter asks Keras
which one is active and uses TensorFlow's ``GradientTape``, torch autograd or ``jax.grad`` over
``stateless_call`` for gradients (see :mod:`.running`).
Everything else goes through backend-neutral Keras APIs (``variable.assign``,
``keras.ops.convert_to_numpy``).

>>> import keras, unifyparams as up                      # doctest: +SKIP
>>> net = keras.Sequential([keras.Input((20,)), keras.layers.Dense(256),
...                         keras.layers.Activation("relu"), keras.layers.Dense(10)])
>>> list(up.params(net))                                 # doctest: +SKIP
['0.weight', '0.bias', '2.weight', '2.bias']
>>> up.params(net)["0.weight"].shape                     # canonical (out, in); Keras keeps (20, 256)  # doctest: +SKIP
(256, 20)

Names, leaf rules and layouts are in :mod:`.structure` and :mod:`.rules`; ties in :mod:`.sharing`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from unifyparams import Adapter, Slot, common, copying
from unifyparams.adapter import contiguous_source
from unifyparams.capabilities import Staged
from unifyparams.common import calling_after
from unifyparams.errors import NotMaterializedError, TieError, UnifyParamsError
from unifyparams.layouts import Shape

from . import native_files, sharing, structure, transient
from .pending import PendingVariable

#: Kept for compatibility: the NumPy dtype of a Keras dtype name (one table for every adapter).
numpy_dtype = common.numpy_dtype


def _stored(variable: Any) -> Any:
    """The backend tensor a Keras variable stores: inside an autocast scope ``variable.value`` is a
    cast copy of it (float16 for a float32 variable)."""
    value = getattr(variable, "_value", None)
    return variable.value if value is None else value


def _assign_tensorflow(variable: Any, tensor: Any) -> None:
    """``variable.assign(tensor)`` on TensorFlow for a tensor of the variable's dtype and shape, straight
    to the ``tf.Variable`` Keras keeps, without reading the value back: what Keras's own ``assign``
    ends in outside a ``StatelessScope`` (:meth:`KerasAdapter.check_writable` refuses writes inside
    one), at a third of its cost here (40 against 127 us a call). Keras's ``assign`` itself where the
    variable's class or the variable overrides it, or keeps no such ``tf.Variable``."""
    from keras.src.backend.common.variables import Variable

    stored = getattr(variable, "_value", None)
    own = "assign" in vars(variable) or getattr(type(variable), "assign", None) is not Variable.assign
    if (own or stored is None or not hasattr(stored, "handle") or stored.dtype != tensor.dtype
            or stored.shape != tensor.shape):
        variable.assign(tensor)
        return
    stored.assign(tensor, read_value=False)


class KerasAdapter(Adapter):
    """Parameters of Keras 3 layers and models (``keras.layers.Layer``, models included)."""

    name = "keras"
    framework_module = "keras"
    install_hint = "pip install 'unifyparams[keras]'"
    priority = 10  # on the torch backend a Keras layer is also a torch.nn.Module
    block_noun = "Keras layer"
    #: Keras ``.weights.h5`` files, read with h5py (no Keras needed).
    native_files = native_files.FORMATS

    def __init__(self) -> None:
        import keras

        from . import running

        self.keras = keras
        self.types = structure.KerasTypes.load()
        self.backend = keras.backend.backend()
        self._running = running
        #: The dtype JAX stores a requested dtype in (``jax.dtypes.canonicalize_dtype``), on JAX.
        self._canonical_dtype: Callable[[np.dtype], Any] | None = None
        if self.backend == "jax":
            import jax

            self._canonical_dtype = jax.dtypes.canonicalize_dtype

    # --- discovery / enumeration --------------------------------------------------------------
    def owns(self, obj: Any) -> bool:
        return isinstance(obj, self.types.Layer)

    def walk(self, root: Any) -> Iterator[Slot]:
        return structure.walk(root, self.types)

    def structure_check(self, root: Any, slots: Sequence[Slot]) -> Callable[[], bool] | None:
        return structure.structure_check(root, list(slots), self.types)

    # --- describing one variable --------------------------------------------------------------
    def native_shape(self, native: Any) -> Shape:
        # Keras keeps the shape as a plain tuple in ``_shape``; ``.shape`` on the TensorFlow backend
        # builds a TensorShape each time, which costs more than the rest of a walk.
        shape = getattr(native, "_shape", None)
        if not isinstance(shape, tuple):
            shape = tuple(native.shape)
        return tuple(None if d is None else int(d) for d in shape)

    def dtype(self, native: Any) -> np.dtype:
        """The variable's own dtype: inside an autocast scope ``variable.dtype`` is the scope's."""
        dtype = numpy_dtype(getattr(native, "_dtype", None) or native.dtype)
        if self._canonical_dtype is not None:  # JAX without x64 keeps a float64 variable in float32
            dtype = numpy_dtype(self._canonical_dtype(dtype))
        return dtype

    def trainable(self, native: Any) -> bool:
        return bool(native.trainable)

    def has_values(self, native: Any) -> bool:
        # Keras defers a variable's values only when it is created inside a stateless scope.
        return getattr(native, "_value", True) is not None

    def storage_key(self, native: Any) -> Any:
        # KerasVariable overrides __eq__ (elementwise) and is unhashable: identity is the key.
        if isinstance(native, PendingVariable):
            return (id(native.layer), native.name)  # fresh stand-ins each walk: key by what they stand for
        return id(native)

    # --- values -------------------------------------------------------------------------------
    def read(self, native: Any) -> np.ndarray:
        """A new ndarray object: zero-copy on the torch backend's CPU (a view of the parameter), on
        TensorFlow (a view of the variable's current tensor, which copy-on-write keeps unchanged
        whatever is assigned later) and on JAX (a read-only view of its immutable array), see
        :meth:`snapshot`; a copy otherwise."""
        if not self.has_values(native):
            raise NotMaterializedError(f"variable {native.path!r} has no values yet (deferred initialization)")
        value = _stored(native)
        if self.backend == "torch" and value.device.type == "cpu" and str(value.dtype) != "torch.bfloat16":
            return value.detach().numpy()  # zero-copy view of the parameter
        if self.backend in ("tensorflow", "jax"):
            current = self.snapshot(native)
            if current is not None:
                return current
        if self.backend == "tensorflow":
            if hasattr(value, "numpy"):
                return np.asarray(value.numpy())  # one copy, ~5x faster than ops.convert_to_numpy here
        return np.asarray(self.keras.ops.convert_to_numpy(value))

    def write(self, native: Any, value: np.ndarray) -> None:
        if isinstance(native, PendingVariable):  # an unbuilt layer: build it for this value, then assign
            native = native.build_layer(tuple(value.shape))
        if self._stages(native, value):
            staged = self.stage_target(native)
            if staged is not None:  # new memory only this call holds: one copy at memory speed, one handover
                copying.copy_into(staged.memory, value)
                staged.commit()
                return
        if self.backend == "jax":  # JAX may alias a NumPy array and read it later: the core's values may
            owned = copying.empty_aligned(tuple(value.shape), value.dtype)  # be views of buffers it reuses
            copying.copy_into(owned, value)
            native.assign(owned)
            return
        source = contiguous_source(value)
        if source is not None:  # a transposed view: transpose with the backend's op, not NumPy's
            base, perm = source
            if self.backend == "tensorflow":  # straight from base's memory, no copy of it first
                native.assign(transient.transposed(base, perm))
            else:
                native.assign(self.keras.ops.transpose(self.keras.ops.convert_to_tensor(base), perm))
        else:
            native.assign(value)

    def _stages(self, native: Any, value: np.ndarray) -> bool:
        """Whether :meth:`write` copies ``value`` into :meth:`stage_target`'s memory with the core's
        copy rather than through Keras's ``assign`` of the array: always on JAX (whose conversion
        copies a transposed view at a third of that speed: 3 ms against 1 ms for a 1024 x 1024
        float32 kernel), and on TensorFlow for values large enough that its defensive copies and
        transposes cost more than the handover."""
        if self.backend == "jax":
            return True
        return self.backend == "tensorflow" and value.nbytes >= copying.KERNEL_BYTES and copying.is_fast(value)

    def snapshot(self, native: Any) -> np.ndarray | None:
        """The variable's current values without a copy, where they cannot change under the read:
        on TensorFlow a resource variable's tensors are copy-on-write (an ``assign`` while a read is
        held gives the variable a new buffer); on JAX arrays are immutable (an ``assign`` gives the
        variable a new one, and the read holds the old one alive). Either read keeps the old values
        whatever is written next."""
        if self.backend not in ("tensorflow", "jax") or isinstance(native, PendingVariable) or not self.has_values(native):
            return None
        if self.backend == "jax":
            current = np.asarray(_stored(native))  # on the CPU a read-only view of the array's buffer
            return current if current.dtype == self.dtype(native) else None
        read_value = getattr(getattr(native, "_value", None), "read_value", None)
        if read_value is None:
            return None
        value = np.asarray(read_value())
        return value if value.dtype == self.dtype(native) else None

    def write_target(self, native: Any) -> np.ndarray | None:
        """On the torch backend's CPU, the variable's own torch memory (an ``assign`` there is
        ``value.copy_(...)`` under ``no_grad``), its version counter advanced now as that copy would;
        otherwise None (TensorFlow and JAX variables are written by their ``assign``)."""
        if self.backend != "torch" or isinstance(native, PendingVariable) or not self.has_values(native):
            return None
        import torch

        value = _stored(native)
        if type(value) not in (torch.Tensor, torch.nn.Parameter) or value.device.type != "cpu" or value.is_inference():
            return None
        try:
            memory = value.detach().numpy()
        except (TypeError, RuntimeError):  # bfloat16, conjugate or negated views
            return None
        torch.autograd.graph.increment_version(value)
        return memory

    def stage_target(self, native: Any) -> Staged | None:
        """On TensorFlow and JAX, where an ``assign`` replaces the variable's tensor: new memory of the
        variable's shape and dtype, which ``commit`` hands to the variable (TensorFlow: a tensor
        TensorFlow allocated, taken over by the assign without a copy; JAX: a new NumPy array aligned
        to 64 bytes, which ``device_put`` on the CPU aliases rather than copies). Nothing holds the
        memory but the core until then, and the core never writes it after the commit."""
        if self.backend not in ("tensorflow", "jax") or isinstance(native, PendingVariable) or not self.has_values(native):
            return None
        shape, dtype = tuple(int(n) for n in native.shape), self.dtype(native)
        if self.backend == "jax":
            import jax

            memory = copying.empty_aligned(shape, dtype)
            return Staged(memory, lambda: native.assign(jax.device_put(memory)))
        made = transient.empty(shape, dtype)
        if made is None:
            return None
        tensor, memory = made
        return Staged(memory, lambda: _assign_tensorflow(native, tensor))

    def borrow(self, native: Any) -> np.ndarray | None:
        """On TensorFlow and JAX the unchanging read of :meth:`snapshot`; on the torch backend's CPU a
        view of the parameter's memory; otherwise None."""
        if isinstance(native, PendingVariable) or not self.has_values(native):
            return None
        if self.backend in ("tensorflow", "jax"):
            return self.snapshot(native)
        value = _stored(native)
        if self.backend == "torch" and value.device.type == "cpu" and str(native.dtype) != "bfloat16":
            memory = value.detach().numpy()
            memory.flags.writeable = False
            return memory
        return None

    def check_writable(self, native: Any) -> str | None:
        """Assignments Keras would not make: inside a ``keras.StatelessScope`` an ``assign`` is only
        recorded in the scope (the variable keeps its value); on the torch backend, a variable
        created under ``torch.inference_mode()`` is refused by PyTorch after it was written."""
        if isinstance(native, PendingVariable):
            return None
        from keras.src.backend.common.stateless_scope import in_stateless_scope

        if in_stateless_scope():
            return (
                "a keras.StatelessScope is active, where assign() only records the value in the scope and "
                "leaves the variable unchanged; write it outside the scope"
            )
        if self.backend == "torch":
            import torch

            inner = getattr(native, "_value", None)
            if inner is not None and inner.is_inference() and not torch.is_inference_mode_enabled():
                return (
                    "its torch tensor was created under torch.inference_mode(), and PyTorch refuses in-place "
                    "updates to it outside inference mode; write it inside `with torch.inference_mode():`"
                )
        return None

    def restore(self, native: Any, value: np.ndarray | None) -> None:
        """Put back a previous value through the backend's own tensor (inside inference mode for a
        torch inference tensor). A layer that a write built cannot be unbuilt in Keras: ``None``
        (no values before) is refused with that reason."""
        if value is None:
            raise UnifyParamsError(
                "its Keras layer was built by this write (it had no variables before) and Keras cannot unbuild "
                "a layer; rebuild the model, or load into a built one"
            )
        inner = getattr(native, "_value", None)  # the backend's own tensor (torch Parameter, tf.Variable)
        if self.backend == "torch" and inner is not None and value.dtype.kind in "biufc":
            import torch

            with torch.inference_mode(inner.is_inference()), torch.no_grad():
                inner.copy_(torch.from_numpy(np.array(value, copy=True)))
            return
        if self.backend == "tensorflow" and hasattr(inner, "assign"):
            inner.assign(value)
            return
        self.write(native, value)

    def describe_placement(self, native: Any) -> str | None:
        """A variable laid out by ``keras.distribution`` over several JAX devices: its axis spec and
        mesh (:func:`unifyparams_keras.distribution.placement`); None otherwise."""
        if self.keras.backend.backend() != "jax":
            return None
        from . import distribution

        found = distribution.placement(native)
        return None if found is None else f"native {found}"  # the spec follows the variable's own axes

    def grad(self, native: Any) -> np.ndarray | None:
        return self._running.grad_of(native)

    # --- running the model --------------------------------------------------------------------
    def backward(self, model: Any, inputs: tuple[Any, ...], loss: Callable[[Any], Any] | None = None) -> None:
        """Forward and backward natively, in the model's default (inference) call mode.

        TensorFlow: a ``GradientTape`` over ``model.trainable_variables``; each gradient is kept on
        its variable. Torch: autograd into each parameter's ``.grad`` (cleared first), which
        :meth:`grad` reads, so a torch optimizer sees the same gradients. JAX: ``jax.grad`` over
        ``model.stateless_call`` with the variables' current values, kept on each variable as on
        TensorFlow.
        """
        self._running.backward(model, inputs, loss, isinstance(model, self.types.Functional))

    # --- structure changes --------------------------------------------------------------------
    def check_tie(self, target: Slot, source: Slot) -> str | None:
        return sharing.tie_problem(target.native, source.native, target.layout.tag, source.layout.tag)

    def share(self, root: Any, target: Slot, source: Slot) -> None:
        """Replace ``target``'s variable by ``source``'s in every layer that tracks it."""
        old, new = target.native, source.native
        owners = sharing.holders(target.block if target.block is not None else root, old)
        if not owners:
            raise TieError(
                f"cannot tie {target.name!r}: no layer under {'.'.join(target.block_path) or 'the model'} "
                f"tracks its variable {target.native_name!r}. Nothing was changed."
            )
        for layer in owners:
            sharing.replace_variable(layer, old, new)
        self._after_structure_change(root)

    def separate(self, root: Any, slot: Slot) -> None:
        """Give ``slot``'s layer a new variable holding the current values (same dtype, trainable, path)."""
        old = slot.native
        owners = sharing.holders(slot.block if slot.block is not None else root, old)
        if not owners:
            raise TieError(f"cannot untie {slot.name!r}: no layer holding {slot.native_name!r} was found")
        fresh = self.keras.Variable(
            initializer=np.array(self.read(old), copy=True),
            dtype=old.dtype,
            trainable=old.trainable,
            name=old.name,
            layout=getattr(old, "_layout", None),  # a variable laid out by keras.distribution keeps its sharding
        )
        owner_path = getattr(owners[0], "path", None)
        if owner_path:
            fresh._path = f"{owner_path}/{old.name}"  # the path a variable built by this layer would get
        for layer in owners:
            sharing.replace_variable(layer, old, fresh)
        self._after_structure_change(root)

    def _after_structure_change(self, root: Any) -> None:
        sharing.reset_compiled(root)
        if self.backend == "torch":
            sharing.refresh_torch_params(root)

    def infer_shapes(self, model: Any, inputs: tuple[np.ndarray, ...]) -> None:
        """Build ``model`` by calling it once with ``training=False``.

        Inputs are passed as given, in the model's own layout (channels-last for Keras convs).
        """
        self._running.build_by_calling(model, inputs, isinstance(model, self.types.Functional))

    def waiting_blocks(self, model: Any) -> list[str]:
        """Canonical paths (with class names) of the layers that have not been built."""
        return structure.unbuilt_names(model, self.types)

    def has_unbuilt(self, model: Any) -> bool:
        """An unbuilt layer that will create variables (weightless layers and containers, whose
        sublayers are checked themselves, don't count)."""
        base_build = self.keras.layers.Layer.build
        containers = (self.keras.Sequential, self.types.Functional)
        return any(
            not layer.built and type(layer).build is not base_build and not isinstance(layer, containers)
            for layer in model._flatten_layers(include_self=True)
        )

    def on_materialized(self, model: Any, callback: Callable[[], None]) -> bool:
        """Wrap ``build`` of every unbuilt layer: Keras builds a layer inside ``__call__`` right
        before ``call``, so ``callback()`` runs after its variables exist and before they are used."""
        unbuilt = [layer for layer in model._flatten_layers(include_self=True) if not layer.built]
        for layer in unbuilt:
            original = layer.build
            restore = functools.partial(object.__setattr__, layer, "build", original)
            object.__setattr__(layer, "build", calling_after(original, callback, restore))
        return bool(unbuilt)

    # --- facts porting needs --------------------------------------------------------------------
    def layer_family(self, block: Any) -> str:
        return structure.layer_family(block)

    def dense_inputs(self, model: Any, inputs: tuple[np.ndarray, ...] | None) -> dict[int, Any]:
        from .dataflow import dense_inputs

        return dense_inputs(model)

    def read_permuted(self, native: Any, shape: tuple[int, ...], axes: tuple[int, ...]) -> np.ndarray | None:
        """On TensorFlow, one transpose of the variable's own tensor (no copy of it first); the result
        is returned without another copy (a read-only view of TensorFlow's new tensor)."""
        if self.backend != "tensorflow" or isinstance(native, PendingVariable) or not self.has_values(native):
            return None
        read_value = getattr(getattr(native, "_value", None), "read_value", None)
        if read_value is None:
            return None
        tf_ops = self.keras.ops
        value = np.asarray(tf_ops.transpose(tf_ops.reshape(read_value(), shape), axes))
        return value if value.dtype == self.dtype(native) else None

    def write_permuted(self, native: Any, base: np.ndarray, axes: tuple[int, ...]) -> bool:
        """On TensorFlow, one transpose (and reshape) of ``base`` read in place, assigned as it is."""
        if self.backend != "tensorflow" or isinstance(native, PendingVariable):
            return False
        value = transient.transposed(base, axes)
        native.assign(self.keras.ops.reshape(value, tuple(int(d) for d in native.shape)))
        return True

    def channels_last(self, block: Any) -> bool:
        return getattr(block, "data_format", "channels_last") == "channels_last"

    def layer_config(self, block: Any) -> dict[str, float]:
        """``eps`` of normalization layers and batch-norm ``momentum`` in PyTorch's convention
        (Keras keeps the weight of the old average: PyTorch momentum = 1 - Keras momentum)."""
        config: dict[str, float] = {}
        names = structure.mro_names(block)
        if any(n in names for n in ("BatchNormalization", "LayerNormalization", "GroupNormalization",
                                    "RMSNormalization")) or structure.is_scale_only_norm(block):
            # keras-hub's norms say ``epsilon``, a few ``eps`` (Gemma3nRMSNorm); some hard-code it (none)
            for attr in ("epsilon", "eps"):
                eps = getattr(block, attr, None)
                if isinstance(eps, (int, float)) and not isinstance(eps, bool):
                    config["eps"] = float(eps)
                    break
        if "BatchNormalization" in names and getattr(block, "momentum", None) is not None:
            config["momentum"] = 1.0 - float(block.momentum)
        return config
