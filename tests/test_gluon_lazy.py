"""MXNet Gluon facts about deferred shapes: deferred initialization, loads and the first forward."""

from __future__ import annotations

import numpy as np
import pytest

import unifyparams as up
from unifyparams_gluon.running import numpy_mode

from .backends.gluon import in_numpy_mode, models, mx, nn, randomize, rng

pytestmark = pytest.mark.gluon


@pytest.mark.parametrize("numpy_mode_model", [False, True])
def test_deferred_initialization_reports_unknown_dims_as_none(numpy_mode_model: bool) -> None:
    net = in_numpy_mode(models.lazy_mlp) if numpy_mode_model else models.lazy_mlp()
    ps = up.params(net)
    assert list(ps) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert ps["0.weight"].shape == (256, None) and ps["2.weight"].shape == (10, None)
    assert ps["0.bias"].materialized  # Gluon initializes a Parameter whose shape is known at once
    assert not up.is_materialized(net) and ps.count() == 256 + 10
    with pytest.raises(up.NotMaterializedError, match="0.weight"):
        ps["0.weight"].numpy()
    assert "(256, ?)" in up.tree(net)
    up.materialize(net, input_shape=(2, 20))
    assert up.params(net)["0.weight"].shape == (256, 20) and up.params(net)["2.weight"].shape == (10, 256)
    assert up.is_materialized(net)
    kind = mx.np.ndarray if numpy_mode_model else mx.nd.NDArray
    assert isinstance(net[0].weight.data(), kind)


def test_materialize_from_example_inputs_hybridized_and_uninitialized_models() -> None:
    net = models.lazy_mlp()
    net.hybridize()
    up.materialize(net, rng().normal(size=(3, 20)).astype(np.float32))
    assert up.is_materialized(net) and up.params(net)["0.weight"].shape == (256, 20)

    fresh = nn.HybridSequential()  # initialize() never called: materialize initializes it, as Gluon requires
    fresh.add(nn.Conv2D(4, 3), nn.Flatten(), nn.Dense(2))
    up.materialize(fresh, input_shape=(1, 3, 6, 6))
    assert {n: p.shape for n, p in up.params(fresh).items()} == {
        "0.weight": (4, 3, 3, 3), "0.bias": (4,), "2.weight": (2, 64), "2.bias": (2,)}


@pytest.mark.parametrize("hybridize", [False, True])
def test_materialize_failure_names_the_block(hybridize: bool) -> None:
    net = models.mlp()  # expects 20 features
    if hybridize:
        net.hybridize()
    with pytest.raises(up.NotMaterializedError) as info:
        up.materialize(net, input_shape=(2, 7))
    message = str(info.value)
    assert "block '0' (Dense)" in message and "(2, 7)" in message and "Stack trace" not in message


def test_loading_a_deferred_model_fills_its_shapes() -> None:
    state = randomize(models.mlp(), seed=15)
    for numpy_mode_model in (False, True):
        net = in_numpy_mode(models.lazy_mlp) if numpy_mode_model else models.lazy_mlp()
        wrong = {**state, "2.weight": np.ones((11, 256), np.float32), "2.bias": np.ones(11, np.float32)}
        with pytest.raises(up.LoadError):
            up.params(net).load(wrong)
        assert up.params(net)["0.weight"].shape == (256, None)
        if numpy_mode_model:
            with numpy_mode(True):  # loading initializes arrays of the current mode's kind, as Gluon does
                up.params(net).load(state)
        else:
            up.params(net).load(state)
        assert up.is_materialized(net)
        for name, value in state.items():
            np.testing.assert_array_equal(up.params(net)[name].numpy(), value)
        x = rng(16).normal(size=(2, 20)).astype(np.float32)
        reference = models.mlp()
        up.params(reference).load(state)
        np.testing.assert_allclose(models.forward(net, x), models.forward(reference, x), atol=1e-5)


@pytest.mark.parametrize("hybridize", [False, True])
def test_the_first_forward_calls_the_materialized_hook_before_values_are_used(hybridize: bool) -> None:
    net = models.lazy_mlp()
    if hybridize:
        net.hybridize()
    adapter = up.adapter_for(net)
    seen: list[tuple[int | None, ...]] = []

    def fill() -> None:
        p = up.params(net)["2.bias"]
        if p.materialized and not seen:
            seen.append(p.shape)
            p.set(np.full(10, 5.0, np.float32))

    assert adapter.on_materialized(net, fill)
    out = models.forward(net, np.zeros((2, 20), np.float32))
    assert seen == [(10,)]
    np.testing.assert_allclose(out, 5.0)  # zero input: the output is the bias written by the hook
    assert not adapter.on_materialized(net, fill)  # nothing waits any more


def test_loading_a_model_whose_initialize_was_never_called() -> None:
    state = randomize(models.mlp(), seed=17)
    net = nn.HybridSequential()
    net.add(nn.Dense(256, in_units=20), nn.Activation("relu"), nn.Dense(10))  # one known, one deferred shape
    ps = up.params(net)
    assert ps["0.weight"].shape == (256, 20) and not ps["0.weight"].materialized and ps["2.weight"].shape == (10, None)
    ps.load(state)
    assert up.is_materialized(net) and net[0].weight.list_ctx() == [mx.context.current_context()]
    for name, value in state.items():
        np.testing.assert_array_equal(up.params(net)[name].numpy(), value)
    x = rng(18).normal(size=(2, 20)).astype(np.float32)
    reference = models.mlp()
    up.params(reference).load(state)
    np.testing.assert_allclose(models.forward(net, x), models.forward(reference, x), atol=1e-6)
