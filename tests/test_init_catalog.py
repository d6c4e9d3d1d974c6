"""The initializer catalog without any framework: formulas, statistics, resolution, streams."""

from __future__ import annotations

import math

import numpy as np
import pytest

import unifyparams as up
from unifyparams.init import ParamInfo, streams
from unifyparams.init.fans import calculate_gain, compute_fans

from .numpy_framework import Dense, Sequential

INFO = ParamInfo("0.weight", up.Role.WEIGHT, (400, 300), np.dtype(np.float32))


def fill(init: up.init.Initializer, shape: tuple[int, ...] = (400, 300), seed: int = 0) -> np.ndarray:
    return init.fill(shape, ParamInfo("w", up.Role.WEIGHT, shape, np.dtype(np.float64)), seed).astype(np.float64)


def test_fans_and_gains_match_pytorch_definitions() -> None:
    assert compute_fans((256, 20)) == (20, 256)
    assert compute_fans((8, 3, 5, 5)) == (75, 200)
    assert calculate_gain("relu") == pytest.approx(math.sqrt(2))
    assert calculate_gain("tanh") == pytest.approx(5 / 3)
    assert calculate_gain("leaky_relu") == pytest.approx(math.sqrt(2 / (1 + 0.01**2)))
    with pytest.raises(up.InitializerError, match="2 dimensions"):
        compute_fans((5,), "0.bias")


@pytest.mark.parametrize(
    "init, bound",
    [
        (up.init.XavierUniform(), math.sqrt(6 / 700)),
        (up.init.XavierUniform(gain=2), 2 * math.sqrt(6 / 700)),
        (up.init.KaimingUniform(nonlinearity="relu"), math.sqrt(2) * math.sqrt(3 / 300)),
        (up.init.KaimingUniform(a=math.sqrt(5)), math.sqrt(1 / 300)),  # PyTorch's Linear default
        (up.init.MXNetXavier(), math.sqrt(3 / 350)),
        (up.init.VarianceScaling(2.0, "fan_in", "uniform"), math.sqrt(6 / 300)),
    ],
)
def test_uniform_bounds(init: up.init.Initializer, bound: float) -> None:
    w = fill(init)
    assert np.abs(w).max() <= bound
    assert np.abs(w).max() > 0.99 * bound  # 120,000 samples reach the edge
    n = w.size
    assert abs(w.std() - bound / math.sqrt(3)) <= 6 * bound / math.sqrt(3) / math.sqrt(2 * n) * 1.2


@pytest.mark.parametrize(
    "init, std",
    [
        (up.init.Normal(0, 0.01), 0.01),
        (up.init.XavierNormal(), math.sqrt(2 / 700)),
        (up.init.KaimingNormal(nonlinearity="relu"), math.sqrt(2 / 300)),
        (up.init.VarianceScaling(2.0, "fan_in", "untruncated_normal"), math.sqrt(2 / 300)),
    ],
)
def test_normal_statistics(init: up.init.Initializer, std: float) -> None:
    w = fill(init)
    n = w.size
    assert abs(w.mean()) <= 6 * std / math.sqrt(n)
    assert abs(w.std() - std) <= 6 * std / math.sqrt(2 * n)


def test_truncated_normals() -> None:
    w = fill(up.init.TruncatedNormal(0.0, 1.0, -2.0, 2.0))
    assert w.min() >= -2 and w.max() <= 2
    assert abs(w.std() - 0.8796) < 0.01  # std of N(0, 1) cut at +-2
    keras_he = fill(up.init.get("he_normal"))  # Keras: truncated, variance corrected
    assert np.abs(keras_he).max() <= 2 * math.sqrt(2 / 300) / 0.8796 + 1e-12
    assert abs(keras_he.std() - math.sqrt(2 / 300)) < 0.02 * math.sqrt(2 / 300)


