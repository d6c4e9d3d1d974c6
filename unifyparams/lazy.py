"""Parameters whose shape waits for data: :func:`is_materialized`, :func:`materialize`, :func:`pending`.

>>> net = torch.nn.Sequential(torch.nn.LazyLinear(256), torch.nn.ReLU(), torch.nn.LazyLinear(10))  # doctest: +SKIP
>>> up.params(net)["0.weight"].shape                  # doctest: +SKIP
(256, None)
>>> up.initialize(net, up.init.XavierUniform(), seed=0)   # recorded, applied when shapes are known  # doctest: +SKIP
>>> up.materialize(net, input_shape=(2, 20))          # doctest: +SKIP
>>> up.params(net)["0.weight"].shape                  # doctest: +SKIP
(256, 20)

Initializers recorded for a lazy parameter are applied right after its shape becomes known,
whether :func:`materialize` or the user's own first forward pass triggers it (through the
adapter's :meth:`~unifyparams.adapter.Adapter.on_materialized` hook), with the same seeded values
an eager model of the same shapes gets.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from .access import params
from .errors import NotMaterializedError, UnifyParamsError
from .param import format_shape
from .paramset import ParamSet
from .pending_work import initializer_for, settle
from .registry import adapter_for


def apply_waiting(model: Any) -> list[str]:
    """Deprecated: :func:`unifyparams.pending_work.settle` (pending initializers, then pending ties)."""
    warnings.warn("apply_waiting is deprecated; use unifyparams.pending_work.settle", DeprecationWarning, stacklevel=2)
    return settle(model)


@dataclass(frozen=True)
class Pending:
    """A parameter whose shape is not fully known yet, with the initializer pending for it.

    >>> str(Pending("0.weight", (256, None)))
    '0.weight (256, ?)'
    """

    name: str
    shape: tuple[int | None, ...]
    initializer: Any = None

    def __str__(self) -> str:
        init = f", pending initializer {self.initializer!r}" if self.initializer is not None else ""
        return f"{self.name} {format_shape(self.shape)}{init}"


def is_materialized(model: Any) -> bool:
    """True when every parameter's shape is known (and the model has created all of them)."""
    adapter = adapter_for(model)
    return all(p.materialized for p in params(model).values()) and not adapter.has_unbuilt(model)


def pending(model: Any) -> dict[str, Pending]:
    """Parameters whose shape is still unknown, with the initializers pending for them."""
    result = {}
    for name, p in params(model).items():
        if p.materialized:
            continue
        entry = initializer_for(p)
        result[name] = Pending(name, p.shape, entry.initializer if entry is not None else None)
    return result


def materialize(model: Any, *example_inputs: Any, input_shape: tuple[int, ...] | None = None) -> ParamSet:
    """Infer every shape by running ``model`` once (no training step); returns its parameters.

    Pass example inputs (NumPy arrays in the model's own input layout: channels-last for a
    channels-last Keras model) or ``input_shape`` (zeros of that shape, float32). A PyTorch model
    on the meta device infers its shapes there, holding no memory (see the parameter count and
    tree of a model too large for the machine); ``materialize(model)`` with no inputs then
    allocates it on the CPU with PyTorch's default initialization. Initializers recorded with
    :func:`unifyparams.initialize`, then ties recorded with :func:`unifyparams.tie`, are applied
    afterwards (:func:`unifyparams.pending_work.settle`).
    """
    adapter = adapter_for(model)
    if not example_inputs and input_shape is None:
        ps = params(model)
        if ps and all(p.size is not None for p in ps.values()) and not adapter.has_unbuilt(model):
            adapter.allocate(model)  # shapes known, memory not (PyTorch's meta device)
            settle(model, final=True)  # pending initializers, then pending ties
            return params(model)
        raise UnifyParamsError(
            "materialize needs example inputs or input_shape while shapes are unknown; received neither. "
            "Call up.materialize(model, x) or up.materialize(model, input_shape=(2, 20))."
        )
    if example_inputs:
        inputs = tuple(np.asarray(x) for x in example_inputs)
    else:
        inputs = (np.zeros(tuple(input_shape or ()), dtype=np.float32),)
    try:
        adapter.materialize(model, inputs)
    except NotMaterializedError:
        raise
    except Exception as exc:
        shape = [np.shape(x) for x in example_inputs] if example_inputs else input_shape
        raise NotMaterializedError(
            f"running {type(model).__name__} on inputs of shape {shape} to infer parameter shapes failed: "
            f"{exc}. Check the input's rank and feature size against the model's first layer."
        ) from exc
    settle(model, final=True)  # pending initializers, then pending ties
    ps = params(model)
    unknown = [n for n, p in ps.items() if p.size is None]
    if unknown:
        raise NotMaterializedError(
            f"after running the model, {len(unknown)} parameter(s) still have unknown shapes: {unknown[:5]}. "
            f"Part of the model was not reached by this input; run it on inputs that reach every block."
        )
    return ps
