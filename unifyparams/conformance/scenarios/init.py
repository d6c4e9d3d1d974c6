"""Initialization scenarios: catalog, role-aware and per-block init, custom initializers, direct
writes, bad input, seeds, and initializers that wait for lazy shapes.

Statistical checks use fixed seeds and tolerances derived from the sample size (several standard
errors), so they never flake.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

import unifyparams as up

from ..scenario import check, scenario
from .access import _rng


def _se_mean(std: float, n: int, k: float = 6.0) -> float:
    """``k`` standard errors of a sample mean."""
    return k * std / math.sqrt(n)


@scenario("init.builtin_statistics", "Normal(0, 0.01), Uniform and Xavier bounds, constants, orthogonality")
def builtin_statistics(kit: Any) -> None:
    net = kit.mlp()
    up.initialize(net, up.init.Normal(0.0, 0.01), select="*.weight", seed=1)
    w = up.params(net)["0.weight"].numpy().astype(np.float64)
    n = w.size
    check(abs(w.mean()) <= _se_mean(0.01, n), f"Normal(0, 0.01) mean {w.mean():.2e} over {n} samples")
    check(abs(w.std() - 0.01) <= 6 * 0.01 / math.sqrt(2 * n), f"Normal(0, 0.01) std {w.std():.5f}")
    up.initialize(net, up.init.Uniform(-0.3, 0.2), select="0.*", seed=2)
    w = up.params(net)["0.weight"].numpy()
    check(w.min() >= -0.3 and w.max() <= 0.2, f"Uniform(-0.3, 0.2) out of bounds: [{w.min()}, {w.max()}]")
    check(w.max() - w.min() > 0.49, "Uniform(-0.3, 0.2) does not cover its range")
    up.initialize(net, up.init.XavierUniform(), select="*.weight", seed=3)
    for name, (fan_out, fan_in) in {"0.weight": (256, 20), "2.weight": (10, 256)}.items():
        bound = math.sqrt(6.0 / (fan_in + fan_out))
        w = up.params(net)[name].numpy()
        check(np.abs(w).max() <= bound and np.abs(w).max() > 0.95 * bound, f"{name}: Xavier bound {bound:.4f}")
    up.initialize(net, up.init.Constant(42), select="*.bias")
    check(np.all(up.params(net)["2.bias"].numpy() == 42), "Constant(42) not exact")
    up.initialize(net, up.init.Orthogonal(), select="2.weight", seed=4)
    q = up.params(net)["2.weight"].numpy().astype(np.float64)  # (10, 256): orthonormal rows
    check(np.allclose(q @ q.T, np.eye(10), atol=1e-5), "Orthogonal rows are not orthonormal")


@scenario("init.role_aware", "without select: weights get init, biases 0, norm scales 1, running stats 0/1")
def role_aware(kit: Any) -> None:
    bn = kit.single_layer("batchnorm", num_features=5)
    up.params(bn).load({k: np.full(v.shape, 7, v.dtype) for k, v in up.params(bn).numpy().items()})
    names = up.initialize(bn, up.init.Normal(0, 1), seed=0)
    ps = up.params(bn)
    check(sorted(names) == sorted(ps), f"initialized {names}")
    expected = {"0.weight": 1.0, "0.bias": 0.0, "0.running_mean": 0.0, "0.running_var": 1.0}
    for name, value in expected.items():
        check(np.all(ps[name].numpy() == value), f"{name} should be {value}, got {ps[name].numpy()}")
    net = kit.mlp()
    up.initialize(net, up.init.Constant(0.5))
    ps = up.params(net)
    check(np.all(ps["0.weight"].numpy() == 0.5) and np.all(ps["0.bias"].numpy() == 0), "dense weights/biases")


@scenario("init.per_block", "Xavier for the first layer and the constant 42 for the second, on one model")
def per_block(kit: Any) -> None:
    net = kit.mlp()
    up.initialize(kit.child(net, "0"), up.init.XavierUniform(), seed=5)
    up.initialize(kit.child(net, "2"), up.init.Constant(42))
    ps = up.params(net)
    bound = math.sqrt(6.0 / (20 + 256))
    w0 = ps["0.weight"].numpy()
    check(np.abs(w0).max() <= bound and w0.std() > 0, "first layer is not Xavier-initialized")
    check(np.all(ps["2.weight"].numpy() == 42), "second layer weight is not 42")
    check(np.all(ps["2.bias"].numpy() == 0), "role-aware: the second layer's bias should be 0")


class _Classic(up.init.Initializer):
    """With probability 1/4 U(5, 10), 1/2 zero, 1/4 U(-10, -5): draw U(-10, 10), zero |w| < 5."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, tuple[int, ...]]] = []

    def __call__(self, shape: Any, rng: np.random.Generator, param: Any = None) -> np.ndarray:
        self.seen.append((param.name, tuple(shape)))  # "Init weight (256, 20)"
        w = rng.uniform(-10, 10, size=shape)
        return w * (np.abs(w) >= 5)