def test_orthogonal_eye_dirac_constants() -> None:
    q = fill(up.init.Orthogonal(gain=2.0), (30, 50))
    np.testing.assert_allclose(q @ q.T, 4 * np.eye(30), atol=1e-10)
    q = fill(up.init.Orthogonal(), (50, 30))
    np.testing.assert_allclose(q.T @ q, np.eye(30), atol=1e-10)
    np.testing.assert_array_equal(fill(up.init.Eye(), (3, 4)), np.eye(3, 4))
    d = fill(up.init.Dirac(), (4, 4, 3, 3))
    x = np.random.default_rng(0).normal(size=(4, 5, 5))
    out = np.einsum("oikl,ikl->o", d, x[:, 1:4, 1:4])  # the centre pixel passes through
    np.testing.assert_allclose(out, x[:, 2, 2])
    assert (fill(up.init.Constant(42), (3,)) == 42).all() and (fill(up.init.Ones(), (2,)) == 1).all()


def test_streams_are_keyed_by_name_and_independent_of_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    a = streams.normal((3, 5), "0.weight", 7, 0.0, 1.0, np.dtype(np.float32))
    b = streams.normal((3, 5), "0.weight", 7, 0.0, 1.0, np.dtype(np.float32))
    c = streams.normal((3, 5), "1.weight", 7, 0.0, 1.0, np.dtype(np.float32))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    monkeypatch.setattr(streams, "CHUNK", 4)  # many chunks, filled in parallel
    big1 = streams.uniform((50, 7), "w", 1, -1, 1, np.dtype(np.float32))
    monkeypatch.setattr(streams, "_threads", lambda: 1)
    monkeypatch.setattr(streams, "_pool", None)
    big2 = streams.uniform((50, 7), "w", 1, -1, 1, np.dtype(np.float32))
    assert np.array_equal(big1, big2)


def test_get_resolves_names_classes_instances_and_callables() -> None:
    assert isinstance(up.init.get("glorot_uniform"), up.init.XavierUniform)
    assert isinstance(up.init.get("xavier_normal"), up.init.XavierNormal)
    assert isinstance(up.init.get("glorot_normal"), up.init.VarianceScaling)  # Keras truncates
    assert isinstance(up.init.get(up.init.Zeros), up.init.Zeros)
    assert isinstance(up.init.get(lambda shape, rng: np.zeros(shape)), up.init.CallableInitializer)
    with pytest.raises(up.InitializerError, match="xavier_uniform"):
        up.init.get("xavier_unifrom")
    for bad in (lambda: up.init.Normal(0, 0), lambda: up.init.Uniform(1, 0), lambda: up.init.KaimingUniform(mode="x"),
                lambda: up.init.Constant("a"), lambda: up.init.KaimingNormal(nonlinearity="swishy")):
        with pytest.raises(up.InitializerError, match="(?i)received"):
            bad()


def test_initialize_numpy_model_role_aware_and_all_or_nothing() -> None:
    net = Sequential(Dense(3, 4), Dense(4, 2))
    names = up.initialize(net, up.init.Constant(2.0))
    assert names == ["0.weight", "0.bias", "1.weight", "1.bias"]
    ps = up.params(net)
    assert (ps["0.weight"].numpy() == 2).all() and (ps["0.bias"].numpy() == 0).all()
    before = ps.numpy(copy=True)
    calls = []

    def second_fails(shape, rng):
        calls.append(shape)
        return np.zeros(shape) if len(calls) == 1 else np.zeros((1,))

    with pytest.raises(up.InitializerError, match="1.weight"):
        up.initialize(net, second_fails, select="*.weight")
    for name, value in before.items():
        np.testing.assert_array_equal(ps[name].numpy(), value)  # the first weight did not change either


def test_force_false_skips_parameters_initialized_before() -> None:
    net = Sequential(Dense(3, 4))
    up.initialize(net, up.init.Constant(1.0), select="0.weight")
    assert up.initialize(net, up.init.Constant(5.0), select="*", force=False) == ["0.bias"]
    assert (up.params(net)["0.weight"].numpy() == 1).all()
