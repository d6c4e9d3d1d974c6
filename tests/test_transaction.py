"""The one write transaction (unifyparams.transaction.write_all) against real framework refusals.

Every trigger the issue lists, on the backend it belongs to: PyTorch inference tensors (refused
before writing; and, when the check is bypassed, written-then-raised and restored), meta tensors
among real ones, expanded tensors, lazy layers given values by a failed load (put back waiting);
Keras variables whose ``assign`` raises and ``StatelessScope``; Gluon weights in MKLDNN layout
after an inference forward (the d2l LeNet) loaded, initialized and set, and deferred parameters
put back waiting. Messages are checked for what they claim.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
import torch

import unifyparams as up
from unifyparams.conformance.suite.faults import refusing_write
from unifyparams.transaction import write_all
from unifyparams_gluon import import_mxnet

mx = import_mxnet()
gnn = mx.gluon.nn


def bits(model: Any) -> dict[str, bytes]:
    return {n: np.ascontiguousarray(v).tobytes() for n, v in up.params(model).numpy(copy=True).items()}


def plus_one(model: Any) -> dict[str, np.ndarray]:
    return {n: (v + 1).astype(v.dtype) for n, v in up.params(model).numpy(copy=True).items()}


# --- the transaction itself ------------------------------------------------------------------------
def test_refusal_before_writing_lists_every_reason_and_writes_nothing() -> None:
    with torch.inference_mode():
        net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    before = bits(net)
    with refusing_write(up.params(net)["0.weight"].adapter, None) as calls:
        with pytest.raises(up.WriteError, match="nothing was written") as err:
            up.params(net).load(plus_one(net))
    text = str(err.value)
    assert "4 parameter(s)" in text and "'0.weight', '0.bias', '2.weight', '2.bias'" in text
    assert "torch.inference_mode()" in text and "with torch.inference_mode()" in text  # the fix
    assert err.value.changed is False and err.value.parameter is None
    assert calls[0] == 0 and bits(net) == before


def test_inference_tensors_load_inside_inference_mode() -> None:
    with torch.inference_mode():
        net = torch.nn.Linear(3, 2)
    state = plus_one(net)
    with torch.inference_mode():
        up.params(net).load(state)
    np.testing.assert_array_equal(up.params(net)["weight"].numpy(), state["weight"])


def _load_into_an_unchecked_inference_tail(monkeypatch: pytest.MonkeyPatch, *, plain_copies: bool) -> Any:
    """Load into a model whose last layer was built under inference mode, with the adapter's check
    bypassed (PyTorch then writes that tensor and raises); the error, after checking nothing changed."""
    with torch.inference_mode():
        frozen = torch.nn.Linear(4, 2)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), frozen)
    adapter = up.params(net)["0.weight"].adapter
    monkeypatch.setattr(type(adapter), "check_writable", lambda self, native: None)
    if not plain_copies:
        monkeypatch.setattr(type(adapter), "write_target", lambda self, native: None)  # every write through PyTorch
        monkeypatch.setattr(type(adapter), "write_targets", lambda self, natives: [None] * len(natives))
    before = bits(net)
    with pytest.raises(up.WriteError, match="'1.weight'.*Inplace update to inference tensor") as err:
        up.params(net).load(plus_one(net))
    assert "the model is unchanged" in str(err.value) and err.value.changed is False
    assert bits(net) == before
    return err.value


def test_written_then_raised_is_restored_through_the_safe_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the check bypassed, PyTorch writes an inference tensor and then raises; the restore goes
    through inference mode, so the parameter that failed is restored too."""
    err = _load_into_an_unchecked_inference_tail(monkeypatch, plain_copies=False)
    assert "Every parameter written before it (2) was restored" in str(err)


