"""Variables, modules and backprop: the whole engine of numpynn.

A :class:`Module` owns :class:`Variable` attributes and child modules (attributes too, in the
order they were set). ``forward`` computes; ``backward(x, dy)`` takes the input the module was
called with and the gradient of its output, accumulates into its variables' ``grad`` and returns
the gradient of its input (only the layers an MLP needs implement it). :func:`observe` sees
every module call of a forward pass (the module, its inputs and its output), for tools that
follow a model's dataflow.

>>> import numpy as np, numpynn as nn
>>> net = nn.Sequential(nn.Dense(3, in_features=2), nn.ReLU())
>>> nn.backward(net, np.ones((4, 2), np.float32)).shape
(4, 3)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

#: numpynn's default random generator (layers draw their initial values from it).
rng = np.random.default_rng(0)


class LayerError(RuntimeError):
    """A layer failed; ``path`` is its position under the model that was called (``"0.1"``)."""

    def __init__(self, path: str, cause: BaseException):
        super().__init__(f"in layer {path!r}: {type(cause).__name__}: {cause}")
        self.path = path
        self.cause = cause


class Variable:
    """An array owned by a layer. ``value`` is ``None`` while a lazy layer waits for its input
    size; ``shape`` then holds ``None`` for the unknown dimensions."""

    def __init__(self, value: Any = None, *, shape: tuple[int | None, ...] | None = None,
                 trainable: bool = True, dtype: Any = np.float32):
        self.value: np.ndarray | None = None if value is None else np.array(value, dtype=dtype)
        self._shape = tuple(shape) if shape is not None else None
        self.dtype = np.dtype(dtype)
        self.trainable = trainable
        self.grad: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int | None, ...]:
        return tuple(self.value.shape) if self.value is not None else tuple(self._shape or ())

    def assign(self, value: Any) -> None:
        """Overwrite in place; a variable without values takes the value's shape (known
        dimensions must agree)."""
        value = np.asarray(value, dtype=self.dtype)
        if self.value is None:
            known = self._shape or ()
            if len(known) != value.ndim or any(k is not None and k != v for k, v in zip(known, value.shape)):
                raise ValueError(f"cannot assign shape {value.shape} to a variable of shape {known}")
            self.value = value.copy()
        else:
            if value.shape != self.value.shape:
                raise ValueError(f"cannot assign shape {value.shape} to a variable of shape {self.value.shape}")
            self.value[...] = value

    def accumulate(self, g: np.ndarray) -> None:
        if self.trainable:
            self.grad = g.astype(self.dtype) if self.grad is None else self.grad + g

    def __repr__(self) -> str:
        return f"Variable(shape={self.shape}, dtype={self.dtype}, trainable={self.trainable})"


#: Functions called after every module call, ``fn(module, inputs, output)`` (see :func:`observe`).
_observers: list[Callable[[Module, tuple[Any, ...], Any], None]] = []


@contextmanager
def observe(fn: Callable[[Module, tuple[Any, ...], Any], None]) -> Iterator[None]:
    """Call ``fn(module, inputs, output)`` after each module call (innermost first) while active."""
    _observers.append(fn)
    try:
        yield
    finally:
        _observers.remove(fn)


class Module:
    """Base class of layers and models; subclass it and implement ``forward``.

    ``input_shape`` is the shape of one example (channels-last, without the batch axis) when the
    module knows it: a :class:`~numpynn.Conv` given ``input_size``, a Sequential whose first layer
    knows it, or a model that sets it in ``__init__``; ``None`` otherwise.
    """

    input_shape: tuple[int, ...] | None = None

    def __call__(self, *inputs: Any) -> Any:
        output = self.forward(*inputs)
        for fn in list(_observers):
            fn(self, inputs, output)
        return output

    def forward(self, *inputs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not implement forward")

    def backward(self, x: Any, dy: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"numpynn has no backward pass for {type(self).__name__}")

    def variables(self) -> Iterator[tuple[str, Variable]]:
        """This module's own variables, ``(attribute, Variable)``."""
        for key, value in vars(self).items():
            if isinstance(value, Variable):
                yield key, value

    def children(self) -> Iterator[tuple[str, Module]]:
        """Direct sub-modules, ``(name, Module)``."""
        for key, value in vars(self).items():
            if isinstance(value, Module):
                yield key, value

    def modules(self) -> Iterator[Module]:
        yield self
        for _, child in self.children():
            yield from child.modules()

    # --- lazy shapes -------------------------------------------------------------------------
    @property
    def built(self) -> bool:
        return all(v.value is not None for _, v in self.variables())

    def add_build_callback(self, fn: Callable[[], None]) -> None:
        """Call ``fn()`` once, right after this layer creates its values and before it uses them."""
        self.__dict__.setdefault("_build_callbacks", []).append(fn)

    def _run_build_callbacks(self) -> None:
        for fn in self.__dict__.pop("_build_callbacks", []):
            fn()


def unique_variables(model: Module) -> list[Variable]:
    seen: dict[int, Variable] = {}
    for module in model.modules():
        for _, var in module.variables():
            seen.setdefault(id(var), var)
    return list(seen.values())


def backward(model: Module, x: Any) -> np.ndarray:
    """Forward, then backward of ``sum(model(x))``: gradients land in each variable's ``grad``
    (cleared first; a variable used twice gets the sum). Returns the output."""
    for var in unique_variables(model):
        var.grad = None
    y = model(x)
    model.backward(x, np.ones_like(y))
    return y
