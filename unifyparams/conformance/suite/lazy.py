"""Lazy-shape scenarios: parameters whose shape waits for data."""

from __future__ import annotations

from typing import Any

import numpy as np

import unifyparams as up

from ..checks import check
from .access import _rng

LAZY_NAMES = ["0.weight", "0.bias", "2.weight", "2.bias"]


def _x(features: int = 20) -> np.ndarray:
    return _rng(11).normal(size=(2, features)).astype(np.float32)


def _check_known(net: Any, label: str) -> None:
    ps = up.params(net)
    check(list(ps) == LAZY_NAMES, f"{label}: names {list(ps)}")
    check(ps["0.weight"].shape == (256, 20), f"{label}: 0.weight shape {ps['0.weight'].shape}")
    check(ps["2.weight"].shape == (10, 256), f"{label}: 2.weight shape {ps['2.weight'].shape}")
    check(up.is_materialized(net), f"{label}: is_materialized() is False")
    check(not up.pending(net), f"{label}: pending() = {up.pending(net)}")


class LazyTests:
    """The ``lazy.*`` scenarios; mix into a class with the suite's fixtures."""

    def test_lazy__unknown_until_data(self, kit: Any) -> None:
        """Before data: unknown input dimensions, names and tree still work."""
        net = kit.lazy_mlp()
        ps = up.params(net)
        check(list(ps) == LAZY_NAMES, f"names before data: {list(ps)}")
        check(ps["0.weight"].shape == (256, None), f"0.weight before data: {ps['0.weight'].shape}")
        check(ps["2.weight"].shape == (10, None), f"2.weight before data: {ps['2.weight'].shape}")
        check(not ps["0.weight"].materialized and not up.is_materialized(net), "reported as materialized")
        waiting = up.pending(net)
        check({"0.weight", "2.weight"} <= set(waiting), f"pending() = {sorted(waiting)}")
        check("?" in up.tree(net), f"tree should show unknown dimensions as '?':\n{up.tree(net)}")
        try:
            ps["0.weight"].numpy()
        except up.NotMaterializedError as exc:
            text = str(exc)
            check("0.weight" in text and "materialize" in text, f"error should name the parameter and the fix: {exc}")
        else:
            check(False, "reading an unknown-shape parameter did not raise NotMaterializedError")

    def test_lazy__materialize(self, kit: Any) -> None:
        """Up.materialize infers every shape from an input shape, without training."""
        net = kit.lazy_mlp()
        up.materialize(net, input_shape=(2, 20))
        _check_known(net, "after up.materialize(input_shape=(2, 20))")
        net2 = kit.lazy_mlp()
        up.materialize(net2, _x())
        _check_known(net2, "after up.materialize(x)")

    def test_lazy__first_forward(self, kit: Any) -> None:
        """The user's own first forward pass makes shapes known."""
        net = kit.lazy_mlp()
        out = kit.forward(net, _x())
        check(out.shape == (2, 10), f"output shape {out.shape}")
        _check_known(net, "after the first forward pass")

    def test_lazy__load_fills_shapes(self, kit: Any) -> None:
        """Loading a state into a lazy model fills unknown dimensions."""
        eager = kit.mlp()  # (256, 20) and (10, 256)
        state = up.params(eager).numpy(copy=True)
        bad = kit.lazy_mlp()
        wrong = {**state, "2.weight": np.ones((11, 256), np.float32), "2.bias": np.ones(11, np.float32)}
        try:
            up.params(bad).load(wrong)
        except up.LoadError as exc:
            check("(11, 256)" in str(exc), f"error should show the disagreeing shape: {exc}")
        else:
            check(False, "a known dimension that disagrees was accepted")
        check(up.params(bad)["0.weight"].shape == (256, None), "a failed load changed the lazy model")
        net = kit.lazy_mlp()
        up.params(net).load(state)
        _check_known(net, "after load")
        for name, value in state.items():
            check(np.array_equal(up.params(net)[name].numpy(), value), f"{name}: loaded values differ")
        x = _x()
        out, expected = kit.forward(net, x), kit.forward(eager, x)
        check(np.allclose(out, expected, atol=1e-5), "lazy model loaded with eager values computes differently")

    def test_lazy__wrong_input(self, kit: Any) -> None:
        """Materializing with a wrong input names the block that failed."""
        net = kit.mlp()  # expects 20 features
        try:
            up.materialize(net, input_shape=(2, 7))
        except up.NotMaterializedError as exc:
            check("0" in str(exc) and "7" in str(exc), f"error should name the failing block and the input: {exc}")
        else:
            check(False, "materialize on a 7-feature input of a 20-feature model did not fail")
