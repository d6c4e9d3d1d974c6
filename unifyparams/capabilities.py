"""The optional parts of the adapter protocol, grouped by what they serve, and how capabilities are known.

:class:`~unifyparams.adapter.Adapter` asks every framework for a few primitives (enumerate,
describe, read, write). Everything else is optional and comes in small groups, each with defaults
that are right for a framework without the feature:

- :class:`Listing` — telling cheaply that a model's structure is unchanged, so its listing is reused;
- :class:`StorageFacts` — which parameters share memory (ties, overlapping views);
- :class:`WriteSafety` — refusing a write before it starts, restoring after a failed one, writing
  straight into the parameter's memory;
- :class:`LazyShapes` — parameters that wait for their shapes, and running the model to learn them;
- :class:`TyingHooks` — making two names share one storage and separating them again;
- :class:`Gradients` — a native forward and backward pass;
- :class:`PortingFacts` — the facts :func:`unifyparams.port` needs (layer families, hyper-parameters,
  flatten order).

A *capability* (``"tie"``, ``"materialize"``, ``"backward"``) is declared one way: by implementing
its hooks. :func:`missing_capabilities` derives ``{capability: reason}`` from which hooks a class
implements, plus any reasons the class states itself (a capability its framework version lacks).

>>> from unifyparams import Adapter
>>> class Minimal(Adapter): ...
>>> Minimal.missing_capabilities["tie"]
'Minimal does not implement Adapter.share and Adapter.separate, so it cannot tie parameters'
>>> sorted(Minimal.missing_capabilities)
['backward', 'materialize', 'tie']
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from .common.blocks import BlockTracker
from .copying import copy_into
from .dataflow import DenseInput
from .errors import NotMaterializedError, UnifyParamsError

if TYPE_CHECKING:
    from .adapter import Slot


@dataclass(frozen=True)
class Capability:
    """One optional feature: the hooks that provide it and the older names that did (deprecated)."""

    name: str
    hooks: tuple[str, ...]
    legacy: tuple[str, ...] = ()
    #: What the feature lets users do, for the reason shown when it is missing.
    does: str = ""


#: Every capability, by name. Conformance scenarios ``requires=`` these names.
def _not_provided(adapter: Any, hook: str, capability: str) -> UnifyParamsError:
    """The error for a hook the core called although ``adapter`` does not implement it: the core
    asks for a hook only when its capability is present, so reaching this is an adapter bug."""
    return UnifyParamsError(
        f"the {getattr(adapter, 'name', type(adapter).__name__)!r} adapter does not implement {hook}(), "
        f"which {capability} needs; implement it, or leave every hook of {capability} out so that the "
        f"capability is reported missing"
    )


CAPABILITIES: dict[str, Capability] = {
    "tie": Capability("tie", ("share", "separate"), ("tie", "untie"), "tie parameters"),
    "materialize": Capability("materialize", ("infer_shapes",), ("materialize",), "infer lazy shapes"),
    "backward": Capability("backward", ("backward",), (), "compute gradients"),
}


def implements(cls: type, base: type, names: tuple[str, ...]) -> bool:
    """True if ``cls`` overrides every method in ``names`` that it inherits from ``base``."""
    return all(getattr(cls, n, None) is not getattr(base, n, None) for n in names)


def missing_capabilities(cls: type, base: type) -> dict[str, str]:
    """``{capability: reason}`` for those ``cls`` does not implement (as overrides of ``base``'s
    defaults), merged with the reasons the class declares itself (kept as ``declared_missing``)."""
    missing: dict[str, str] = {}
    for cap in CAPABILITIES.values():
        if implements(cls, base, cap.hooks) or (cap.legacy and implements(cls, base, cap.legacy)):
            continue
        hooks = " and ".join(f"Adapter.{h}" for h in cap.hooks)
        missing[cap.name] = f"{cls.__qualname__} does not implement {hooks}, so it cannot {cap.does}"
    missing.update(getattr(cls, "declared_missing", {}))
    return missing


class Listing:
    """Seeing a model's parameters again without walking it. Default: every ``up.params`` walks."""

    def structure_check(self, root: Any, slots: Sequence[Slot]) -> Callable[[], bool] | None:
        """A check, a fraction of :meth:`~unifyparams.adapter.Adapter.walk`'s cost, that returns True
        only while a walk of ``root`` would yield ``slots`` again: the same names, objects, roles and
        layouts, and the same storage keys (ties). :func:`unifyparams.params` then returns its
        previous ParamSet (:mod:`unifyparams.listing`). It must see every change that alters the walk
        (a layer added, replaced or removed, a parameter re-registered, a storage swapped); shapes,
        dtypes and values are read live and need not count. When in doubt it must say False. ``None``
        (the default): not offered for this model, every call walks it.
        """
        return None


