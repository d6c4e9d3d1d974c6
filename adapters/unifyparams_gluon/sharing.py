"""Tying and untying Gluon Parameters after a model is built.

Gluon 1.9.1 shares only at construction (``Dense(..., params=other.params)``): the block then
holds the very same Parameter object. :func:`share` does the same afterwards, by putting the
source Parameter where the block keeps the target: its ``_reg_params`` entry (what
``hybrid_forward`` receives and ``save_parameters`` walks), its attribute (what a plain ``Block``
reads) and its ``ParameterDict`` (what ``collect_params()`` and a ``Trainer`` see). Cached graphs
of hybridized blocks are dropped so the next call rebuilds them over the new Parameter. A Trainer
created before the change still holds the old Parameters: create it again.

>>> share(root, block=net[4], old=net[4].weight, new=net[2].weight)    # doctest: +SKIP
"""

from __future__ import annotations

import itertools
from typing import Any

from . import structure
from .running import numpy_mode

_counter = itertools.count()


def replace(block: Any, old: Any, new: Any) -> None:
    """Make ``block`` use Parameter ``new`` wherever it used ``old``."""
    attr = structure.attribute_of(block, old)
    block._reg_params[attr] = new
    object.__setattr__(block, attr, new)  # Block.__setattr__ refuses to override a Parameter
    # A new dict, not an edit: Gluon may be iterating the old one right now (a tie made as deferred
    # shapes become known runs inside its loop over the block's parameters).
    params = type(block._params._params)(
        (name, p) for name, p in block._params._params.items() if not (name == old.name and p is old)
    )
    params[new.name] = new
    block._params._params = params


def share(root: Any, block: Any, old: Any, new: Any) -> None:
    """Tie: ``block`` uses ``new`` (another block's Parameter) instead of ``old``."""
    replace(block, old, new)
    structure.clear_cached_graphs(root)


def unique_name(root: Any, block: Any, attr: str) -> str:
    """A Parameter name no Parameter under ``root`` uses: the block's own prefix and attribute
    (``dense2_weight``, the name the block would have had without sharing), made unique. The
    attribute stays the suffix: MXNet's default initializers dispatch on it (``_weight``, ``_bias``)."""
    taken = {p.name for b in structure.blocks(root) for p in b._reg_params.values()}
    name = f"{block.prefix}{attr}"
    while name in taken:
        name = f"{block.prefix}untied{next(_counter)}_{attr}"
    return name


def copy_of(root: Any, block: Any, old: Any) -> Any:
    """A new, initialized Parameter like ``old`` (grad_req, multipliers, init, contexts, array
    kind) holding a copy of its current values."""
    import mxnet as mx

    attr = structure.attribute_of(block, old)
    fresh = mx.gluon.Parameter(
        unique_name(root, block, attr),
        grad_req=old.grad_req,
        shape=old._shape,
        dtype=old.dtype,
        lr_mult=old.lr_mult,
        wd_mult=old.wd_mult,
        init=old.init,
        allow_deferred_init=old._allow_deferred_init,
        differentiable=old._differentiable,
        stype=old._stype,
        grad_stype=old._grad_stype,
    )
    current = old.list_data()
    with numpy_mode(isinstance(current[0], mx.np.ndarray)):  # same array kind as the model's
        fresh.initialize(init=mx.init.Zero(), ctx=old.list_ctx())
        with mx.autograd.pause():
            for target, source in zip(fresh.list_data(), current):
                target[:] = source
    return fresh


def unshare(root: Any, block: Any, old: Any) -> Any:
    """Untie: ``block`` gets its own copy of ``old``; returns the new Parameter."""
    fresh = copy_of(root, block, old)
    replace(block, old, fresh)
    structure.clear_cached_graphs(root)
    return fresh
