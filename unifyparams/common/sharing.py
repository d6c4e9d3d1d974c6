"""The refusal every adapter shares: a block reached under several names cannot be untied from itself.

>>> from unifyparams import Slot
>>> block = object()
>>> walk = [Slot("0.w", "0/w", "x", block=block, block_path=("0",)), Slot("1.w", "1/w", "x", block=block, block_path=("1",))]
>>> refuse_untie_of_reused(walk, walk[1], block_unit, "layer")
Traceback (most recent call last):
unifyparams.errors.TieError: cannot untie '1.w': it is shared because its layer is one object reached also as ['0'], ...
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from typing import TYPE_CHECKING

from ..errors import TieError

if TYPE_CHECKING:
    from ..adapter import Slot


def refuse_untie_of_reused(slots: Iterable[Slot], slot: Slot, unit: Callable[[Slot], Hashable], noun: str) -> None:
    """Raise :class:`TieError` if every other name reaching ``slot``'s parameter is the same
    ``unit`` (what one untie replaces: a block, or a block's attribute): one object used under
    several names has one set of parameters, and untying cannot separate it from itself.

    ``slots`` is the adapter's walk of the model, ``noun`` what the framework calls a block.
    """
    here = unit(slot)
    aliases = [s for s in slots if s.native is slot.native and s.name != slot.name]
    if not aliases or any(unit(s) != here for s in aliases):
        return
    paths = [".".join(s.block_path) or "<model>" for s in aliases]
    raise TieError(
        f"cannot untie {slot.name!r}: it is shared because its {noun} is one object reached also as {paths}, "
        f"and one {noun} object has one set of parameters. Give that position its own {noun} "
        f"(e.g. copy.deepcopy of it) instead."
    )


def block_unit(slot: Slot) -> Hashable:
    """The default unit of an untie: the block that owns the parameter (by identity)."""
    return id(slot.block)


__all__ = ["block_unit", "refuse_untie_of_reused"]