class StorageFacts:
    """Which parameters share memory. Defaults: identity is storage, and views never partly overlap."""

    def has_values(self, native: Any) -> bool:
        """False while the parameter exists but holds no values yet (PyTorch's uninitialized
        lazy tensors, even those whose shape is fully known)."""
        return True

    def storage_key(self, native: Any) -> Hashable:
        """A key equal for parameters that share storage (ties)."""
        return id(native)

    def storage_span(self, native: Any) -> tuple[Hashable, int, int] | None:
        """``(buffer, first byte, end byte)`` of the memory the parameter's elements occupy, for
        frameworks where two parameters can be overlapping but unequal views of one buffer (not
        ties: neither holds the other's value); the core refuses to write both in one load.
        ``None`` (the default): parameters never partly overlap."""
        return None

    def not_a_parameter(self, name: str) -> str | None:
        """Why an entry of a checkpoint saved by this framework is state that is not a parameter
        (PyTorch's BatchNorm step counter ``num_batches_tracked``, which its own state dicts and
        distributed checkpoints hold), or None. A load into this framework's model drops such an
        entry the model does not list, and reports it."""
        return None


class WriteSafety:
    """Writes that change nothing when they fail. Defaults: everything is writable, no direct memory.

    (``restore`` is derived in :class:`~unifyparams.adapter.Adapter` from ``write``.)
    """

    def check_writable(self, native: Any) -> str | None:
        """Why ``write`` would refuse ``native`` now, or ``None`` if it can be written.

        Must be cheap and change nothing: the core asks it for every parameter of a write before the
        first value lands, so a parameter the framework would refuse part way (a tensor frozen by
        the framework, read-only memory, a device with no memory) changes nothing. The reason is
        shown to the user; say what to do about it.
        """
        return None

    def snapshot(self, native: Any) -> np.ndarray | None:
        """The parameter's current values (native layout) as an array that no later write changes,
        made without copying them where the framework allows (copy-on-write storage); ``None`` (the
        default): the core copies :meth:`~unifyparams.adapter.Adapter.read`. Atomic writes take one
        before each parameter is overwritten, and restore it with ``restore`` (verified bit for bit).
        """
        return None

    def writable_view(self, native: Any) -> np.ndarray | None:
        """A writable NumPy array over the parameter's own memory (native layout), so initializers
        can generate straight into it; ``None`` (the default) when the framework offers none."""
        return None

    def after_direct_write(self, native: Any) -> None:  # noqa: B027  (optional hook, no-op by default)
        """Called after values were written through :meth:`writable_view` (e.g. to tell autograd)."""

    def write_target(self, native: Any) -> np.ndarray | None:
        """The parameter's own host memory (native shape and dtype, any strides) when copying
        values into it is *all* a :meth:`write` does; ``None`` (the default) where a write needs the
        framework (another device, a dtype NumPy has no name for, several copies to keep in step, a
        trainer holding its own copy).

        The core then writes a whole set of parameters without snapshots
        (:mod:`unifyparams.memory_write`): it asks for every target first, and only then copies, with
        NumPy alone, so nothing can refuse part way. So this method is called before any value of the
        write is copied and nothing is called after: tell the framework here whatever a write
        tells it (advance a version counter), without changing any value. Raising here stops the
        write with the model unchanged. The array must stay valid until the write ends.
        """
        return None

    def write_targets(self, natives: Sequence[Any]) -> list[np.ndarray | None]:
        """:meth:`write_target` of each of ``natives``, in order, in one call: the core asks for all
        of a write's targets at once, so that an adapter whose framework needs a round trip per
        parameter (the Gluon adapter waits for MXNet's engine to advance a version) can make one for
        all. The same contract as :meth:`write_target`, and the same answers; raising here stops the
        write with the model unchanged. The default calls :meth:`write_target` for each; where an
        adapter overrides this, the core asks it rather than :meth:`write_target` for every write
        of more than one parameter."""
        return [self.write_target(native) for native in natives]

    def stage_target(self, native: Any) -> Staged | None:
        """New memory for the parameter's next value, and how to give it to the parameter, where the
        framework's tensors are not written in place but replaced (TensorFlow, JAX); ``None`` (the
        default) otherwise. The core fills :attr:`Staged.memory` itself (a seeded initializer draws
        straight into it, no value computed first) and then calls :attr:`Staged.commit`, a framework
        write like :meth:`~unifyparams.adapter.Adapter.write`, in the same place and with the same
        snapshots. Nothing may hold the memory but the caller until ``commit`` takes it over.
        """
        return None


