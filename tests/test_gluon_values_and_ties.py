"""MXNet Gluon facts about writes, gradients and ties: every context, autograd recording, grad_req.

What every backend shares is in tests/test_writes.py, tests/test_gradients.py and tests/test_ties.py.
"""

from __future__ import annotations

import numpy as np
import pytest

import unifyparams as up

from .backends.gluon import in_numpy_mode, models, mx, nn, randomize, rng

pytestmark = pytest.mark.gluon


def test_set_and_update_keep_the_parameter_object_and_reach_every_context() -> None:
    net = nn.HybridSequential()
    net.add(nn.Dense(3, in_units=2))
    net.initialize(ctx=[mx.cpu(0), mx.cpu(1)])
    net.hybridize()
    p = up.params(net)["0.weight"]
    native, arrays = p.native, list(net[0].weight.list_data())
    p.set(np.arange(6, dtype=np.float32).reshape(3, 2))
    p.update(lambda w: w + 1)
    p[0, 0] = 42.0
    expected = np.arange(6, dtype=np.float32).reshape(3, 2) + 1
    expected[0, 0] = 42.0
    assert p.native is native and net[0].weight is native and net[0]._reg_params["weight"] is native
    assert all(a is b for a, b in zip(net[0].weight.list_data(), arrays))  # written in place
    for data in net[0].weight.list_data():
        np.testing.assert_array_equal(data.asnumpy(), expected)
    up.params(net)["0.bias"].set(np.ones(3, np.float32))
    x = np.ones((1, 2), np.float32)
    out = net(mx.nd.array(x, ctx=mx.cpu(1))).asnumpy()
    np.testing.assert_allclose(out, x @ expected.T + 1)


def test_a_write_inside_autograd_recording_keeps_the_pass_usable() -> None:
    net = models.mlp(in_features=3, hidden=4, out_features=2)
    p = up.params(net)["0.bias"]
    x = mx.nd.ones((1, 3))
    with mx.autograd.record():
        p.set(np.zeros(4, np.float32))
        loss = net(x).sum()
    loss.backward()
    np.testing.assert_array_equal(p.numpy(), np.zeros(4, np.float32))
    assert p.grad() is not None


def test_gradients_hold_one_pass_even_where_gluon_would_accumulate() -> None:
    net = models.mlp(in_features=5, hidden=7, out_features=3)
    for p in net.collect_params().values():
        p.grad_req = "add"  # Gluon would accumulate across passes
    x = rng(10).normal(size=(4, 5)).astype(np.float32)
    first = up.gradients(net, x)
    second = up.gradients(net, x)
    for name in first:
        np.testing.assert_allclose(second[name], first[name], rtol=1e-6)


def test_parameters_shared_through_params_are_listed_once_by_gluon() -> None:
    net = models.shared_mlp()
    assert up.params(net)["2.weight"].native is net[2].weight
    assert len(list(net.collect_params().keys())) == 6  # Gluon lists the shared Parameters once too


