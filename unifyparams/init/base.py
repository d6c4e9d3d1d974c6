"""The initializer protocol: ``__call__(shape, rng)``, optionally told which parameter it fills.

A custom initializer subclasses :class:`Initializer` (or is any callable with that signature)
and returns an array of the canonical ``shape``; ``rng`` is a ``numpy.random.Generator`` seeded
from ``(seed, stream key)`` (the canonical name, positions renumbered among the layers that
own parameters: :mod:`unifyparams.init.keys`). Accepting a ``param`` keyword gives it a
:class:`ParamInfo`::

    class Verbose(up.init.Initializer):
        def __call__(self, shape, rng, param=None):
            print("Init", param.name, shape)
            w = rng.uniform(-10, 10, size=shape)
            return w * (np.abs(w) >= 5)
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import streams


@dataclass(frozen=True)
class ParamInfo:
    """What an initializer may know about the parameter it fills.

    ``name`` is the canonical name; ``stream`` the key its random values are drawn from (see
    :mod:`unifyparams.init.keys`: the name with positions renumbered among the layers that own
    parameters), the name itself when not given.
    """

    name: str
    role: str
    shape: tuple[int, ...]
    dtype: np.dtype
    backend: str = ""
    stream: str = ""

    def __post_init__(self) -> None:
        if not self.stream:
            object.__setattr__(self, "stream", self.name)


#: Whether a class's ``__call__`` takes ``param``: read once per class with inspect.signature.
_WANTS_PARAM: dict[type, bool] = {}


def _wants_param(fn: Callable[..., Any]) -> bool:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return False
    return "param" in sig.parameters or any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())


class Initializer:
    """Base class: implement ``__call__(self, shape, rng)`` returning an array of ``shape``."""

    #: True for the catalog's own initializers, whose output needs no checking: they are streamed
    #: one parameter at a time. A user's output is checked for every parameter before any write.
    builtin: bool = False

    def streams_into(self) -> bool:
        """True when :meth:`fill` with ``out`` writes every value into ``out`` by the library's
        seeded streams alone, in cache-sized blocks (no array the size of the value, no call that
        can refuse part way): an atomic ``up.initialize`` then fills such parameters' memory last,
        without snapshots (:class:`unifyparams.memory_write.Fill`). False (the default) for anything
        else: orthogonal matrices, custom initializers."""
        return False

    def __call__(self, shape: Sequence[int], rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError  # abstract: subclasses return an array of ``shape``

    def check(self, shape: Sequence[int | None], dtype: np.dtype, name: str) -> None:
        """Refuse a parameter this initializer cannot fill, before any value is generated: raise
        :class:`~unifyparams.InitializerError` naming ``name``. ``shape`` is canonical and may
        hold ``None`` for dimensions not known yet. The default accepts everything (a custom
        initializer's output is checked after it runs)."""

    def fill(self, shape: Sequence[int], info: ParamInfo, seed: int, out: np.ndarray | None = None) -> np.ndarray:
        """Values for one parameter from ``(seed, name)``, written into ``out`` when given and the
        initializer can (built-ins generate straight into a parameter's memory); returns the
        values. Built-ins override this; the default calls ``__call__`` with the parameter's
        generator (passing ``param=info`` if ``__call__`` accepts it) and ignores ``out``."""
        rng = streams.generator(seed, info.stream)
        wants = _WANTS_PARAM.get(type(self))
        if wants is None:
            wants = _WANTS_PARAM[type(self)] = _wants_param(self.__call__)
        if wants:
            return np.asarray(self(shape, rng, param=info))  # type: ignore[call-arg]
        return np.asarray(self(shape, rng))

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments, so that ``type(init).from_config(init.get_config())`` is equal."""
        try:
            names = [
                n for n, p in inspect.signature(type(self).__init__).parameters.items()
                if n != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
            ]
        except (TypeError, ValueError):
            names = []
        return {n: getattr(self, n) for n in names if hasattr(self, n)}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Initializer:
        """An initializer from :meth:`get_config`'s dictionary."""
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class CallableInitializer(Initializer):
    """Wraps a plain function ``fn(shape, rng)`` (or ``fn(shape, rng, param=...)``)."""

    def __init__(self, fn: Callable[..., Any]):
        self.fn = fn
        self._wants_param = _wants_param(fn)

    def fill(self, shape: Sequence[int], info: ParamInfo, seed: int, out: np.ndarray | None = None) -> np.ndarray:
        rng = streams.generator(seed, info.stream)
        return np.asarray(self.fn(shape, rng, param=info) if self._wants_param else self.fn(shape, rng))

    def __call__(self, shape: Sequence[int], rng: np.random.Generator) -> np.ndarray:
        return np.asarray(self.fn(shape, rng))

    def __repr__(self) -> str:
        return f"CallableInitializer({getattr(self.fn, '__qualname__', self.fn)!r})"
