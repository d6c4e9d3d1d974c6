"""Keras 3 on its JAX backend: reads, writes, all-or-nothing loads, checkpoints, seeded init,
gradients (``jax.grad`` over ``stateless_call``) and unbuilt models.

JAX needs NumPy 2, which MXNet (in the main environment) cannot share, so these run in the
``.venv-jax`` pass of ``.ci/test`` (``KERAS_BACKEND=jax``). Elsewhere the module is skipped on the
*backend* Keras reports, never on an import failure: Keras must import everywhere, and in the JAX
pass every test here runs. The whole conformance suite runs there too (tests/test_conformance_keras.py).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import keras
import numpy as np
import pytest

import unifyparams as up
from unifyparams.conformance.discovery import load_builders

from .backends.keras import JAX_ONLY
from .numpy_framework import Dense as NumpyDense
from .numpy_framework import Sequential as NumpySequential

pytestmark = JAX_ONLY
L = keras.layers


@pytest.fixture
def kit():  # noqa: ANN201
    return load_builders("keras")


def _mlp() -> keras.Model:
    return keras.Sequential([keras.Input((20,)), L.Dense(16), L.Activation("relu"), L.Dense(3)])


def test_the_backend_is_jax_and_variables_hold_jax_arrays() -> None:
    import jax

    net = _mlp()
    assert keras.backend.backend() == "jax"
    assert isinstance(net.layers[0].kernel.value, jax.Array)
    assert up.get_adapter("keras").owns(net)


def test_names_and_shapes_of_a_sequential_and_a_subclassed_model(kit) -> None:  # noqa: ANN001
    ps = up.params(_mlp())
    assert list(ps) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert [ps[n].shape for n in ps] == [(16, 20), (16,), (3, 16), (3,)]
    assert ps["0.weight"].dtype == np.float32 and ps.count() == 20 * 16 + 16 + 16 * 3 + 3

    custom = up.params(kit.custom_model())
    assert list(custom) == [
        "embed.weight", "encoder.0.weight", "encoder.0.bias", "encoder.1.weight", "encoder.1.bias",
        "norm.weight", "norm.bias", "heads.cls.weight", "heads.cls.bias", "heads.reg.weight", "heads.reg.bias",
    ]
    assert custom["embed.weight"].shape == (50, 8) and custom["heads.cls.weight"].shape == (3, 8)


def test_read_write_round_trip_in_canonical_layout() -> None:
    net = _mlp()
    ps = up.params(net)
    rng = np.random.default_rng(0)
    new = {name: rng.normal(size=ps[name].shape).astype(np.float32) for name in ps}
    ps.load(new)
    for name, value in up.params(net).numpy().items():
        np.testing.assert_array_equal(value, new[name])
    np.testing.assert_array_equal(np.asarray(net.layers[0].kernel.value), new["0.weight"].T)  # Keras keeps (in, out)
    ps["2.bias"].set(np.array([1.0, 2.0, 3.0], np.float32))
    np.testing.assert_array_equal(np.asarray(net.layers[2].bias.value), [1.0, 2.0, 3.0])
    x = rng.normal(size=(4, 20)).astype(np.float32)
    expected = np.maximum(x @ new["0.weight"].T + new["0.bias"], 0) @ new["2.weight"].T + [1.0, 2.0, 3.0]
    np.testing.assert_allclose(np.asarray(net(x)), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float64"])
def test_dtypes_are_the_ones_jax_stores(dtype: str) -> None:
    """Without ``jax_enable_x64`` JAX keeps a float64 variable in float32: the parameter says so."""
    import jax

    if dtype == "float64" and jax.config.jax_enable_x64:
        pytest.skip("JAX_ENABLE_X64 is set: float64 is stored as float64")
    with warnings.catch_warnings():  # JAX warns that float64 is truncated
        warnings.simplefilter("ignore", UserWarning)
        net = keras.Sequential([keras.Input((4,)), L.Dense(3, dtype=dtype)])
    p = up.params(net)["0.weight"]
    stored = "float32" if dtype == "float64" else dtype
    assert p.dtype.name == stored == str(net.layers[0].kernel.value.dtype)
    value = np.arange(12).reshape(3, 4).astype(p.dtype)
    p.set(value)
    assert p.numpy().dtype == p.dtype and np.array_equal(p.numpy().astype(np.float64), value.astype(np.float64))


def test_a_written_variable_owns_its_values() -> None:
    """The source array may be reused after a write (JAX can alias host buffers on the CPU)."""
    net = _mlp()
    source = np.full((16, 20), 2.0, np.float32)
    up.params(net)["0.weight"].set(source)
    source[:] = -1.0
    assert np.all(up.params(net)["0.weight"].numpy() == 2.0)


def test_a_large_transposed_write_owns_its_values_and_a_snapshot_keeps_the_old_ones() -> None:
    """A kernel large enough for the core's compiled transpose: written from a canonical array, which
    is then overwritten, the variable keeps what was written; a snapshot taken before (a view of the
    old immutable array, no copy) still holds the old values after the write."""
    net = keras.Sequential([keras.Input((300,)), L.Dense(200, use_bias=False)])
    p = up.params(net)["0.weight"]
    old = p.numpy(copy=True)
    snapshot = p.adapter.snapshot(p.native)
    assert snapshot is not None and not snapshot.flags.writeable
    source = np.random.default_rng(3).random((200, 300), dtype=np.float32)
    expected = source.copy()
    p.set(source)
    source[:] = -1.0
    np.testing.assert_array_equal(p.numpy(), expected)
    np.testing.assert_array_equal(np.asarray(net.layers[0].kernel.value), expected.T)
    np.testing.assert_array_equal(snapshot.T, old)


def test_a_write_hands_its_new_memory_to_jax_without_a_copy() -> None:
    """The staged memory is aligned for XLA's CPU client, which then aliases it in ``device_put``
    rather than copying it: the variable's array is the memory the core wrote, and nothing in the
    core writes it again (a second write gives the variable new memory)."""
    net = keras.Sequential([keras.Input((1024,)), L.Dense(1024, use_bias=False)])
    p = up.params(net)["0.weight"]
    staged = p.adapter.stage_target(p.native)
    assert staged is not None and staged.memory.ctypes.data % 64 == 0
    assert staged.memory.ctypes.data % (2 << 20) == 0  # 4 MiB: from a huge page
    value = np.random.default_rng(4).random((1024, 1024), dtype=np.float32)
    staged.memory[...] = value.T
    staged.commit()
    array = net.layers[0].kernel.value
    assert array.unsafe_buffer_pointer() == staged.memory.ctypes.data
    first = array.unsafe_buffer_pointer()
    p.set(np.zeros((1024, 1024), np.float32))
    assert net.layers[0].kernel.value.unsafe_buffer_pointer() != first
    np.testing.assert_array_equal(np.asarray(array), value.T)  # the old array is unchanged
    np.testing.assert_array_equal(p.numpy(), 0.0)


@pytest.mark.parametrize("atomic", [True, False])
def test_a_seeded_init_draws_straight_into_new_arrays(atomic: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """A catalog draw goes into a new array that the variable then takes (``stage_target``): no value
    is computed first, and the bits are those of a computed one."""
    from unifyparams import memory_write

    reference, net = _mlp(), _mlp()
    adapter = up.params(net)["0.weight"].adapter
    with monkeypatch.context() as patch:
        patch.setattr(type(adapter), "stage_target", lambda self, native: None)
        up.initialize(reference, up.init.XavierUniform(), seed=9, atomic=atomic)
    monkeypatch.setattr(memory_write.Fill, "__call__", lambda self: pytest.fail("a value was computed"))
    up.initialize(net, up.init.XavierUniform(), seed=9, atomic=atomic)
    expected, now = up.params(reference).numpy(), up.params(net).numpy()
    assert all(now[n].tobytes() == v.tobytes() for n, v in expected.items())


def test_a_bad_entry_changes_nothing() -> None:
    net = _mlp()
    ps = up.params(net)
    before = ps.numpy(copy=True)
    bad = {name: np.ones(ps[name].shape, np.float32) for name in ps}
    bad["2.weight"] = np.ones((4, 4), np.float32)  # wrong shape, after two good entries
    with pytest.raises(up.UnifyParamsError, match="2.weight"):
        ps.load(bad)
    for name, value in up.params(net).numpy().items():
        np.testing.assert_array_equal(value, before[name], err_msg=name)


def test_safetensors_save_and_load_round_trip(tmp_path: Path) -> None:
    a, b = _mlp(), _mlp()
    up.initialize(a, up.init.XavierUniform(), seed=3)
    path = tmp_path / "mlp.safetensors"
    up.save(a, path)
    up.load(b, path)  # memory-mapped by default: the variables must not keep the file's buffers
    path.unlink()
    for name, value in up.params(a).numpy().items():
        np.testing.assert_array_equal(up.params(b)[name].numpy(), value, err_msg=name)
    x = np.random.default_rng(1).normal(size=(2, 20)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(a(x)), np.asarray(b(x)))


@pytest.mark.parametrize("init", [up.init.XavierNormal(), up.init.KaimingUniform(nonlinearity="relu"),
                                  up.init.Normal(0.0, 0.02)], ids=lambda i: type(i).__name__)
def test_a_seed_gives_the_values_every_backend_gets(init: up.init.Initializer) -> None:
    """Values come from ``(seed, stream key)`` in NumPy, so they are bit-identical across
    backends: the tests' NumPy framework (no Keras; kernels stored (in, out) as Keras does) is the
    reference, as torch is in tests/test_initialize.py."""
    net = _mlp()
    up.initialize(net, init, seed=2024)
    reference = NumpySequential(NumpyDense(20, 16), NumpyDense(16, 3))
    up.initialize(reference, init, seed=2024)
    expected = dict(zip(["0.weight", "0.bias", "2.weight", "2.bias"], up.params(reference).numpy().values()))
    got = up.params(net).numpy()
    for name, value in expected.items():
        assert got[name].dtype == value.dtype
        np.testing.assert_array_equal(got[name], value, err_msg=name)
    assert not np.array_equal(got["0.weight"], 0)


def test_dense_gradients_are_the_analytic_ones() -> None:
    """Default loss: the sum of the outputs, so d/dW = ones(out) x sum_n x_n and d/db = N."""
    net = keras.Sequential([keras.Input((3,)), L.Dense(2)])
    x = np.random.default_rng(2).normal(size=(5, 3)).astype(np.float32)
    grads = up.gradients(net, x)
    assert sorted(grads) == ["0.bias", "0.weight"]
    np.testing.assert_allclose(grads["0.weight"], np.tile(x.sum(axis=0), (2, 1)), rtol=1e-5)
    np.testing.assert_allclose(grads["0.bias"], [5.0, 5.0])
    np.testing.assert_allclose(up.params(net)["0.weight"].grad(), grads["0.weight"])

    # a custom loss, checked against central finite differences of that loss
    def loss(out):  # noqa: ANN001, ANN202
        return keras.ops.sum(keras.ops.square(out))

    w = up.params(net)["0.weight"]
    grads = up.gradients(net, x, loss=loss)
    base = w.numpy(copy=True).astype(np.float64)
    eps, numeric = 1e-3, np.zeros_like(base)
    for index in np.ndindex(base.shape):
        values = []
        for step in (eps, -eps):
            trial = base.copy()
            trial[index] += step
            w.set(trial.astype(np.float32))
            values.append(float(np.sum(np.square(np.asarray(net(x), np.float64)))))
        numeric[index] = (values[0] - values[1]) / (2 * eps)
    w.set(base.astype(np.float32))
    np.testing.assert_allclose(grads["0.weight"], numeric, rtol=1e-2, atol=1e-2)


def test_an_unbuilt_model_is_built_by_its_first_call() -> None:
    net = keras.Sequential([L.Dense(8), L.Activation("relu"), L.Dense(2)])  # no Input: shapes unknown
    ps = up.params(net)
    assert list(ps) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert ps["0.weight"].shape == (8, None)
    up.initialize(net, up.init.XavierUniform(), seed=5)  # recorded, applied when the shapes are known
    net(np.ones((3, 6), np.float32))
    ps = up.params(net)
    assert [ps[n].shape for n in ps] == [(8, 6), (8,), (2, 8), (2,)]
    eager = keras.Sequential([keras.Input((6,)), L.Dense(8), L.Activation("relu"), L.Dense(2)])
    up.initialize(eager, up.init.XavierUniform(), seed=5)
    for name, value in up.params(eager).numpy().items():
        np.testing.assert_array_equal(ps[name].numpy(), value, err_msg=name)


def test_an_unbuilt_model_is_built_by_materialize_and_by_a_load() -> None:
    lazy = keras.Sequential([L.Dense(4), L.Dense(1)])
    ps = up.materialize(lazy, np.zeros((2, 3), np.float32))
    assert ps["0.weight"].shape == (4, 3)
    loaded = keras.Sequential([L.Dense(4), L.Dense(1)])
    up.params(loaded).load(ps.numpy(copy=True))  # writing the kernels builds the layers
    assert up.params(loaded)["1.weight"].shape == (1, 4)
    x = np.random.default_rng(3).normal(size=(2, 3)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(lazy(x)), rtol=1e-6)


def test_a_tie_shares_one_variable_and_sums_gradients(kit) -> None:  # noqa: ANN001
    net = kit.shared_mlp(shared=False)
    assert up.tie(net, "2", "4") == [("2.weight", "4.weight"), ("2.bias", "4.bias")]
    assert net.layers[4].kernel is net.layers[2].kernel
    assert len(net.trainable_variables) == 6
    twin = kit.shared_mlp(shared=False)
    up.params(twin).load(up.params(net).numpy(copy=True))
    x = np.random.default_rng(4).normal(size=(3, 20)).astype(np.float32)
    g_tied, g_twin = up.gradients(net, x), up.gradients(twin, x)
    np.testing.assert_allclose(g_tied["2.weight"], g_twin["2.weight"] + g_twin["4.weight"], rtol=1e-4, atol=1e-5)
    up.untie(net, "4")
    assert net.layers[4].kernel is not net.layers[2].kernel
    np.testing.assert_array_equal(up.params(net)["4.weight"].numpy(), up.params(net)["2.weight"].numpy())


def test_sharded_variables_read_write_and_keep_their_sharding() -> None:
    """Keras's ModelParallel on a 2x2 host mesh (the .ci pass sets XLA_FLAGS to four CPU devices):
    kernels sharded on their output axis read whole, write (and refuse) without losing the layout."""
    import jax
    from keras import distribution

    assert len(jax.devices()) >= 4, (
        f"JAX sees {len(jax.devices())} device(s); these tests need 4 (the root conftest.py sets "
        f"XLA_FLAGS=--xla_force_host_platform_device_count=4 before JAX starts: was JAX started earlier?)"
    )
    mesh = distribution.DeviceMesh((2, 2), ["batch", "model"], jax.devices()[:4])
    layouts = distribution.LayoutMap(mesh)
    layouts[".*dense.*kernel"] = (None, "model")
    parallel = distribution.ModelParallel(layout_map=layouts, batch_dim_name="batch")
    with parallel.scope():  # every kernel's output axis divisible by the mesh's "model" axis
        net = keras.Sequential([keras.Input((20,)), L.Dense(16), L.Activation("relu"), L.Dense(4)])
    kernel = net.layers[0].kernel
    sharding = kernel.value.sharding
    assert len(sharding.device_set) == 4
    ps = up.params(net)
    w = np.arange(16 * 20, dtype=np.float32).reshape(16, 20)
    ps["0.weight"].set(w)
    np.testing.assert_array_equal(up.params(net)["0.weight"].numpy(), w)
    assert kernel.value.sharding == sharding
    up.initialize(net, up.init.XavierUniform(), seed=1)
    assert kernel.value.sharding == sharding
    before = ps.numpy(copy=True)
    bad = {name: np.ones(ps[name].shape, np.float32) for name in ps}
    bad["2.weight"] = np.ones((3, 3), np.float32)
    with pytest.raises(up.UnifyParamsError):
        ps.load(bad)
    for name, value in up.params(net).numpy().items():
        np.testing.assert_array_equal(value, before[name], err_msg=name)
    assert kernel.value.sharding == sharding
    x = np.random.default_rng(5).normal(size=(4, 20)).astype(np.float32)
    with parallel.scope():
        grads = up.gradients(net, x)
    assert grads["0.weight"].shape == (16, 20) and grads["0.bias"].shape == (16,)
