"""Initialization scenarios: catalog, role-aware and per-block init, custom initializers, direct
writes, bad input, seeds, and initializers that wait for lazy shapes.

Statistical checks use fixed seeds and tolerances derived from the sample size (six standard
errors: a false alarm is a one-in-a-billion event, and the seeds are fixed anyway), so they
never flake.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

import unifyparams as up

from ..checks import check
from ..reference import dense
from .access import _rng

#: float32 rounding may put a value one ulp past a float64 bound.
_ULP = 1 + 1e-6


def _se_mean(std: float, n: int, k: float = 6.0) -> float:
    """``k`` standard errors of a sample mean."""
    return k * std / math.sqrt(n)


def _se_std(std: float, n: int, k: float = 6.0) -> float:
    """``k`` standard errors of a sample standard deviation (normal data)."""
    return k * std / math.sqrt(2 * n)


def _within_bound(w: np.ndarray, bound: float) -> bool:
    """Every value in [-bound, bound], and the extremes near it (the sample reaches the edges)."""
    top = float(np.abs(w).max())
    return top <= bound * _ULP and top > 0.95 * bound


def _mlp_reference(net: Any, x: np.ndarray) -> np.ndarray:
    """The MLP's output computed in NumPy from the values unifyparams reads."""
    w = {k: v.astype(np.float64) for k, v in up.params(net).numpy().items()}
    hidden = np.maximum(dense(x, {"weight": w["0.weight"], "bias": w["0.bias"]}), 0)
    return dense(hidden, {"weight": w["2.weight"], "bias": w["2.bias"]})


