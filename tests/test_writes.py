"""Values and writes on every backend: writes reach the framework's own object, loads are all or nothing."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np
import pytest

import unifyparams as up

SMALL_MODELS = {
    "batchnorm": lambda kit: kit.single_layer("batchnorm", num_features=4),
    "mlp": lambda kit: kit.mlp(in_features=4, hidden=8, out_features=2),
    "nested_blocks": lambda kit: kit.nested_blocks(),
}


def test_set_setitem_update_keep_the_native_object_and_reach_the_framework(backend: ModuleType) -> None:
    net = backend.models.mlp()
    ps = up.params(net)
    before = {name: p.native for name, p in ps.items()}
    w = ps["0.weight"]
    w.set(np.zeros((256, 20), dtype=np.float32))
    w[1, 2] = 7.0
    w.update(lambda v: v * 2 + 1)
    ps["2.weight"][0, 0] = 3.0
    ps["2.bias"].set(np.full(10, 5))  # integers are cast; a scalar would not be broadcast (values.py)
    expected = np.ones((256, 20), dtype=np.float32)
    expected[1, 2] = 15.0
    after = up.params(net)
    assert all(after[name].native is native for name, native in before.items())
    np.testing.assert_array_equal(backend.native_numpy(after["0.weight"]), expected)
    assert backend.native_numpy(after["2.weight"])[0, 0] == 3.0
    np.testing.assert_array_equal(backend.native_numpy(after["2.bias"]), np.full(10, 5, np.float32))


def test_wrong_shapes_and_lossy_dtypes_are_refused(backend: ModuleType) -> None:
    ps = up.params(backend.models.mlp())
    before = ps.numpy(copy=True)
    with pytest.raises(up.ShapeMismatchError, match=r"0\.weight.*\(20, 256\)"):
        ps["0.weight"].set(np.zeros((20, 256), dtype=np.float32))
    with pytest.raises(up.DtypeMismatchError, match="complex128"):
        ps["0.bias"].set(np.zeros(256, dtype=np.complex128))
    for name, value in before.items():
        np.testing.assert_array_equal(ps[name].numpy(), value)


def test_values_round_trip_through_load_and_the_framework(backend: ModuleType, rng: np.random.Generator) -> None:
    kit = backend.models
    net = kit.custom_model()
    ps = up.params(net)
    state = {name: rng.normal(size=p.shape).astype(np.float32) for name, p in ps.items()}
    report = ps.load(state)
    assert report.loaded == list(ps)
    for name, value in state.items():
        np.testing.assert_array_equal(ps[name].numpy(), value)
        np.testing.assert_array_equal(backend.native_numpy(ps[name]), value)
    clone = kit.custom_model()
    up.params(clone).load(ps.numpy())
    tokens = rng.integers(0, 50, size=(3, 5))
    np.testing.assert_array_equal(kit.forward(clone, tokens), kit.forward(net, tokens))
    ps.load(ps.numpy())  # loading the model's own read-only views into itself is fine


def _bad_loads(good: dict[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    last = list(good)[-1]
    cases = {
        "last entry has the wrong shape": {**good, last: np.ones((2, 2, 2), dtype=np.float32)},
        "an entry cannot be cast": {**good, last: np.ones(good[last].shape, dtype=np.complex64)},
        "unexpected name": {**good, "9.weight": np.ones(3, dtype=np.float32)},
        "missing name": {k: v for k, v in good.items() if k != last},
    }
    matrices = [k for k, v in good.items() if v.ndim == 2 and v.shape[0] != v.shape[1]]
    if matrices:  # e.g. a Keras kernel in its native (in, out) shape instead of the canonical one
        cases["native shape instead of canonical"] = {**good, matrices[-1]: np.ones(good[matrices[-1]].shape[::-1], np.float32)}
    return cases


@pytest.mark.parametrize("model", list(SMALL_MODELS))
def test_load_is_all_or_nothing(backend: ModuleType, model: str) -> None:
    net = SMALL_MODELS[model](backend.models)
    ps = up.params(net)
    before = ps.numpy(copy=True)
    natives = [p.native for p in ps.values()]
    good = {k: np.full_like(v, 3.0) for k, v in before.items()}
    for label, state in _bad_loads(good).items():
        with pytest.raises(up.LoadError, match="nothing was loaded"):
            ps.load(state)
        for name, value in before.items():
            np.testing.assert_array_equal(ps[name].numpy(), value, err_msg=label)
            np.testing.assert_array_equal(backend.native_numpy(ps[name]), value, err_msg=label)
    assert [p.native for p in up.params(net).values()] == natives


@pytest.mark.parametrize("failing_call", [3, 5])
def test_load_restores_everything_when_the_framework_refuses_a_write_part_way(
    backend: ModuleType, failing_call: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    ps = up.params(backend.models.nested_blocks())
    before = ps.numpy(copy=True)
    cls = type(backend.adapter())
    real_write = cls.write
    calls = {"n": 0}

    def flaky(self: Any, native: Any, value: np.ndarray) -> None:
        calls["n"] += 1
        if calls["n"] == failing_call:
            raise RuntimeError("simulated framework failure")
        real_write(self, native, value)

    monkeypatch.setattr(cls, "write", flaky)
    monkeypatch.setattr(cls, "write_target", lambda self, native: None)  # every value through `write`
    monkeypatch.setattr(cls, "write_targets", lambda self, natives: [None] * len(natives))
    monkeypatch.setattr(cls, "stage_target", lambda self, native: None)
    with pytest.raises(up.WriteError, match="restored"):
        ps.load({k: v + 1 for k, v in before.items()})
    monkeypatch.setattr(cls, "write", real_write)
    for name, value in before.items():
        np.testing.assert_array_equal(ps[name].numpy(), value, err_msg=name)
