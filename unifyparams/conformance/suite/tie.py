"""Tying scenarios: shared layers, ties made with up.tie, gradients that accumulate."""

from __future__ import annotations

from typing import Any

import numpy as np

import unifyparams as up

from ..checks import check
from .access import _close, _rng
from .ids import needs

SHARED_GROUPS = [("2.weight", "4.weight"), ("2.bias", "4.bias")]


def _x(n: int = 3) -> np.ndarray:
    return _rng(7).normal(size=(n, 20)).astype(np.float32)


class TieTests:
    """The ``tie.*`` scenarios; mix into a class with the suite's fixtures."""

    def test_tie__native_sharing(self, kit: Any) -> None:
        """A layer used twice: one object, listed under both names, counted once."""
        net = kit.shared_mlp()
        ps = up.params(net)
        check(list(ps) == [f"{i}.{leaf}" for i in (0, 2, 4, 6) for leaf in ("weight", "bias")], f"names {list(ps)}")
        check(ps["2.weight"].native is ps["4.weight"].native, "2.weight and 4.weight are not the same object")
        check(ps["2.weight"].shared_with == ("4.weight",), f"2.weight.shared_with = {ps['2.weight'].shared_with}")
        check(up.ties(net) == SHARED_GROUPS, f"ties() = {up.ties(net)}")
        check(ps.count() == 20 * 8 + 8 + 8 * 8 + 8 + 8 + 1, f"count() = {ps.count()} counts shared storage twice")
        ps["2.weight"][0, 0] = 100.0
        check(up.params(net)["4.weight"].numpy()[0, 0] == 100.0, "write through 2.weight not seen through 4.weight")
        check("shared with 4.weight" in str(ps), "tree does not mark sharing")

    @needs("backward")
    def test_tie__gradients_accumulate(self, kit: Any) -> None:
        """Gradients of a shared layer are the sum over its uses."""
        tied = kit.shared_mlp()
        twin = kit.shared_mlp(shared=False)
        state = up.params(tied).numpy(copy=True)
        up.params(twin).load(state)
        x = _x()
        _close(kit.forward(tied, x), kit.forward(twin, x).astype(np.float64), "tied vs untied-twin output", atol=1e-5)
        g_tied = up.gradients(tied, x)
        g_twin = up.gradients(twin, x)
        for leaf in ("weight", "bias"):
            expected = g_twin[f"2.{leaf}"].astype(np.float64) + g_twin[f"4.{leaf}"]
            _close(g_tied[f"2.{leaf}"], expected, f"gradient of shared 2.{leaf}", atol=1e-4)
            _close(g_tied[f"4.{leaf}"], expected, f"gradient of shared 4.{leaf}", atol=1e-4)
            p2, p4 = up.params(tied)[f"2.{leaf}"].grad(), up.params(tied)[f"4.{leaf}"].grad()
            check(p2 is not None and p4 is not None and np.array_equal(p2, p4), f"p.grad() differs across 2/4.{leaf}")

    @needs("backward")
    def test_tie__training_keeps_sharing(self, kit: Any) -> None:
        """After a few training steps the shared layer is still one."""
        net = kit.shared_mlp()
        ps = up.params(net)
        for step in range(3):
            grads = up.gradients(net, _rng(step).normal(size=(4, 20)).astype(np.float32))
            ps.load({name: ps[name].numpy() - 0.01 * grads[name] for name in ps})
        for a, b in SHARED_GROUPS:
            check(np.array_equal(ps[a].numpy(), ps[b].numpy()), f"{a} and {b} differ after training")
            check(ps[a].native is ps[b].native, f"{a} and {b} are no longer one object")
            ga, gb = ps[a].grad(), ps[b].grad()
            check(ga is not None and gb is not None and np.array_equal(ga, gb), f"{a} and {b} gradients differ")

    @needs("tie")
    def test_tie__tie_and_untie(self, kit: Any) -> None:
        """Up.tie shares storage between layers; up.untie separates them."""
        net = kit.shared_mlp(shared=False)
        ps = up.params(net)
        check(up.ties(net) == [], f"fresh untied model reports ties {up.ties(net)}")
        source_values = ps["2.weight"].numpy(copy=True)
        pairs = up.tie(net, "2", "4")
        check(pairs == [("2.weight", "4.weight"), ("2.bias", "4.bias")], f"tie returned {pairs}")
        check(up.ties(net) == SHARED_GROUPS, f"ties() after tie: {up.ties(net)}")
        ps = up.params(net)
        check(np.array_equal(ps["4.weight"].numpy(), source_values), "tied target does not show the source's values")
        ps["4.bias"].set(np.full(8, 2.5, dtype=np.float32))
        check(np.all(up.params(net)["2.bias"].numpy() == 2.5), "write through 4.bias not seen through 2.bias")
        x = _x()
        out = kit.forward(net, x)
        twin = kit.shared_mlp(shared=False)
        up.params(twin).load(up.params(net).numpy(copy=True))
        _close(out, kit.forward(twin, x).astype(np.float64), "tied model output vs equal-valued twin", atol=1e-5)
        untied = up.untie(net, "4.weight")
        check(untied == ["4.weight"], f"untie returned {untied}")
        ps = up.params(net)
        check(ps["4.weight"].native is not ps["2.weight"].native, "untie kept one object")
        check(np.array_equal(ps["4.weight"].numpy(), source_values), "untie lost the current values")
        ps["4.weight"][0, 0] = -7.0
        check(ps["2.weight"].numpy()[0, 0] != -7.0, "untied parameters still share storage")
        check(up.ties(net) == [("2.bias", "4.bias")], f"ties() after untie: {up.ties(net)}")

    @needs("tie")
    def test_tie__bad_ties(self, kit: Any) -> None:
        """Impossible ties are refused with the reason, and change nothing."""
        net = kit.shared_mlp(shared=False)
        before = up.params(net).numpy(copy=True)
        cases = {
            ("0.weight", "2.weight"): "shapes differ",
            ("2.weight", "9.weight"): "closest",
            ("0", "6"): "shapes differ",
            ("2.weight", "4.bias"): "shapes differ",
        }
        for (a, b), words in cases.items():
            try:
                up.tie(net, a, b)
            except up.TieError as exc:
                check(words in str(exc), f"tie({a!r}, {b!r}) message lacks {words!r}: {exc}")
            else:
                check(False, f"tie({a!r}, {b!r}) was not refused")
            check(up.ties(net) == [], f"a refused tie({a!r}, {b!r}) left ties {up.ties(net)}")
            after = up.params(net).numpy()
            check(all(np.array_equal(after[k], v) for k, v in before.items()), "a refused tie changed values")

    @needs("tie")
    def test_tie__before_shapes(self, kit: Any) -> None:
        """A tie made before the shapes are known holds after they become known."""
        x = _rng(8).normal(size=(2, 20)).astype(np.float32)
        for how in ("materialize", "first forward"):
            net = kit.lazy_twin_mlp()
            up.initialize(net, up.init.XavierUniform(), seed=3)
            pairs = up.tie(net, "2", "4")
            check(pairs == [("2.weight", "4.weight"), ("2.bias", "4.bias")], f"{how}: tie returned {pairs}")
            check(up.pending_ties(net) == pairs, f"{how}: pending_ties {up.pending_ties(net)}")
            if how == "materialize":
                up.materialize(net, input_shape=(2, 20))
            else:
                kit.forward(net, x)
            check(up.ties(net) == SHARED_GROUPS, f"{how}: ties after shapes: {up.ties(net)}")
            ps = up.params(net)
            check(ps["2.weight"].native is ps["4.weight"].native, f"{how}: not one object after shapes")
            check(not up.pending_ties(net), f"{how}: ties still waiting")
            ps["2.bias"].set(np.full(8, 1.5, np.float32))
            check(np.all(up.params(net)["4.bias"].numpy() == 1.5), f"{how}: a write is not seen through 4.bias")
