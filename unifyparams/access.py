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
from .param import Param
from .paramset import ParamSet
from .registry import adapter_for


def params(model: Any) -> ParamSet:
    """Every parameter of ``model`` (a whole model or any sub-block) by canonical name.

    A :class:`ParamSet` or :class:`Param` passed in is returned as a ParamSet unchanged.
    """
    if isinstance(model, ParamSet):
        return model
    if isinstance(model, Param):
        return ParamSet({model.name: model}, backend=model.backend, model=model.model)
    adapter = adapter_for(model)
    storage_key = adapter.storage_key
    slots = [(slot, storage_key(slot.native)) for slot in adapter.walk(model)]
    groups: dict[Any, list[str]] = {}
    for slot, key in slots:
        groups.setdefault(key, []).append(slot.name)
    built: dict[str, Param] = {}
    for slot, key in slots:
        name = slot.name
        if name in built:
            raise UnifyParamsError(
                f"adapter {adapter.name!r} produced the canonical name {name!r} twice "
                f"({built[name].native_name!r} and {slot.native_name!r}); this is an adapter bug"
            )
        group = groups[key]
        built[name] = Param(slot, adapter, tuple(n for n in group if n != name) if len(group) > 1 else (), model)
    return ParamSet(built, title=type(model).__name__, backend=adapter.name, model=model)


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
