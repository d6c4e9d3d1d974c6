"""Porting conversions that need no framework: flatten permutation, recurrent biases, matching."""

from __future__ import annotations

import numpy as np
import pytest

import unifyparams as up
from unifyparams.porting.convert import permute_flatten_input
from unifyparams.porting.layers import layer_family

from .numpy_framework import Dense, Norm, Sequential


@pytest.mark.parametrize("channels, height, width", [(3, 2, 4), (1, 5, 5), (8, 1, 1)])
def test_flatten_permutation_keeps_dense_outputs(channels: int, height: int, width: int) -> None:
    rng = np.random.default_rng(0)
    fmap = rng.normal(size=(2, channels, height, width))  # channels-first feature map
    flat_first = fmap.reshape(2, -1)
    flat_last = fmap.transpose(0, 2, 3, 1).reshape(2, -1)
    weight = rng.normal(size=(5, channels * height * width))
    ported = permute_flatten_input(weight, channels, to_channels_last=True)
    np.testing.assert_allclose(flat_last @ ported.T, flat_first @ weight.T)
    back = permute_flatten_input(ported, channels, to_channels_last=False)
    np.testing.assert_array_equal(back, weight)


def test_layer_families_are_framework_neutral() -> None:
    assert {layer_family(k) for k in ("Linear", "Dense", "LazyLinear")} == {"dense"}
    assert {layer_family(k) for k in ("BatchNorm2d", "BatchNormalization", "BatchNorm")} == {"batchnorm"}
    assert layer_family("Conv2DTranspose") == layer_family("ConvTranspose2d") == "conv_transpose2d"


def test_port_by_name_and_by_order_between_numpy_models() -> None:
    src = Sequential(Dense(3, 4, seed=1), Norm(4), Dense(4, 2, seed=2))
    dst = Sequential(Dense(3, 4, seed=5), Norm(4), Dense(4, 2, seed=6))
    report = up.port(src, dst)
    assert report.applied and report.match == "auto:name"
    for name, value in up.params(src).numpy().items():
        np.testing.assert_array_equal(up.params(dst)[name].numpy(), value)
    x = np.ones((2, 3), np.float32)
    np.testing.assert_array_equal(src(x), dst(x))
    assert "0.weight" in str(report)


def test_port_dry_run_and_strict_failure_change_nothing() -> None:
    src = Sequential(Dense(3, 4, seed=1), Dense(4, 2, seed=2))
    dst = Sequential(Dense(3, 4, seed=5), Dense(4, 3, seed=6))  # last layer differs
    before = up.params(dst).numpy(copy=True)
    with pytest.raises(up.PortError) as info:
        up.port(src, dst)
    assert "(3, 4)" in str(info.value) and "(2, 4)" in str(info.value)
    report = up.port(src, dst, strict=False, dry_run=True)
    assert not report.applied and report.problems
    for name, value in before.items():
        np.testing.assert_array_equal(up.params(dst)[name].numpy(), value)


def test_port_with_explicit_mapping() -> None:
    src = Sequential(Dense(3, 3, seed=1))
    dst = Sequential(Dense(3, 3, seed=2), Dense(3, 3, seed=3))
    up.port(src, dst, match={"1.weight": "0.weight", "1.bias": "0.bias"}, strict=False)
    np.testing.assert_array_equal(up.params(dst)["1.weight"].numpy(), up.params(src)["0.weight"].numpy())
