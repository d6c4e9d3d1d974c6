"""The same seed gives the same model in every framework, bit for bit, eager or lazy.

Every test builds the same architecture with each backend's conformance builders and compares the
canonical values exactly. Keras stores dense and conv kernels transposed and recurrent gates in
another order, so these also prove that values are generated on the canonical layout.
"""

from __future__ import annotations

import numpy as np
import pytest

import unifyparams as up
from unifyparams.conformance.worker import load_builders

BACKENDS = ["torch", "keras", "gluon"]
INITIALIZERS = [
    up.init.XavierUniform(), up.init.XavierNormal(), up.init.KaimingUniform(nonlinearity="relu"),
    up.init.Normal(0.0, 0.01), up.init.TruncatedNormal(0.0, 0.02, -0.04, 0.04), up.init.Orthogonal(),
    up.init.get("he_normal"), up.init.MXNetXavier("gaussian", "in", 2.0), up.init.Uniform(-1.0, 3.0),
]


def kit(backend: str):
    return load_builders(up.available_adapters()[backend])


def states(build, init, **kwargs) -> dict[str, dict[str, np.ndarray]]:
    """``{backend: canonical state}`` after ``up.initialize(build(kit), init, **kwargs)``."""
    result = {}
    for backend in BACKENDS:
        net = build(kit(backend))
        up.initialize(net, init, **kwargs)
        result[backend] = up.params(net).numpy(copy=True)
    return result


def assert_identical(by_backend: dict[str, dict[str, np.ndarray]], names: list[str] | None = None) -> None:
    reference = by_backend["torch"]
    for name in names if names is not None else list(reference):
        for backend, state in by_backend.items():
            assert state[name].dtype == reference[name].dtype, f"{backend} {name}"
            np.testing.assert_array_equal(state[name], reference[name], err_msg=f"{backend} {name}")


@pytest.mark.parametrize("init", INITIALIZERS, ids=lambda i: type(i).__name__)
def test_same_seed_same_canonical_values_in_every_backend(init: up.init.Initializer) -> None:
    by_backend = states(lambda k: k.mlp(), init, seed=2024)
    assert_identical(by_backend)
    assert not np.array_equal(by_backend["torch"]["0.weight"], 0)


@pytest.mark.parametrize(
    "kind, spec",
    [
        ("conv2d", {"in_channels": 3, "out_channels": 8, "kernel_size": 3}),
        ("conv1d", {"in_channels": 2, "out_channels": 4, "kernel_size": 5}),
        ("embedding", {"num_embeddings": 11, "embedding_dim": 6}),
        ("lstm", {"input_size": 4, "hidden_size": 3}),
        ("gru", {"input_size": 4, "hidden_size": 3}),
        ("batchnorm", {"num_features": 5}),
        ("layernorm", {"num_features": 5}),
    ],
)
def test_layers_with_other_native_layouts_agree(kind: str, spec: dict[str, int]) -> None:
    """Kernels Keras stores transposed (conv), or transposed with reordered gates (GRU)."""
    by_backend = states(lambda k: k.single_layer(kind, **spec), up.init.Normal(0.0, 0.5), seed=31)
    common = sorted(set.intersection(*(set(s) for s in by_backend.values())))  # Keras has one recurrent bias
    assert any(n.endswith("weight") or "weight_" in n for n in common), common
    assert_identical(by_backend, common)
    weights = states(lambda k: k.single_layer(kind, **spec), up.init.Uniform(-2, 2), select="0.weight*", seed=32)
    assert_identical(weights, [n for n in common if n.startswith("0.weight")])


def test_a_subset_gets_the_values_of_the_full_init_in_every_backend() -> None:
    full = states(lambda k: k.mlp(), up.init.XavierUniform(), seed=5)
    part = states(lambda k: k.mlp(), up.init.XavierUniform(), select="2.weight", seed=5)
    for backend in BACKENDS:
        np.testing.assert_array_equal(part[backend]["2.weight"], full["torch"]["2.weight"], err_msg=backend)


def test_up_seed_gives_the_same_unseeded_values_in_every_backend() -> None:
    values = []
    for backend in BACKENDS:
        net = kit(backend).mlp()
        up.seed(77)
        up.initialize(net, up.init.Normal(0.0, 0.1))
        values.append(up.params(net)["0.weight"].numpy(copy=True))
    assert all(np.array_equal(values[0], v) for v in values[1:])


def test_lazy_models_get_the_eager_values_in_every_backend() -> None:
    eager = kit("torch").mlp()
    up.initialize(eager, up.init.XavierUniform(), seed=9)
    expected = up.params(eager).numpy(copy=True)
    x = np.random.default_rng(0).normal(size=(2, 20)).astype(np.float32)
    for backend in BACKENDS:
        k = kit(backend)
        net = k.lazy_mlp()
        names = up.initialize(net, up.init.XavierUniform(), seed=9)
        assert "0.weight" in names.pending, (backend, names, names.pending)
        k.forward(net, x)  # the user's own first forward pass
        for name, value in expected.items():
            np.testing.assert_array_equal(up.params(net)[name].numpy(), value, err_msg=f"{backend} {name}")


