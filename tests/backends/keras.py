"""The Keras 3 backend's helpers (surface: tests/backends/__init__.py), on whatever backend
``KERAS_BACKEND`` selects."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import pytest

import unifyparams as up
from unifyparams.conformance import load_builders

NAME = "keras"
PACKAGE = "unifyparams_keras"
models = load_builders(NAME)  #: the conformance builders declared for this backend
KINDS = {"sequential": "Sequential", "dense": "Dense", "list": "list", "dict": "dict"}
#: The Keras backend in use ("tensorflow" or "torch").
BACKEND = keras.backend.backend()
L = keras.layers
#: The pytest marks of a file that runs only on Keras' JAX backend: skipped on the *backend* Keras
#: reports (the TensorFlow and torch passes collect it too), never on an import failure.
JAX_ONLY = [
    pytest.mark.keras,
    pytest.mark.skipif(
        BACKEND != "jax", reason=f"Keras runs on {BACKEND!r} here; these tests run in the .venv-jax pass of .ci/test",
    ),
]


def adapter() -> Any:
    return up.get_adapter(NAME)


def tensor(array: np.ndarray) -> Any:
    return keras.ops.convert_to_tensor(np.asarray(array))


def total(x: Any) -> Any:
    return keras.ops.sum(x)


def native_numpy(p: up.Param) -> np.ndarray:
    return p.layout.to_canonical(np.asarray(keras.ops.convert_to_numpy(p.native)))


def assert_native_listing(model: Any, ps: up.ParamSet) -> None:
    """Every parameter is one of the model's own variables, under its Keras path."""
    variables = {id(v): v for v in model.weights}
    for name, p in ps.items():
        assert id(p.native) in variables, name
        assert p.native_name == p.native.path, name
        assert p.backend == "keras"
        np.testing.assert_array_equal(native_numpy(p), p.numpy())
    assert {id(p.native) for p in ps.values()} == set(variables)


def reused_layer() -> tuple[Any, str, str]:
    return models.shared_mlp(shared=True), "4.weight", "one Keras layer"


# --- Keras-specific model helpers ------------------------------------------------------------------
def seq(input_shape: tuple[int | None, ...], *layers: Any, dtype: str = "float32") -> Any:
    return keras.Sequential([keras.Input(input_shape, dtype=dtype), *layers])


def run(model: Any, x: np.ndarray) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(model(x, training=False)), dtype=np.float64)


def leaves(state: dict[str, np.ndarray], prefix: str = "0.") -> dict[str, np.ndarray]:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def shared_mlp(shared: bool) -> Any:
    s = L.Dense(8)
    other = s if shared else L.Dense(8)
    return seq((20,), L.Dense(8), L.Activation("relu"), s, L.Activation("relu"), other, L.Activation("relu"), L.Dense(1))


def snapshot(ps: up.ParamSet) -> dict[str, np.ndarray]:
    return ps.numpy(copy=True)


def assert_unchanged(ps: up.ParamSet, before: dict[str, np.ndarray]) -> None:
    for name, value in before.items():
        assert np.array_equal(ps[name].numpy(), value), f"{name} changed"


def subclassed_cnn(*, built: bool = True) -> Any:
    """A subclassed Keras CNN (conv -> flatten -> dense ``fc``): no functional graph, so what ``fc``
    reads cannot be established from the model; built on an (N, 8, 8, 3) input unless ``built=False``."""

    class Sub(keras.Model):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.conv = keras.layers.Conv2D(4, 3)
            self.flat = keras.layers.Flatten()
            self.fc = keras.layers.Dense(5)

        def call(self, x: Any) -> Any:
            return self.fc(self.flat(self.conv(x)))

    net = Sub()
    if built:
        net(np.zeros((1, 8, 8, 3), np.float32))
    return net
