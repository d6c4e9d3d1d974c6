"""The adapter protocol: the few primitives a framework adapter implements.

An adapter implements seven primitives — :meth:`~Adapter.owns`, :meth:`~Adapter.walk`,
:meth:`~Adapter.native_shape`, :meth:`~Adapter.dtype`, :meth:`~Adapter.trainable`,
:meth:`~Adapter.read`, :meth:`~Adapter.write` — and whichever optional groups of
:mod:`unifyparams.capabilities` its framework supports (tying, lazy shapes, gradients, porting
facts). Everything else — canonical views, selection, strict loading, initialization, tie groups,
checkpoints, and the checks around ``tie``/``untie``/``materialize`` — is written once in the core.
A third-party adapter subclasses :class:`Adapter` and registers it under the
``unifyparams.adapters`` entry-point group::

    [project.entry-points."unifyparams.adapters"]
    mylib = "unifyparams_mylib:MyLibAdapter"

Adapters must not import their framework at module import time: the core only asks an adapter
whether it owns an object once the adapter's :attr:`Adapter.framework_module` is already in
``sys.modules`` (so checking a model never imports a framework the user has not imported).

>>> Role.WEIGHT == "weight", f"{Role.SCALE}"
(True, 'scale')
"""

from __future__ import annotations

import sys
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np

from .capabilities import (
    CAPABILITIES,
    Gradients,
    LazyShapes,
    Listing,
    PortingFacts,
    StorageFacts,
    TyingHooks,
    WriteSafety,
    family_by_class,
    missing_capabilities,
)
from .common.blocks import materialize_failure
from .common.sharing import refuse_untie_of_reused
from .distributed import ShardedStorage
from .errors import NotMaterializedError, TieError, UnifyParamsError
from .layouts import IDENTITY, Layout, Shape

if sys.version_info >= (3, 11):
    from enum import StrEnum
else:  # pragma: no cover - Python 3.10

    class StrEnum(str, Enum):
        """``enum.StrEnum`` of Python 3.11: members are their string values."""

        def __str__(self) -> str:
            return str(self.value)

        def __format__(self, spec: str) -> str:
            return str(self.value).__format__(spec)


class Role(StrEnum):
    """What a parameter does, which decides its default initialization.

    Role-aware init (MXNet style): ``WEIGHT`` gets the user's initializer, ``BIAS`` and ``SHIFT``
    zeros, ``SCALE`` ones, ``RUNNING_MEAN`` zeros and ``RUNNING_VAR`` ones. Members are strings:
    ``Role.WEIGHT == "weight"``.

    >>> Role("running_var") is Role.RUNNING_VAR, list(Role)[:2]
    (True, ['weight', 'bias'])
    """

    WEIGHT = "weight"
    BIAS = "bias"
    SCALE = "scale"  # normalization gamma
    SHIFT = "shift"  # normalization beta
    RUNNING_MEAN = "running_mean"
    RUNNING_VAR = "running_var"
    OTHER = "other"

    #: Every role, in declaration order (kept from when roles were plain string constants).
    ALL: ClassVar[tuple[Role, ...]]

    def __repr__(self) -> str:
        """The string's repr, as when roles were plain strings (``'weight'`` in printed tuples)."""
        return repr(self.value)


Role.ALL = tuple(Role)


@dataclass(slots=True)
class Slot:
    """One parameter as an adapter reports it while walking a model.

    ``name`` is the canonical name (``"features.0.weight"``); ``native`` the framework's own
    parameter object; ``layout`` converts between native and canonical arrays; ``block_path``
    and ``block_kinds`` describe the chain of blocks that own it (for trees and porting).
    Treat it as read-only (it is not frozen only because frozen dataclasses are slow to build,
    and models have thousands of parameters).

    >>> Slot("0.weight", "0/kernel", object(), Role.WEIGHT, block_path=("0",)).leaf
    'weight'
    """

    name: str
    native_name: str
    native: Any
    role: Role = Role.WEIGHT
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