@dataclass(frozen=True)
class Staged:
    """Memory for a parameter's next value (native shape and dtype, contents undefined, no one else's)
    and ``commit()``, which makes it the parameter's value: :meth:`WriteSafety.stage_target`.

    >>> memory = np.empty(3); Staged(memory, lambda: None).memory.shape
    (3,)
    """

    memory: np.ndarray
    commit: Callable[[], None]


class LazyShapes:
    """Parameters that wait for their shapes. Defaults: nothing is ever lazy.

    Implementing :meth:`infer_shapes` provides the ``"materialize"`` capability; the core's
    :meth:`~unifyparams.adapter.Adapter.materialize` wraps its failures in one message.
    """

    def infer_shapes(self, model: Any, inputs: tuple[np.ndarray, ...]) -> None:
        """Run ``model`` once on ``inputs`` (NumPy arrays), without a training step, so every shape
        becomes known. Raise the framework's own error: the core names the block and the shapes."""
        raise _not_provided(self, "infer_shapes", "materialize")

    def track_blocks(self, model: Any) -> BlockTracker:
        """A :class:`~unifyparams.common.BlockTracker` (a context manager) whose hooks record which
        block is running, to name the one :meth:`infer_shapes` fails in. Default: tracks nothing."""
        return BlockTracker()

    def has_unbuilt(self, model: Any) -> bool:
        """True if part of ``model`` has not created its parameters yet (Keras before ``build``),
        so that even their names are unknown."""
        return False

    def allocate(self, model: Any) -> None:
        """Give values to parameters whose shapes are known but that hold no memory yet (PyTorch's
        meta device), with the framework's default initialization."""
        raise NotMaterializedError(
            f"the {getattr(self, 'name', '')!r} adapter cannot allocate parameters without values; "
            f"received a model whose parameters have shapes but no memory. Build it on a real device."
        )

    def on_materialized(self, model: Any, callback: Callable[[], None]) -> bool:
        """Arrange for ``callback()`` to run right after the framework infers ``model``'s lazy
        shapes on its own (the user's first forward pass), before the new values are used.

        Returns False when the framework offers no such hook (then only
        :func:`unifyparams.materialize` applies waiting initializers).
        """
        return False


class TyingHooks:
    """Sharing one storage between names. Implementing :meth:`share` and :meth:`separate` provides
    the ``"tie"`` capability; the core's ``tie``/``untie`` check before calling them."""

    #: What the framework calls a block, in messages (``"module"``, ``"Keras layer"``).
    block_noun: ClassVar[str] = "block"

    def check_tie(self, target: Slot, source: Slot) -> str | None:
        """Why ``target`` cannot be tied to ``source`` in this framework, or ``None`` if it can.

        The core asks this for every pair before the first change (and again in ``tie``), so a
        refused tie changes nothing. The core has already checked names, shapes and dtypes.
        """
        return None

    def share(self, root: Any, target: Slot, source: Slot) -> None:
        """Make the parameter at ``target`` use ``source``'s native parameter (one storage).

        Called only after :meth:`check_tie` accepted the pair; raise
        :class:`~unifyparams.errors.TieError` for what only the attempt reveals."""
        raise _not_provided(self, "share", "tie")

    def separate(self, root: Any, slot: Slot) -> None:
        """Give the parameter at ``slot`` its own storage, holding its current values.

        Called only when ``slot``'s :meth:`untie_unit` differs from another name's that reaches the
        same parameter (a block reused under several names is refused by the core)."""
        raise _not_provided(self, "separate", "tie")

    def untie_unit(self, slot: Slot) -> Hashable:
        """What one :meth:`separate` replaces: by default the block (one block, one set of
        parameters); PyTorch replaces one attribute of a module."""
        return id(slot.block)


