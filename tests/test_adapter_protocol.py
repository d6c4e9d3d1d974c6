"""The adapter protocol: capabilities derived from the hooks, the checks the core adds, shared helpers."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest

import unifyparams as up
from unifyparams import Adapter, Role, Slot
from unifyparams.common import BlockTracker, calling_after, check_loss, input_dtype, primary_output
from unifyparams.common.dtypes import EXTENDED_FLOATS, numpy_dtype

from .numpy_framework import Dense, NumpyAdapter, Sequential, Variable


def test_role_is_a_str_enum_equal_to_its_strings() -> None:
    assert Role.WEIGHT == "weight" and isinstance(Role.BIAS, str) and Role("scale") is Role.SCALE
    assert f"{Role.RUNNING_VAR}" == "running_var" and repr(Role.SHIFT) == "'shift'"
    assert Role.ALL == tuple(Role) and len(Role.ALL) == 7


def test_capabilities_are_derived_from_the_hooks_implemented() -> None:
    assert set(NumpyAdapter.missing_capabilities) == {"tie", "materialize", "backward"}
    assert "Adapter.share" in NumpyAdapter.missing_capabilities["tie"]

    class Tying(NumpyAdapter):
        missing_capabilities = {"backward": "no autograd here"}

        def share(self, root: Any, target: Slot, source: Slot) -> None:
            setattr(target.block, target.native_name.rsplit("/", 1)[-1], source.native)

        def separate(self, root: Any, slot: Slot) -> None:
            setattr(slot.block, slot.native_name.rsplit("/", 1)[-1], Variable(slot.native.value.copy()))

    assert set(Tying.missing_capabilities) == {"materialize", "backward"}
    assert Tying.missing_capabilities["backward"] == "no autograd here"  # a declared reason wins
    with pytest.raises(TypeError):
        Tying.missing_capabilities["tie"] = "x"  # type: ignore[index]  # read-only


def test_overriding_the_derived_methods_still_works_with_a_deprecation() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")

        class Legacy(NumpyAdapter):
            def tie(self, root: Any, target: Slot, source: Slot) -> None:
                pass

            def untie(self, root: Any, slot: Slot) -> None:
                pass

    assert any("Adapter.share" in str(w.message) for w in caught)
    assert "tie" not in Legacy.missing_capabilities


def test_core_tie_and_untie_checks_run_once_for_every_adapter() -> None:
    adapter = NumpyAdapter()
    net = Sequential(Dense(2, 2), Dense(2, 2))
    ps = up.params(net)
    with pytest.raises(up.TieError, match="does not support tying"):
        adapter.tie(net, ps["1.weight"].slot, ps["0.weight"].slot)
    with pytest.raises(up.TieError, match="does not support untying"):
        adapter.untie(net, ps["1.weight"].slot)
    with pytest.raises(up.NotMaterializedError, match="cannot materialize"):
        adapter.materialize(net, (np.zeros((1, 2)),))
    with pytest.raises(up.UnifyParamsError, match="cannot compute gradients"):
        adapter.backward(net, (np.zeros((1, 2)),))


def test_materialize_failures_are_wrapped_once_naming_the_block() -> None:
    class Running(NumpyAdapter):
        def infer_shapes(self, model: Any, inputs: tuple[np.ndarray, ...]) -> None:
            model(*inputs)

        def track_blocks(self, model: Any) -> BlockTracker:
            tracker = BlockTracker({id(model.layers[1]): ["1"]})
            tracker.enter(model.layers[1])  # as a pre-hook would
            return tracker

    net = Sequential(Dense(2, 3), Dense(4, 1))
    with pytest.raises(up.NotMaterializedError, match=r"shape \[\(5, 2\)\].*failed in block '1' \(Dense\)"):
        Running().materialize(net, (np.zeros((5, 2), np.float32),))


def test_shared_helpers() -> None:
    assert primary_output(({"a": [np.float32(3)]}, "state")) == 3
    check_loss(np.float64(2.0), np.generic, "NumPy")
    with pytest.raises(up.UnifyParamsError, match=r"one-element NumPy tensor; received \(2,\)"):
        check_loss(np.zeros(2), np.ndarray, "NumPy")
    assert input_dtype(np.dtype("float64"), np.dtype("float16")) == np.float16
    assert input_dtype(np.dtype("int32"), np.dtype("float16")) == np.int32
    seen: list[str] = []
    call = calling_after(lambda x: seen.append(x), lambda: seen.append("after"), lambda: seen.append("restored"))
    call("ran")
    assert seen == ["ran", "restored", "after"]


def test_one_dtype_table_knows_every_extended_float() -> None:
    for name in EXTENDED_FLOATS:  # ml_dtypes is installed with the checkpoint extra, in every environment here
        assert numpy_dtype(name).name == name and numpy_dtype(name).itemsize == EXTENDED_FLOATS[name]
    with pytest.raises(TypeError):
        numpy_dtype("float7")


def test_a_subclass_must_provide_the_primitives() -> None:
    class Partial(Adapter):
        def owns(self, obj: Any) -> bool:
            return False

    with pytest.raises(TypeError, match="abstract"):
        Partial()  # type: ignore[abstract]


def test_torch_file_reader_uses_the_one_table() -> None:
    import torch

    from unifyparams_torch import native_files, tensors

    for name in ("float8_e4m3fnuz", "float8_e5m2fnuz", "bfloat16"):
        t = torch.ones(3, dtype=getattr(torch, name))
        array = native_files.to_numpy(t, "x", torch)
        assert array.dtype.name == name and tensors.numpy_dtype(t.dtype) == array.dtype
        assert native_files.from_numpy(array, torch).dtype == t.dtype
