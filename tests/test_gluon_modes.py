"""MXNet Gluon facts about its other forms of a model: hybridized blocks and NumPy mode."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import unifyparams as up
from unifyparams_gluon.running import numpy_mode

from .backends.gluon import in_numpy_mode, models, mx, randomize, rng

pytestmark = pytest.mark.gluon


VARIANT_MODELS: list[tuple[str, dict[str, Any], Callable[[np.random.Generator], np.ndarray]]] = [
    ("mlp", {}, lambda r: r.normal(size=(3, 20)).astype(np.float32)),
    ("nested_blocks", {}, lambda r: r.normal(size=(3, 4)).astype(np.float32)),
    ("custom_model", {}, lambda r: r.integers(0, 50, size=(3, 5))),
    ("shared_mlp", {}, lambda r: r.normal(size=(3, 20)).astype(np.float32)),
    ("lenet", {}, lambda r: r.normal(size=(2, 1, 28, 28)).astype(np.float32)),
    ("residual_block", {}, lambda r: r.normal(size=(2, 4, 8, 8)).astype(np.float32)),
    ("embed_rnn", {"cell": "lstm"}, lambda r: r.integers(0, 50, size=(3, 6))),
    ("embed_rnn", {"cell": "gru"}, lambda r: r.integers(0, 50, size=(3, 6))),
    ("single_layer", {"kind": "batchnorm", "num_features": 5}, lambda r: r.normal(size=(3, 5)).astype(np.float32)),
    ("single_layer", {"kind": "gru", "input_size": 5, "hidden_size": 6},
     lambda r: r.normal(size=(2, 4, 5)).astype(np.float32)),
]


@pytest.mark.parametrize(("build", "kwargs", "make_input"), VARIANT_MODELS, ids=lambda v: str(v) if isinstance(v, str) else "")
def test_hybridized_and_numpy_mode_forms_give_the_same_names_values_outputs_and_gradients(
    build: str, kwargs: dict[str, Any], make_input: Callable[[np.random.Generator], np.ndarray]
) -> None:
    base = getattr(models, build)(**kwargs)
    state = randomize(base, seed=1)
    x = make_input(rng(2))
    expected_out = models.forward(base, x)
    forms = models.variants(base)
    assert [label for label, _ in forms][:2] == ["hybridized", "numpy mode"]
    for label, model in forms:
        ps = up.params(model)
        assert list(ps) == list(state), label
        for name, value in state.items():
            assert ps[name].shape == value.shape and np.array_equal(ps[name].numpy(), value), (label, name)
        kind = mx.np.ndarray if "numpy" in label else mx.nd.NDArray
        assert all(isinstance(p.native.data(), kind) for p in ps.values()), label
        np.testing.assert_allclose(models.forward(model, x), expected_out, atol=1e-5, err_msg=label)
    # Gradients (training mode updates batch-norm statistics: compare on fresh copies of one state).
    reference = getattr(models, build)(**kwargs)
    up.params(reference).load(state)
    expected_grads = up.gradients(reference, x)
    for label, model in models.variants(reference):
        up.params(model).load(state)
        grads = up.gradients(model, x)
        assert grads.keys() == expected_grads.keys(), label
        for name, g in grads.items():
            np.testing.assert_allclose(g, expected_grads[name], atol=1e-5, err_msg=f"{label} {name}")


def test_a_numpy_mode_model_works_whatever_the_global_mode() -> None:
    net = in_numpy_mode(models.mlp)
    state = randomize(net, seed=5)
    x = rng(6).normal(size=(2, 20)).astype(np.float32)
    for global_np in (False, True):
        with numpy_mode(global_np):
            ps = up.params(net)
            np.testing.assert_array_equal(ps["2.weight"].numpy(), state["2.weight"])
            assert isinstance(net[0].weight.data(), mx.np.ndarray)
            grads = up.gradients(net, x)
            assert grads["0.weight"].shape == (256, 20)
            assert mx.util.is_np_array() == global_np  # the caller's mode is back
    with numpy_mode(True):
        classic = models.mlp()  # a classic-mode model used while NumPy mode is on
    up.params(classic).load(state)
    with numpy_mode(True):
        out = models.forward(classic, x)
    np.testing.assert_allclose(out, models.forward(net, x), atol=1e-6)
