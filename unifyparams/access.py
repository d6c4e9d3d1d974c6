"""Entry points for reading a model: :func:`params`, :func:`tree`, :func:`gradients`.

>>> import unifyparams as up
>>> ps = up.params(net)            # doctest: +SKIP
>>> ps["0.weight"].shape           # doctest: +SKIP
(256, 20)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .errors import UnifyParamsError
from .listing import remember, remembered
from .param import Param
from .paramset import ParamSet
from .registry import adapter_for


def params(model: Any) -> ParamSet:
    """Every parameter of ``model`` (a whole model or any sub-block) by canonical name.

    A :class:`ParamSet` or :class:`Param` passed in is returned as a ParamSet unchanged. Where the
    adapter can tell cheaply that the model's structure is unchanged since the last call, that
    call's ParamSet is returned again (:mod:`unifyparams.listing`); its values are read live.
    """
    if isinstance(model, ParamSet):
        return model
    if isinstance(model, Param):
        return ParamSet({model.name: model}, backend=model.backend, model=model.model)
    adapter = adapter_for(model)
    kept = remembered(model, adapter.name)
    if kept is not None:
        return kept
    storage_key = adapter.storage_key
    # Few objects per parameter: with tens of thousands of them, every container kept alive here
    # is one more for Python's cyclic garbage collector to trace, and enough of them trigger a
    # full collection of the whole heap (the model included) during the call.
    slots = list(adapter.walk(model))
    first: dict[Any, str] = {}  # storage key -> the first name with it
    ties: dict[Any, list[str]] = {}  # storage key -> every name with it, where there are several
    for slot in slots:
        key = storage_key(slot.native)
        name = first.setdefault(key, slot.name)
        if name is not slot.name:
            group = ties.get(key)
            if group is None:
                ties[key] = [name, slot.name]
            else:
                group.append(slot.name)
    del first
    built: dict[str, Param] = {}
    for slot in slots:
        name = slot.name
        if name in built:
            raise UnifyParamsError(
                f"adapter {adapter.name!r} produced the canonical name {name!r} twice "
                f"({built[name].native_name!r} and {slot.native_name!r}); this is an adapter bug"
            )
        built[name] = Param(slot, adapter, (), model)
    for group in ties.values():
        for name in group:
            built[name].shared_with = tuple(n for n in group if n != name)
    result = ParamSet(built, title=type(model).__name__, backend=adapter.name, model=model)
    remember(model, adapter.name, adapter.structure_check(model, slots), result)
    return result


def tree(model: Any) -> str:
    """A readable tree of blocks and parameters (shapes, dtypes, trainable, shared)."""
    return params(model).tree()


def gradients(
    model: Any,
    inputs: Any,
    *,
    loss: Callable[[Any], Any] | None = None,
) -> dict[str, np.ndarray]:
    """Run a forward and backward pass natively; return ``{name: gradient}`` (canonical layout).

    ``inputs`` is one NumPy array or a tuple of them; the default loss is the sum of the outputs.
    Afterwards ``p.grad()`` returns the same gradients, in every backend.
    """
    adapter = adapter_for(model)
    args: tuple[Any, ...] = tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)
    adapter.backward(model, args, loss)
    result: dict[str, np.ndarray] = {}
    for name, p in params(model).items():
        if p.trainable:
            g = p.grad()
            if g is not None:
                result[name] = g
    return result
