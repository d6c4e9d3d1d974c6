"""Atomic writes without snapshots (unifyparams.memory_write) on real PyTorch and Gluon models.

Where the adapter hands out a parameter's memory (``write_target``), the value is copied in by
NumPy after every write that needs the framework landed: no copy of the old values is taken, a
refusal of any other write still leaves the model unchanged, Ctrl-C waits for the copies, autograd
and MXNet's fused blocks learn of the change, and values read from the model itself are not
overwritten before they are copied.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import unifyparams as up
from unifyparams import memory_write, streamed, transaction
from unifyparams.init import streams
from unifyparams_gluon import host_memory, import_mxnet

mx = import_mxnet()


def _mlp() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))


def _shifted(model: Any) -> dict[str, np.ndarray]:
    return {n: (v + 1).astype(v.dtype) for n, v in up.params(model).numpy(copy=True).items()}


def _no_snapshots(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(p: Any) -> None:
        raise AssertionError(f"a snapshot of {p.name!r} was taken")

    monkeypatch.setattr(transaction, "_snapshot", refuse)


@pytest.mark.parametrize("atomic", [True, False])
def test_a_torch_load_takes_no_snapshot_and_lands_whole(atomic: bool, monkeypatch: pytest.MonkeyPatch,
                                                        tmp_path: Path) -> None:
    source, net = _mlp(), torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    up.save(source, tmp_path / "m.safetensors")
    _no_snapshots(monkeypatch)
    up.load(net, tmp_path / "m.safetensors", atomic=atomic)
    x = torch.randn(3, 8)
    assert torch.equal(net(x), source(x))


def test_autograd_learns_of_the_plain_copy() -> None:
    """As after PyTorch's own in-place copy: a backward through values saved before the write fails."""
    net = _mlp()
    out = net(torch.randn(2, 8)).sum()
    up.params(net).load(_shifted(net))
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.backward()


