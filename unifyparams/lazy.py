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

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .access import params
from .errors import NotMaterializedError, UnifyParamsError
from .param import format_shape
from .paramset import ParamSet
from .registry import adapter_for

#: Called with the model's ParamSet after shapes become known; returns the names it filled.
PendingApplier = Callable[[ParamSet], list[str]]
_appliers: list[PendingApplier] = []


def register_pending_applier(applier: PendingApplier) -> None:
    """Register a function that fills waiting parameters once their shapes are known."""
    if applier not in _appliers:
        _appliers.append(applier)


def apply_waiting(model: Any) -> list[str]:
    """Run every registered applier on ``model``'s parameters (waiting initializers), then make
    waiting ties (a tie's target then shares its source's storage and values); the names filled."""
    from .tying import apply_waiting_ties

    ps = params(model)
    done: list[str] = []
    for applier in _appliers:
        done += applier(ps)
    apply_waiting_ties(model)
    return done


@dataclass(frozen=True)
class Pending:
    """A parameter whose shape is not fully known yet."""

    name: str
    shape: tuple[int | None, ...]
    initializer: Any = None

    def __str__(self) -> str:
        waiting = f", waiting initializer {self.initializer!r}" if self.initializer is not None else ""
        return f"{self.name} {format_shape(self.shape)}{waiting}"


#: Returns the initializer waiting for a parameter, if any (set by the initialization module).
_waiting_lookup: list[Callable[[Any], Any]] = []


def register_waiting_lookup(lookup: Callable[[Any], Any]) -> None:
    if lookup not in _waiting_lookup:
        _waiting_lookup.append(lookup)


def is_materialized(model: Any) -> bool:
    """True when every parameter's shape is known (and the model has created all of them)."""
    adapter = adapter_for(model)
    return all(p.materialized for p in params(model).values()) and not adapter.has_unbuilt(model)


def pending(model: Any) -> dict[str, Pending]:
    """Parameters whose shape is still unknown, with the initializers waiting for them."""
    result = {}
    for name, p in params(model).items():
        if p.materialized:
            continue
        init = None
        for lookup in _waiting_lookup:
            init = lookup(p)
            if init is not None:
                break
        result[name] = Pending(name, p.shape, init)
    return result


def materialize(model: Any, *example_inputs: Any, input_shape: tuple[int, ...] | None = None) -> ParamSet:
    """Infer every shape by running ``model`` once (no training step); returns its parameters.

    Pass example inputs (NumPy arrays in the model's own input layout: channels-last for a
    channels-last Keras model) or ``input_shape`` (zeros of that shape, float32). A PyTorch model
    on the meta device infers its shapes there, holding no memory (see the parameter count and
    tree of a model too large for the machine); ``materialize(model)`` with no inputs then
    allocates it on the CPU with PyTorch's default initialization, then any waiting initializers. Initializers recorded with :func:`unifyparams.initialize` are applied afterwards.
    """
    adapter = adapter_for(model)
    if not example_inputs and input_shape is None:
        ps = params(model)
        if ps and all(p.size is not None for p in ps.values()) and not adapter.has_unbuilt(model):
            adapter.allocate(model)  # shapes known, memory not (PyTorch's meta device)
            apply_waiting(model)
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
    apply_waiting(model)
    ps = params(model)
    unknown = [n for n, p in ps.items() if p.size is None]
    if unknown:
        raise NotMaterializedError(
            f"after running the model, {len(unknown)} parameter(s) still have unknown shapes: {unknown[:5]}. "
            f"Part of the model was not reached by this input; run it on inputs that reach every block."
        )
    return ps
