"""Keras 3 facts about ties and unbuilt models, on the backend ``KERAS_BACKEND`` selects.

What every backend shares is in tests/test_ties.py and the conformance suite's ``tie.*`` and ``lazy.*``.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

import unifyparams as up
from unifyparams.lazy import materialize

from .backends.keras import BACKEND, assert_unchanged, run, seq, shared_mlp, snapshot
from .backends.reference import assert_close

pytestmark = pytest.mark.keras
L = keras.layers
ADAPTER = up.get_adapter("keras")


def test_tie_and_untie() -> None:
    net = shared_mlp(shared=False)
    x = np.random.default_rng(16).normal(size=(3, 20)).astype(np.float32)
    source = up.params(net)["2.weight"].numpy(copy=True)
    assert up.tie(net, "2", "4") == [("2.weight", "4.weight"), ("2.bias", "4.bias")]
    assert net.layers[4].kernel is net.layers[2].kernel and net.layers[4].bias is net.layers[2].bias
    assert len(net.trainable_variables) == 6 and len(net.get_weights()) == 6
    assert up.ties(net) == [("2.weight", "4.weight"), ("2.bias", "4.bias")]
    if BACKEND == "torch":
        assert len(list(net.parameters())) == 6  # the torch mirror lists the shared parameter once
    ps = up.params(net)
    assert np.array_equal(ps["4.weight"].numpy(), source)
    ps["4.bias"].set(np.full(8, 0.5, dtype=np.float32))
    assert np.all(up.params(net)["2.bias"].numpy() == 0.5)

    twin = shared_mlp(shared=False)
    up.params(twin).load(up.params(net).numpy(copy=True))
    assert_close(run(net, x), run(twin, x), atol=1e-5)
    g = up.gradients(net, x)
    g_twin = up.gradients(twin, x)
    assert_close(g["2.weight"], g_twin["2.weight"].astype(np.float64) + g_twin["4.weight"])

    assert up.untie(net, "4.weight") == ["4.weight"]
    ps = up.params(net)
    assert ps["4.weight"].native is not ps["2.weight"].native
    assert net.layers[4].kernel is ps["4.weight"].native
    assert np.array_equal(ps["4.weight"].numpy(), source)
    assert ps["4.weight"].trainable and ps["4.weight"].native.path.endswith("/kernel")
    ps["4.weight"][0, 0] = -7.0
    assert ps["2.weight"].numpy()[0, 0] != -7.0
    assert up.ties(net) == [("2.bias", "4.bias")]
    assert len(net.trainable_variables) == 7
    if BACKEND == "torch":
        assert len(list(net.parameters())) == 7
    grads = up.gradients(net, x)  # the untied variable trains on its own again
    assert grads["4.weight"].shape == (8, 8) and not np.array_equal(grads["4.weight"], grads["2.weight"])


def test_tie_refuses_different_native_layouts_and_changes_nothing() -> None:
    class Model(keras.Model):
        def __init__(self) -> None:
            super().__init__()
            self.embed = L.Embedding(8, 8)
            self.proj = L.Dense(8)
            self.norm = L.BatchNormalization()

        def call(self, tokens):  # noqa: ANN001, ANN201
            return self.norm(self.proj(self.embed(tokens)))

    net = Model()
    net(np.zeros((1, 3), dtype="int32"))
    ps = up.params(net)
    before = snapshot(ps)
    kernel = net.proj.kernel
    assert ps["proj.weight"].shape == ps["embed.weight"].shape == (8, 8)
    with pytest.raises(up.TieError, match="layouts"):
        up.tie(net, "embed.weight", "proj.weight")  # Dense keeps (in, out), Embedding (num, dim)
    with pytest.raises(up.TieError, match="trainable"):
        up.tie(net, "norm.running_mean", "proj.bias")
    assert net.proj.kernel is kernel and up.ties(net) == []
    assert_unchanged(up.params(net), before)


def test_a_block_tie_refused_for_one_pair_ties_nothing() -> None:
    frozen = L.BatchNormalization()
    net = seq((4,), L.BatchNormalization(), frozen)
    frozen.trainable = False  # gamma/beta become non-trainable; moving stats already are
    ps = up.params(net)
    assert ps["0.running_mean"].trainable == ps["1.running_mean"].trainable
    with pytest.raises(up.TieError, match="trainable"):
        up.tie(net, "0", "1")
    assert up.ties(net) == []  # not even the running statistics, which alone could be tied
    assert net.layers[1].moving_mean is not net.layers[0].moving_mean


def test_unbuilt_model_walks_and_materializes() -> None:
    net = keras.Sequential([L.Dense(4), L.Activation("relu"), L.Dense(2)])
    before = up.params(net)  # what build() will create, with the input size unknown
    assert {n: p.shape for n, p in before.items()} == {
        "0.weight": (4, None), "0.bias": (4,), "2.weight": (2, None), "2.bias": (2,),
    }
    assert not any(p.materialized for p in before.values())
    assert ADAPTER.has_unbuilt(net)
    ps = materialize(net, input_shape=(3, 7))
    assert list(ps) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert ps["0.weight"].shape == (4, 7)
    assert not ADAPTER.has_unbuilt(net)


class Custom(keras.Model):
    def __init__(self) -> None:
        super().__init__()
        self.embed = L.Embedding(50, 8)
        self.encoder = [L.Dense(8), L.Dense(8)]
        self.norm = L.LayerNormalization()
        self.heads = {"cls": L.Dense(3), "reg": L.Dense(1)}

    def call(self, tokens):  # noqa: ANN001, ANN201
        x = keras.ops.mean(self.embed(tokens), axis=1)
        for layer in self.encoder:
            x = layer(x)
        x = self.norm(x)
        return keras.ops.concatenate([self.heads["cls"](x), self.heads["reg"](x)], axis=-1)


def test_subclassed_model_materializes_from_example_input() -> None:
    net = Custom()
    before = up.params(net)  # Dense and LayerNorm stand-ins; the Embedding's come with build
    assert before["encoder.0.weight"].shape == (8, None) and before["norm.weight"].shape == (None,)
    assert ADAPTER.has_unbuilt(net)
    ps = materialize(net, np.zeros((2, 5), dtype="int32"))
    assert len(ps) == 11 and ps["heads.reg.weight"].shape == (1, 8)
    assert not ADAPTER.has_unbuilt(net)


def test_materialize_failure_names_the_problem() -> None:
    net = keras.Sequential([L.Dense(4), L.Reshape((3, 3))])
    with pytest.raises(up.NotMaterializedError, match="Reshape"):
        materialize(net, input_shape=(2, 7))