class Adapter(Listing, StorageFacts, WriteSafety, LazyShapes, TyingHooks, Gradients, PortingFacts, ShardedStorage, ABC):
    """Base class of framework adapters: the primitives, and what the core derives from them.

    Subclasses set :attr:`name` and :attr:`framework_module` and implement the abstract
    primitives; the optional groups they inherit (see :mod:`unifyparams.capabilities`) have
    defaults. All arrays crossing this interface are NumPy arrays in the *native* layout; the core
    applies each slot's :class:`~unifyparams.layouts.Layout`.

    >>> sorted(Adapter.missing_capabilities)
    ['backward', 'materialize', 'tie']
    """

    #: Backend name reported as ``Param.backend`` (``"torch"``, ``"keras"``, ``"gluon"``).
    name: ClassVar[str] = ""
    #: Top-level module that must already be imported before this adapter is consulted.
    framework_module: ClassVar[str] = ""
    #: What to install when the framework is missing.
    install_hint: ClassVar[str] = ""
    #: Higher is asked first (Keras on the torch backend must win over PyTorch).
    priority: ClassVar[int] = 0
    #: ``{capability: reason}`` for what this adapter cannot do (:data:`~unifyparams.capabilities.CAPABILITIES`).
    #: Derived when the class is created: capabilities whose hooks are not implemented, plus the
    #: reasons a class declares by setting this attribute itself. Read-only; scenarios needing one skip.
    missing_capabilities: ClassVar[Mapping[str, str]] = MappingProxyType({})
    #: The reasons this class (or a parent) declared, before derivation.
    declared_missing: ClassVar[Mapping[str, str]] = MappingProxyType({})
    #: Framework file formats this adapter reads/writes: ``{format: {"read": "module:function"}}``
    #: (see :mod:`unifyparams.formats.registry`); imported only when such a file is used.
    native_files: ClassVar[Mapping[str, Mapping[str, str]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "missing_capabilities" in cls.__dict__:
            cls.declared_missing = MappingProxyType(dict(cls.__dict__["missing_capabilities"]))
        _warn_legacy_overrides(cls)
        cls.missing_capabilities = MappingProxyType(missing_capabilities(cls, Adapter))

    # --- the primitives -------------------------------------------------------------------
    @abstractmethod
    def owns(self, obj: Any) -> bool:
        """True if ``obj`` is a model or block of this framework."""

    @abstractmethod
    def walk(self, root: Any) -> Iterator[Slot]:
        """Yield every parameter (and non-trainable state) under ``root``, in a stable order.

        Tied parameters are yielded once per name under which they are reachable.
        """

    @abstractmethod
    def native_shape(self, native: Any) -> Shape:
        """The native shape, ``None`` for dimensions not yet known."""

    @abstractmethod
    def dtype(self, native: Any) -> np.dtype:
        """The parameter's dtype as a NumPy dtype (see :func:`unifyparams.common.numpy_dtype`)."""

    @abstractmethod
    def trainable(self, native: Any) -> bool:
        """Whether the optimizer updates this parameter."""

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

    # --- derived once, here ---------------------------------------------------------------
    def restore(self, native: Any, value: np.ndarray | None) -> None:
        """Put back a value read before a write that then failed, by a path that cannot fail for the
        reason the write did (the core reads the parameter back afterwards to verify it).

        ``value`` has native shape and dtype; ``None`` means the parameter had no values before (a
        lazy one that the write gave values to): put it back waiting for its shape, or raise
        :class:`~unifyparams.errors.UnifyParamsError` saying why it cannot be. Default:
        :meth:`write` for a value; refusal for ``None``.
        """
        if value is None:
            raise UnifyParamsError(
                f"the {self.name!r} adapter cannot take back the values it gave a parameter that had none "
                f"(it does not implement Adapter.restore(native, None))"
            )
        self.write(native, value)

    def tie(self, root: Any, target: Slot, source: Slot) -> None:
        """Make ``target`` use ``source``'s storage: :meth:`check_tie`, then :meth:`share`.

        Raises :class:`TieError` (nothing changed) for a pair the framework refuses, or when the
        adapter has no ``"tie"`` capability.
        """
        if "tie" in self.missing_capabilities:
            raise TieError(f"the {self.name!r} adapter does not support tying parameters")
        reason = self.check_tie(target, source)
        if reason:
            raise TieError(f"cannot tie {target.name!r} to {source.name!r}: {reason}. Nothing was changed.")
        self.share(root, target, source)

    def untie(self, root: Any, slot: Slot) -> None:
        """Give ``slot`` its own storage with its current values: refuse a block reused under
        several names (it cannot be separated from itself), then :meth:`separate`."""
        if "tie" in self.missing_capabilities:
            raise TieError(f"the {self.name!r} adapter does not support untying parameters")
        refuse_untie_of_reused(self.walk(root), slot, self.untie_unit, self.block_noun)
        self.separate(root, slot)

    def materialize(self, model: Any, inputs: tuple[np.ndarray, ...]) -> None:
        """Make every shape known by running ``model`` once on ``inputs`` (:meth:`infer_shapes`),
        without a training step; a failure raises :class:`NotMaterializedError` naming the block it
        happened in and the input shapes. (The core turns ``input_shape=`` into zeros first.)"""
        if "materialize" in self.missing_capabilities:
            raise NotMaterializedError(f"the {self.name!r} adapter cannot materialize lazy shapes")
        with self.track_blocks(model) as tracker:
            try:
                self.infer_shapes(model, inputs)
            except NotMaterializedError:
                raise
            except Exception as exc:
                message = materialize_failure(model, inputs, exc, tracker, self.waiting_blocks(model))
                raise NotMaterializedError(message) from exc

    def waiting_blocks(self, model: Any) -> list[str]:
        """Paths of the blocks whose parameters still wait for values, for failure messages."""
        try:
            return sorted({s.name.rsplit(".", 1)[0] for s in self.walk(model) if not self.has_values(s.native)})
        except Exception:  # a model in a broken state: the message goes without the list
            return []

    def __repr__(self) -> str:
        return f"<{type(self).__name__} backend={self.name!r}>"


Adapter.missing_capabilities = MappingProxyType(missing_capabilities(Adapter, Adapter))

#: Methods the core now derives, that adapters overrode before (their hook in parentheses).
_LEGACY = {"tie": "share", "untie": "separate", "materialize": "infer_shapes"}


def _warn_legacy_overrides(cls: type) -> None:
    """Deprecation path: an adapter overriding ``tie``/``untie``/``materialize`` (the protocol
    before the core derived them) keeps working, with a warning naming the hook to implement."""
    for method, hook in _LEGACY.items():
        if method in cls.__dict__:
            warnings.warn(
                f"{cls.__qualname__} overrides Adapter.{method}, which the core now derives; implement "
                f"Adapter.{hook} instead (the core then adds the checks every adapter shares)",
                DeprecationWarning,
                stacklevel=3,
            )


__all__ = [
    "CAPABILITIES",
    "Adapter",
    "Role",
    "Slot",
    "contiguous_source",
    "family_by_class",
]
