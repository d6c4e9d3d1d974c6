"""A minimal NumPy "framework" and its adapter, used to test the core without any real framework.

The adapter implements only the seven primitives of :class:`unifyparams.Adapter`: it cannot tie,
materialize or compute gradients (see ``NumpyAdapter.missing_capabilities``).

Its Dense layer stores its weight transposed (in, out), like Keras, so layout conversion is
exercised too.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from unifyparams import Adapter, Role, Slot
from unifyparams.layouts import IDENTITY, Transpose


class Variable:
    def __init__(self, value: np.ndarray, trainable: bool = True):
        self.value = value
        self.trainable = trainable
        self.grad: np.ndarray | None = None


class Module:
    def children(self) -> Iterator[tuple[str, Module]]:
        for key, value in vars(self).items():
            if isinstance(value, Module):
                yield key, value

    def variables(self) -> Iterator[tuple[str, Variable]]:
        for key, value in vars(self).items():
            if isinstance(value, Variable):
                yield key, value


class Dense(Module):
    def __init__(self, n_in: int, n_out: int, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.kernel = Variable(rng.normal(size=(n_in, n_out)).astype(np.float32))
        self.bias = Variable(np.zeros(n_out, dtype=np.float32))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return x @ self.kernel.value + self.bias.value


class Norm(Module):
    def __init__(self, n: int):
        self.gamma = Variable(np.ones(n, dtype=np.float32))
        self.beta = Variable(np.zeros(n, dtype=np.float32))
        self.moving_mean = Variable(np.zeros(n, dtype=np.float32), trainable=False)
        self.steps = Variable(np.zeros((), dtype=np.int64), trainable=False)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return (x - self.moving_mean.value) * self.gamma.value + self.beta.value


class Sequential(Module):
    def __init__(self, *layers: Module):
        self.layers = list(layers)

    def children(self) -> Iterator[tuple[str, Module]]:
        for i, layer in enumerate(self.layers):
            yield str(i), layer

    def __call__(self, x: np.ndarray) -> np.ndarray:
        for layer in self.layers:
            x = layer(x)  # type: ignore[operator]
        return x


LEAVES = {"kernel": ("weight", Role.WEIGHT), "bias": ("bias", Role.BIAS), "gamma": ("weight", Role.SCALE),
          "beta": ("bias", Role.SHIFT), "moving_mean": ("running_mean", Role.RUNNING_MEAN),
          "steps": ("steps", Role.OTHER)}


class NumpyAdapter(Adapter):
    name = "numpy-test"
    framework_module = ""
    builders = ""

    fail_writes_after: int | None = None  # simulate a framework refusing a write

    def owns(self, obj: Any) -> bool:
        return isinstance(obj, Module)

    def walk(self, root: Any) -> Iterator[Slot]:
        yield from self._walk(root, (), ())

    def _walk(self, block: Module, path: tuple[str, ...], kinds: tuple[str, ...]) -> Iterator[Slot]:
        for attr, var in block.variables():
            leaf, role = LEAVES[attr]
            layout = Transpose((1, 0)) if attr == "kernel" else IDENTITY
            yield Slot(".".join(path + (leaf,)), "/".join(path + (attr,)), var, role, layout, path, kinds, block)
        for name, child in block.children():
            yield from self._walk(child, path + (name,), kinds + (type(child).__name__,))

    def native_shape(self, native: Any) -> tuple[int | None, ...]:
        return tuple(native.value.shape)

    def dtype(self, native: Any) -> np.dtype:
        return native.value.dtype

    def trainable(self, native: Any) -> bool:
        return native.trainable

    def read(self, native: Any) -> np.ndarray:
        return native.value.view()  # a new array object over the same memory, as the protocol asks

    def write(self, native: Any, value: np.ndarray) -> None:
        if self.fail_writes_after is not None:
            if self.fail_writes_after <= 0:
                self.fail_writes_after = None  # fail once; the restore must then succeed
                raise RuntimeError("simulated framework failure")
            self.fail_writes_after -= 1
        native.value[...] = value

    def grad(self, native: Any) -> np.ndarray | None:
        return native.grad
