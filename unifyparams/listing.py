"""A model's listing, kept between calls: ``up.params(model)`` walks a model once and returns the
same :class:`~unifyparams.paramset.ParamSet` again while its adapter sees no structural change.

Walking builds a :class:`~unifyparams.adapter.Slot` and a :class:`~unifyparams.param.Param` per
parameter and decides names, roles, layouts and ties: several microseconds each, several times the
framework's own listing. What a walk decides changes only when the model's structure does (a layer
added, replaced or removed, a parameter re-registered, a storage swapped); shapes, dtypes, values and
gradients are read live on every access. So an adapter may offer
:meth:`~unifyparams.capabilities.Listing.structure_check`: a check, a fraction of a walk's cost,
that answers whether a walk now would yield the same slots. While it says so, the listing is reused.

The listing lives on the model object itself (an attribute the framework never sees), so it goes
when the model goes: a cache beside the model would keep every model alive, since a listing holds
the model's parameters. A pickled or copied model carries none (it unpickles as an empty ``dict``,
with no unifyparams needed to load it).

>>> class Model: ...
>>> m = Model()
>>> remembered(m, "numpy") is None
True
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .paramset import ParamSet

#: The attribute a listing is kept under on the model.
ATTRIBUTE = "_unifyparams_listing"


class Listing:
    """One model's ParamSet, with its adapter's check that the model still has that structure."""

    __slots__ = ("backend", "unchanged", "params")

    def __init__(self, backend: str, unchanged: Callable[[], bool], params: ParamSet):
        self.backend = backend
        self.unchanged = unchanged
        self.params = params

    def __reduce__(self) -> tuple[Any, tuple[()]]:
        """Pickled or deep-copied (with its model): an empty dict, which :func:`remembered` ignores."""
        return (dict, ())

    def __repr__(self) -> str:
        return f"<unifyparams listing of {len(self.params)} parameters>"


def remembered(model: Any, backend: str) -> ParamSet | None:
    """The ParamSet kept on ``model`` by ``backend``'s adapter, if its structure is unchanged since."""
    listing = getattr(model, "__dict__", {}).get(ATTRIBUTE)
    # a shallow copy of the model shares its attributes: the listing is only its own model's
    if type(listing) is not Listing or listing.backend != backend or listing.params.model is not model:
        return None
    if listing.unchanged():
        return listing.params
    forget(model)
    return None


def remember(model: Any, backend: str, unchanged: Callable[[], bool] | None, params: ParamSet) -> None:
    """Keep ``params`` on ``model`` while ``unchanged()`` holds; ``None`` (not offered): keep nothing.

    Set with ``object.__setattr__``, past the framework's attribute tracking; a model that takes no
    attributes (``__slots__``) keeps nothing."""
    if unchanged is None:
        return
    try:
        object.__setattr__(model, ATTRIBUTE, Listing(backend, unchanged, params))
    except (AttributeError, TypeError):
        pass


def forget(model: Any) -> None:
    """Drop the listing kept on ``model`` (the next :func:`~unifyparams.params` walks it again)."""
    attrs = getattr(model, "__dict__", None)
    if isinstance(attrs, dict):
        attrs.pop(ATTRIBUTE, None)