def test_a_framework_write_that_fails_leaves_the_plain_copies_untouched(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bfloat16 tensor (NumPy has no such dtype) goes through PyTorch, with a snapshot; when that write
    is refused, no plain copy has started: nothing to restore, the model unchanged."""
    net = _mlp()
    net[2].bias.data = net[2].bias.data.to(torch.bfloat16)
    ps = up.params(net)
    before = {n: torch.clone(t) for n, t in net.state_dict().items()}
    adapter = ps["0.weight"].adapter
    real_write = type(adapter).write

    def write(self: Any, native: Any, value: np.ndarray) -> None:
        if native.dtype == torch.bfloat16:
            raise RuntimeError("device lost")
        real_write(self, native, value)

    monkeypatch.setattr(type(adapter), "write", write)
    copies: list[int] = []
    monkeypatch.setattr(memory_write, "copy_all", lambda targets, *a: copies.append(len(targets)))
    with pytest.raises(up.WriteError, match=r"'2.bias'.*device lost.*the model is unchanged") as err:
        ps.load(_shifted(net), cast=True)
    assert err.value.changed is False and copies == []
    assert all(torch.equal(before[n], t) for n, t in net.state_dict().items())


def test_ctrl_c_during_the_copies_arrives_once_they_are_done(monkeypatch: pytest.MonkeyPatch) -> None:
    net, state = _mlp(), None
    state = _shifted(net)
    real_copy = streamed.copy_into
    calls = [0]

    def copy_into(dst: np.ndarray, src: np.ndarray, threaded: bool = True) -> None:
        calls[0] += 1
        if calls[0] == 1:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C after the first copy
        real_copy(dst, src, threaded)

    monkeypatch.setattr(streamed, "copy_into", copy_into)
    with pytest.raises(KeyboardInterrupt):
        up.params(net).load(state)
    assert calls[0] == 4
    now = up.params(net).numpy()
    assert all(np.array_equal(now[n], v) for n, v in state.items())  # every value landed


def _gluon_pair() -> Any:
    net = mx.gluon.nn.HybridSequential()  # 1.4 MiB each: Gluon shows memory of 1 MiB or more
    net.add(mx.gluon.nn.Dense(600, in_units=600, use_bias=False), mx.gluon.nn.Dense(600, in_units=600, use_bias=False))
    net.initialize(mx.init.Uniform(1.0))
    return net


def _keras_pair() -> Any:
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(4, use_bias=False),
                              keras.layers.Dense(4, use_bias=False)])
    return model


@pytest.mark.parametrize("atomic", [True, False])
@pytest.mark.parametrize("through", ["plain copies", "the framework"])
@pytest.mark.parametrize("build", [
    pytest.param(lambda: torch.nn.Sequential(torch.nn.Linear(4, 4, bias=False), torch.nn.Linear(4, 4, bias=False)),
                 id="torch"),
    pytest.param(_gluon_pair, id="gluon"),
    pytest.param(_keras_pair, id="keras", marks=pytest.mark.keras),
])
def test_values_read_from_the_model_itself_are_copied_before_they_are_overwritten(
        atomic: bool, through: str, build: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two weights swapped by views of the model's own memory land swapped, whether they are copied
    in by NumPy or written by the framework (a load with ties to make, a dtype NumPy cannot hold)."""
    net = build()
    ps = up.params(net)
    names = list(ps)
    if through == "the framework":
        monkeypatch.setattr(type(ps[names[0]].adapter), "write_target", lambda self, native: None)
        monkeypatch.setattr(type(ps[names[0]].adapter), "write_targets", lambda self, natives: [None] * len(natives))
    first, second = ps[names[0]].numpy().copy(), ps[names[1]].numpy().copy()
    views = {name: ps[name].layout.to_canonical(ps[name].adapter.borrow(ps[name].native)) for name in names}
    ps.load({names[0]: views[names[1]], names[1]: views[names[0]]}, atomic=atomic)
    assert np.array_equal(ps[names[0]].numpy(), second) and np.array_equal(ps[names[1]].numpy(), first)


def test_the_models_own_values_loaded_back_are_not_copied() -> None:
    """A value over its own parameter's memory alone needs no copy; one over another's gets one."""
    ps = up.params(_mlp())
    views = ps.numpy()
    items = [(ps[name], views[name]) for name in ps]
    memory_write.unalias(items, [])
    assert all(value is views[p.name] for p, value in items)
    swapped = [(ps["0.weight"], views["2.weight"]), (ps["2.weight"], views["0.weight"])]
    memory_write.unalias(swapped, [])
    assert swapped[0][1] is not views["2.weight"] and np.array_equal(swapped[0][1], views["2.weight"])


def test_a_transposed_load_into_torch_is_exact() -> None:
    """Values in another layout (a Keras kernel's ``(in, out)``) are tiled into PyTorch's ``(out, in)``."""
    net = torch.nn.Linear(600, 700)  # over the tiled copy's threshold
    kernel = np.random.default_rng(0).random((600, 700), dtype=np.float32)
    up.params(net).load({"weight": kernel.T, "bias": np.zeros(700, np.float32)})
    assert np.array_equal(net.weight.detach().numpy(), kernel.T)


def test_a_gluon_load_copies_into_memory_and_the_hybridized_block_sees_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(host_memory, "MIN_BYTES", 0)  # every parameter, not only those of 1 MiB or more
    net = mx.gluon.nn.HybridSequential()
    net.add(mx.gluon.nn.Dense(16, in_units=8, activation="relu"), mx.gluon.nn.Dense(4, in_units=16))
    net.initialize()
    net.hybridize(static_alloc=True)
    x = mx.nd.array(np.random.default_rng(1).random((2, 8), dtype=np.float32))
    net(x)
    ps = up.params(net)
    state = _shifted(net)
    _no_snapshots(monkeypatch)
    targets: list[str] = []
    real_plan = memory_write.plan
    monkeypatch.setattr(memory_write, "plan", lambda items, what: [
        t for t in real_plan(items, what) if not targets.append(t.param.name)])
    ps.load(state)
    assert sorted(targets) == sorted(state)
    w0, b0, w1, b1 = (state[n] for n in ("0.weight", "0.bias", "1.weight", "1.bias"))
    expected = np.maximum(x.asnumpy() @ w0.T + b0, 0) @ w1.T + b1
    np.testing.assert_allclose(net(x).asnumpy(), expected, rtol=1e-5, atol=1e-5)


def _keras_mlp() -> Any:
    import keras

    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(4)])


def _gluon_mlp() -> Any:
    net = mx.gluon.nn.HybridSequential()
    net.add(mx.gluon.nn.Dense(16, in_units=8, activation="relu"), mx.gluon.nn.Dense(4, in_units=16))
    net.initialize()
    return net


def _outputs(model: Any, x: np.ndarray) -> np.ndarray:
    if isinstance(model, torch.nn.Module):
        return model(torch.from_numpy(x)).detach().numpy()
    if isinstance(model, mx.gluon.Block):
        return model(mx.nd.array(x)).asnumpy()
    return np.asarray(model(x))


@pytest.mark.keras
@pytest.mark.parametrize(("source", "destination"), [
    (_keras_mlp, _mlp), (_gluon_mlp, _mlp), (_mlp, _gluon_mlp), (_keras_mlp, _gluon_mlp)],
    ids=["keras-to-torch", "gluon-to-torch", "torch-to-gluon", "keras-to-gluon"])
