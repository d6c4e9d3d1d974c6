"""The adapter protocol: the few primitives a framework adapter implements.

Everything else — canonical views, selection, strict loading, initialization, tie groups,
checkpoints — is written once in the core on top of these primitives. A third-party adapter
subclasses :class:`Adapter` and registers it under the ``unifyparams.adapters`` entry-point
group::

    [project.entry-points."unifyparams.adapters"]
    mylib = "unifyparams_mylib:MyLibAdapter"

Adapters must not import their framework at module import time: the core only asks an adapter
whether it owns an object once the adapter's :attr:`Adapter.framework_module` is already in
``sys.modules`` (so checking a model never imports a framework the user has not imported).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from .dataflow import DenseInput
from .errors import NotMaterializedError, TieError, UnifyParamsError
from .layouts import IDENTITY, Layout, Shape


class Role:
    """What a parameter does, which decides its default initialization.

    Role-aware init (MXNet style): ``WEIGHT`` gets the user's initializer, ``BIAS`` and ``SHIFT``
    zeros, ``SCALE`` ones, ``RUNNING_MEAN`` zeros and ``RUNNING_VAR`` ones.
    """

    WEIGHT = "weight"
    BIAS = "bias"
    SCALE = "scale"  # normalization gamma
    SHIFT = "shift"  # normalization beta
    RUNNING_MEAN = "running_mean"
    RUNNING_VAR = "running_var"
    OTHER = "other"

    ALL = (WEIGHT, BIAS, SCALE, SHIFT, RUNNING_MEAN, RUNNING_VAR, OTHER)


@dataclass(slots=True)
class Slot:
    """One parameter as an adapter reports it while walking a model.

    ``name`` is the canonical name (``"features.0.weight"``); ``native`` the framework's own
    parameter object; ``layout`` converts between native and canonical arrays; ``block_path``
    and ``block_kinds`` describe the chain of blocks that own it (for trees and porting).
    Treat it as read-only (it is not frozen only because frozen dataclasses are slow to build,
    and models have thousands of parameters).
    """

    name: str
    native_name: str
    native: Any
    role: str = Role.WEIGHT
    layout: Layout = IDENTITY
    block_path: tuple[str, ...] = ()
    block_kinds: tuple[str, ...] = ()
    block: Any = field(default=None, compare=False)
    #: Kind of the model that was walked, for parameters owned directly by it (a bare layer).
    root_kind: str = ""

    @property
    def leaf(self) -> str:
        return self.name.rsplit(".", 1)[-1]

    @property
    def block_kind(self) -> str:
        return self.block_kinds[-1] if self.block_kinds else self.root_kind


def contiguous_source(value: np.ndarray) -> tuple[np.ndarray, tuple[int, ...]] | None:
    """If ``value`` is a permuted view of a C-contiguous array, ``(that array, perm)`` with
    ``value == base.transpose(perm)``; else None. Lets an adapter transpose with its own ops.

    >>> base = np.zeros((3, 4)); contiguous_source(base.T)[1]
    (1, 0)
    """
    if value.flags.c_contiguous or value.ndim < 2:
        return None
    order = tuple(int(a) for a in np.argsort([-s for s in value.strides], kind="stable"))
    base = value.transpose(order)
    if not base.flags.c_contiguous:
        return None
    return base, tuple(int(a) for a in np.argsort(order))


def family_by_class(block: Any, table: Mapping[type, str]) -> str:
    """The family of the nearest class of ``block``'s hierarchy found in ``table`` (an adapter's
    ``{framework class: family}``), so subclasses of known layers are understood; else ``""``."""
    for cls in type(block).__mro__:
        family = table.get(cls)
        if family:
            return family
    return ""


class Adapter(ABC):
    """Base class of framework adapters.

    Subclasses set :attr:`name` and :attr:`framework_module` and implement the abstract
    primitives. All arrays crossing this interface are NumPy arrays in the *native* layout;
    the core applies each slot's :class:`~unifyparams.layouts.Layout`.
    """

    #: Backend name reported as ``Param.backend`` (``"torch"``, ``"keras"``, ``"gluon"``).
    name: ClassVar[str] = ""
    #: Top-level module that must already be imported before this adapter is consulted.
    framework_module: ClassVar[str] = ""
    #: What to install when the framework is missing.
    install_hint: ClassVar[str] = ""
    #: Higher is asked first (Keras on the torch backend must win over PyTorch).
    priority: ClassVar[int] = 0
    #: Dotted path ``"module:Class"`` of this adapter's conformance model builders.
    builders: ClassVar[str] = ""
    #: Capabilities this adapter lacks, as ``{capability: reason}``; scenarios needing one skip.
    missing_capabilities: ClassVar[Mapping[str, str]] = {}
    #: Framework file formats this adapter reads/writes: ``{format: {"read": "module:function"}}``
    #: (see :mod:`unifyparams.native.registry`); imported only when such a file is used.
    native_files: ClassVar[Mapping[str, Mapping[str, str]]] = {}

    @classmethod
    def conformance_rows(cls) -> dict[str, dict[str, str]]:
        """Rows of the conformance matrix for this adapter: ``{row label: environment}``.

        Each row runs in its own process with the environment added; Keras uses two rows, one
        per Keras backend (``KERAS_BACKEND`` is read when Keras is imported).
        """
        return {cls.name: {}}

    # --- discovery ------------------------------------------------------------------------
    @abstractmethod
    def owns(self, obj: Any) -> bool:
        """True if ``obj`` is a model or block of this framework."""

    # --- enumeration ----------------------------------------------------------------------
    @abstractmethod
    def walk(self, root: Any) -> Iterator[Slot]:
        """Yield every parameter (and non-trainable state) under ``root``, in a stable order.

        Tied parameters are yielded once per name under which they are reachable.
        """

    # --- describing one native parameter --------------------------------------------------
    @abstractmethod
    def native_shape(self, native: Any) -> Shape:
        """The native shape, ``None`` for dimensions not yet known."""

    @abstractmethod
    def dtype(self, native: Any) -> np.dtype:
        """The parameter's dtype as a NumPy dtype."""

    @abstractmethod
    def trainable(self, native: Any) -> bool:
        """Whether the optimizer updates this parameter."""

    def has_values(self, native: Any) -> bool:
        """False while the parameter exists but holds no values yet (PyTorch's uninitialized
        lazy tensors, even those whose shape is fully known)."""
        return True

    def storage_key(self, native: Any) -> Hashable:
        """A key equal for parameters that share storage (ties)."""
        return id(native)

    def storage_span(self, native: Any) -> tuple[Hashable, int, int] | None:
        """Optional: ``(buffer, first byte, end byte)`` of the memory the parameter's elements
        occupy, for frameworks where two parameters can be overlapping but unequal views of one
        buffer (not ties: neither holds the other's value). The core refuses to write both in one
        load. ``None`` (the default): parameters never partly overlap."""
        return None

    # --- values ---------------------------------------------------------------------------
    @abstractmethod
    def read(self, native: Any) -> np.ndarray:
        """The values in native layout, as a *new* ndarray object (it may share memory with the
        model: the core marks it read-only before handing it out). Raise
        :class:`NotMaterializedError` when the parameter has no values yet."""

    @abstractmethod
    def write(self, native: Any, value: np.ndarray) -> None:
        """Overwrite the values in place, outside autograd; ``value`` has native shape and dtype.

        ``value`` may be a non-contiguous view (a transposed canonical array); use the framework's
        own copy, which transposes far faster than ``np.ascontiguousarray``. Use
        :func:`contiguous_source` to get the contiguous base array and the permutation."""

    def check_writable(self, native: Any) -> str | None:
        """Why :meth:`write` would refuse ``native`` now, or ``None`` if it can be written.

        Must be cheap and change nothing: the core asks it for every parameter of a write before the
        first value lands, so a parameter the framework would refuse part way (a tensor frozen by
        the framework, memory that is read-only, a device with no memory) changes nothing. The
        reason is shown to the user; say what to do about it. Default: every parameter is writable.
        """
        return None

    def restore(self, native: Any, value: np.ndarray | None) -> None:
        """Put back a value read before a write that then failed, by a path that cannot fail for the
        reason the write did (the core reads the parameter back afterwards to verify it).

        ``value`` has native shape and dtype; ``None`` means the parameter had no values before (a
        lazy one that the write gave values to): put it back waiting for its shape, or raise
        :class:`~unifyparams.errors.UnifyParamsError` saying why it cannot be. Default: :meth:`write`
        for a value; refusal for ``None``.
        """
        if value is None:
            raise UnifyParamsError(
                f"the {self.name!r} adapter cannot take back the values it gave a parameter that had none "
                f"(it does not implement Adapter.restore(native, None))"
            )
        self.write(native, value)

    def writable_view(self, native: Any) -> np.ndarray | None:
        """Optional: a writable NumPy array over the parameter's own memory (native layout), so
        initializers can generate straight into it: no scratch copy, no extra memory. ``None``
        (the default) when the framework offers none; then values go through :meth:`write`."""
        return None

    def after_direct_write(self, native: Any) -> None:  # noqa: B027  (optional hook, no-op by default)
        """Called after values were written through :meth:`writable_view` (e.g. to tell autograd)."""

    @abstractmethod
    def grad(self, native: Any) -> np.ndarray | None:
        """The most recent gradient in native layout, or ``None`` if there is none."""

    # --- running the model ----------------------------------------------------------------
    @abstractmethod
    def backward(
        self, model: Any, inputs: tuple[Any, ...], loss: Callable[[Any], Any] | None = None
    ) -> None:
        """Run a forward and backward pass natively and keep the gradients for :meth:`grad`.

        ``inputs`` are NumPy arrays; the default loss is the sum of the outputs.
        """

    # --- structure changes (optional: a missing one is declared in missing_capabilities) ----
    def tie(self, root: Any, target: Slot, source: Slot) -> None:
        """Make the parameter at ``target`` use ``source``'s native parameter (one storage).

        The core has already checked names, shapes and dtypes. Raise :class:`TieError` (with the
        reason) for a tie the framework cannot express.
        """
        raise TieError(f"the {self.name!r} adapter does not support tying parameters")

    def check_tie(self, target: Slot, source: Slot) -> str | None:
        """Why ``target`` cannot be tied to ``source`` in this framework, or ``None`` if it can.

        The core asks this for every pair before the first change, so a refused tie changes nothing.
        """
        return None

    def untie(self, root: Any, slot: Slot) -> None:
        """Give the parameter at ``slot`` its own storage, holding its current values."""
        raise TieError(f"the {self.name!r} adapter does not support untying parameters")

    def materialize(self, model: Any, inputs: tuple[np.ndarray, ...]) -> None:
        """Make every shape known by running ``model`` once on ``inputs`` (NumPy arrays), without a
        training step. (The core turns ``input_shape=`` into zeros before calling this.)"""
        raise NotMaterializedError(f"the {self.name!r} adapter cannot materialize lazy shapes")

    # --- facts porting needs (optional) -----------------------------------------------------
    def channels_last(self, block: Any) -> bool:
        """True if ``block`` (a conv layer) keeps channels last, so a following flatten orders
        features (H, W, C) rather than (C, H, W)."""
        return False

    def layer_family(self, block: Any) -> str:
        """The framework-neutral family of a layer (one of :data:`unifyparams.porting.FAMILIES`:
        ``"dense"``, ``"conv2d"``, ``"batchnorm"``...), following the class hierarchy so that
        subclasses are understood; ``""`` when the layer is none of them (ports then compare
        the class names of both sides)."""
        return ""

    def dense_inputs(self, model: Any, inputs: tuple[np.ndarray, ...] | None) -> Mapping[int, DenseInput]:
        """``{id(dense layer): what it reads}`` for dense layers whose input the framework's graph
        information establishes (a flattened map, in which order, or plain features). ``inputs``
        (native layout), when given, may be used to run the model once, without training.

        Layers left out get the core's convention: in canonical order when no layer of the model
        keeps channels last, otherwise not established (and a port that needs the fact refuses).
        """
        return {}

    def layer_config(self, block: Any) -> Mapping[str, float]:
        """Hyper-parameters that change outputs without being parameters: ``eps`` and ``momentum``
        of normalization layers, momentum in PyTorch's convention (weight of the new batch)."""
        return {}

    def allocate(self, model: Any) -> None:
        """Give values to parameters whose shapes are known but that hold no memory yet (PyTorch's
        meta device), with the framework's default initialization."""
        raise NotMaterializedError(f"the {self.name!r} adapter cannot allocate parameters without values")

    def has_unbuilt(self, model: Any) -> bool:
        """True if part of ``model`` has not created its parameters yet (Keras before ``build``),
        so that even their names are unknown."""
        return False

    def on_materialized(self, model: Any, callback: Callable[[], None]) -> bool:
        """Arrange for ``callback()`` to run right after the framework infers ``model``'s lazy
        shapes on its own (the user's first forward pass), before the new values are used.

        Returns False when the framework offers no such hook (then only
        :func:`unifyparams.materialize` applies waiting initializers).
        """
        return False

    def to_numpy(self, value: Any) -> np.ndarray:
        """Convert a framework tensor (e.g. a model output) to NumPy."""
        return np.asarray(value)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} backend={self.name!r}>"
