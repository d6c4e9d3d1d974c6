"""Keras 3 on JAX with ``keras.distribution``: placements and per-device shards
(``unifyparams_keras.distribution``), checkpoints between distributed and plain models, seeded
init and refused loads that keep every variable's sharding.

Four host devices come from ``XLA_FLAGS=--xla_force_host_platform_device_count=4``, which the root
conftest.py sets before JAX starts; with fewer, each test fails and says why. As in
tests/test_keras_jax.py, the module is skipped on the *backend* Keras reports (the TensorFlow and
torch passes collect it too), never on an import failure.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

import unifyparams as up
from unifyparams_keras import distribution as layout

from .backends.keras import JAX_ONLY

pytestmark = JAX_ONLY
L = keras.layers


@pytest.fixture
def devices() -> list[Any]:
    import jax

    assert len(jax.devices()) >= 4, (
        f"JAX sees {len(jax.devices())} device(s); these tests need 4 (the root conftest.py sets "
        f"XLA_FLAGS=--xla_force_host_platform_device_count=4 before JAX starts: was JAX started earlier?)"
    )
    return jax.devices()[:4]


def _model_parallel(devices: list[Any]) -> Any:
    """A 2x2 ("batch", "model") mesh; Dense kernels split on their output axis, Embedding tables
    on their hidden axis, everything else replicated."""
    from keras import distribution

    mesh = distribution.DeviceMesh((2, 2), ["batch", "model"], devices)
    rules = distribution.LayoutMap(mesh)
    rules[".*dense.*kernel"] = (None, "model")
    rules[".*embedding.*embeddings"] = (None, "model")
    rules[".*conv2d.*kernel"] = (None, None, None, "model")
    return distribution.ModelParallel(layout_map=rules, batch_dim_name="batch")


def _text_model() -> keras.Model:
    return keras.Sequential([
        keras.Input((5,), dtype="int32"), L.Embedding(10, 8), L.Dense(6), L.LayerNormalization(), L.Dense(4),
    ])


def _parallel_text_model(devices: list[Any]) -> keras.Model:
    with _model_parallel(devices).scope():
        return _text_model()


def _image_model() -> keras.Model:
    return keras.Sequential([keras.Input((6, 6, 3)), L.Conv2D(4, 3), L.Flatten(), L.Dense(2)])


def _tokens() -> np.ndarray:
    return np.random.default_rng(7).integers(0, 10, size=(4, 5)).astype("int32")


def _shardings(model: keras.Model) -> dict[str, Any]:
    return {v.path: v.value.sharding for v in model.variables}


def _assert_same_values(model: keras.Model, expected: dict[str, np.ndarray]) -> None:
    got = up.params(model).numpy()
    assert list(got) == list(expected)
    for name, value in expected.items():
        np.testing.assert_array_equal(got[name], value, err_msg=name)


def test_placement_reports_the_mesh_and_each_dimensions_axis(devices: list[Any]) -> None:
    ps = up.params(_parallel_text_model(devices))
    assert list(ps) == ["0.weight", "1.weight", "1.bias", "2.weight", "2.bias", "3.weight", "3.bias"]
    embed = layout.placement(ps["0.weight"])
    assert embed is not None
    assert (embed.mesh_shape, embed.axis_names, embed.devices) == ((2, 2), ("batch", "model"), 4)
    assert embed.spec == embed.canonical_spec == (None, "model") and not embed.replicated  # identity layout
    kernel = layout.placement(ps["1.weight"])
    assert kernel is not None
    assert kernel.spec == (None, "model")  # native (in, out), as the LayoutMap says
    assert kernel.canonical_spec == ("model", None)  # canonical (out, in)
    assert kernel.devices == 4 and "model=2" in str(kernel)
    bias = layout.placement(ps["1.bias"])
    assert bias is not None and bias.replicated and bias.spec == (None,) and bias.devices == 4
    bare = layout.placement(ps["3.weight"].native)  # a Keras variable: no canonical layout known
    assert bare is not None and bare.spec == (None, "model") and bare.canonical_spec is None

    plain = up.params(_text_model())
    assert all(layout.placement(p) is None for p in plain.values())
    # the placement is on the Param and in the tree (native spec: the variable's own axes)
    assert ps["3.weight"].placement == "native spec (None, 'model') over mesh (batch=2, model=2), 4 devices"
    assert "native spec (None, 'model') over mesh (batch=2, model=2)" in ps.tree()
    assert all(p.placement is None for p in plain.values())


def test_shards_tile_the_full_canonical_value(devices: list[Any]) -> None:
    net = _parallel_text_model(devices)
    up.initialize(net, up.init.Normal(0.0, 1.0), seed=11)
    ps = up.params(net)
    for name, p in ps.items():
        full = p.numpy()
        parts = layout.shards(p)
        assert len(parts) == 4, name
        assert sorted(s.device for s in parts) == sorted(f"{d.platform}:{d.id}" for d in devices)
        assert layout.tiles(parts, p.shape), name
        np.testing.assert_array_equal(layout.assemble(parts, p.shape), full, err_msg=name)
        for part in parts:  # each shard is exactly its block of the canonical value
            np.testing.assert_array_equal(part.value, full[part.index], err_msg=name)

    kernel = layout.shards(ps["1.weight"])  # canonical (6, 8), split on axis 0 ("model")
    assert sorted((s.offsets, s.value.shape) for s in kernel) == [((0, 0), (3, 8))] * 2 + [((3, 0), (3, 8))] * 2
    assert sorted(s.replica for s in kernel) == [0, 0, 1, 1]  # each half is held by the two "batch" rows
    native = layout.shards(ps["1.weight"], native=True)  # Keras' (8, 6), split on axis 1
    assert sorted((s.offsets, s.value.shape) for s in native) == [((0, 0), (8, 3))] * 2 + [((0, 3), (8, 3))] * 2
    np.testing.assert_array_equal(layout.assemble(native, (8, 6)), np.asarray(net.layers[1].kernel.value))
    embed = layout.shards(ps["0.weight"])  # (10, 8) split on the hidden axis
    assert sorted(s.offsets for s in embed) == [(0, 0), (0, 0), (0, 4), (0, 4)]
    assert all(s.value.shape == (10, 4) for s in embed)
    bias = layout.shards(ps["1.bias"])  # replicated: four copies at offset zero
    assert [s.offsets for s in bias] == [(0,)] * 4 and sorted(s.replica for s in bias) == [0, 1, 2, 3]


def test_a_conv_kernel_shard_is_permuted_into_the_canonical_layout(devices: list[Any]) -> None:
    with _model_parallel(devices).scope():
        net = _image_model()
    up.initialize(net, up.init.Normal(0.0, 1.0), seed=2)
    p = up.params(net)["0.weight"]  # canonical (out=4, in=3, 3, 3); Keras (3, 3, 3, 4)
    where = layout.placement(p)
    assert where is not None and where.spec == (None, None, None, "model")
    assert where.canonical_spec == ("model", None, None, None)
    parts = layout.shards(p)
    assert sorted((s.offsets, s.value.shape) for s in parts) == (
        [((0, 0, 0, 0), (2, 3, 3, 3))] * 2 + [((2, 0, 0, 0), (2, 3, 3, 3))] * 2
    )
    np.testing.assert_array_equal(layout.assemble(parts, p.shape), p.numpy())


def test_save_then_load_into_a_parallel_and_a_plain_model(devices: list[Any], tmp_path: Path) -> None:
    source = _parallel_text_model(devices)
    up.initialize(source, up.init.XavierUniform(), seed=5)
    up.params(source)["2.weight"].set(np.linspace(0.5, 1.5, 6, dtype=np.float32))  # not the default ones
    expected = up.params(source).numpy(copy=True)
    x = _tokens()
    want = np.asarray(source(x))
    path = tmp_path / "m.safetensors"
    up.save(source, path)

    parallel = _parallel_text_model(devices)
    before = _shardings(parallel)
    assert len(before[parallel.layers[1].kernel.path].device_set) == 4
    up.load(parallel, path)
    plain = _text_model()
    up.load(plain, path)
    path.unlink()  # loads may memory-map the file: the variables must not keep its buffers

    _assert_same_values(parallel, expected)
    _assert_same_values(plain, expected)
    assert _shardings(parallel) == before
    assert layout.placement(up.params(plain)["1.weight"]) is None  # a plain model stays on one device
    for model in (parallel, plain):
        np.testing.assert_allclose(np.asarray(model(x)), want, rtol=1e-6, atol=1e-6)


def test_a_plain_checkpoint_loads_into_a_model_parallel_model(devices: list[Any], tmp_path: Path) -> None:
    plain = _text_model()
    up.initialize(plain, up.init.Normal(0.0, 0.5), seed=9)
    path = tmp_path / "plain.safetensors"
    up.save(plain, path)
    parallel = _parallel_text_model(devices)
    before = _shardings(parallel)
    up.load(parallel, path)
    _assert_same_values(parallel, up.params(plain).numpy())
    assert _shardings(parallel) == before
    x = _tokens()
    np.testing.assert_allclose(np.asarray(parallel(x)), np.asarray(plain(x)), rtol=1e-6, atol=1e-6)
    for p in up.params(parallel).values():
        assert layout.tiles(layout.shards(p), p.shape)


def test_data_parallel_variables_are_replicated_and_seeded_init_matches_a_plain_model(devices: list[Any]) -> None:
    from keras import distribution

    with distribution.DataParallel(devices=devices).scope():
        net = _image_model()
    before = _shardings(net)
    ps = up.params(net)
    for name, p in ps.items():
        where = layout.placement(p)
        assert where is not None and where.replicated and where.devices == 4, name
        assert where.mesh_shape == (4,) and where.axis_names == ("batch",)
    up.initialize(net, seed=3)
    plain = _image_model()
    up.initialize(plain, seed=3)
    _assert_same_values(net, up.params(plain).numpy())  # bit-identical
    assert _shardings(net) == before
    for name, p in up.params(net).items():
        full = p.numpy()
        parts = layout.shards(p)
        assert len(parts) == 4 and sorted(s.replica for s in parts) == [0, 1, 2, 3], name
        for part in parts:
            assert part.offsets == (0,) * full.ndim, name
            np.testing.assert_array_equal(part.value, full, err_msg=name)
    x = np.random.default_rng(1).normal(size=(4, 6, 6, 3)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(net(x)), np.asarray(plain(x)), rtol=1e-6, atol=1e-6)


def test_a_refused_load_changes_nothing_and_keeps_every_sharding(devices: list[Any], tmp_path: Path) -> None:
    net = _parallel_text_model(devices)
    up.initialize(net, up.init.Normal(0.0, 1.0), seed=4)
    ps = up.params(net)
    before, shardings = ps.numpy(copy=True), _shardings(net)
    bad = {name: np.full(ps[name].shape, 7.0, np.float32) for name in ps}
    bad["3.weight"] = np.ones((4, 5), np.float32)  # wrong shape, after every other entry
    with pytest.raises(up.UnifyParamsError, match="3.weight"):
        ps.load(bad)
    _assert_same_values(net, before)
    assert _shardings(net) == shardings

    other = keras.Sequential([keras.Input((5,), dtype="int32"), L.Embedding(10, 8), L.Dense(6),
                              L.LayerNormalization(), L.Dense(3)])  # "3.weight" is (3, 6) here
    up.initialize(other, up.init.Constant(2.0), seed=0)
    path = tmp_path / "other.safetensors"
    up.save(other, path)
    with pytest.raises(up.UnifyParamsError, match="3.weight"):
        up.load(net, path)
    _assert_same_values(net, before)
    assert _shardings(net) == shardings


def test_a_layout_that_is_not_a_permutation_is_refused_unless_native(devices: list[Any]) -> None:
    """A GRU kernel's canonical layout reorders the gates (z, r, h -> r, z, n): a shard of it is not
    one block of the canonical value."""
    from keras import distribution

    with distribution.DataParallel(devices=devices).scope():
        net = keras.Sequential([keras.Input((3, 2)), L.GRU(4)])
    p = up.params(net)["0.weight_ih_l0"]
    assert p.layout.tag == "transpose(1,0) then gates(1, 0, 2)@axis0"
    where = layout.placement(p)
    assert where is not None and where.replicated and where.canonical_spec is None
    with pytest.raises(up.UnifyParamsError, match="native=True"):
        layout.shards(p)
    native = layout.shards(p, native=True)
    kernel = np.asarray(net.layers[0].cell.kernel.value)
    assert len(native) == 4 and all(s.value.shape == kernel.shape for s in native)
    np.testing.assert_array_equal(layout.assemble(native, kernel.shape), kernel)
    with pytest.raises(up.UnifyParamsError, match="native=True"):
        layout.shards(p.native)  # a bare variable: canonical layout unknown


def test_untie_keeps_the_sharding(devices: list[Any]) -> None:
    with _model_parallel(devices).scope():
        net = keras.Sequential([keras.Input((8,)), L.Dense(8), L.Dense(8)])
    sharding = net.layers[1].kernel.value.sharding
    up.tie(net, "0", "1")
    up.untie(net, "1")
    assert net.layers[1].kernel.value.sharding == sharding


def test_tiles_needs_full_coverage_and_equal_replicas() -> None:
    a = layout.Shard("cpu:0", (0, 0), np.ones((2, 3), np.float32))
    b = layout.Shard("cpu:1", (2, 0), np.zeros((2, 3), np.float32))
    assert layout.tiles([a, b], (4, 3))
    np.testing.assert_array_equal(layout.assemble([b, a], (4, 3)), np.r_[np.ones((2, 3)), np.zeros((2, 3))])
    assert not layout.tiles([a], (4, 3))  # rows 2..3 uncovered
    twin = layout.Shard("cpu:2", (0, 0), np.full((2, 3), 2.0, np.float32), replica=1)
    assert not layout.tiles([a, b, twin], (4, 3))  # a replica that disagrees
    assert layout.tiles([a, b, layout.Shard("cpu:3", (0, 0), a.value.copy(), replica=1)], (4, 3))
    outside = layout.Shard("cpu:0", (3, 0), np.zeros((2, 3), np.float32))
    with pytest.raises(up.UnifyParamsError, match="outside"):
        layout.assemble([a, outside], (4, 3))
    nan = layout.Shard("cpu:0", (0,), np.array([np.nan]))
    assert layout.tiles([nan, layout.Shard("cpu:1", (0,), np.array([np.nan]), replica=1)], (1,))