@pytest.mark.parametrize("numpy_mode_model", [False, True])
def test_tie_and_untie(numpy_mode_model: bool) -> None:
    build = lambda shared: models.shared_mlp(shared=shared)  # noqa: E731
    net = in_numpy_mode(lambda: build(False)) if numpy_mode_model else build(False)
    randomize(net, seed=13)
    net.hybridize()
    x = rng(14).normal(size=(3, 20)).astype(np.float32)
    models.forward(net, x)  # build the cached graph first: the tie must drop it
    assert up.tie(net, "2", "4") == [("2.weight", "4.weight"), ("2.bias", "4.bias")]
    assert net[4].weight is net[2].weight and net[4]._reg_params["bias"] is net[2].bias
    assert up.ties(net) == [("2.weight", "4.weight"), ("2.bias", "4.bias")]
    names = list(net.collect_params().keys())
    assert len(names) == 6 and mx.gluon.Trainer(net.collect_params(), "sgd") is not None
    native = models.shared_mlp(shared=True)  # the same values, shared natively with params=
    up.params(native).load(up.params(net).numpy(copy=True))
    np.testing.assert_allclose(models.forward(net, x), models.forward(native, x), atol=1e-6)
    grads, native_grads = up.gradients(net, x), up.gradients(native, x)
    for name in grads:
        np.testing.assert_allclose(grads[name], native_grads[name], atol=1e-5, err_msg=name)

    shared = net[2].weight
    before = up.params(net).numpy(copy=True)
    assert up.untie(net, "4") == ["4.weight", "4.bias"]
    ps = up.params(net)
    assert up.ties(net) == [] and net[2].weight is shared and net[4].weight is not shared
    assert ps["4.weight"].native is net[4].weight is net[4]._reg_params["weight"]
    assert ps["4.weight"].trainable and net[4].weight.grad_req == shared.grad_req
    assert isinstance(net[4].weight.data(), mx.np.ndarray if numpy_mode_model else mx.nd.NDArray)
    for name, value in before.items():
        np.testing.assert_array_equal(ps[name].numpy(), value)
    assert len(set(net.collect_params().keys())) == 8
    np.testing.assert_allclose(models.forward(net, x), models.forward(native, x), atol=1e-6)  # same values still
    ps["4.weight"].update(lambda w: w + 1)
    np.testing.assert_array_equal(ps["2.weight"].numpy(), before["2.weight"])
    assert not np.allclose(models.forward(net, x), models.forward(native, x))
    assert set(up.gradients(net, x)) == set(before)


def test_untie_keeps_grad_req() -> None:
    net = models.shared_mlp()
    net[2].weight.grad_req = "null"
    up.untie(net, "4.weight")
    assert net[4].weight.grad_req == "null" and not up.params(net)["4.weight"].trainable
    assert up.ties(net) == [("2.bias", "4.bias")]


@pytest.mark.parametrize("mode", ["plain", "hybridized", "onednn-fused"])
@pytest.mark.parametrize("direct", [False, True], ids=["small-through-mxnet", "all-in-memory"])
def test_writes_reach_the_outputs_of_hybridized_and_fused_blocks(mode: str, direct: bool,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Writes go straight into a CPU array's memory (unifyparams_gluon.host_memory), after MXNet
    put a oneDNN-layout weight back into the default layout, and advance the array's version, which
    a fused oneDNN subgraph checks before it reuses the weights it reordered: the outputs after a
    load are those of a block given the same values with MXNet's own set_data. ``all-in-memory``
    lowers the 1 MiB threshold, so every parameter is a plain copy of the core's
    (``write_target``: the version advanced before the copy)."""
    from unifyparams_gluon import host_memory

    if direct:
        monkeypatch.setattr(host_memory, "MIN_BYTES", 0)
    def build() -> object:
        net = nn.HybridSequential()
        net.add(nn.Conv2D(16, 3, in_channels=8, use_bias=False), nn.BatchNorm(in_channels=16), nn.Activation("relu"),
                nn.Dense(4))
        net.initialize()
        return net

    x = mx.nd.array(rng(3).random((2, 8, 8, 8)).astype(np.float32))
    net = build()
    if mode == "hybridized":
        net.hybridize(static_alloc=True, static_shape=True)
    elif mode == "onednn-fused":
        net.optimize_for(x, backend="MKLDNN")
    with mx.autograd.predict_mode():
        before = net(x).asnumpy()  # weights now in oneDNN's layout, fused weights cached
    ps = up.params(net)
    new = {k: (v * 0.5 + 0.01).astype(v.dtype) for k, v in ps.numpy(copy=True).items()}
    ps.load(new)
    with mx.autograd.predict_mode():
        after = net(x).asnumpy()
    reference = build()
    reference(x)
    for value, p in zip(new.values(), reference.collect_params().values()):
        p.set_data(mx.nd.array(value))
    with mx.autograd.predict_mode():
        expected = reference(x).asnumpy()
    assert not np.allclose(before, after)
    np.testing.assert_allclose(after, expected, rtol=1e-5, atol=1e-5)