def test_plain_copies_wait_until_every_framework_write_landed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The plain CPU tensors are copied into last, without snapshots: when PyTorch refuses the
    inference tensor, none of them has been touched, and nothing needs restoring."""
    err = _load_into_an_unchecked_inference_tail(monkeypatch, plain_copies=True)
    assert "No parameter had been written before it" in str(err)


def test_a_restore_that_fails_is_named_and_the_message_does_not_claim_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    adapter = up.params(net)["0.weight"].adapter
    first = net[0].weight
    real_restore = type(adapter).restore

    def restore(self: Any, native: Any, value: Any) -> None:
        if native is first:
            raise RuntimeError("device lost")
        real_restore(self, native, value)

    monkeypatch.setattr(type(adapter), "restore", restore)
    monkeypatch.setattr(type(adapter), "write_target", lambda self, native: None)  # every write through PyTorch
    monkeypatch.setattr(type(adapter), "write_targets", lambda self, natives: [None] * len(natives))
    before = up.params(net).numpy(copy=True)
    with refusing_write(adapter, 3), pytest.raises(up.WriteError) as err:
        up.params(net).load(plus_one(net))
    text = str(err.value)
    assert "'0.weight' (RuntimeError: device lost)" in text and "unchanged" not in text
    assert "The other 2 parameter(s) written were restored and verified" in text
    assert err.value.changed is True and err.value.not_restored == ("0.weight",)
    after = up.params(net).numpy()
    assert np.array_equal(after["0.weight"], before["0.weight"] + 1)  # what the message says is not restored
    assert all(np.array_equal(after[n], before[n]) for n in ("0.bias", "1.weight", "1.bias"))


def test_non_atomic_write_says_so_and_names_what_landed(monkeypatch: pytest.MonkeyPatch) -> None:
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    adapter = up.params(net)["0.weight"].adapter
    monkeypatch.setattr(type(adapter), "write_target", lambda self, native: None)  # every write through PyTorch
    monkeypatch.setattr(type(adapter), "write_targets", lambda self, natives: [None] * len(natives))
    before = up.params(net).numpy(copy=True)
    with refusing_write(up.params(net)["0.weight"].adapter, 3), pytest.raises(up.WriteError) as err:
        up.params(net).load(plus_one(net), atomic=False)
    text = str(err.value)
    assert "not atomic (atomic=False)" in text and "'0.weight', '0.bias'" in text and "unchanged" not in text
    after = up.params(net).numpy()
    assert np.array_equal(after["0.weight"], before["0.weight"] + 1)  # the message told the truth
    assert np.array_equal(after["1.bias"], before["1.bias"])


def test_callable_values_are_computed_one_at_a_time_and_a_failing_one_restores() -> None:
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    ps, before = up.params(net), bits(net)
    order: list[str] = []

    def value(name: str) -> Any:
        def compute() -> np.ndarray:
            order.append(name)
            if name == "1.weight":
                raise up.ShapeMismatchError("computed the wrong shape")
            return ps[name].prepare(np.zeros(ps[name].shape, np.float32))

        return compute

    with pytest.raises(up.WriteError, match="computing its value failed: computed the wrong shape") as err:
        write_all([(p, value(n)) for n, p in ps.items()], what="port")
    assert order == ["0.weight", "0.bias", "1.weight"] and err.value.changed is False
    assert bits(net) == before


# --- torch ----------------------------------------------------------------------------------------
def test_meta_layer_among_real_ones_is_refused_before_any_write() -> None:
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2, device="meta"))
    real = net[0].weight.detach().clone()
    state = {"0.weight": np.ones((4, 3), np.float32), "0.bias": np.ones(4, np.float32),
             "1.weight": np.ones((2, 4), np.float32), "1.bias": np.ones(2, np.float32)}
    with pytest.raises(up.WriteError, match=r"'1.weight', '1.bias': it is on the meta device.*up.materialize"):
        up.params(net).load(state)
    assert torch.equal(net[0].weight, real)


def test_expanded_tensor_is_refused() -> None:
    net = torch.nn.Linear(3, 2)
    net.bias = torch.nn.Parameter(torch.zeros(1).expand(2))
    with pytest.raises(up.WriteError, match="share one memory location"):
        up.params(net)["bias"].set(np.ones(2, np.float32))


def test_initialize_and_set_refuse_inference_tensors_and_change_nothing() -> None:
    with torch.inference_mode():
        net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    before = bits(net)
    with pytest.raises(up.WriteError, match="initialize refused"):
        up.initialize(net, up.init.XavierUniform(), seed=0)
    with pytest.raises(up.WriteError, match="set refused"):
        up.params(net)["1.weight"].set(np.zeros((2, 4), np.float32))
    assert bits(net) == before


def test_failed_load_puts_a_lazy_layer_back_waiting_with_its_initializer() -> None:
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.LazyLinear(2))
    up.initialize(net, up.init.Constant(0.5), select="2.weight", seed=0)
    before = up.params(net)["0.weight"].numpy(copy=True)
    state = {"0.weight": np.ones((4, 3), np.float32), "0.bias": np.ones(4, np.float32),
             "2.weight": np.ones((2, 4), np.float32), "2.bias": np.ones(2, np.float32)}
    with refusing_write(up.params(net)["0.weight"].adapter, 4), pytest.raises(up.WriteError, match="unchanged"):
        up.params(net).load(state)
    assert sorted(up.pending(net)) == ["2.bias", "2.weight"]
    assert up.pending(net)["2.weight"].initializer is not None  # still waiting
    np.testing.assert_array_equal(up.params(net)["0.weight"].numpy(), before)
    net(torch.ones(1, 3))  # the framework's own shape inference still works, and the initializer applies
    np.testing.assert_array_equal(up.params(net)["2.weight"].numpy(), np.full((2, 4), 0.5, np.float32))


def test_load_into_a_lazy_layer_wins_over_its_waiting_initializer() -> None:
    net = torch.nn.Sequential(torch.nn.LazyLinear(2))
    up.initialize(net, up.init.Constant(0.5), select="0.weight", seed=0)
    up.params(net).load({"0.weight": np.ones((2, 3), np.float32), "0.bias": np.zeros(2, np.float32)})
    net(torch.ones(1, 3))
    np.testing.assert_array_equal(up.params(net)["0.weight"].numpy(), np.ones((2, 3), np.float32))


# --- checkpoints: ties checked before the first value -----------------------------------------------
def test_checkpoint_tie_of_a_parameter_to_a_buffer_is_refused_before_writing(tmp_path: Path) -> None:
    src = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    src[1].running_mean = src[0].bias  # one tensor, reached as a parameter and as a buffer
    up.save(src, tmp_path / "m.safetensors")
    dst = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    before = bits(dst)
    with pytest.raises(up.CheckpointError, match="'1.running_mean' is a buffer and '0.bias' a parameter.*nothing was changed"):
        up.load(dst, tmp_path / "m.safetensors")
    assert bits(dst) == before and up.ties(dst) == []
    report = up.load(dst, tmp_path / "m.safetensors", strict=False)
    assert report.not_tied == [("0.bias", "1.running_mean")]


def test_keras_embedding_tied_to_a_dense_kernel_of_another_layout_is_refused_before_writing(tmp_path: Path) -> None:
    src = torch.nn.Sequential(torch.nn.Embedding(6, 4), torch.nn.Linear(4, 6, bias=False))
    src[1].weight = src[0].weight
    up.save(src, tmp_path / "m.safetensors")
    dst = keras.Sequential([keras.Input((2,), dtype="int32"), keras.layers.Embedding(6, 4),
                            keras.layers.Dense(6, use_bias=False)])
    before = bits(dst)
    with pytest.raises(up.CheckpointError, match="cannot tie.*nothing was changed"):
        up.load(dst, tmp_path / "m.safetensors")
    assert bits(dst) == before


def test_a_tie_refused_while_loading_restores_every_value(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 4))
    src[1].weight = src[0].weight
    up.save(src, tmp_path / "m.safetensors")
    dst = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 4))
    before = bits(dst)
    adapter = up.params(dst)["0.weight"].adapter

    def refuse(self: Any, root: Any, target: Any, source: Any) -> None:
        raise RuntimeError("tie refused by the framework")

    monkeypatch.setattr(type(adapter), "tie", refuse)
    with pytest.raises(up.WriteError, match="tie refused by the framework.*restored.*unchanged"):
        up.load(dst, tmp_path / "m.safetensors")
    assert bits(dst) == before and up.ties(dst) == []


def test_up_load_refused_write_restores_and_says_so(tmp_path: Path) -> None:
    src = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    up.save(src, tmp_path / "m.safetensors")
    dst = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    before = bits(dst)
    with refusing_write(up.params(dst)["0.weight"].adapter, 2, after=True):
        with pytest.raises(up.WriteError, match="'0.bias'.*unchanged") as err:
            up.load(dst, tmp_path / "m.safetensors")
    assert "nothing was changed" not in str(err.value).split("unchanged")[0]
    assert bits(dst) == before


# --- Keras ----------------------------------------------------------------------------------------
def keras_mlp() -> Any:
    return keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), keras.layers.Dense(2)])


def test_keras_variable_whose_assign_raises_is_restored(monkeypatch: pytest.MonkeyPatch) -> None:
    net = keras_mlp()
    before = bits(net)
    kernel = net.layers[1].kernel
    monkeypatch.setattr(kernel, "assign", lambda value: (_ for _ in ()).throw(RuntimeError("assign refused")))
    adapter = up.params(net)["1.weight"].adapter  # on the torch backend, writes are plain copies otherwise
    monkeypatch.setattr(type(adapter), "write_target", lambda self, native: None)
    monkeypatch.setattr(type(adapter), "write_targets", lambda self, natives: [None] * len(natives))
    with pytest.raises(up.WriteError, match="'1.weight'.*assign refused.*unchanged"):
        up.params(net).load(plus_one(net))
    with pytest.raises(up.WriteError, match="assign refused"):
        up.initialize(net, up.init.XavierUniform(), seed=0)
    assert bits(net) == before


@pytest.mark.parametrize("atomic", [True, False])
@pytest.mark.parametrize("failing", [0, 2])
def test_keras_staged_commit_that_fails_part_way(atomic: bool, failing: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """On TensorFlow a load's values are copied into new tensors (streamed) and each is committed as
    its copy completes: a commit that raises part way restores every commit before it (atomic), or
    the error names the parameters that hold new values (not atomic). The copies into new memory
    themselves change nothing."""
    if keras.backend.backend() != "tensorflow":
        pytest.skip("staged writes are TensorFlow's and JAX's (the torch backend copies into the variables)")
    net = keras_mlp()
    before = bits(net)
    adapter = up.params(net)["0.weight"].adapter
    real_stage = type(adapter).stage_target
    commits: list[int] = []

    def stage_target(self: Any, native: Any) -> Any:
        staged = real_stage(self, native)

        def commit() -> None:
            commits.append(1)
            if len(commits) == failing + 1:
                raise RuntimeError("assign refused")
            staged.commit()

        return type(staged)(staged.memory, commit)

    monkeypatch.setattr(type(adapter), "stage_target", stage_target)
    names = list(up.params(net))
    state = plus_one(net)
    with pytest.raises(up.WriteError, match=f"{names[failing]!r}.*assign refused") as caught:
        up.params(net).load(state, atomic=atomic)
    assert len(commits) == failing + 1  # nothing committed after the failure
    if atomic:
        assert not caught.value.changed and "the model is unchanged" in str(caught.value)
        assert bits(net) == before
    else:
        assert "not atomic" in str(caught.value)
        now, after = up.params(net).numpy(), bits(net)
        for name in names[:failing]:
            assert np.array_equal(now[name], state[name]) and name in caught.value.not_restored
        for name in names[failing:]:  # the failed commit and those after it were never made
            assert after[name] == before[name]


def test_keras_stateless_scope_is_refused_before_writing() -> None:
    net = keras_mlp()
    before = bits(net)
    with keras.StatelessScope(), pytest.raises(up.WriteError, match="StatelessScope.*outside the scope"):
        up.params(net).load(plus_one(net))
    assert bits(net) == before


# --- Gluon ----------------------------------------------------------------------------------------
def d2l_lenet() -> Any:
    net = gnn.HybridSequential()
    net.add(gnn.Conv2D(6, kernel_size=5, padding=2, activation="sigmoid"), gnn.AvgPool2D(pool_size=2, strides=2),
            gnn.Conv2D(16, kernel_size=5, activation="sigmoid"), gnn.AvgPool2D(pool_size=2, strides=2),
            gnn.Dense(120, activation="sigmoid"), gnn.Dense(84, activation="sigmoid"), gnn.Dense(10))
    return net


@pytest.fixture(params=["plain", "hybridized", "numpy"])
def forwarded_lenet(request: pytest.FixtureRequest) -> Iterator[Any]:
    """The d2l LeNet after an inference forward: its conv weights are in MKLDNN's layout."""
    if request.param == "numpy":
        mx.npx.set_np()
    try:
        net = d2l_lenet()
        net.initialize()
        if request.param != "plain":
            net.hybridize()
        ones = mx.np.ones if request.param == "numpy" else mx.nd.ones
        net(ones((1, 1, 28, 28)))
        mx.nd.waitall()
        yield net
    finally:
        if request.param == "numpy":
            mx.npx.reset_np()


