"""State attached to objects for exactly as long as they live, found by identity.

A model, a block or a parameter is the key; the entry goes when the object is garbage-collected,
and a new object that happens to get the old one's address never sees it (the key is a weak
reference compared by identity, never an ``id()`` alone). Identity, not ``==``: tensors and
variables compare element-wise, and two equal blocks are still two blocks.

>>> class Block: ...
>>> notes: ObjectMap[list[str]] = ObjectMap()
>>> block = Block()
>>> notes.setdefault(block, list).append("waits")
>>> notes.get(block)
['waits']
>>> del block
>>> len(notes)
0
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from .errors import UnifyParamsError

V = TypeVar("V")

#: Where an object that cannot be weakly referenced keeps its entries (in its own ``__dict__``).
_ATTRIBUTE = "__unifyparams_state__"


class _IdentityRef(weakref.ref):  # type: ignore[type-arg]
    """A weak reference hashed by the referent's identity and equal only to a reference to the
    same live object (a dead one equals only itself)."""

    __slots__ = ("_hash",)

    _hash: int

    def __new__(cls, obj: Any, callback: Callable[[Any], None] | None = None) -> _IdentityRef:
        self = super().__new__(cls, obj, callback)
        self._hash = id(obj)
        return self

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if not isinstance(other, _IdentityRef):
            return NotImplemented
        mine = self()
        return mine is not None and mine is other()


class ObjectMap(Generic[V]):
    """``{object: value}`` by identity, each entry living as long as its object.

    Objects that cannot be weakly referenced keep their entry in their own ``__dict__`` (so it
    still goes with them); an object with neither is refused with :class:`UnifyParamsError`.
    """

    def __init__(self) -> None:
        self._data: dict[_IdentityRef, V] = {}
        self._token = object()  # this map's key inside an object's own __dict__

    def _ref(self, obj: Any, callback: bool = False) -> _IdentityRef | None:
        try:
            return _IdentityRef(obj, self._drop if callback else None)
        except TypeError:
            return None

    def _drop(self, ref: _IdentityRef) -> None:
        self._data.pop(ref, None)

    def _own(self, obj: Any, create: bool) -> dict[Any, V] | None:
        """The entries an object that cannot be weakly referenced keeps itself."""
        state = getattr(obj, "__dict__", None)
        if state is None:
            if not create:
                return None
            raise UnifyParamsError(
                f"cannot attach state to a {type(obj).__name__}: it can neither be weakly referenced nor hold "
                f"attributes. Received: {obj!r}. Give the class a __weakref__ slot, or wait until its "
                f"shapes are known (up.materialize) before initializing or tying it."
            )
        if create:
            return state.setdefault(_ATTRIBUTE, {})  # type: ignore[no-any-return]
        return state.get(_ATTRIBUTE)

    def get(self, obj: Any) -> V | None:
        """The value attached to ``obj``, or None."""
        ref = self._ref(obj)
        if ref is not None:
            return self._data.get(ref)
        own = self._own(obj, create=False)
        return None if own is None else own.get(self._token)

    def setdefault(self, obj: Any, factory: Callable[[], V]) -> V:
        """The value attached to ``obj``, attaching ``factory()`` first if there is none."""
        ref = self._ref(obj, callback=True)
        if ref is not None:
            if ref not in self._data:
                self._data[ref] = factory()
            return self._data[ref]
        own = self._own(obj, create=True)
        assert own is not None
        if self._token not in own:
            own[self._token] = factory()
        return own[self._token]

    def pop(self, obj: Any) -> V | None:
        """Detach and return the value attached to ``obj`` (None if there was none)."""
        ref = self._ref(obj)
        if ref is not None:
            return self._data.pop(ref, None)
        own = self._own(obj, create=False)
        return None if own is None else own.pop(self._token, None)

    def __len__(self) -> int:
        return len(self._data)


__all__ = ["ObjectMap"]
