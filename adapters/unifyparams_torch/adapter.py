"""The PyTorch adapter: ``nn.Module`` parameters through the unifyparams primitives.

PyTorch's layout *is* the canonical layout, so parameters use the identity layout (except the
``(in, out)`` weight of Hugging Face's ``Conv1D``, transposed to ``nn.Linear``'s ``(out, in)``) and
canonical names are PyTorch's dotted attribute paths. Parameters sharded by ``DTensor`` (FSDP2's
``fully_shard``) are seen whole: global shapes, ``read`` gathers the global value (a collective),
``write`` takes a global value and writes this rank's slice (:mod:`unifyparams_torch.sharding`,
which also has the placement, local shards, and rank-aware save/load). This module imports no torch at import
time: the registry creates :class:`TorchAdapter` only once ``torch`` is already imported, and
``__init__`` imports it then (so a broken install fails at first use, with the reason).

>>> import torch, unifyparams as up
>>> net = torch.nn.Sequential(torch.nn.Linear(20, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10))
>>> up.params(net)["2.weight"].shape, up.params(net)["2.weight"].native is net[2].weight
((10, 256), True)
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from unifyparams.adapter import Adapter, Slot, family_by_class
from unifyparams.common import check_loss, primary_output
from unifyparams.errors import NotMaterializedError
from unifyparams.layouts import Shape

from . import native_files


class TorchAdapter(Adapter):
    """Adapter for ``torch.nn.Module`` models (including ``torch.compile``d and lazy ones).

    Parameters and the ``running_mean``/``running_var`` buffers are reported; other buffers
    (``num_batches_tracked``, masks, caches) are not parameters and are left out.
    """

    name: ClassVar[str] = "torch"
    framework_module: ClassVar[str] = "torch"
    install_hint: ClassVar[str] = "pip install 'unifyparams[torch]'"
    priority: ClassVar[int] = 0  # Keras layers on the torch backend are nn.Modules: Keras is asked first
    block_noun: ClassVar[str] = "module"
    #: PyTorch state dicts, read with ``torch.load(weights_only=True)`` only.
    native_files: ClassVar[Mapping[str, Mapping[str, str]]] = native_files.FORMATS

    def __init__(self) -> None:
        import torch

        from . import running, sharding, sharing, structure, tensors

        self._torch = torch
        #: exact classes of plain tensors (not lazy, not DTensor subclasses): ``read`` skips their checks
        self._plain_classes = frozenset({torch.Tensor, torch.nn.Parameter})
        self._structure = structure
        self._tensors = tensors
        self._running = running
        self._sharing = sharing
        self._sharding = sharding
        nn = torch.nn
        #: torch classes (and so their subclasses) by framework-neutral layer family
        self._family_table: dict[type, str] = {
            nn.Linear: "dense", nn.Embedding: "embedding", nn.Conv1d: "conv1d", nn.Conv2d: "conv2d",
            nn.Conv3d: "conv3d", nn.ConvTranspose1d: "conv_transpose1d", nn.ConvTranspose2d: "conv_transpose2d",
            nn.ConvTranspose3d: "conv_transpose3d", nn.modules.batchnorm._BatchNorm: "batchnorm",
            nn.LayerNorm: "layernorm", nn.GroupNorm: "groupnorm", nn.LSTM: "lstm", nn.GRU: "gru",
            nn.RNN: "rnn", nn.MultiheadAttention: "attention",
        }
        if hasattr(nn, "RMSNorm"):
            self._family_table[nn.RMSNorm] = "rmsnorm"

    # --- discovery ------------------------------------------------------------------------
    def owns(self, obj: Any) -> bool:
        return isinstance(obj, self._torch.nn.Module)

    # --- enumeration ----------------------------------------------------------------------
    def walk(self, root: Any) -> Iterator[Slot]:
        """The parameters under ``root``; an FSDP2 model between a forward and its backward (or
        after a forward under ``no_grad``) is first put back to its sharded parameters, since the
        gathered ones it holds then are scratch that FSDP frees (writes to them would be lost)."""
        self._sharding.reshard_fsdp(root)
        return self._structure.walk(root)

    def structure_check(self, root: Any, slots: Sequence[Slot]) -> Callable[[], bool] | None:
        return self._structure.structure_check(root, list(slots))

    # --- describing one native parameter --------------------------------------------------
    def native_shape(self, native: Any) -> Shape:
        lazy = self._structure._UNINITIALIZED.get(type(native))  # is_uninitialized's cache: runs per parameter
        if lazy is None:
            lazy = self._structure.is_uninitialized(native)
        if lazy:
            return self._structure.lazy_shape(native)
        return tuple(native.shape)  # torch.Size holds plain ints

    def dtype(self, native: Any) -> np.dtype:
        return self._tensors.numpy_dtype(native.dtype)

    def trainable(self, native: Any) -> bool:
        return bool(native.requires_grad) and isinstance(native, self._torch.nn.Parameter)

    def has_values(self, native: Any) -> bool:
        """False for a lazy module's uninitialized tensor, even one whose shape is known (a bias),
        and for tensors on the meta device (a shape, no memory)."""
        return not self._structure.is_uninitialized(native) and not native.is_meta

    def storage_key(self, native: Any) -> Hashable:
        """Equal for tensors that are the same view of one storage (memory, offset, shape, strides,
        dtype): PyTorch ties by sharing one Parameter object, and ``Parameter(a.detach())`` or a
        view held by two modules aliases just as much. Overlapping but unequal views are not ties
        (:meth:`storage_span` lets the core refuse to write both)."""
        return self._tensors.storage_key(native)

    def storage_span(self, native: Any) -> tuple[Hashable, int, int] | None:
        if self._sharding.is_dtensor(native):  # the local shard's memory (DTensor itself has none)
            return self._tensors.storage_span(native.to_local())
        return self._tensors.storage_span(native)

    # --- values ---------------------------------------------------------------------------
    def read(self, native: Any) -> np.ndarray:
        if type(native) not in self._plain_classes:  # plain tensors (most) need neither check
            self._require_values(native)
            if self._sharding.is_dtensor(native):  # the global value: a collective (every rank reads)
                return self._sharding.read(native)
        return self._tensors.tensor_to_numpy(native)

    def write(self, native: Any, value: np.ndarray) -> None:
        """``native.copy_(value)`` under ``no_grad``: same object, same ``requires_grad``, no autograd record.

        A lazy module's uninitialized tensor is first materialized to the value's shape, as PyTorch's own
        ``load_state_dict`` does for lazy modules (the core has already checked the known dimensions).
        """
        if native.is_meta:
            raise NotMaterializedError(
                "this tensor is on the meta device (a shape, no memory); allocate the model first with "
                "up.materialize(model)"
            )
        if self._structure.is_uninitialized(native):
            native.materialize(tuple(value.shape))
        if self._sharding.is_dtensor(native):  # a global value: this rank writes its own slice
            self._sharding.write(native, value)
            return
        source = self._tensors.numpy_to_tensor(value)
        with self._torch.no_grad():
            native.copy_(source)

    def check_writable(self, native: Any) -> str | None:
        """Tensors PyTorch would refuse: on the meta device (no memory), created under
        ``torch.inference_mode()`` (PyTorch writes them, then raises), or whose memory overlaps
        itself (an ``expand``ed tensor). For a DTensor, its local shard is checked; the core agrees
        every rank's verdicts before anything is written (:mod:`unifyparams.distributed`)."""
        if self._sharding.is_dtensor(native):
            return self._check_writable(native.to_local())
        return self._check_writable(native)

    def not_a_parameter(self, name: str) -> str | None:
        """A BatchNorm's ``num_batches_tracked`` step counter is in state dicts, not a parameter."""
        if name.rsplit(".", 1)[-1] == "num_batches_tracked":
            return "a BatchNorm step counter (num_batches_tracked), not a parameter"
        return None

    # --- sharded over ranks (DTensor) ----------------------------------------------------------
    def region(self, native: Any) -> Any:
        """This rank's block of a DTensor (:func:`unifyparams_torch.sharding.region`); None otherwise."""
        return self._sharding.region(native) if self._sharding.is_dtensor(native) else None

    def read_region(self, native: Any) -> np.ndarray:
        return self._sharding.read_local(native)

    def write_region(self, native: Any, value: np.ndarray) -> None:
        self._sharding.write_local(native, value)

    def collective(self, native: Any) -> Any:
        return self._sharding.collective()

    def describe_placement(self, native: Any) -> str | None:
        """A DTensor's placements over its mesh and this rank's block (``Shard(dim=0) over mesh (2,); ...``)."""
        found = self._sharding.placement(native) if self._sharding.is_dtensor(native) else None
        return None if found is None else str(found)

    def _check_writable(self, native: Any) -> str | None:
        torch = self._torch
        if native.is_meta:
            return "it is on the meta device (a shape, no memory); allocate the model first with up.materialize(model)"
        if self._structure.is_uninitialized(native):
            return None
        if native.is_inference() and not torch.is_inference_mode_enabled():
            return (
                "it was created under torch.inference_mode(), and PyTorch refuses in-place updates to it "
                "outside inference mode; write it inside `with torch.inference_mode():`, or rebuild the "
                "model outside inference mode"
            )
        if torch._debug_has_internal_overlap(native) == 1:  # 1: MemOverlap::Yes
            return "several of its elements share one memory location (an expanded tensor); give it its own memory first"
        return None

    def restore(self, native: Any, value: np.ndarray | None) -> None:
        """Put back a previous value even where a plain write is refused (inside inference mode for
        an inference tensor); ``None``: the tensor was a lazy module's uninitialized tensor before
        the write materialized it, so it becomes one again (same object, same ``requires_grad``)."""
        torch = self._torch
        if value is None:
            uninitialized = (
                torch.nn.parameter.UninitializedParameter
                if isinstance(native, torch.nn.Parameter)
                else torch.nn.parameter.UninitializedBuffer
            )
            with torch.no_grad():
                native.data = torch.empty(0, dtype=native.dtype, device=native.device)
            native.__class__ = uninitialized  # the reverse of UninitializedTensorMixin.materialize
            return
        if self._sharding.is_dtensor(native):
            self._sharding.write(native, value)
            return
        source = self._tensors.numpy_to_tensor(value)
        with torch.inference_mode(native.is_inference()), torch.no_grad():
            native.copy_(source)

    def writable_view(self, native: Any) -> np.ndarray | None:
        """The tensor's own CPU memory as NumPy, for float32/float64 contiguous tensors."""
        if self._structure.is_uninitialized(native) or self._sharding.is_dtensor(native):
            return None  # a DTensor's memory is this rank's shard, not the global value
        if not native.is_cpu or not native.is_contiguous():
            return None
        if native.dtype not in (self._torch.float32, self._torch.float64):
            return None
        return native.detach().numpy()

    def after_direct_write(self, native: Any) -> None:
        """Bump the version counter, as an in-place torch op would, so autograd notices the change."""
        self._torch.autograd.graph.increment_version(native)

    def borrow(self, native: Any) -> np.ndarray | None:
        """A plain CPU tensor's own memory as NumPy, read-only (for a port reading it as a source)."""
        memory = self._host_memory(native)
        if memory is not None:
            memory.flags.writeable = False
        return memory

    def write_target(self, native: Any) -> np.ndarray | None:
        """A plain CPU tensor's own memory as NumPy (any dtype NumPy names, any strides), its
        version counter advanced now, as the in-place copy of :meth:`write` would (autograd then
        refuses a backward through values saved before the write). Not for inference tensors (no
        version counter), nor for anything :meth:`_host_memory` leaves to PyTorch."""
        if native.is_inference():
            return None
        memory = self._host_memory(native)
        if memory is not None:
            self._torch.autograd.graph.increment_version(native)
        return memory

    def _host_memory(self, native: Any) -> np.ndarray | None:
        """NumPy over a plain strided CPU tensor's memory; None for tensor subclasses (lazy,
        DTensor, parametrized stand-ins), meta, sparse, other devices, conjugate or negated views
        and dtypes NumPy has no name for (bfloat16): PyTorch reads and writes those itself."""
        if type(native) not in self._plain_classes or native.device.type != "cpu" or native.layout != self._torch.strided:
            return None
        try:
            return native.detach().numpy()  # type: ignore[no-any-return]
        except (TypeError, RuntimeError):
            return None

    def grad(self, native: Any) -> np.ndarray | None:
        g = getattr(native, "grad", None)
        if g is not None and self._sharding.is_dtensor(g):
            return self._sharding.read(g)
        return None if g is None else self._tensors.tensor_to_numpy(g)

    def to_numpy(self, value: Any) -> np.ndarray:
        """Deprecated (the core never used it): a model output as NumPy."""
        warnings.warn("TorchAdapter.to_numpy is deprecated; use tensor.detach().cpu().numpy()",
                      DeprecationWarning, stacklevel=2)
        value = primary_output(value)
        if isinstance(value, self._torch.Tensor):
            return self._tensors.tensor_to_numpy(value)
        return np.asarray(value)

    def _require_values(self, native: Any) -> None:
        if self._structure.is_uninitialized(native):
            raise NotMaterializedError(
                "this lazy parameter has no values until its shape is known; run the model once, or call "
                "up.materialize(model, example_input) first"
            )

    # --- running the model ----------------------------------------------------------------
    def backward(self, model: Any, inputs: tuple[Any, ...], loss: Callable[[Any], Any] | None = None) -> None:
        """Forward in the model's current mode, then ``loss(output).backward()`` (default: sum).

        Gradients are reset first (``zero_grad(set_to_none=True)``), so they hold this pass only.
        """
        torch = self._torch
        model.zero_grad(set_to_none=True)
        args = self._tensors.to_tensors(inputs, model)
        with torch.enable_grad():
            output = primary_output(model(*args))
            value = output.sum() if loss is None else loss(output)
            check_loss(value, torch.Tensor, "torch")
            value.reshape(()).backward()

    def infer_shapes(self, model: Any, inputs: tuple[np.ndarray, ...]) -> None:
        """One forward pass in eval mode under ``no_grad`` resolves every lazy module's shapes."""
        root, _ = self._structure.unwrap(model)  # run eagerly: compiling a lazy model is slow
        args = self._tensors.to_tensors(inputs, root)
        with self._running.inference(root):
            root(*args)

    def track_blocks(self, model: Any) -> Any:
        """Hooks on every module, each put first, so a failing lazy module's own hook is blamed on it."""
        return self._running.BlockTracker(self._structure.unwrap(model)[0])

    def allocate(self, model: Any) -> None:
        """Move a meta-device model to the CPU (``to_empty``), then run each module's own
        ``reset_parameters`` (PyTorch's default initialization, running statistics included)."""
        root, _ = self._structure.unwrap(model)
        root.to_empty(device="cpu")
        with self._torch.no_grad():
            for module in root.modules():
                reset = getattr(module, "reset_parameters", None)
                if callable(reset):
                    reset()

    def on_materialized(self, model: Any, callback: Callable[[], None]) -> bool:
        """Call ``callback()`` as each lazy module gets its shapes, before it computes with them.

        A forward pre-hook is appended after the lazy module's own shape-inference hook, so it
        runs once the parameters exist and before the module's ``forward`` uses them; it then
        removes itself. Returns False if ``model`` has no uninitialized lazy module.
        """
        root, _ = self._structure.unwrap(model)
        waits = self._structure.waits_for_shapes
        waiting = [m for m in {id(m): m for m in root.modules()}.values() if waits(m)]
        for module in waiting:
            handles: list[Any] = []

            def hook(mod: Any, args: Any, _handles: list[Any] = handles) -> None:
                if not waits(mod):
                    for h in _handles:
                        h.remove()
                    callback()

            handles.append(module.register_forward_pre_hook(hook))
        return bool(waiting)

    # --- structure changes ----------------------------------------------------------------
    def check_tie(self, target: Slot, source: Slot) -> str | None:
        """Refuse parameter/buffer ties, ties of lazy tensors and ties across devices."""
        return self._sharing.tie_problem(target, source)

    def share(self, root: Any, target: Slot, source: Slot) -> None:
        """Register ``source``'s Parameter (or buffer) object on the module that owns ``target``."""
        self._sharing.share(target, source)

    def untie_unit(self, slot: Slot) -> Hashable:
        """One attribute of a module: two attributes holding one Parameter can be separated."""
        return id(slot.block), slot.leaf

    def separate(self, root: Any, slot: Slot) -> None:
        """Give ``slot``'s module a new Parameter (or buffer) holding a clone of the current values."""
        self._sharing.separate(slot)

    # --- facts porting needs --------------------------------------------------------------
    def layer_config(self, block: Any) -> Mapping[str, float]:
        """``eps`` and ``momentum`` of normalization layers (momentum is already PyTorch's convention).

        ``eps`` is read from ``eps``, else ``variance_epsilon`` (Hugging Face's RMS norms); an
        ``nn.RMSNorm(eps=None)`` (eps from the dtype at run time) reports none.
        """
        if not self._structure.is_normalization(block):
            return {}
        config: dict[str, float] = {}
        for key, attrs in (("eps", ("eps", "variance_epsilon")), ("momentum", ("momentum",))):
            for attr in attrs:
                value = getattr(block, attr, None)
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    config[key] = float(value)
                    break
        return config

    def layer_family(self, block: Any) -> str:
        """By class (subclasses included); a ``*RMSNorm`` class is ``"rmsnorm"`` and Hugging Face's
        ``Conv1D`` (a linear layer with a transposed weight) ``"dense"``."""
        family = family_by_class(block, self._family_table)
        if family:
            return family
        if self._structure.is_rms_norm(block):
            return "rmsnorm"
        if self._structure.is_transposed_linear(block):
            return "dense"
        return ""

    def dense_inputs(self, model: Any, inputs: tuple[np.ndarray, ...] | None) -> Mapping[int, Any]:
        """From one traced forward pass on ``inputs`` (eval mode, no gradients); without inputs, or
        while shapes are still lazy, nothing is established (PyTorch flattens channels-first: the
        core's convention then holds)."""
        if inputs is None or not isinstance(model, self._torch.nn.Module):
            return {}
        if any(self._structure.is_uninitialized(t) for t in model.parameters()):
            return {}
        from .dataflow import dense_inputs

        return dense_inputs(model, inputs)

    def channels_last(self, block: Any) -> bool:
        """PyTorch convolutions are channels-first whatever the memory format: a flatten orders (C, H, W)."""
        return False
