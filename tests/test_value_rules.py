"""One set of value rules on every backend; torch ties by storage; one seed, one model however written.

- Values (``unifyparams.values``): no broadcasting, integer narrowing only when every value fits
  (or ``cast=True``), no float overflow to infinity, any strides, and every malformed input a
  ``UnifyParamsError`` that names the parameter; a refused write changes nothing.
- PyTorch parameters that are the same view of one storage are ties (``Parameter(a.detach())``);
  overlapping but different views are refused by a load, not taken for ties.
- Stream keys (``unifyparams.init.keys``): layers without parameters do not move the random
  stream, so ``Sequential(Linear, ReLU, Linear)`` and a model whose first layer takes the
  activation as an argument get bit-identical values, eager or lazy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import unifyparams as up
from unifyparams.conformance import load_builders
from unifyparams.init.keys import relative_key, stream_keys

BACKENDS = ["torch", "keras", "gluon"]


def kit(backend: str) -> Any:
    return load_builders(up.available_adapters()[backend])


def snapshot(model: Any) -> dict[str, np.ndarray]:
    return up.params(model).numpy(copy=True)


def assert_unchanged(model: Any, before: dict[str, np.ndarray]) -> None:
    after = up.params(model).numpy()
    for name, value in before.items():
        np.testing.assert_array_equal(after[name], value, err_msg=name)


def int8_model(backend: str) -> Any:
    """A model holding one int8 parameter of shape (3,), named ``counts`` (a leaf of its own)."""
    if backend == "torch":
        import torch

        module = torch.nn.Module()
        module.register_buffer("running_mean", torch.zeros(3, dtype=torch.int8))
        return module
    if backend == "keras":
        import keras

        class Counter(keras.layers.Layer):
            def build(self, input_shape: Any) -> None:
                self.kernel = self.add_weight(shape=(3,), dtype="int8", initializer="zeros", name="kernel", trainable=False)

            def call(self, x: Any) -> Any:
                return x

        return keras.Sequential([keras.Input((4,)), Counter()])
    from unifyparams_gluon import import_mxnet

    mx = import_mxnet()

    class Counts(mx.gluon.Block):
        def __init__(self) -> None:
            super().__init__()
            self.weight = self.params.get("weight", shape=(3,), dtype="int8", init=mx.init.Zero())

        def forward(self, x: Any) -> Any:
            return x

    block = Counts()
    block.initialize()
    return block


# --- values: shapes, strides, malformed input ------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_scalar_is_never_broadcast(backend: str) -> None:
    net = kit(backend).mlp()
    ps = up.params(net)
    before = snapshot(net)
    with pytest.raises(up.ShapeMismatchError, match=r"'0\.weight'.*\(256, 20\).*shape \(\).*np\.full"):
        ps["0.weight"].set(0.5)
    with pytest.raises(up.ShapeMismatchError, match="never broadcast"):
        ps["0.bias"].set(np.float32(1.0))
    state = dict(before)
    state["2.bias"] = np.float32(3.0)  # one 0-d value among good ones
    with pytest.raises(up.LoadError, match=r"(?s)nothing was loaded.*'2\.bias'.*\(10,\)"):
        ps.load(state)
    with pytest.raises(up.ShapeMismatchError, match=r"\(256, 20\).*\(20, 256\)"):
        ps["0.weight"].set(np.zeros((20, 256), np.float32))  # the native Keras layout is not canonical
    assert_unchanged(net, before)
    ps["0.bias"][:] = 2.0  # indexing is NumPy's own: a scalar fills the indexed part
    assert np.all(up.params(net)["0.bias"].numpy() == 2.0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_any_strides_are_written(backend: str) -> None:
    """Negative strides (reversed views), zero strides (np.broadcast_to) and transposed views of
    another array all land exactly (torch used to raise a raw ValueError for negative strides)."""
    net = kit(backend).mlp()
    ps = up.params(net)
    w = np.arange(256 * 20, dtype=np.float32).reshape(256, 20)
    for value in (w[::-1, ::-1], np.asfortranarray(w), np.broadcast_to(np.float32(7.0), (256, 20)), w[:, ::-1]):
        ps["0.weight"].set(value)
        np.testing.assert_array_equal(up.params(net)["0.weight"].numpy(), value)
    bias = np.arange(10, dtype=np.float64)[::-1]
    ps.load({**snapshot(net), "2.bias": bias})
    np.testing.assert_array_equal(up.params(net)["2.bias"].numpy(), bias.astype(np.float32))


@pytest.mark.parametrize("backend", BACKENDS)
def test_malformed_values_are_unifyparams_errors_naming_the_parameter(backend: str) -> None:
    net = kit(backend).mlp()
    ps = up.params(net)
    before = snapshot(net)
    bad = {
        "ragged list": ([[1.0, 2.0], [3.0]], up.ShapeMismatchError, "rectangular"),
        "None": (None, up.DtypeMismatchError, "numeric"),
        "strings": (np.full((10,), "x"), up.DtypeMismatchError, "numeric"),
        "objects": (np.array([object()] * 10), up.DtypeMismatchError, "numeric"),
        "a dict": ({"a": 1}, up.DtypeMismatchError, "numeric"),
    }
    for label, (value, error, words) in bad.items():
        with pytest.raises(error, match=words) as info:
            ps["2.bias"].set(value)
        assert "'2.bias'" in str(info.value), label
        with pytest.raises(up.LoadError, match=r"(?s)'2\.bias'"):
            ps.load({**before, "2.bias": value})
    with pytest.raises(up.LoadError, match=r"keys must be canonical names \(str\).*0 \(int\)"):
        ps.load({0: before["0.weight"], **before})
    with pytest.raises(up.LoadError, match="must be a mapping"):
        ps.load([before["0.weight"]])  # type: ignore[arg-type]
    with pytest.raises(up.ShapeMismatchError, match=r"'0\.weight'.*index"):
        ps["0.weight"][300, 0] = 1.0
    assert_unchanged(net, before)


@pytest.mark.parametrize("backend", BACKENDS)
def test_float_values_that_would_overflow_to_infinity_are_refused(backend: str) -> None:
    net = kit(backend).mlp()
    ps = up.params(net)
    before = snapshot(net)
    huge = np.full(10, 1e300)
    with pytest.raises(up.DtypeMismatchError, match=r"'2\.bias'.*1e\+300.*float32.*cast=True"):
        ps["2.bias"].set(huge)
    with pytest.raises(up.LoadError, match="(?s)overflow"):
        ps.load({**before, "2.bias": huge})
    assert_unchanged(net, before)
    ps["2.bias"].set(np.full(10, 0.1))  # float64 -> float32 rounds, as before
    np.testing.assert_array_equal(up.params(net)["2.bias"].numpy(), np.full(10, 0.1, np.float32))
    ps["2.bias"].set(np.array([np.inf, -np.inf, np.nan] + [0.0] * 7))  # infinities given stay infinities
    ps["2.bias"].set(huge, cast=True)
    assert np.all(np.isinf(up.params(net)["2.bias"].numpy()))


@pytest.mark.parametrize("backend", BACKENDS)
def test_integer_narrowing_only_when_every_value_fits(backend: str) -> None:
    model = int8_model(backend)
    ps = up.params(model)
    (name,) = list(ps)
    p = ps[name]
    assert p.dtype == np.int8 and p.shape == (3,)
    with pytest.raises(up.DtypeMismatchError, match=r"\[1, 300\].*int8.*\[-128, 127\].*cast=True") as info:
        p.set(np.array([1, 2, 300], dtype=np.int64))  # used to become 44
    assert repr(name) in str(info.value)
    with pytest.raises(up.LoadError, match="300"):
        ps.load({name: np.array([1, 2, 300])})
    with pytest.raises(up.DtypeMismatchError, match="int8"):
        p[0] = 300
    assert np.all(p.numpy() == 0)
    p.set(np.array([-128, 0, 127], dtype=np.int64))  # every value fits: written exactly
    np.testing.assert_array_equal(p.numpy(), [-128, 0, 127])
    ps.load({name: np.array([1, 2, 3], dtype=np.uint64)})
    np.testing.assert_array_equal(p.numpy(), [1, 2, 3])
    p.set(np.array([1, 2, 300]), cast=True)  # asked for: NumPy's wrap-around
    np.testing.assert_array_equal(p.numpy(), [1, 2, 44])
    with pytest.raises(up.DtypeMismatchError, match="cast=True"):
        p.set(np.array([1.5, 2.0, 3.0]))  # float -> int loses information
    p.set(np.array([1.7, -2.2, 3.0]), cast=True)
    np.testing.assert_array_equal(p.numpy(), [1, -2, 3])
    for value, words in ((np.array([np.nan, 0.0, 1.0]), "NaN or infinity"), (np.array([1e4, 0.0, 0.0]), "outside")):
        with pytest.raises(up.DtypeMismatchError, match=words):
            p.set(value, cast=True)  # undefined in NumPy even when asked: refused
    np.testing.assert_array_equal(p.numpy(), [1, -2, 3])


# --- stream keys --------------------------------------------------------------------------------
def test_stream_keys_renumber_positions_among_siblings_that_own_parameters() -> None:
    names = ["0.weight", "0.bias", "2.weight", "2.bias", "5.0.weight", "5.3.weight", "head.weight", "blocks.4.w"]
    keys = stream_keys(names)
    assert keys == {
        "0.weight": "0.weight", "0.bias": "0.bias", "2.weight": "1.weight", "2.bias": "1.bias",
        "5.0.weight": "2.0.weight", "5.3.weight": "2.1.weight", "head.weight": "head.weight",
        "blocks.4.w": "blocks.0.w",
    }
    assert len(set(keys.values())) == len(keys)  # one-to-one
    assert stream_keys(["01.weight", "1.weight"]) == {"01.weight": "01.weight", "1.weight": "0.weight"}
    # a block keys as it does inside a model: the key from the model ends with the block's own key
    block = stream_keys(["0.weight", "3.weight"])
    inside = stream_keys(["0.weight", "7.0.weight", "7.3.weight"])
    assert relative_key(inside["7.3.weight"], "7.3.weight", "3.weight") == block["3.weight"] == "1.weight"
    assert relative_key("1.weight", "weight", "2.weight") is None


def native_mlp(backend: str, activation_layers: bool) -> Any:
    """Dense(20 -> 16), ReLU, Dense(16 -> 10): with the ReLU as its own layer, or as an argument."""
    if backend == "torch":
        import torch

        assert activation_layers  # PyTorch has no activation argument
        return torch.nn.Sequential(torch.nn.Linear(20, 16), torch.nn.ReLU(), torch.nn.Linear(16, 10))
    if backend == "keras":
        import keras

        L = keras.layers
        layers = [L.Dense(16), L.ReLU(), L.Dense(10)] if activation_layers else [L.Dense(16, activation="relu"), L.Dense(10)]
        return keras.Sequential([keras.Input((20,)), *layers])
    from unifyparams_gluon import import_mxnet

    nn = import_mxnet().gluon.nn
    net = nn.HybridSequential()
    if activation_layers:
        net.add(nn.Dense(16, in_units=20), nn.Activation("relu"), nn.Dense(10, in_units=16))
    else:
        net.add(nn.Dense(16, activation="relu", in_units=20), nn.Dense(10, in_units=16))
    net.initialize()
    return net


def native_cnn(backend: str, activation_layers: bool) -> Any:
    """Conv(1 -> 4, k3), ReLU, MaxPool(2), Conv(4 -> 6, k2), ReLU, MaxPool(2), Flatten, Dense(24 -> 5)
    on 12 x 12 inputs (channels-last in Keras)."""
    if backend == "torch":
        import torch

        nn = torch.nn
        return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 6, 2), nn.ReLU(),
                             nn.MaxPool2d(2), nn.Flatten(), nn.Linear(24, 5))
    if backend == "keras":
        import keras

        L = keras.layers
        if activation_layers:
            layers = [L.Conv2D(4, 3), L.ReLU(), L.MaxPooling2D(2), L.Conv2D(6, 2), L.ReLU(), L.MaxPooling2D(2)]
        else:
            layers = [L.Conv2D(4, 3, activation="relu"), L.MaxPooling2D(2), L.Conv2D(6, 2, activation="relu"), L.MaxPooling2D(2)]
        return keras.Sequential([keras.Input((12, 12, 1)), *layers, L.Flatten(), L.Dense(5)])
    from unifyparams_gluon import import_mxnet

    nn = import_mxnet().gluon.nn
    net = nn.HybridSequential()
    if activation_layers:
        net.add(nn.Conv2D(4, 3, in_channels=1), nn.Activation("relu"), nn.MaxPool2D(2),
                nn.Conv2D(6, 2, in_channels=4), nn.Activation("relu"), nn.MaxPool2D(2))
    else:
        net.add(nn.Conv2D(4, 3, in_channels=1, activation="relu"), nn.MaxPool2D(2),
                nn.Conv2D(6, 2, in_channels=4, activation="relu"), nn.MaxPool2D(2))
    net.add(nn.Flatten(), nn.Dense(5, in_units=24))
    net.initialize()
    return net


def by_position(model: Any) -> list[tuple[tuple[int, ...], np.ndarray]]:
    """Canonical values in model order, with their shapes (names differ between the two ways). A
    dense weight that reads a flattened channels-last map (Keras) is shown in the model's input
    order; it is compared in canonical order, as checkpoints store it."""
    from unifyparams.porting.flatten import weight_facts

    ps = up.params(model)
    facts, _ = weight_facts(ps, model)
    return [(v.shape, facts[n].to_canonical(v) if n in facts else v) for n, v in ps.numpy(copy=True).items()]


VARIANTS = [("torch", True), ("keras", False), ("keras", True), ("gluon", False), ("gluon", True)]


@pytest.mark.parametrize("build", [native_mlp, native_cnn], ids=["mlp", "cnn"])
@pytest.mark.parametrize("init", [up.init.XavierUniform(), up.init.KaimingNormal(), up.init.TruncatedNormal(0, 0.02, -0.04, 0.04)],
                         ids=lambda i: type(i).__name__)
def test_one_seed_one_model_with_or_without_activation_layers(build: Any, init: up.init.Initializer) -> None:
    models = {variant: build(*variant) for variant in VARIANTS}
    if build is native_mlp:
        assert list(up.params(models["torch", True])) == ["0.weight", "0.bias", "2.weight", "2.bias"]
        assert list(up.params(models["keras", False])) == ["0.weight", "0.bias", "1.weight", "1.bias"]
    values = {}
    for variant, model in models.items():
        up.initialize(model, init, seed=123)
        values[variant] = by_position(model)
    reference = values["torch", True]
    for variant, got in values.items():
        assert [s for s, _ in got] == [s for s, _ in reference], variant
        for (_, a), (_, b) in zip(got, reference):
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(a, b, err_msg=str(variant))
    assert np.any(reference[0][1] != 0)


def test_the_models_compute_the_same_function() -> None:
    """Not only equal arrays: the torch MLP and the Keras and Gluon MLPs with the activation as an
    argument give the same outputs (and the channels-first CNNs of torch and Gluon too)."""
    import torch

    from unifyparams_gluon import import_mxnet

    mx = import_mxnet()
    rng = np.random.default_rng(0)
    for build, shape in ((native_mlp, (3, 20)), (native_cnn, (3, 1, 12, 12))):
        x = rng.normal(size=shape).astype(np.float32)
        t, g = build("torch", True), build("gluon", False)
        for model in (t, g):
            up.initialize(model, up.init.XavierNormal(), seed=9)
        with torch.no_grad():
            expected = t(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(g(mx.nd.array(x)).asnumpy(), expected, rtol=1e-4, atol=1e-5)
        if build is native_mlp:
            k = build("keras", False)
            up.initialize(k, up.init.XavierNormal(), seed=9)
            import keras

            np.testing.assert_allclose(keras.ops.convert_to_numpy(k(x)), expected, rtol=1e-4, atol=1e-5)


def test_a_selection_keys_as_the_whole_model() -> None:
    """``select=``, a ParamSet and a lone Param get the values the whole model gets."""
    full = native_mlp("torch", True)
    up.initialize(full, up.init.XavierUniform(), seed=4)
    expected = up.params(full)["2.weight"].numpy(copy=True)
    for how in ("select", "paramset", "param"):
        net = native_mlp("torch", True)
        ps = up.params(net)
        if how == "select":
            up.initialize(net, up.init.XavierUniform(), select="2.weight", seed=4)
        elif how == "paramset":
            up.initialize(ps.select("2.*").select(role="weight"), up.init.XavierUniform(), seed=4)
        else:
            up.initialize(ps["2.weight"], up.init.XavierUniform(), seed=4)
        np.testing.assert_array_equal(up.params(net)["2.weight"].numpy(), expected, err_msg=how)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("how", ["materialize", "first forward"])
def test_lazy_models_get_the_values_of_the_eager_model_written_the_other_way(backend: str, how: str) -> None:
    """A lazy [Dense(256), ReLU, Dense(10)] (names 0.*, 2.*) whose initializers wait for the input
    size gets the values of an eager Keras model with the activation as an argument (0.*, 1.*)."""
    import keras

    eager = keras.Sequential([keras.Input((20,)), keras.layers.Dense(256, activation="relu"), keras.layers.Dense(10)])
    up.initialize(eager, up.init.XavierUniform(), seed=17)
    expected = by_position(eager)
    k = kit(backend)
    net = k.lazy_mlp()
    names = up.initialize(net, up.init.XavierUniform(), seed=17)
    assert "2.weight" in names.pending
    if how == "materialize":
        up.materialize(net, input_shape=(2, 20))
    else:
        k.forward(net, np.ones((2, 20), np.float32))
    got = by_position(net)
    assert [s for s, _ in got] == [s for s, _ in expected]
    for (_, a), (_, b) in zip(got, expected):
        np.testing.assert_array_equal(a, b, err_msg=backend)


def test_a_keras_layer_named_only_when_built_still_gets_the_eager_stream() -> None:
    """An unbuilt Keras Embedding has no variables to name yet: at ``initialize`` the lazy model
    lists only the Dense layer, whose key must still be computed among all its siblings."""
    import keras

    L = keras.layers

    def layers() -> list[Any]:
        return [L.Embedding(50, 8), L.GlobalAveragePooling1D(), L.Dense(3)]

    eager = keras.Sequential([keras.Input((5,), dtype="int32"), *layers()])
    up.initialize(eager, up.init.XavierUniform(), seed=2)
    expected = snapshot(eager)
    assert list(expected) == ["0.weight", "2.weight", "2.bias"]
    lazy = keras.Sequential(layers())
    assert "0.weight" not in up.params(lazy)  # the precondition: the Embedding is not named yet
    names = up.initialize(lazy, up.init.XavierUniform(), seed=2)
    assert names.pending == ["2.weight", "2.bias"]
    up.materialize(lazy, np.zeros((2, 5), dtype="int32"))
    for name in names.pending:  # keyed "1.*" among the layers built by then, as in the eager model
        np.testing.assert_array_equal(up.params(lazy)[name].numpy(), expected[name], err_msg=name)


# --- torch: ties by storage --------------------------------------------------------------------
def aliased(kind: str) -> Any:
    """Two Linear(4, 3) layers whose weights alias: ``"same"`` one view of one storage (a tie),
    ``"overlap"`` a second, different view into the first weight (not a tie)."""
    import torch

    net = torch.nn.Module()
    net.a, net.b = torch.nn.Linear(4, 3), torch.nn.Linear(4, 3)
    if kind == "same":
        net.b.weight = torch.nn.Parameter(net.a.weight.detach())
    else:
        net.b.weight = torch.nn.Parameter(net.a.weight.detach()[1:])  # rows 1 and 2 of a.weight
    return net


def test_torch_parameters_over_one_storage_are_ties(tmp_path: Path) -> None:
    import torch

    net = aliased("same")
    assert net.a.weight is not net.b.weight
    assert up.ties(net) == [("a.weight", "b.weight")]
    ps = up.params(net)
    assert ps.count() == 12 + 3 + 3 and ps["b.weight"].shared_with == ("a.weight",)
    up.initialize(net, up.init.XavierUniform(), seed=1)  # once, under its first name
    assert torch.equal(net.a.weight, net.b.weight)
    state = snapshot(net)
    with pytest.raises(up.LoadError, match="share one storage"):
        ps.load({**state, "b.weight": state["b.weight"] + 1})
    assert_unchanged(net, state)
    path = up.save(net, tmp_path / "tied.safetensors")
    fresh = torch.nn.Module()
    fresh.a, fresh.b = torch.nn.Linear(4, 3), torch.nn.Linear(4, 3)
    report = up.load(fresh, path)  # stored once, tied back
    assert report.tied == [("a.weight", "b.weight")] and fresh.a.weight is fresh.b.weight
    assert_unchanged(fresh, state)
    up.load(net, path)  # into the storage-tied model itself: nothing to tie
    assert_unchanged(net, state)
    up.port(fresh, net)
    assert_unchanged(net, state)
    assert up.ties(net) == [("a.weight", "b.weight")]
    up.untie(net, "b.weight")
    assert up.ties(net) == [] and torch.equal(net.a.weight, net.b.weight)
    with torch.no_grad():
        net.b.weight.add_(1)
    assert not torch.equal(net.a.weight, net.b.weight)


def test_torch_overlapping_views_are_not_ties_and_are_not_loaded_together() -> None:
    net = aliased("overlap")
    ps = up.params(net)
    assert up.ties(net) == [] and ps["b.weight"].shared_with == ()
    before = snapshot(net)
    with pytest.raises(up.LoadError) as info:
        ps.load({k: v + 1 for k, v in before.items()})
    assert str(info.value).startswith("nothing was loaded")
    assert "'a.weight' and 'b.weight' are overlapping but different views" in str(info.value)
    assert_unchanged(net, before)
    ps.load({"b.weight": np.full((2, 4), 5.0, np.float32)}, strict=False)  # one of them: fine
    assert np.count_nonzero(up.params(net)["a.weight"].numpy() == 5.0) == 8  # the 8 elements they share


def test_every_writer_refuses_overlapping_views() -> None:
    import torch

    net = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(2, 4, bias=False))
    net[1].weight = torch.nn.Parameter(net[0].weight.detach()[:, :2])  # a view of part of the other
    before = up.params(net).numpy(copy=True)
    with pytest.raises(up.WriteError, match="overlapping"):
        up.initialize(net, up.init.Normal(), seed=0)
    for name, value in before.items():
        np.testing.assert_array_equal(up.params(net)[name].numpy(), value)
