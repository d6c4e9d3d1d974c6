"""The same seed gives the same model in every framework, bit for bit, eager or lazy.

Every test builds the same architecture with each backend's conformance builders and compares the
canonical values exactly. Keras stores dense and conv kernels transposed and recurrent gates in
another order, so these also prove that values are generated on the canonical layout.
"""

from __future__ import annotations

import numpy as np
import pytest

import unifyparams as up
from unifyparams.conformance.discovery import load_builders

BACKENDS = ["torch", "keras", "gluon"]
INITIALIZERS = [
    up.init.XavierUniform(), up.init.XavierNormal(), up.init.KaimingUniform(nonlinearity="relu"),
    up.init.Normal(0.0, 0.01), up.init.TruncatedNormal(0.0, 0.02, -0.04, 0.04), up.init.Orthogonal(),
    up.init.get("he_normal"), up.init.MXNetXavier("gaussian", "in", 2.0), up.init.Uniform(-1.0, 3.0),
]


def kit(backend: str):
    return load_builders(backend)


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


# --- one seed, one function: a dense weight after a channels-last flatten ------------------------
def test_one_seed_gives_the_torch_and_keras_lenet_the_same_function() -> None:
    """Keras flattens (H, W, C): its first dense weight gets the canonical values in its own order."""
    x = np.random.default_rng(3).normal(size=(2, 1, 28, 28)).astype(np.float32)
    outputs = {}
    for backend in ("torch", "keras"):
        k = kit(backend)
        net = k.lenet()
        up.initialize(net, up.init.XavierNormal(), seed=21)
        outputs[backend] = k.forward(net, x)  # Keras takes NHWC: the builders move the channels
    assert np.abs(outputs["torch"]).max() > 1e-3
    np.testing.assert_allclose(outputs["keras"], outputs["torch"], rtol=1e-4, atol=1e-5)


def test_the_keras_dense_weight_after_flatten_is_the_canonical_one_in_model_order() -> None:
    from unifyparams.porting.flatten import weight_facts

    t, k = kit("torch").lenet(), kit("keras").lenet()
    for net in (t, k):
        up.initialize(net, up.init.XavierUniform(), seed=5)
    facts, problems = weight_facts(up.params(k), k)
    (name, fact), = facts.items()
    assert not problems and fact.permutes
    canonical = up.params(t).numpy()
    assert not np.array_equal(up.params(k)[name].numpy(), canonical[name])  # p.numpy(): the model's order
    np.testing.assert_array_equal(fact.to_canonical(up.params(k)[name].numpy()), canonical[name])
    # a selection gets what the whole model gets
    sel = kit("keras").lenet()
    up.initialize(sel, up.init.XavierUniform(), select=name, seed=5)
    np.testing.assert_array_equal(up.params(sel)[name].numpy(), up.params(k)[name].numpy())


def test_an_order_that_cannot_be_established_is_refused_with_the_way_out() -> None:
    from .backends.keras import subclassed_cnn

    net = subclassed_cnn()
    before = up.params(net).numpy(copy=True)
    with pytest.raises(up.InitializerError, match=r"'fc.weight'.*not established.*dense_inputs") as info:
        up.initialize(net, up.init.XavierUniform(), seed=1)
    assert "Nothing was changed" in str(info.value)
    assert all(np.array_equal(v, up.params(net)[n].numpy()) for n, v in before.items())
    up.initialize(net, up.init.Constant(0.5), select="fc.weight")  # the order cannot change a constant
    assert np.all(up.params(net)["fc.weight"].numpy() == 0.5)
    stated = {"fc": up.DenseInput.flattened((4, 6, 6), channels_last=True)}
    up.initialize(net, up.init.XavierUniform(), seed=1, dense_inputs=stated)
    import torch

    twin = torch.nn.Sequential()
    twin.add_module("conv", torch.nn.Conv2d(3, 4, 3))
    twin.add_module("flat", torch.nn.Flatten())
    twin.add_module("fc", torch.nn.Linear(144, 5))
    up.initialize(twin, up.init.XavierUniform(), seed=1)
    x = np.random.default_rng(0).normal(size=(2, 3, 8, 8)).astype(np.float32)
    with torch.no_grad():
        expected = twin(torch.from_numpy(x)).numpy()
    import keras

    got = keras.ops.convert_to_numpy(net(np.moveaxis(x, 1, -1)))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


