"""Sharing and ties on every backend: a layer used twice, and what cannot be untied."""

from __future__ import annotations

from types import ModuleType

import numpy as np
import pytest

import unifyparams as up


def test_a_layer_used_twice_is_listed_under_both_names_and_counted_once(backend: ModuleType) -> None:
    kit = backend.models
    net = kit.shared_mlp()
    ps = up.params(net)
    assert list(ps) == [f"{i}.{leaf}" for i in (0, 2, 4, 6) for leaf in ("weight", "bias")]
    assert ps["2.weight"].native is ps["4.weight"].native is up.params(kit.child(net, "2"))["weight"].native
    assert ps["2.weight"].shared_with == ("4.weight",) and ps["4.bias"].shared_with == ("2.bias",)
    assert ps["4.weight"].shared_with == ("2.weight",) and ps["0.weight"].shared_with == ()
    assert ps.count() == 20 * 8 + 8 + 8 * 8 + 8 + 8 + 1 == up.params(kit.shared_mlp(shared=False)).count() - 72
    assert up.ties(net) == [("2.weight", "4.weight"), ("2.bias", "4.bias")]
    ps["4.weight"][3, 3] = 9.0
    assert backend.native_numpy(up.params(net)["2.weight"])[3, 3] == 9.0
    ps["4.bias"][3] = 9.0
    assert up.params(net)["2.bias"].numpy()[3] == 9.0
    with pytest.raises(up.LoadError, match="share one storage"):
        ps.load({**ps.numpy(copy=True), "4.bias": np.zeros(8, dtype=np.float32)})
    grads = up.gradients(net, np.random.default_rng(12).normal(size=(3, 20)).astype(np.float32))
    np.testing.assert_array_equal(grads["2.weight"], grads["4.weight"])


def test_untie_of_a_reused_layer_object_is_refused(backend: ModuleType) -> None:
    net, name, words = backend.reused_layer()
    ps = up.params(net)
    [other] = ps[name].shared_with
    with pytest.raises(up.TieError, match=words):
        up.untie(net, name)
    assert up.params(net)[name].native is up.params(net)[other].native
