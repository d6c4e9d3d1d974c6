"""Containers: :class:`Sequential`, :class:`ModuleList`, :class:`ModuleDict`.

>>> import numpynn as nn
>>> [name for name, _ in nn.ModuleDict({"a": nn.ReLU()}).children()]
['a']
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np

from .core import LayerError, Module


class Sequential(Module):
    """Layers applied in order; children are named ``"0"``, ``"1"``... The same layer object may
    appear twice (it then shares its variables). ``input_shape`` is the first layer's, unless
    given here."""

    def __init__(self, *layers: Module, input_shape: tuple[int, ...] | None = None):
        self.layers = list(layers)
        self._input_shape = None if input_shape is None else tuple(input_shape)

    @property
    def input_shape(self) -> tuple[int, ...] | None:  # type: ignore[override]
        if self._input_shape is not None:
            return self._input_shape
        return self.layers[0].input_shape if self.layers else None

    def children(self) -> Iterator[tuple[str, Module]]:
        for i, layer in enumerate(self.layers):
            yield str(i), layer

    def __getitem__(self, i: int) -> Module:
        return self.layers[i]

    def __len__(self) -> int:
        return len(self.layers)

    def _run(self, x: Any) -> list[Any]:
        """Every intermediate activation, input first; errors name the failing layer."""
        acts = [x]
        for i, layer in enumerate(self.layers):
            try:
                acts.append(layer(acts[-1]))
            except LayerError as exc:
                raise LayerError(f"{i}.{exc.path}", exc.cause) from exc.cause
            except Exception as exc:
                raise LayerError(str(i), exc) from exc
        return acts

    def forward(self, x: Any) -> Any:
        return self._run(x)[-1]

    def backward(self, x: Any, dy: np.ndarray) -> np.ndarray:
        acts = self._run(x)  # recomputed: layers keep no state between calls
        for layer, a in zip(reversed(self.layers), reversed(acts[:-1])):
            dy = layer.backward(a, dy)
        return dy


class ModuleList(Module):
    """A list of modules (children ``"0"``, ``"1"``...); iterate it in ``forward``."""

    def __init__(self, modules: Iterable[Module] = ()):
        self.items = list(modules)

    def children(self) -> Iterator[tuple[str, Module]]:
        for i, module in enumerate(self.items):
            yield str(i), module

    def __getitem__(self, i: int) -> Module:
        return self.items[i]

    def __iter__(self) -> Iterator[Module]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


class ModuleDict(Module):
    """Modules by name (children named by their keys, in insertion order)."""

    def __init__(self, modules: Mapping[str, Module] | None = None):
        self.items = dict(modules or {})

    def children(self) -> Iterator[tuple[str, Module]]:
        yield from self.items.items()

    def __getitem__(self, key: str) -> Module:
        return self.items[key]

    def __len__(self) -> int:
        return len(self.items)