# --- layers that name their parameters only when built (Keras Embedding, LSTM) -------------------
@pytest.mark.parametrize("how", ["materialize", "forward"])
def test_keras_layers_unnamed_until_built_get_their_initializer_when_built(how: str) -> None:
    """Never left with Keras's defaults: recorded for the layers that will appear, applied on build."""
    import keras

    L = keras.layers

    def layers():
        return [L.Embedding(50, 8), L.LSTM(6), L.Dense(3)]

    eager = keras.Sequential([keras.Input((5,), dtype="int32"), *layers()])
    up.initialize(eager, up.init.XavierUniform(), seed=2)
    expected = up.params(eager).numpy(copy=True)
    lazy = keras.Sequential(layers())
    assert "0.weight" not in up.params(lazy)
    names = up.initialize(lazy, up.init.XavierUniform(), seed=2)
    assert names.pending_unnamed and names.pending == ["2.weight", "2.bias"]
    x = np.random.default_rng(0).integers(0, 50, size=(2, 5)).astype("int32")
    if how == "materialize":
        up.materialize(lazy, x)
    else:
        lazy(x)
    got = up.params(lazy).numpy()
    assert sorted(got) == sorted(expected)
    for name, value in expected.items():
        np.testing.assert_array_equal(got[name], value, err_msg=name)
    up.initialize(eager, up.init.Constant(0.0), select="0.*")  # the rule is spent: later writes stand
    assert not up.initialize(lazy, up.init.Normal(), seed=1).pending_unnamed


def test_a_built_model_records_no_rule() -> None:
    names = up.initialize(kit("keras").mlp(), up.init.XavierUniform(), seed=0)
    assert not names.pending_unnamed and not names.pending


# --- what waits lives as long as the model --------------------------------------------------------
def test_pending_state_goes_with_the_model_and_is_never_seen_by_a_new_one() -> None:
    import gc

    import torch

    from unifyparams import pending_work

    def lazy_net():
        return torch.nn.Sequential(torch.nn.LazyLinear(4), torch.nn.LazyLinear(4))

    net = lazy_net()
    up.initialize(net, up.init.Ones())
    up.tie(net, "0.bias", "1.bias")
    assert up.pending_ties(net) == [("0.bias", "1.bias")]
    counts = len(pending_work._initializers), len(pending_work._recorded)
    del net
    gc.collect()
    assert (len(pending_work._initializers), len(pending_work._recorded)) < counts
    for _ in range(20):  # new objects, some at the addresses of the old: nothing pending for them
        fresh = lazy_net()
        assert up.pending_ties(fresh) == [] and up.pending(fresh)["0.weight"].initializer is None


def test_initializers_first_then_ties_on_the_first_forward() -> None:
    import torch

    net = torch.nn.Sequential(torch.nn.LazyLinear(4), torch.nn.LazyLinear(4))
    up.tie(net, "0.weight", "1.weight")  # recorded before the initializer: the order is still the same
    up.initialize(net, up.init.Constant(0.25), select="*.weight")
    net(torch.ones(1, 4))
    assert net[1].weight is net[0].weight and not up.pending_ties(net)
    assert torch.all(net[0].weight == 0.25)


def test_former_names_still_work() -> None:
    import torch

    from unifyparams.initialize import Initialized, initialize

    assert initialize is up.initialize and Initialized is up.Initialized
    net = torch.nn.Sequential(torch.nn.LazyLinear(2), torch.nn.LazyLinear(2))
    up.tie(net, "0.bias", "1.bias")
    with pytest.warns(DeprecationWarning, match="pending_ties"):
        assert up.waiting_ties(net) == up.pending_ties(net) == [("0.bias", "1.bias")]