def test_lazy_parameters_chosen_by_a_paramset_are_filled_by_the_first_forward() -> None:
    x = np.random.default_rng(1).normal(size=(2, 20)).astype(np.float32)
    for backend in BACKENDS:
        k = kit(backend)
        net = k.lazy_mlp()
        up.initialize(up.params(net).select("0.*"), up.init.Constant(0.5))
        k.forward(net, x)
        ps = up.params(net)
        assert np.all(ps["0.weight"].numpy() == 0.5) and np.all(ps["0.bias"].numpy() == 0.5), backend


def test_nested_and_custom_models_agree_across_backends() -> None:
    for build in ("nested_blocks", "custom_model"):
        by_backend = states(lambda k, build=build: getattr(k, build)(), up.init.KaimingNormal(), seed=3)
        assert_identical(by_backend)


def test_tied_parameters_are_initialized_once_and_stay_tied() -> None:
    for backend in BACKENDS:
        net = kit(backend).shared_mlp()
        names = up.initialize(net, up.init.XavierUniform(), seed=4)
        ps = up.params(net)
        assert {"2.weight", "4.weight"} <= set(names), (backend, names)
        np.testing.assert_array_equal(ps["2.weight"].numpy(), ps["4.weight"].numpy(), err_msg=backend)
        assert ps["2.weight"].storage_key == ps["4.weight"].storage_key, backend


# --- the catalog means what each framework's own initializer means --------------------------------

OUT, IN = 256, 192  # a dense weight, canonical (out, in); Keras's kernel is (in, out)


def native_values(backend: str, spec: tuple) -> np.ndarray:
    """Values of a framework's own initializer for the dense weight, in canonical layout."""
    kind, *args = spec
    if backend == "torch":
        import torch

        t = torch.empty(OUT, IN)
        getattr(torch.nn.init, kind)(t, *args[:1], **(args[1] if len(args) > 1 else {}))
        return t.numpy().astype(np.float64)
    if backend == "keras":
        import keras

        init = getattr(keras.initializers, kind)(*args, seed=1)
        return np.asarray(keras.ops.convert_to_numpy(init((IN, OUT)))).T.astype(np.float64)
    from unifyparams_gluon import import_mxnet

    mx = import_mxnet()
    arr = mx.nd.zeros((OUT, IN))
    getattr(mx.init, kind)(*args)(mx.init.InitDesc("dense0_weight"), arr)
    return arr.asnumpy().astype(np.float64)


EQUIVALENTS = [  # (ours, kind of check, {backend: native spec})
    (up.init.XavierUniform(), "uniform", {"torch": ("xavier_uniform_",), "keras": ("GlorotUniform",),
                                          "gluon": ("Xavier", "uniform", "avg", 3)}),
    (up.init.KaimingUniform(nonlinearity="relu"), "uniform",
     {"torch": ("kaiming_uniform_", 0, {"nonlinearity": "relu"}), "keras": ("HeUniform",),
      "gluon": ("Xavier", "uniform", "in", 6)}),
    (up.init.XavierNormal(), "normal", {"torch": ("xavier_normal_",),
                                        "keras": ("VarianceScaling", 1.0, "fan_avg", "untruncated_normal"),
                                        "gluon": ("Xavier", "gaussian", "avg", 1)}),
    (up.init.KaimingNormal(nonlinearity="relu"), "normal",
     {"torch": ("kaiming_normal_", 0, {"nonlinearity": "relu"}),
      "keras": ("VarianceScaling", 2.0, "fan_in", "untruncated_normal"), "gluon": ("Xavier", "gaussian", "in", 2)}),
    (up.init.get("he_normal"), "truncated", {"keras": ("HeNormal",)}),
    (up.init.get("glorot_normal"), "truncated", {"keras": ("GlorotNormal",)}),
]


@pytest.mark.parametrize("ours, kind, natives", EQUIVALENTS, ids=lambda x: repr(x) if isinstance(x, up.init.Initializer) else "")
def test_catalog_equals_the_documented_native_initializers(ours, kind: str, natives: dict) -> None:
    """Same bound (uniform) or the same std (normal), within six standard errors of the sample."""
    scale = ours.scale((OUT, IN))
    n = OUT * IN
    mine = ours.fill((OUT, IN), up.init.ParamInfo("w", up.Role.WEIGHT, (OUT, IN), np.dtype(np.float64)), 0)
    for label, values in {"unifyparams": mine, **{b: native_values(b, s) for b, s in natives.items()}}.items():
        top = np.abs(values).max()
        if kind == "uniform":
            assert scale * 0.99 < top <= scale * (1 + 1e-6), (label, top, scale)
            assert abs(values.std() - scale / np.sqrt(3)) <= 6 * scale / np.sqrt(3) / np.sqrt(2 * n) * 1.2, label
        elif kind == "normal":
            assert abs(values.std() - scale) <= 6 * scale / np.sqrt(2 * n), (label, values.std(), scale)
            assert top > 3.5 * scale, (label, "a normal's tails should not be cut")
        else:  # Keras's truncated normals: cut at 2 std of the underlying normal, variance kept
            assert top <= 2 * scale * (1 + 1e-6) and top > 1.9 * scale, (label, top, scale)
            target = scale * 0.87962566103423978
            assert abs(values.std() - target) <= 0.02 * target, (label, values.std(), target)
