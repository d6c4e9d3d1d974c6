"""Gradients on every backend, against backpropagation written out in NumPy."""

from __future__ import annotations

from types import ModuleType

import numpy as np
import pytest

import unifyparams as up

from .backends.reference import mlp_forward, mlp_gradients, randomize


def _forms(backend: ModuleType, net: object) -> list[tuple[str, object]]:
    """The model and the other forms of it the framework offers (hybridized, torch.compile), minus
    Gluon's NumPy mode, whose arrays do not mix with the classic ones a loss here builds."""
    return [("plain", net)] + [(label, m) for label, m in backend.models.variants(net) if "numpy" not in label]


def test_gradients_match_hand_computed_backpropagation(backend: ModuleType) -> None:
    net = backend.models.mlp(in_features=5, hidden=7, out_features=3)
    if backend.NAME != "gluon":  # Gluon allocates gradient buffers when it initializes a Parameter
        assert all(p.grad() is None for p in up.params(net).values())
    w = randomize(up.params(net), seed=12)
    x = np.random.default_rng(13).normal(size=(4, 5)).astype(np.float32)
    target = np.random.default_rng(9).normal(size=(4, 3))
    out = mlp_forward(x.astype(np.float64), w)
    losses = [  # (loss, d(loss)/d(output))
        (None, np.ones((4, 3))),
        (lambda y: backend.total(y * y) / 2, out),  # a second pass replaces (does not accumulate) the first
        (lambda y: backend.total((y - backend.tensor(target.astype(np.float32))) ** 2), 2 * (out - target)),
    ]
    for label, model in _forms(backend, net):
        ps = up.params(model)
        for loss, upstream in losses:
            grads = up.gradients(model, x) if loss is None else up.gradients(model, x, loss=loss)
            expected = mlp_gradients(x.astype(np.float64), w, upstream)
            assert sorted(grads) == sorted(expected), label
            for name, g in expected.items():
                np.testing.assert_allclose(grads[name], g, rtol=1e-4, atol=1e-3, err_msg=f"{label} {name}")
                np.testing.assert_allclose(ps[name].grad(), g, rtol=1e-4, atol=1e-3, err_msg=f"{label} {name}")


def test_float64_inputs_run_through_a_float32_model(backend: ModuleType) -> None:
    net = backend.models.mlp(in_features=5, hidden=7, out_features=3)
    x = np.random.default_rng(10).normal(size=(4, 5))
    np.testing.assert_allclose(
        up.gradients(net, x)["0.weight"], up.gradients(net, x.astype(np.float32))["0.weight"], rtol=1e-6
    )


def test_gradients_skip_non_trainable_state_and_hold_one_pass(backend: ModuleType) -> None:
    bn = backend.models.single_layer("batchnorm", num_features=3)
    grads = up.gradients(bn, np.random.default_rng(11).normal(size=(4, 3)).astype(np.float32))
    assert sorted(grads) == ["0.bias", "0.weight"]
    assert up.params(bn)["0.running_mean"].grad() is None
    net = backend.models.mlp(in_features=5, hidden=7, out_features=3)
    x = np.random.default_rng(10).normal(size=(4, 5)).astype(np.float32)
    first, second = up.gradients(net, x), up.gradients(net, x)
    for name in first:
        np.testing.assert_allclose(second[name], first[name], rtol=1e-6)


@pytest.mark.backends("torch", "gluon")
def test_the_loss_must_be_one_element(backend: ModuleType) -> None:
    net = backend.models.mlp(in_features=5, hidden=7, out_features=3)
    x = np.ones((4, 5), dtype=np.float32)
    with pytest.raises(up.UnifyParamsError, match="one-element"):
        up.gradients(net, x, loss=lambda out: out * 2)
