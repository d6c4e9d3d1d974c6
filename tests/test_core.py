"""The framework-free core: ParamSet, Param, strict loading, selection, registry errors, layouts."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import unifyparams as up
from unifyparams.layouts import Chain, GateOrder, Reshape, Transpose

from .numpy_framework import Dense, Norm, Sequential


def make_net() -> Sequential:
    return Sequential(Dense(3, 4, seed=1), Norm(4), Dense(4, 2, seed=2))


def snapshot(ps: up.ParamSet) -> dict[str, np.ndarray]:
    return ps.numpy(copy=True)


def assert_unchanged(ps: up.ParamSet, before: dict[str, np.ndarray]) -> None:
    for name, value in before.items():
        np.testing.assert_array_equal(ps[name].numpy(), value, err_msg=f"{name} changed")


def test_names_shapes_and_layout_conversion() -> None:
    net = make_net()
    ps = up.params(net)
    assert list(ps) == [
        "0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.steps", "2.weight", "2.bias",
    ]
    assert ps["0.weight"].shape == (4, 3)  # canonical (out, in)
    assert ps["0.weight"].native_shape == (3, 4)  # native (in, out)
    np.testing.assert_array_equal(ps["0.weight"].numpy(), net.layers[0].kernel.value.T)
    assert ps["1.weight"].role == up.Role.SCALE
    assert not ps["1.running_mean"].trainable
    assert ps["0.weight"].native_name == "0/kernel"
    assert ps.count() == 3 * 4 + 4 + 4 * 3 + 1 + 4 * 2 + 2


def test_numpy_is_read_only_view_unless_copied() -> None:
    ps = up.params(make_net())
    view = ps["0.bias"].numpy()
    with pytest.raises(ValueError):
        view[0] = 1.0
    copy = ps["0.bias"].numpy(copy=True)
    copy[0] = 5.0
    assert ps["0.bias"].numpy()[0] == 0.0


def test_set_item_and_update_write_in_canonical_index_space() -> None:
    net = make_net()
    p = up.params(net)["0.weight"]
    native = p.native
    p.update(lambda w: w + 1)
    p[0, 2] = 42.0
    assert net.layers[0].kernel.value[2, 0] == 42.0  # canonical [0, 2] is native [2, 0]
    assert p.native is native
    with pytest.raises(up.ShapeMismatchError, match="never broadcast"):
        p.set(0.0)  # a scalar is not broadcast (values.py): say np.full
    p.set(np.zeros(p.shape))
    assert not p.numpy().any()


def test_unknown_name_suggests_close_names() -> None:
    ps = up.params(make_net())
    with pytest.raises(KeyError, match="0.weight"):
        ps["0.wieght"]
    with pytest.raises(up.ParameterNotFoundError, match="closest"):
        ps.select("*.wieght")


def test_select_by_glob_regex_role_and_flags() -> None:
    ps = up.params(make_net())
    assert list(ps.select("*.weight")) == ["0.weight", "1.weight", "2.weight"]
    assert list(ps.select(regex=r"[02]\.bias")) == ["0.bias", "2.bias"]
    assert list(ps.select(trainable=False)) == ["1.running_mean", "1.steps"]
    assert list(ps.select("1.*", role=up.Role.SHIFT)) == ["1.bias"]


def test_load_all_or_nothing_across_every_parameter() -> None:
    ps = up.params(make_net())
    before = snapshot(ps)
    good = {k: np.full_like(v, 7) for k, v in before.items()}
    bad_states = [
        {**good, "2.weight": np.zeros((4, 2), np.float32)},  # native shape, not canonical
        {k: v for k, v in good.items() if k != "1.bias"},
        {**good, "3.weight": np.zeros((2, 2), np.float32)},
        {**good, "1.steps": np.array(1.5)},  # float into an integer buffer
        {**good, "0.bias": np.ones(4, np.complex64)},
    ]
    for state in bad_states:
        with pytest.raises(up.LoadError, match="nothing was loaded"):
            ps.load(state)
        assert_unchanged(ps, before)
    report = ps.load({**good, "1.steps": np.array(3.7)}, cast=True)
    assert report.loaded == list(ps)
    assert ps["1.steps"].numpy() == 3


def test_load_reports_every_problem_at_once() -> None:
    ps = up.params(make_net())
    state = {k: v for k, v in ps.numpy().items() if k != "0.bias"}
    state["2.weight"] = np.zeros((9, 9), np.float32)
    state["extra"] = np.zeros(1)
    with pytest.raises(up.LoadError) as info:
        ps.load(state)
    message = str(info.value)
    assert "0.bias" in message and "(9, 9)" in message and "extra" in message


def test_framework_failure_mid_load_restores_written_parameters(numpy_adapter) -> None:
    ps = up.params(make_net())
    before = snapshot(ps)
    numpy_adapter.fail_writes_after = 3
    with pytest.raises(up.WriteError, match="restored"):
        ps.load({k: np.full_like(v, 9) for k, v in before.items()})
    numpy_adapter.fail_writes_after = None
    assert_unchanged(ps, before)


def test_strict_false_reports_missing_and_unexpected() -> None:
    ps = up.params(make_net())
    report = ps.load({"0.bias": np.ones(4), "zzz": np.ones(1)}, strict=False)
    assert report.loaded == ["0.bias"] and report.unexpected == ["zzz"]
    assert "1.bias" in report.missing


def test_shared_storage_counted_once_and_marked() -> None:
    shared = Dense(4, 4)
    net = Sequential(Dense(3, 4), shared, shared)
    ps = up.params(net)
    assert ps["1.weight"].shared_with == ("2.weight",)
    assert ps.storage_groups() == [("1.weight", "2.weight"), ("1.bias", "2.bias")]
    assert ps.count() == 3 * 4 + 4 + 4 * 4 + 4
    state = ps.numpy(copy=True)
    state["2.weight"] = state["2.weight"] + 1
    with pytest.raises(up.LoadError, match="share one storage"):
        ps.load(state)
    assert "shared with 2.weight" in str(ps)


def test_tree_nests_blocks() -> None:
    text = up.tree(make_net())
    assert "Sequential" in text and "1  Norm" in text and "(4, 3)" in text and "not trainable" in text


def test_unknown_object_error_lists_adapters() -> None:
    with pytest.raises(up.UnsupportedModelError) as info:
        up.params(object())
    message = str(info.value)
    for name in ("torch", "keras", "gluon"):
        assert name in message
    assert "pip install" in message


def test_get_adapter_unknown_name() -> None:
    with pytest.raises(up.AdapterUnavailableError, match="no adapter named 'jax'"):
        up.get_adapter("jax")


def test_builtin_adapters_registered_through_entry_points() -> None:
    from importlib import metadata

    names = {ep.name for ep in metadata.entry_points(group="unifyparams.adapters")}
    assert {"torch", "keras", "gluon"} <= names
    assert {"torch", "keras", "gluon"} <= set(up.available_adapters())


def test_import_imports_no_framework() -> None:
    code = (
        "import sys, unifyparams as up\n"
        "up.available_adapters()\n"
        "import numpy as np\n"
        "try:\n    up.params(np.zeros(3))\nexcept up.UnsupportedModelError:\n    pass\n"
        "bad = [m for m in ('torch', 'tensorflow', 'keras', 'mxnet', 'jax') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(
    "layout, native_shape",
    [
        (Transpose((3, 2, 0, 1)), (3, 3, 4, 8)),
        (Transpose((1, 0)).then(GateOrder((1, 0, 2), axis=0)), (5, 18)),
        (Chain([Transpose((2, 3, 0, 1)), Reshape((4, 2, 3, 3), (8, 1, 3, 3))]), (3, 3, 4, 2)),
    ],
)
def test_layouts_round_trip(layout, native_shape) -> None:
    native = np.arange(np.prod(native_shape), dtype=np.float32).reshape(native_shape)
    canonical = layout.to_canonical(native)
    assert canonical.shape == layout.canonical_shape(native_shape)
    assert layout.native_shape(canonical.shape) == native_shape
    np.testing.assert_array_equal(layout.to_native(canonical), native)


def test_gate_order_swaps_blocks() -> None:
    native = np.repeat(np.array([0, 1, 2]), 2)  # z z r r h h
    assert list(GateOrder((1, 0, 2), axis=0).to_canonical(native)) == [1, 1, 0, 0, 2, 2]