@scenario("init.custom", "a custom initializer learns which parameter it fills; the classic distribution")
def custom(kit: Any) -> None:
    net = kit.mlp()
    init = _Classic()
    up.initialize(net, init, select="*.weight", seed=6)
    check(init.seen == [("0.weight", (256, 20)), ("2.weight", (10, 256))], f"initializer saw {init.seen}")
    w = up.params(net)["0.weight"].numpy().astype(np.float64)
    n = w.size
    zero_fraction = float(np.mean(w == 0))
    check(abs(zero_fraction - 0.5) <= 6 * math.sqrt(0.25 / n), f"zero fraction {zero_fraction:.3f}, expected 0.5")
    nonzero = np.abs(w[w != 0])
    check(nonzero.min() >= 5 and nonzero.max() <= 10, f"non-zero magnitudes in [{nonzero.min()}, {nonzero.max()}]")
    positive = float(np.mean(w > 0))
    check(abs(positive - 0.25) <= 6 * math.sqrt(0.1875 / n), f"positive fraction {positive:.3f}, expected 0.25")

    def plain(shape: Any, rng: np.random.Generator) -> np.ndarray:  # any callable works too
        return np.full(shape, 3.0)

    up.initialize(net, plain, select="2.bias")
    check(np.all(up.params(net)["2.bias"].numpy() == 3), "callable initializer not applied")


@scenario("init.direct_writes", "add one to every weight, set [0, 0] to 42, read back")
def direct_writes(kit: Any) -> None:
    net = kit.mlp()
    ps = up.params(net)
    p = ps["0.weight"]
    before = p.numpy(copy=True)
    native, trainable = p.native, p.trainable
    p.update(lambda a: a + 1)
    p[0, 0] = 42
    after = up.params(net)["0.weight"].numpy()
    check(after[0, 0] == 42, f"[0, 0] is {after[0, 0]}")
    check(np.allclose(after.ravel()[1:], before.ravel()[1:] + 1), "+1 not applied to every other element")
    check(p.native is native and p.trainable == trainable, "direct writes replaced the native object or flags")
    shared = kit.shared_mlp()
    up.params(shared)["4.weight"][1, 1] = -3.0
    check(up.params(shared)["2.weight"].numpy()[1, 1] == -3.0, "a write did not reach the tied alias")


@scenario("init.bad_input", "bad initializers are refused with the parameter's name; nothing changes")
def bad_input(kit: Any) -> None:
    net = kit.mlp()
    before = up.params(net).numpy(copy=True)
    cases = {
        "wrong shape": (lambda shape, rng: np.zeros((3, 3)), "(3, 3)"),
        "non-finite": (lambda shape, rng: np.full(shape, np.nan), "non-finite"),
        "wrong dtype kind": (lambda shape, rng: np.full(shape, "x"), "real numbers"),
    }
    for label, (fn, words) in cases.items():
        try:
            up.initialize(net, fn, select="*.weight", seed=0)
        except up.InitializerError as exc:
            check("0.weight" in str(exc) and words in str(exc), f"{label}: message {exc}")
        else:
            check(False, f"{label}: not refused")
        after = up.params(net).numpy()
        check(all(np.array_equal(after[k], v) for k, v in before.items()), f"{label}: a parameter changed")
    for bad, words in (("xavier_unifrom", "xavier_uniform"), (lambda: up.init.Normal(0, -1), "std")):
        try:
            up.initialize(net, bad() if callable(bad) else bad)
        except up.InitializerError as exc:
            check(words in str(exc), f"message {exc}")
        else:
            check(False, f"{bad!r} was accepted")
    try:
        up.initialize(net, up.init.Zeros(), select="*.wieght")
    except up.ParameterNotFoundError as exc:
        check("weight" in str(exc), f"select error should list close names: {exc}")
    else:
        check(False, "a select matching nothing was accepted")
    try:
        up.initialize(net, up.init.XavierUniform(), select="*.bias")
    except up.InitializerError as exc:
        check("0.bias" in str(exc) and "2 dimensions" in str(exc), f"message {exc}")
    else:
        check(False, "Xavier on a 1-D bias was accepted")


@scenario("init.seed", "same seed, same values; up.seed drives the unseeded case")
def seeded(kit: Any) -> None:
    a, b = kit.mlp(), kit.mlp()
    up.initialize(a, up.init.XavierNormal(), seed=11)
    up.initialize(b, up.init.XavierNormal(), seed=11)
    for name, value in up.params(a).numpy().items():
        check(np.array_equal(value, up.params(b)[name].numpy()), f"{name}: same seed, different values")
    up.seed(5)
    up.initialize(a, up.init.Normal())
    up.seed(5)
    up.initialize(b, up.init.Normal())
    check(np.array_equal(up.params(a)["0.weight"].numpy(), up.params(b)["0.weight"].numpy()), "up.seed")
    up.initialize(b, up.init.Normal())
    check(not np.array_equal(up.params(a)["0.weight"].numpy(), up.params(b)["0.weight"].numpy()), "unseeded repeat")


@scenario("init.waits_for_shapes", "initializers recorded on a lazy model apply when shapes become known")
def waits_for_shapes(kit: Any) -> None:
    eager = kit.mlp()
    up.initialize(eager, up.init.XavierUniform(), seed=21)
    expected = up.params(eager).numpy(copy=True)
    x = _rng(3).normal(size=(2, 20)).astype(np.float32)
    for how in ("materialize", "first forward"):
        net = kit.lazy_mlp()
        names = up.initialize(net, up.init.XavierUniform(), seed=21)
        check("0.weight" in names, f"{how}: initialize did not record 0.weight: {names}")
        waiting = up.pending(net)
        check(waiting["0.weight"].initializer is not None, f"{how}: pending() lost the initializer")
        if how == "materialize":
            up.materialize(net, input_shape=(2, 20))
        else:
            kit.forward(net, x)
        for name, value in expected.items():
            got = up.params(net)[name].numpy()
            check(np.array_equal(got, value), f"{how}: {name} differs from the eager model's seeded values")
        check(np.allclose(kit.forward(net, x), kit.forward(eager, x), atol=1e-6), f"{how}: outputs differ")