def test_no_import_cycles_among_the_pending_modules() -> None:
    """Imports inside functions count: the graph of unifyparams' own modules has no cycle."""
    import ast
    from pathlib import Path

    root = Path(up.__file__).parent
    graph: dict[str, set[str]] = {}
    for path in root.rglob("*.py"):
        module = ".".join(("unifyparams", *path.relative_to(root).with_suffix("").parts)).removesuffix(".__init__")
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        deps = graph.setdefault(module, set())
        tree = ast.parse(path.read_text())
        typing_only = {  # `if TYPE_CHECKING:` imports run only under the type checker
            id(n) for block in ast.walk(tree) if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
            for n in ast.walk(block)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level and id(node) not in typing_only:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                if node.module:
                    deps.add(f"{base}.{node.module}")
                else:  # from . import name: the submodule
                    deps.update(f"{base}.{alias.name}" for alias in node.names)
    mine = {f"unifyparams.{m}" for m in ("pending_work", "lazy", "tying", "tieplan", "initialization", "transaction",
                                         "lifetime", "init.draw", "init.keys")}

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for dep in graph.get(start, ()):
            if dep == goal or (dep not in seen and not seen.add(dep) and reaches(dep, goal, seen)):  # type: ignore[func-returns-value]
                return True
        return False

    assert [m for m in sorted(mine) if reaches(m, m, set())] == []


def test_a_glob_on_a_lazy_keras_model_reaches_the_layers_named_when_built() -> None:
    import keras

    L = keras.layers
    lazy = keras.Sequential([L.Embedding(20, 4), L.GlobalAveragePooling1D(), L.Dense(3)])
    names = up.initialize(lazy, up.init.Constant(0.5), select="*.weight")
    assert names.pending_unnamed and names.pending == ["2.weight"]
    up.materialize(lazy, np.zeros((2, 5), dtype="int32"))
    got = up.params(lazy).numpy()
    assert np.all(got["0.weight"] == 0.5) and np.all(got["2.weight"] == 0.5)
    assert np.all(got["2.bias"] == 0)  # not selected: Keras's own zeros


@pytest.mark.parametrize("how", ["materialize", "forward"])
def test_a_lazy_keras_lenet_gets_the_torch_function_once_built(how: str) -> None:
    import keras

    L = keras.layers
    lazy = keras.Sequential([
        L.Conv2D(6, 5, padding="same"), L.Activation("relu"), L.MaxPooling2D(2),
        L.Conv2D(16, 5), L.Activation("relu"), L.MaxPooling2D(2), L.Flatten(),
        L.Dense(120), L.Activation("relu"), L.Dense(84), L.Activation("relu"), L.Dense(10),
    ])  # fmt: skip
    assert "7.weight" in up.initialize(lazy, up.init.XavierNormal(), seed=21).pending
    x = np.random.default_rng(3).normal(size=(2, 1, 28, 28)).astype(np.float32)
    if how == "materialize":
        up.materialize(lazy, np.moveaxis(x, 1, -1))
    got = keras.ops.convert_to_numpy(lazy(np.moveaxis(x, 1, -1)))
    t = kit("torch")
    twin = t.lenet()
    up.initialize(twin, up.init.XavierNormal(), seed=21)
    np.testing.assert_allclose(got, t.forward(twin, x), rtol=1e-4, atol=1e-5)


def test_a_lazy_subclassed_keras_cnn_says_what_is_missing_once_built() -> None:
    from .backends.keras import subclassed_cnn

    net = subclassed_cnn(built=False)
    assert "fc.weight" in up.initialize(net, up.init.XavierUniform(), seed=1).pending
    with pytest.raises(up.InitializerError, match=r"'fc.weight'.*not established.*dense_inputs"):
        up.materialize(net, np.zeros((1, 8, 8, 3), np.float32))
    assert up.pending(net) == {} and up.params(net)["fc.weight"].materialized
    from unifyparams.pending_work import initializer_for

    assert initializer_for(up.params(net)["fc.weight"]) is None  # refused: nothing left pending
    stated = {"fc": up.DenseInput.flattened((4, 6, 6), channels_last=True)}
    assert "fc.weight" in up.initialize(net, up.init.XavierUniform(), seed=1, dense_inputs=stated)
