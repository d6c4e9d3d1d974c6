"""The same seed gives the same model in every framework, bit for bit, eager or lazy."""

from __future__ import annotations

import numpy as np
import pytest

import unifyparams as up
from unifyparams.conformance.worker import load_builders

BACKENDS = ["torch", "keras", "gluon"]
INITIALIZERS = [
    up.init.XavierUniform(), up.init.XavierNormal(), up.init.KaimingUniform(nonlinearity="relu"),
    up.init.Normal(0.0, 0.01), up.init.TruncatedNormal(0.0, 0.02, -0.04, 0.04), up.init.Orthogonal(),
    up.init.get("he_normal"),
]


def kit(backend: str):
    return load_builders(up.available_adapters()[backend])


@pytest.mark.parametrize("init", INITIALIZERS, ids=lambda i: type(i).__name__)
def test_same_seed_same_canonical_values_in_every_backend(init: up.init.Initializer) -> None:
    states = {}
    for backend in BACKENDS:
        net = kit(backend).mlp()
        up.initialize(net, init, seed=2024)
        states[backend] = up.params(net).numpy(copy=True)
    for name, value in states["torch"].items():
        for backend in BACKENDS[1:]:
            np.testing.assert_array_equal(states[backend][name], value, err_msg=f"{backend} {name}")


def test_lazy_models_get_the_eager_values_in_every_backend() -> None:
    eager = kit("torch").mlp()
    up.initialize(eager, up.init.XavierUniform(), seed=9)
    expected = up.params(eager).numpy(copy=True)
    x = np.random.default_rng(0).normal(size=(2, 20)).astype(np.float32)
    for backend in BACKENDS:
        k = kit(backend)
        net = k.lazy_mlp()
        up.initialize(net, up.init.XavierUniform(), seed=9)
        k.forward(net, x)  # the user's own first forward pass
        for name, value in expected.items():
            np.testing.assert_array_equal(up.params(net)[name].numpy(), value, err_msg=f"{backend} {name}")


def test_nested_and_custom_models_agree_across_backends() -> None:
    for build in ("nested_blocks", "custom_model"):
        states = []
        for backend in BACKENDS:
            net = getattr(kit(backend), build)()
            up.initialize(net, up.init.KaimingNormal(), seed=3)
            states.append(up.params(net).numpy(copy=True))
        for name in states[0]:
            assert all(np.array_equal(states[0][name], s[name]) for s in states[1:]), f"{build} {name}"
