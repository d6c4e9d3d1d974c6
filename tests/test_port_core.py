"""Porting conversions that need no framework: flatten permutation, recurrent biases, matching."""

from __future__ import annotations

import numpy as np
import pytest

import unifyparams as up
from unifyparams.dataflow import agreement

from .numpy_framework import Dense, Norm, Sequential


@pytest.mark.parametrize("channels, height, width", [(3, 2, 4), (1, 5, 5), (8, 1, 1)])
def test_dense_input_order_keeps_dense_outputs(channels: int, height: int, width: int) -> None:
    rng = np.random.default_rng(0)
    fmap = rng.normal(size=(2, channels, height, width))  # channels-first feature map
    flat_first = fmap.reshape(2, -1)
    flat_last = fmap.transpose(0, 2, 3, 1).reshape(2, -1)
    weight = rng.normal(size=(5, channels * height * width))  # canonical: reads (C, H, W)
    fact = up.DenseInput.flattened((channels, height, width), channels_last=True)
    ported = fact.to_model(weight)
    np.testing.assert_allclose(flat_last @ ported.T, flat_first @ weight.T)
    np.testing.assert_array_equal(fact.to_canonical(ported), weight)
    assert fact.permutes == (channels > 1 and height * width > 1)


def test_features_and_maps_are_different_functions() -> None:
    pooled = up.DenseInput.features("global pooling")
    fmap = up.DenseInput.flattened((32, 4, 8), channels_last=True)
    assert agreement(pooled, fmap) is not None  # DenseNet's classifier is not a flattened map
    assert agreement(pooled, up.DenseInput.flattened((32, 1, 1))) is None
    assert agreement(fmap, up.DenseInput.flattened((32, 4, 8))) is None
    assert agreement(up.DenseInput.canonical(), fmap) is None  # nothing established to compare


def test_order_matching_refuses_kinds_that_differ_and_shows_both_sides() -> None:
    src = Sequential(Dense(3, 4, seed=1), Norm(4), Dense(4, 2, seed=2))
    dst = Sequential(Dense(3, 4, seed=5), Dense(4, 4, seed=6), Dense(4, 2, seed=7))
    before = up.params(dst).numpy(copy=True)
    with pytest.raises(up.PortError) as info:
        up.port(src, dst, match="order")
    message = str(info.value)
    assert "layer #1" in message and "<- differs" in message and "Nothing was paired" in message
    for name, value in before.items():
        np.testing.assert_array_equal(up.params(dst)[name].numpy(), value)


def test_order_matching_refuses_count_mismatch_without_pairing_a_prefix() -> None:
    src = Sequential(Dense(3, 4, seed=1), Dense(4, 2, seed=2))
    dst = Sequential(Dense(3, 4, seed=5), Dense(4, 2, seed=6), Dense(2, 2, seed=7))
    report = up.port(src, dst, match="order", strict=False, dry_run=True)
    assert not report.rows and "2 and 3 parameter-bearing layers" in report.problems[0]


def test_bad_match_is_a_clear_error() -> None:
    src = Sequential(Dense(3, 4, seed=1))
    with pytest.raises(up.PortError, match="match must be one of"):
        up.port(src, Sequential(Dense(3, 4, seed=2)), match="bogus")
    with pytest.raises(up.PortError, match="destination names"):
        up.port(src, Sequential(Dense(3, 4, seed=2)), match={0: "0.weight"})  # type: ignore[dict-item]


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