def test_a_port_borrows_its_sources_and_copies_without_snapshots(source: Any, destination: Any,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Every source tensor is borrowed (a view of its memory, Keras kernels transposed on the way) and
    copied into the destination's memory once nothing else is left to write: no snapshot at all."""
    monkeypatch.setattr(host_memory, "MIN_BYTES", 0)
    src, dst = source(), destination()
    _no_snapshots(monkeypatch)
    up.port(src, dst)
    x = np.random.default_rng(2).random((3, 8), dtype=np.float32)
    np.testing.assert_allclose(_outputs(dst, x), _outputs(src, x), rtol=1e-5, atol=1e-5)


def test_a_port_of_a_model_into_itself_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    net = _mlp()
    before = {n: torch.clone(t) for n, t in net.state_dict().items()}
    up.port(net, net)
    assert all(torch.equal(before[n], t) for n, t in net.state_dict().items())


@pytest.mark.parametrize("init", [up.init.XavierUniform(), up.init.Normal(0.0, 0.02), up.init.Zeros()],
                         ids=["xavier", "normal", "zeros"])
def test_a_seeded_init_fills_memory_without_snapshots_with_the_same_bits(init: Any,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Catalog draws go straight into PyTorch's and MXNet's memory, last, with no snapshot; the values
    are those of a non-atomic init and the same in both frameworks."""
    monkeypatch.setattr(host_memory, "MIN_BYTES", 0)
    pairs = [(_mlp(), _mlp()), (_gluon_mlp(), _gluon_mlp())]
    for reference, _ in pairs:
        up.initialize(reference, init, seed=4, atomic=False)
    _no_snapshots(monkeypatch)
    for reference, model in pairs:
        up.initialize(model, init, seed=4)
        expected, now = up.params(reference).numpy(copy=True), up.params(model).numpy()
        assert all(now[n].tobytes() == v.tobytes() for n, v in expected.items())
    torch_values, gluon_values = (up.params(model).numpy() for _, model in pairs)
    for gluon_name, torch_name in (("0.weight", "0.weight"), ("1.weight", "2.weight")):  # the same layers
        assert gluon_values[gluon_name].tobytes() == torch_values[torch_name].tobytes()


def test_an_init_whose_framework_write_fails_fills_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Orthogonal weights (not a stream) go through PyTorch with snapshots, the biases' zeros are
    streamed fills; when PyTorch refuses a weight, none of the fills has started."""
    net = _mlp()
    before = {n: torch.clone(t) for n, t in net.state_dict().items()}
    adapter = up.params(net)["0.weight"].adapter
    real_view = type(adapter).writable_view  # orthogonal values are written into the tensor's memory

    def writable_view(self: Any, native: Any) -> np.ndarray | None:
        if native is net[2].weight:
            raise RuntimeError("device lost")
        return real_view(self, native)

    monkeypatch.setattr(type(adapter), "writable_view", writable_view)
    fills: list[int] = []
    monkeypatch.setattr(memory_write, "copy_all", lambda targets, *a: fills.append(len(targets)))
    with pytest.raises(up.WriteError, match=r"'2.weight'.*device lost.*the model is unchanged"):
        up.initialize(net, up.init.Orthogonal(), seed=1)
    assert fills == []
    assert all(torch.equal(before[n], t) for n, t in net.state_dict().items())


@pytest.mark.keras
def test_a_keras_load_inside_an_autocast_scope_writes_the_variables_themselves() -> None:
    """Under an autocast scope a Keras variable's ``.value`` is a cast copy; the plain copy on the
    torch backend (and ``assign`` elsewhere) writes the variable's own float32 values."""
    from keras.src.backend.common.variables import AutocastScope

    net = _keras_mlp()
    state = {n: (v + 0.125).astype(v.dtype) for n, v in up.params(net).numpy(copy=True).items()}
    with AutocastScope("float16"):
        up.params(net).load(state)
    now = up.params(net).numpy()
    assert all(now[n].dtype == np.float32 and np.array_equal(now[n], v) for n, v in state.items())


@pytest.mark.keras
@pytest.mark.parametrize("init", [up.init.XavierUniform(), up.init.Normal(0.0, 0.02)], ids=["xavier", "normal"])
@pytest.mark.parametrize("atomic", [True, False])
def test_a_seeded_init_into_keras_draws_straight_into_the_new_tensors(init: Any, atomic: bool,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """On TensorFlow (and JAX) a catalog draw goes into memory the framework then takes over
    (``stage_target``): no value is computed first, and the bits are those of a computed one."""
    import keras

    if keras.backend.backend() == "torch":
        pytest.skip("on the torch backend the draws go into the variables' own memory (write_target)")
    reference, net = _keras_mlp(), _keras_mlp()
    adapter = up.params(net)["0.weight"].adapter
    with monkeypatch.context() as patch:
        patch.setattr(type(adapter), "stage_target", lambda self, native: None)
        up.initialize(reference, init, seed=9, atomic=atomic)
    commits: list[str] = []
    real_stage = type(adapter).stage_target

    def stage_target(self: Any, native: Any) -> Any:
        staged = real_stage(self, native)
        return type(staged)(staged.memory, lambda: (commits.append(native.path), staged.commit())[1])

    monkeypatch.setattr(type(adapter), "stage_target", stage_target)
    monkeypatch.setattr(memory_write.Fill, "__call__", lambda self: pytest.fail("a value was computed"))
    up.initialize(net, init, seed=9, atomic=atomic)
    assert len(commits) == len(up.params(net))
    expected, now = up.params(reference).numpy(), up.params(net).numpy()
    assert all(now[n].tobytes() == v.tobytes() for n, v in expected.items())


def _resident_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/self/status")


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="Linux only: resident high-water mark")
def test_a_load_maps_one_tensor_of_the_file_at_a_time(tmp_path: Path) -> None:
    """Each tensor's pages are mapped just before its copy and let go after (unifyparams.mapped):
    the resident high-water mark of a 64 MiB load grows by about one 4 MiB tensor, not by the file."""
    net = torch.nn.Sequential(*[torch.nn.Linear(1024, 1024, bias=False) for _ in range(16)])
    up.save(net, tmp_path / "m.safetensors")
    up.load(net, tmp_path / "m.safetensors")  # warm: page cache, allocator
    Path("/proc/self/clear_refs").write_text("5")  # reset the high-water mark to the current RSS
    before = _resident_kib("VmRSS")
    up.load(net, tmp_path / "m.safetensors")
    grown = _resident_kib("VmHWM") - before
    assert grown < 16 * 1024, f"the load's resident peak grew by {grown} KiB for a 64 MiB file of 4 MiB tensors"


def _deep_mlp(layers: int = 6) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(*[torch.nn.Linear(64, 64) for _ in range(layers)])


def test_many_fills_run_a_value_to_a_worker_thread_with_the_bits_of_a_computed_init(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """With at least as many fills as threads, each value is drawn whole on one worker thread (its
    draw's own parts in order there): the bits are those of values computed and written one by one."""
    from unifyparams import workers

    reference, net = _deep_mlp(), _deep_mlp()
    adapter = up.params(net)["0.weight"].adapter
    with monkeypatch.context() as patch:
        patch.setattr(type(adapter), "write_target", lambda self, native: None)
        patch.setattr(type(adapter), "write_targets", lambda self, natives: [None] * len(natives))
        patch.setattr(type(adapter), "writable_view", lambda self, native: None)
        up.initialize(reference, up.init.XavierUniform(), seed=3)
    on_workers: list[bool] = []
    real_uniform = streams.uniform

    def uniform(*args: Any, **kwargs: Any) -> np.ndarray:
        on_workers.append(workers.on_worker())
        return real_uniform(*args, **kwargs)

    monkeypatch.setattr(streams, "uniform", uniform)
    monkeypatch.setattr(memory_write.Fill, "__call__", lambda self: pytest.fail("a value was computed"))
    up.initialize(net, up.init.XavierUniform(), seed=3)
    assert len(on_workers) == 6 and all(on_workers) == (workers.threads() <= 12)
    expected, now = up.params(reference).numpy(), up.params(net).numpy()
    assert all(now[n].tobytes() == v.tobytes() for n, v in expected.items())


def test_a_fill_that_fails_on_a_worker_says_which_values_are_new_partial_or_untouched(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The draws are the write's last step: a failure part way names the values that hold new bits,
    the one that may be partly drawn, and the ones never started, and nothing claims the model is
    unchanged."""
    from unifyparams import workers

    if workers.threads() < 2:
        pytest.skip("one worker thread: fills run one at a time on this thread")
    net = _deep_mlp()
    real_uniform = streams.uniform

    def uniform(shape: Any, name: str, *args: Any, **kwargs: Any) -> np.ndarray:
        if name == "3.weight":
            raise MemoryError("simulated: no memory for a band buffer")
        return real_uniform(shape, name, *args, **kwargs)

    monkeypatch.setattr(streams, "uniform", uniform)
    with pytest.raises(up.WriteError, match=r"failed at '3.weight'.*simulated.*may be partly written") as caught:
        up.initialize(net, up.init.XavierUniform(), seed=3, select="*.weight")
    assert caught.value.changed and caught.value.parameter == "3.weight"
    assert "3.weight" in caught.value.not_restored and "0.weight" in caught.value.not_restored
