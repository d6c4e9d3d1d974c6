"""Access and naming on every backend: canonical names, shapes, roles and flags, as the framework lists them."""

from __future__ import annotations

from types import ModuleType

import numpy as np
import pytest

import unifyparams as up
from unifyparams.conformance import LAYER_KINDS

#: kind -> (spec, {leaf: (shape, role, trainable)}); Keras' recurrent layers differ (tests/test_keras_layouts.py).
LAYER_SPECS: dict[str, tuple[dict[str, int], dict[str, tuple[tuple[int, ...], str, bool]]]] = {
    "dense": ({"in_features": 5, "out_features": 3}, {"weight": ((3, 5), "weight", True), "bias": ((3,), "bias", True)}),
    "conv1d": ({"in_channels": 4, "out_channels": 6, "kernel_size": 3},
               {"weight": ((6, 4, 3), "weight", True), "bias": ((6,), "bias", True)}),
    "conv2d": ({"in_channels": 3, "out_channels": 8, "kernel_size": 3},
               {"weight": ((8, 3, 3, 3), "weight", True), "bias": ((8,), "bias", True)}),
    "batchnorm": ({"num_features": 5}, {
        "weight": ((5,), "scale", True), "bias": ((5,), "shift", True),
        "running_mean": ((5,), "running_mean", False), "running_var": ((5,), "running_var", False)}),
    "layernorm": ({"num_features": 7}, {"weight": ((7,), "scale", True), "bias": ((7,), "shift", True)}),
    "embedding": ({"num_embeddings": 50, "embedding_dim": 8}, {"weight": ((50, 8), "weight", True)}),
    "lstm": ({"input_size": 5, "hidden_size": 6}, {
        "weight_ih_l0": ((24, 5), "weight", True), "weight_hh_l0": ((24, 6), "weight", True),
        "bias_ih_l0": ((24,), "bias", True), "bias_hh_l0": ((24,), "bias", True)}),
    "gru": ({"input_size": 5, "hidden_size": 6}, {
        "weight_ih_l0": ((18, 5), "weight", True), "weight_hh_l0": ((18, 6), "weight", True),
        "bias_ih_l0": ((18,), "bias", True), "bias_hh_l0": ((18,), "bias", True)}),
}  # fmt: skip

CUSTOM_NAMES = [
    "embed.weight", "encoder.0.weight", "encoder.0.bias", "encoder.1.weight", "encoder.1.bias",
    "norm.weight", "norm.bias", "heads.cls.weight", "heads.cls.bias", "heads.reg.weight", "heads.reg.bias",
]  # fmt: skip


@pytest.mark.backends("torch", "gluon")
@pytest.mark.parametrize("kind", sorted(LAYER_KINDS))
def test_every_layer_kind_names_shapes_dtypes_roles_and_flags(backend: ModuleType, kind: str) -> None:
    spec, expected = LAYER_SPECS[kind]
    model = backend.models.single_layer(kind, **spec)
    ps = up.params(model)
    backend.assert_native_listing(model, ps)
    assert list(ps) == [f"0.{leaf}" for leaf in expected]
    layer = backend.models.child(model, "0")
    for leaf, (shape, role, trainable) in expected.items():
        p = ps[f"0.{leaf}"]
        assert p.shape == shape and p.native_shape == shape and p.numpy().shape == shape
        assert p.dtype == np.float32 and p.role == role and p.layout.is_identity
        assert p.trainable == trainable
        assert p.materialized and p.size == int(np.prod(shape))
        assert p.slot.block is layer
        assert p.slot.block_path == ("0",) and p.slot.block_kinds == (type(layer).__name__,)
        if not trainable:
            assert p.grad() is None


@pytest.mark.parametrize("build", ["mlp", "nested_blocks", "lenet", "residual_block", "shared_mlp", "custom_model"])
def test_names_objects_and_values_are_the_frameworks_own(backend: ModuleType, build: str) -> None:
    net = getattr(backend.models, build)()
    backend.assert_native_listing(net, up.params(net))


def test_custom_model_names_follow_attributes_lists_and_dicts_in_order(backend: ModuleType) -> None:
    net = backend.models.custom_model()
    ps = up.params(net)
    kinds = backend.KINDS
    assert list(ps) == CUSTOM_NAMES
    assert ps["heads.cls.weight"].shape == (3, 8) and ps["embed.weight"].shape == (50, 8)
    assert ps["encoder.1.bias"].slot.block_path == ("encoder", "1")
    assert ps["encoder.1.bias"].slot.block_kinds == (kinds["list"], kinds["dense"])
    assert ps["encoder.1.bias"].slot.block is backend.models.child(net, "encoder.1")
    slot = ps["heads.reg.bias"].slot
    assert slot.block_path == ("heads", "reg") and slot.block_kinds == (kinds["dict"], kinds["dense"])
    assert slot.block is backend.models.child(net, "heads.reg")
    cls = backend.models.child(net, "heads.cls")
    assert ps["heads.cls.weight"].native is up.params(cls)["weight"].native
    assert ps["norm.weight"].role == up.Role.SCALE and ps["norm.bias"].role == up.Role.SHIFT
    assert list(up.params(cls)) == ["weight", "bias"]


def test_nested_blocks_names_shapes_and_block_paths(backend: ModuleType) -> None:
    net = backend.models.nested_blocks()
    ps = up.params(net)
    expected = {}
    for i in range(4):
        expected |= {f"0.{i}.0.weight": (8, 4), f"0.{i}.0.bias": (8,), f"0.{i}.2.weight": (4, 8), f"0.{i}.2.bias": (4,)}
    expected |= {"1.weight": (1, 4), "1.bias": (1,)}
    assert {n: p.shape for n, p in ps.items()} == expected
    slot = ps["0.3.2.weight"].slot
    seq, dense = backend.KINDS["sequential"], backend.KINDS["dense"]
    assert slot.block_path == ("0", "3", "2") and slot.block_kinds == (seq, seq, dense)
    inner = up.params(backend.models.child(net, "0.1"))
    assert list(inner) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert inner["2.bias"].native is ps["0.1.2.bias"].native


def test_reads_are_read_only_and_copies_are_independent(backend: ModuleType) -> None:
    p = up.params(backend.models.mlp(in_features=4, hidden=3, out_features=2))["0.weight"]
    view = p.numpy()
    with pytest.raises(ValueError):
        view[0, 0] = 1.0
    snap = p.numpy(copy=True)
    p.set(np.zeros((3, 4), dtype=np.float32))
    assert not np.array_equal(snap, 0) and np.array_equal(p.numpy(), np.zeros((3, 4)))