class Gradients:
    """A native forward and backward pass. Implementing :meth:`backward` (and :meth:`grad`)
    provides the ``"backward"`` capability."""

    def backward(self, model: Any, inputs: tuple[Any, ...], loss: Callable[[Any], Any] | None = None) -> None:
        """Run a forward and backward pass natively and keep the gradients for :meth:`grad`.

        ``inputs`` are NumPy arrays; the default loss is the sum of the outputs. Use
        :func:`unifyparams.common.check_loss` on what ``loss`` returns.
        """
        raise UnifyParamsError(
            f"the {getattr(self, 'name', '')!r} adapter cannot compute gradients: it does not implement "
            f"Adapter.backward. Compute them with the framework itself, or implement Adapter.backward."
        )

    def grad(self, native: Any) -> np.ndarray | None:
        """The most recent gradient in native layout, or ``None`` if there is none."""
        return None


class PortingFacts:
    """Facts :func:`unifyparams.port` and checkpoints need about layers. Defaults: nothing known,
    channels first, and the core's convention for what a dense layer reads."""

    def borrow(self, native: Any) -> np.ndarray | None:
        """The parameter's values (native layout and dtype) as a read-only view of memory that no
        later write changes while the view is held (the parameter's own memory, or a copy-on-write
        tensor's), for a port copying them into another model within one call; ``None`` (the
        default) where there is none, and the port reads them with :meth:`read` when it writes.

        A port computes every value it can borrow before anything is written
        (:mod:`unifyparams.memory_write`), so borrowing must cost no memory the size of the value.
        """
        return None

    def layer_family(self, block: Any) -> str:
        """The framework-neutral family of a layer (one of :data:`unifyparams.porting.FAMILIES`:
        ``"dense"``, ``"conv2d"``, ``"batchnorm"``...), following the class hierarchy so that
        subclasses are understood (see :func:`family_by_class`); ``""`` when it is none of them."""
        return ""

    def layer_config(self, block: Any) -> Mapping[str, float]:
        """Hyper-parameters that change outputs without being parameters: ``eps`` and ``momentum``
        of normalization layers, momentum in PyTorch's convention (weight of the new batch)."""
        return {}

    def channels_last(self, block: Any) -> bool:
        """True if ``block`` (a conv layer) keeps channels last, so a following flatten orders
        features (H, W, C) rather than (C, H, W)."""
        return False

    def dense_inputs(self, model: Any, inputs: tuple[np.ndarray, ...] | None) -> Mapping[int, DenseInput]:
        """``{id(dense layer): what it reads}`` for dense layers whose input the framework's graph
        establishes (a flattened map, in which order, or plain features). ``inputs`` (native
        layout), when given, may be used to run the model once, without training. Layers left out
        get the core's convention."""
        return {}

    def transpose_copy(self, array: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
        """``array.transpose(axes)`` as a new C-contiguous array, by the core's tiled, threaded copy
        (:func:`unifyparams.copying.copy_into`: faster here than PyTorch's and TensorFlow's own
        transposing kernels). The core reorders dense weights with it when a port or checkpoint
        converts a flatten order, and saves transposed layouts with it. An adapter overrides it only
        for a kernel faster still."""
        view = array.transpose(axes)
        out = np.empty(view.shape, view.dtype)
        copy_into(out, view)
        return out

    def read_permuted(self, native: Any, shape: tuple[int, ...], axes: tuple[int, ...]) -> np.ndarray | None:
        """The parameter's values (native layout) reshaped to ``shape`` and transposed by ``axes``, as a
        new C-contiguous array made by the framework's own kernel straight from its memory; ``None``
        (the default) when there is none faster than reading and transposing. A port reorders a
        dense weight's input axis and changes its layout with one such copy."""
        return None

    def write_permuted(self, native: Any, base: np.ndarray, axes: tuple[int, ...]) -> bool:
        """Overwrite the parameter with ``base.transpose(axes)`` reshaped to its native shape, in one
        transposing copy of the framework's own (``base`` is C-contiguous, native dtype); as
        :meth:`~unifyparams.adapter.Adapter.write`, outside autograd. False (the default): not
        offered, the core transposes and calls ``write``."""
        return False


def family_by_class(block: Any, table: Mapping[type, str]) -> str:
    """The family of the nearest class of ``block``'s hierarchy found in ``table`` (an adapter's
    ``{framework class: family}``), so subclasses of known layers are understood; else ``""``.

    >>> class Dense: ...
    >>> class MyDense(Dense): ...
    >>> family_by_class(MyDense(), {Dense: "dense"})
    'dense'
    """
    for cls in type(block).__mro__:
        family = table.get(cls)
        if family:
            return family
    return ""