def test_gluon_lenet_after_forward_loads_initializes_and_sets(forwarded_lenet: Any) -> None:
    net, ps = forwarded_lenet, up.params(forwarded_lenet)
    state = plus_one(net)
    ps.load(state)
    assert all(np.array_equal(ps[n].numpy(), v) for n, v in state.items())
    up.initialize(net, up.init.Constant(0.25), select="2.weight")
    np.testing.assert_array_equal(ps["2.weight"].numpy(), np.full((16, 6, 5, 5), 0.25, np.float32))
    ps["0.weight"].set(np.ones((6, 1, 5, 5), np.float32))
    ps["2.weight"][0, 0, 0, 0] = 7.0
    ps["2.weight"].update(lambda w: w * 2)
    assert ps["2.weight"].numpy()[0, 0, 0, 0] == 14.0 and ps["2.weight"].numpy()[1, 0, 0, 0] == 0.5
    ones = mx.np.ones if mx.util.is_np_array() else mx.nd.ones
    out = net(ones((1, 1, 28, 28)))  # the model still runs on what was written
    assert out.shape == (1, 10)


def test_gluon_refused_write_part_way_restores_mkldnn_weights(forwarded_lenet: Any) -> None:
    net = forwarded_lenet
    before = bits(net)
    with refusing_write(up.params(net)["0.weight"].adapter, 4, after=True):
        with pytest.raises(up.WriteError, match="unchanged"):
            up.params(net).load(plus_one(net))
    assert bits(net) == before


def test_gluon_deferred_layer_goes_back_to_waiting_after_a_failed_load() -> None:
    net = gnn.HybridSequential()
    net.add(gnn.Dense(4, in_units=3), gnn.Dense(2))
    net.initialize()
    up.initialize(net, up.init.Constant(0.5), select="1.weight", seed=0)
    state = {"0.weight": np.ones((4, 3), np.float32), "0.bias": np.ones(4, np.float32),
             "1.weight": np.ones((2, 4), np.float32), "1.bias": np.ones(2, np.float32)}
    before = up.params(net)["0.weight"].numpy(copy=True)
    with refusing_write(up.params(net)["0.weight"].adapter, 4), pytest.raises(up.WriteError, match="unchanged"):
        up.params(net).load(state)
    assert sorted(up.pending(net)) == ["1.weight"]  # Gluon initializes the bias: its shape is known
    assert up.pending(net)["1.weight"].initializer is not None
    np.testing.assert_array_equal(up.params(net)["0.weight"].numpy(), before)
    net(mx.nd.ones((1, 3)))  # Gluon's own deferred initialization still works, with the initializer waiting
    np.testing.assert_array_equal(up.params(net)["1.weight"].numpy(), np.full((2, 4), 0.5, np.float32))