class _Classic(up.init.Initializer):
    """With probability 1/4 U(5, 10), 1/2 zero, 1/4 U(-10, -5): draw U(-10, 10), zero |w| < 5."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def __call__(self, shape: Any, rng: np.random.Generator, param: Any = None) -> np.ndarray:
        self.seen.append(f"Init {param.name} {tuple(shape)} {param.role}")  # the familiar print line
        w = rng.uniform(-10, 10, size=shape)
        return w * (np.abs(w) >= 5)


def _refused(fn: Any, error: type[Exception], *words: str) -> None:
    try:
        fn()
    except error as exc:
        check(all(w in str(exc) for w in words), f"the message should mention {words}: {exc}")
    else:
        check(False, f"not refused (expected {error.__name__} mentioning {words})")


class InitTests:
    """The ``init.*`` scenarios; mix into a class with the suite's fixtures."""

    def test_init__builtin_statistics(self, kit: Any) -> None:
        """Normal(0, 0.01), Uniform and Xavier bounds, constants, orthogonality."""
        net = kit.mlp()
        up.initialize(net, up.init.Normal(0.0, 0.01), select="*.weight", seed=1)
        w = up.params(net)["0.weight"].numpy().astype(np.float64)
        n = w.size
        check(abs(w.mean()) <= _se_mean(0.01, n), f"Normal(0, 0.01) mean {w.mean():.2e} over {n} samples")
        check(abs(w.std() - 0.01) <= _se_std(0.01, n), f"Normal(0, 0.01) std {w.std():.5f} over {n} samples")
        up.initialize(net, up.init.Uniform(-0.3, 0.2), select="0.*", seed=2)
        for name in ("0.weight", "0.bias"):
            w = up.params(net)[name].numpy().astype(np.float64)
            check(w.min() >= -0.3 * _ULP and w.max() <= 0.2 * _ULP, f"Uniform(-0.3, 0.2) out of bounds: [{w.min()}, {w.max()}]")
            check(abs(w.mean() + 0.05) <= _se_mean(0.5 / math.sqrt(12), w.size), f"{name}: Uniform mean {w.mean():.4f}")
        up.initialize(net, up.init.XavierUniform(), select="*.weight", seed=3)
        for name, (fan_out, fan_in) in {"0.weight": (256, 20), "2.weight": (10, 256)}.items():
            bound = math.sqrt(6.0 / (fan_in + fan_out))
            check(_within_bound(up.params(net)[name].numpy(), bound), f"{name}: Xavier bound {bound:.4f}")
        up.initialize(net, up.init.Constant(42), select="*.bias")
        check(np.all(up.params(net)["2.bias"].numpy() == 42), "Constant(42) not exact")
        up.initialize(net, up.init.Orthogonal(), select="2.weight", seed=4)
        q = up.params(net)["2.weight"].numpy().astype(np.float64)  # (10, 256): orthonormal rows
        check(np.allclose(q @ q.T, np.eye(10), atol=1e-5), "Orthogonal rows are not orthonormal")

    def test_init__canonical_fans(self, kit: Any) -> None:
        """Fans come from the canonical layout: Xavier and Kaiming bounds of a conv kernel."""
        conv = kit.single_layer("conv2d", in_channels=3, out_channels=8, kernel_size=3)
        p = up.params(conv)["0.weight"]
        check(p.shape == (8, 3, 3, 3), f"conv weight canonical shape {p.shape}")
        fan_in, fan_out = 3 * 9, 8 * 9
        up.initialize(conv, up.init.XavierUniform(), seed=7)
        check(_within_bound(p.numpy(), math.sqrt(6 / (fan_in + fan_out))), "Xavier bound of a conv kernel (fans 27, 72)")
        check(np.all(up.params(conv)["0.bias"].numpy() == 0), "role-aware: conv bias should be 0")
        up.initialize(conv, up.init.KaimingUniform(mode="fan_out", nonlinearity="relu"), select="0.weight", seed=8)
        check(_within_bound(p.numpy(), math.sqrt(2) * math.sqrt(3 / fan_out)), "Kaiming fan_out bound of a conv kernel")

    def test_init__role_aware(self, kit: Any) -> None:
        """Without select: weights get init, biases 0, norm scales 1, running stats 0/1."""
        for kind, extra in (("batchnorm", {"0.running_mean": 0.0, "0.running_var": 1.0}), ("layernorm", {})):
            layer = kit.single_layer(kind, num_features=5)
            ps = up.params(layer)
            ps.load({k: np.full(v.shape, 7, v.dtype) for k, v in ps.numpy().items()})
            names = up.initialize(layer, up.init.Normal(0, 1), seed=0)
            expected = {"0.weight": 1.0, "0.bias": 0.0, **extra}
            check(sorted(names) == sorted(expected), f"{kind}: initialized {names}, expected {sorted(expected)}")
            for name, value in expected.items():
                check(np.all(ps[name].numpy() == value), f"{kind}: {name} should be {value}, got {ps[name].numpy()}")
        net = kit.mlp()
        names = up.initialize(net, up.init.Constant(0.5))
        ps = up.params(net)
        check(list(names) == ["0.weight", "0.bias", "2.weight", "2.bias"], f"mlp: initialized {names}")
        check(np.all(ps["0.weight"].numpy() == 0.5) and np.all(ps["0.bias"].numpy() == 0), "dense weights/biases")
        up.initialize(ps.select("*.bias"), up.init.Constant(0.1))  # a ParamSet is a selection: exactly these
        check(np.allclose(ps["2.bias"].numpy(), 0.1), "a ParamSet target should get init itself, not role rules")

    def test_init__per_block(self, kit: Any) -> None:
        """Xavier for the first layer and the constant 42 for the second, on one model."""
        net = kit.mlp()
        up.initialize(kit.child(net, "0"), up.init.XavierUniform(), seed=5)
        up.initialize(kit.child(net, "2"), up.init.Constant(42))
        ps = up.params(net)
        bound = math.sqrt(6.0 / (20 + 256))
        w0 = ps["0.weight"].numpy()
        check(_within_bound(w0, bound), "first layer is not Xavier-initialized")
        check(np.all(ps["2.weight"].numpy() == 42), "second layer weight is not 42")
        check(np.all(ps["2.bias"].numpy() == 0), "role-aware: the second layer's bias should be 0")
        x = _rng(1).normal(size=(3, 20)).astype(np.float32)
        check(np.allclose(kit.forward(net, x), _mlp_reference(net, x), rtol=1e-4, atol=1e-3),
              "the model does not compute with the new values")

    def test_init__custom(self, kit: Any) -> None:
        """A custom initializer learns which parameter it fills; the classic distribution."""
        net = kit.mlp()
        init = _Classic()
        up.initialize(net, init, select="*.weight", seed=6)
        expected_seen = ["Init 0.weight (256, 20) weight", "Init 2.weight (10, 256) weight"]
        check(init.seen == expected_seen, f"initializer saw {init.seen}")
        w = up.params(net)["0.weight"].numpy().astype(np.float64)
        n = w.size
        zero_fraction = float(np.mean(w == 0))
        check(abs(zero_fraction - 0.5) <= 6 * math.sqrt(0.25 / n), f"zero fraction {zero_fraction:.3f}, expected 0.5")
        nonzero = np.abs(w[w != 0])
        check(nonzero.min() >= 5 and nonzero.max() <= 10, f"non-zero magnitudes in [{nonzero.min()}, {nonzero.max()}]")
        for label, frac in (("positive", float(np.mean(w > 0))), ("negative", float(np.mean(w < 0)))):
            check(abs(frac - 0.25) <= 6 * math.sqrt(0.1875 / n), f"{label} fraction {frac:.3f}, expected 0.25")
        upper = w[w > 0]  # U(5, 10): mean 7.5, std 5 / sqrt(12)
        check(abs(upper.mean() - 7.5) <= _se_mean(5 / math.sqrt(12), upper.size), f"U(5, 10) part has mean {upper.mean():.3f}")

        def plain(shape: Any, rng: np.random.Generator) -> np.ndarray:  # any callable works too
            return np.full(shape, 3.0)

        up.initialize(net, plain, select="2.bias")
        check(np.all(up.params(net)["2.bias"].numpy() == 3), "callable initializer not applied")

    def test_init__direct_writes(self, kit: Any) -> None:
        """Add one to every weight, set [0, 0] to 42, read back; ties and flags kept."""
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
        check(up.params(net)["0.weight"].native is native, "direct writes replaced the native parameter object")
        check(up.params(net)["0.weight"].trainable == trainable, "direct writes changed the trainable flag")
        p.set(np.zeros_like(p.numpy()))
        check(np.all(up.params(net)["0.weight"].numpy() == 0), "set() did not write")
        x = _rng(2).normal(size=(2, 20)).astype(np.float32)
        check(np.allclose(kit.forward(net, x), _mlp_reference(net, x), rtol=1e-4, atol=1e-5),
              "the model does not compute with the written values")
        grads = up.gradients(net, x)  # writes were not recorded by autograd: a training step still works
        check(set(grads) >= {"0.weight", "2.weight"}, f"gradients after direct writes: {sorted(grads)}")
        shared = kit.shared_mlp()
        up.params(shared)["4.weight"][1, 1] = -3.0
        check(up.params(shared)["2.weight"].numpy()[1, 1] == -3.0, "a write did not reach the tied alias")
        up.initialize(shared, up.init.Constant(0.25), select="4.weight")
        check(np.all(up.params(shared)["2.weight"].numpy() == 0.25), "initializing one alias did not reach the other")

    def test_init__bad_input(self, kit: Any) -> None:
        """Bad initializers are refused with the parameter's name; nothing changes."""
        net = kit.mlp()
        before = up.params(net).numpy(copy=True)

        def unchanged(label: str) -> None:
            after = up.params(net).numpy()
            check(all(np.array_equal(after[k], v) for k, v in before.items()), f"{label}: a parameter changed")

        cases = {
            "wrong shape": (lambda shape, rng: np.zeros((3, 3)), "(3, 3)"),
            "non-finite": (lambda shape, rng: np.full(shape, np.nan), "non-finite"),
            "wrong dtype kind": (lambda shape, rng: np.full(shape, "x"), "real numbers"),
            "second one wrong": (lambda shape, rng: np.zeros(shape if shape[0] == 256 else (1,)), "2.weight"),
        }
        for label, (fn, words) in cases.items():
            name = "2.weight" if label == "second one wrong" else "0.weight"
            _refused(lambda fn=fn: up.initialize(net, fn, select="*.weight", seed=0), up.InitializerError, name, words)
            unchanged(label)
        _refused(lambda: up.initialize(net, "xavier_unifrom"), up.InitializerError, "xavier_uniform")
        _refused(lambda: up.initialize(net, up.init.Normal(0, -1)), up.InitializerError, "std", "-1")
        _refused(lambda: up.initialize(net, up.init.Zeros(), select="*.wieght"), up.ParameterNotFoundError, "weight")
        _refused(lambda: up.initialize(net, up.init.XavierUniform(), select="*"), up.InitializerError, "0.bias", "2 dimensions")
        unchanged("Xavier on weights and biases (refused at the first bias, after a weight)")
        _refused(lambda: up.initialize(net, up.init.Normal(), seed=-1), up.InitializerError, "seed")
        unchanged("bad seed")

    def test_init__seed(self, kit: Any) -> None:
        """Same seed, same values; a subset gets the full init's values; up.seed drives the unseeded case."""
        a, b = kit.mlp(), kit.mlp()
        up.initialize(a, up.init.XavierNormal(), seed=11)
        up.initialize(b, up.init.XavierNormal(), seed=11)
        for name, value in up.params(a).numpy().items():
            check(np.array_equal(value, up.params(b)[name].numpy()), f"{name}: same seed, different values")
        c = kit.mlp()
        up.initialize(c, up.init.XavierNormal(), select="2.weight", seed=11)
        check(np.array_equal(up.params(c)["2.weight"].numpy(), up.params(a)["2.weight"].numpy()),
              "initializing a subset with select= should give the values the full init gives")
        nested = kit.nested_blocks()  # eight weights of two shapes, one call
        up.initialize(nested, up.init.Normal(), seed=11)
        values = up.params(nested).numpy()
        for i in range(1, 4):
            check(not np.array_equal(values["0.0.0.weight"], values[f"0.{i}.0.weight"]),
                  f"0.0.0.weight and 0.{i}.0.weight got the same values: streams must differ by name")
        up.initialize(b, up.init.XavierNormal(), seed=12)
        check(not np.array_equal(up.params(a)["0.weight"].numpy(), up.params(b)["0.weight"].numpy()), "seed ignored")
        up.seed(5)
        up.initialize(a, up.init.Normal())
        up.seed(5)
        up.initialize(b, up.init.Normal())
        check(np.array_equal(up.params(a)["0.weight"].numpy(), up.params(b)["0.weight"].numpy()), "up.seed")
        up.initialize(b, up.init.Normal())
        check(not np.array_equal(up.params(a)["0.weight"].numpy(), up.params(b)["0.weight"].numpy()), "unseeded repeat")

    def test_init__waits_for_shapes(self, kit: Any) -> None:
        """Initializers recorded on a lazy model apply when shapes become known."""
        eager = kit.mlp()
        up.initialize(eager, up.init.XavierUniform(), seed=21)
        expected = up.params(eager).numpy(copy=True)
        x = _rng(3).normal(size=(2, 20)).astype(np.float32)
        for how in ("materialize", "first forward"):
            net = kit.lazy_mlp()
            names = up.initialize(net, up.init.XavierUniform(), seed=21)
            check("0.weight" in names and "0.weight" in names.pending, f"{how}: 0.weight not recorded: {names}, {names.pending}")
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
