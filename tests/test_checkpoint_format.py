"""Checkpoints without any framework: the safetensors reader/writer, sharding, atomic writes,
bad input, ties, and property-based round trips and fuzzing on the NumPy test framework.

Runs with NumPy 1 and NumPy 2 (headers are validated by the ``safetensors`` package, a core
dependency like ``ml_dtypes``). Every dtype's round trip and files written by ``safetensors``
itself are checked in test_safetensors_dtypes.py.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import struct
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import unifyparams as up
from unifyparams.checkpoint import (
    SafetensorsFile,
    load,
    load_file,
    open_checkpoint,
    read_metadata,
    save,
    save_file,
)
from unifyparams.checkpoint import format as fmt
from unifyparams.checkpoint.dtypes import dtype_for
from unifyparams.checkpoint.shards import parse_size, split

from .numpy_framework import Dense, Module, Norm, NumpyAdapter, Sequential, Variable

# --- helpers ------------------------------------------------------------------------------------


def make_net(seed: int = 1) -> Sequential:
    return Sequential(Dense(3, 4, seed=seed), Norm(4), Dense(4, 2, seed=seed + 1))


def snapshot(model: Any) -> dict[str, bytes]:
    """Bit-exact picture of every value (NaN-safe)."""
    return {name: p.numpy().tobytes() for name, p in up.params(model).items()}


def assert_same_bits(a: Any, b: Any) -> None:
    sa, sb = snapshot(a), snapshot(b)
    assert list(sa) == list(sb)
    for name in sa:
        assert sa[name] == sb[name], f"{name} differs"


def header_of(path: Path) -> dict[str, Any]:
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    return json.loads(raw[8 : 8 + n])


def write_raw(path: Path, header: dict[str, Any], data: bytes, length: int | None = None) -> Path:
    """A file with exactly this header and data (no validation): the tool for bad-input tests."""
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw) if length is None else length) + raw + data)
    return path


def put(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def expect_error(path: Path, *fragments: str, model: Any = None) -> str:
    """Loading ``path`` raises CheckpointError mentioning ``fragments``; the model does not change."""
    model = model if model is not None else make_net(7)
    before = snapshot(model)
    with pytest.raises(up.CheckpointError) as info:
        load(model, path)
    assert snapshot(model) == before, "a refused load changed the model"
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message


class Block(Module):
    """A block with whatever Variables a test gives it (attribute names from numpy_framework.LEAVES)."""

    def __init__(self, **variables: Variable):
        for key, value in variables.items():
            setattr(self, key, value)


class TieNet(Sequential):
    """A Sequential whose adapter can tie and untie (the base NumPy adapter cannot)."""


class TieAdapter(NumpyAdapter):
    name = "numpy-tie-test"
    priority = 1

    def owns(self, obj: Any) -> bool:
        return isinstance(obj, TieNet)

    def tie(self, root: Any, target: Any, source: Any) -> None:
        setattr(target.block, target.native_name.rsplit("/", 1)[-1], source.native)

    def untie(self, root: Any, slot: Any) -> None:
        setattr(slot.block, slot.native_name.rsplit("/", 1)[-1], Variable(slot.native.value.copy()))


up.register_adapter(TieAdapter)


def shared_net(cls: type[Sequential] = Sequential, tied: bool = True, seed: int = 0) -> Sequential:
    """``[Dense(3->4), Dense(4->4) S, Dense(4->4) S, Dense(4->2)]``; S shared when ``tied``."""
    shared = Dense(4, 4, seed=seed + 10)
    second = shared if tied else Dense(4, 4, seed=seed + 11)
    return cls(Dense(3, 4, seed=seed), shared, second, Dense(4, 2, seed=seed + 1))


# --- the binary format --------------------------------------------------------------------------


def test_file_layout_header_padding_alignment_and_metadata(tmp_path: Path) -> None:
    arrays = {
        "a": np.arange(3, dtype=np.int8),
        "b": np.arange(6, dtype=np.float64).reshape(2, 3),
        "c": np.array(7, dtype=np.int32),
        "empty": np.zeros((0, 4), np.float32),
    }
    path = tmp_path / "x.safetensors"
    save_file(arrays, path, metadata={"k": "v"})
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    assert n % 8 == 0 and (8 + n) % 64 == 0 and raw[8:9] == b"{"
    header = header_of(path)
    assert header["__metadata__"] == {"k": "v"}
    assert header["b"] == {"dtype": "F64", "shape": [2, 3], "data_offsets": [0, 48]}
    for name, entry in header.items():
        if name != "__metadata__":
            assert (8 + n + entry["data_offsets"][0]) % arrays[name].dtype.itemsize == 0, f"{name} unaligned"
    loaded = load_file(path)
    assert list(loaded) == list(arrays)
    for name, value in arrays.items():
        assert loaded[name].dtype == value.dtype and loaded[name].shape == value.shape
        assert loaded[name].tobytes() == value.tobytes()
        assert loaded[name].flags.writeable
    assert read_metadata(path) == {"k": "v"}


def test_every_plain_dtype_round_trips(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    arrays = {}
    for code in ("F64", "F32", "F16", "I64", "I32", "I16", "I8", "U64", "U32", "U16", "U8", "BOOL", "C64"):
        dtype = dtype_for(code)
        arrays[code] = (
            rng.integers(0, 2, size=(3, 2)).astype(dtype)
            if code == "BOOL"
            else (rng.integers(0, 100, size=(3, 2)).astype(dtype))
        )
        arrays[code + "_nonc"] = np.asarray(arrays[code]).T  # written through the chunked path
    path = tmp_path / "x.safetensors"
    save_file(arrays, path)
    loaded = load_file(path)
    for name, value in arrays.items():
        assert np.array_equal(loaded[name], value) and loaded[name].dtype == value.dtype


def test_big_endian_input_is_stored_little_endian(tmp_path: Path) -> None:
    value = np.arange(5, dtype=">i4")
    save_file({"x": value}, tmp_path / "x.safetensors")
    assert (tmp_path / "x.safetensors").read_bytes()[-20:] == np.arange(5, dtype="<i4").tobytes()
    assert np.array_equal(load_file(tmp_path / "x.safetensors")["x"], value)


def test_bfloat16_needs_ml_dtypes(tmp_path: Path) -> None:
    raw = np.array([0x3F80, 0x4000], dtype="<u2").tobytes()  # bfloat16 1.0, 2.0
    path = write_raw(
        tmp_path / "x.safetensors", {"w": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]}}, raw
    )
    try:
        import ml_dtypes
    except ImportError:
        with pytest.raises(up.CheckpointError, match="ml_dtypes"):
            load_file(path)
        return
    value = load_file(path)["w"]
    assert value.dtype == np.dtype(ml_dtypes.bfloat16)
    assert value.astype(np.float32).tolist() == [1.0, 2.0]
    save_file({"w": value}, tmp_path / "y.safetensors")
    assert header_of(tmp_path / "y.safetensors")["w"]["dtype"] == "BF16"


@pytest.mark.parametrize(
    ("code", "shape", "data", "floats"),
    [
        ("F8_E8M0", [3], bytes([127, 128, 0xFF]), [1.0, 2.0, float("nan")]),
        ("F8_E4M3FNUZ", [2], bytes([0x40, 0x80]), [1.0, float("nan")]),
        ("F4", [2, 2], bytes([0x21, 0xC0]), [0.5, 1.0, 0.0, -2.0]),
        ("F6_E2M3", [4], (0x08 | 0x10 << 6 | 0x00 << 12 | 0x28 << 18).to_bytes(3, "little"), [1.0, 2.0, 0.0, -1.0]),
        ("F6_E3M2", [4], (0x0C | 0x10 << 6 | 0x01 << 12 | 0x2C << 18).to_bytes(3, "little"), [1.0, 2.0, 0.0625, -1.0]),
    ],
)
def test_files_with_the_newer_float_kinds_load(
    tmp_path: Path, code: str, shape: list[int], data: bytes, floats: list[float]
) -> None:
    """``F8_E8M0``, ``F4`` and ``F6_*`` (as safetensors.torch 0.8 writes them) load, not refused as corrupt."""
    import ml_dtypes  # a required dependency (>= 0.5: float4, float6, e8m0)

    assert hasattr(ml_dtypes, "float8_e8m0fnu"), f"ml_dtypes {ml_dtypes.__version__} is older than the pin (>= 0.5)"
    header = {"w": {"dtype": code, "shape": shape, "data_offsets": [0, len(data)]}}
    path = write_raw(tmp_path / "x.safetensors", header, data)
    for mmap in (True, False):
        with SafetensorsFile(path, mmap=mmap) as f:
            value = f.tensor("w")
            assert value.shape == tuple(shape) and value.dtype.name == dtype_for(code).name
            assert np.array_equal(value.astype(np.float32).reshape(-1), np.array(floats, np.float32), equal_nan=True)
            assert np.array_equal(f.slice("w", 0).astype(np.float32), value[0].astype(np.float32), equal_nan=True)
    save_file(load_file(path), tmp_path / "y.safetensors")
    assert (tmp_path / "y.safetensors").read_bytes()[-len(data) :] == data
    assert header_of(tmp_path / "y.safetensors")["w"] == header["w"]


def test_slice_reads_part_of_a_tensor(tmp_path: Path) -> None:
    value = np.arange(24, dtype=np.int32).reshape(2, 3, 4)
    save_file({"w": value, "e": np.zeros((0, 3), np.float16)}, tmp_path / "x.safetensors")
    for mmap in (True, False):
        with SafetensorsFile(tmp_path / "x.safetensors", mmap=mmap) as f:
            for index in (1, (slice(None), 1), (Ellipsis, slice(1, 3)), (1, 2, 3), (slice(0, 2, 2), slice(None), 0)):
                part = f.slice("w", index)
                assert np.array_equal(part, value[index]) and part.dtype == value.dtype and part.flags.writeable
            assert f.slice("e", (slice(None), 1)).shape == (0,)
            with pytest.raises(up.CheckpointError, match=r"x.safetensors: cannot read .* of tensor 'w'"):
                f.slice("w", (0, 5))


def test_safetensors_validates_and_its_errors_name_the_file(tmp_path: Path, monkeypatch: Any) -> None:
    save_file({"w": np.ones(2, np.float32)}, tmp_path / "x.safetensors")
    seen: list[Any] = []
    real = fmt.safe_open

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs.get("framework"))
        return real(*args, **kwargs)

    monkeypatch.setattr(fmt, "safe_open", spy)
    assert load_file(tmp_path / "x.safetensors")["w"].tolist() == [1.0, 1.0]
    assert seen == ["numpy"]

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise fmt.SafetensorError("Error while deserializing header: something new")

    monkeypatch.setattr(fmt, "safe_open", refuse)
    with pytest.raises(up.CheckpointError, match=r"x.safetensors: not a valid safetensors file \(something new\)"):
        SafetensorsFile(tmp_path / "x.safetensors")


def test_writer_streams_non_contiguous_tensors_in_bounded_chunks(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setattr(fmt, "CHUNK_BYTES", 1 << 20)
    big = np.random.default_rng(0).normal(size=(1024, 2048))  # 16 MiB, stored transposed below
    net = Sequential(Dense(2, 2))
    net.layers[0].kernel.value = big  # canonical view is big.T: not contiguous
    path = tmp_path / "x.safetensors"
    tracemalloc.start()
    save(net, path)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 4 << 20, f"save allocated {peak / 2**20:.1f} MiB for a 16 MiB transposed tensor"
    assert np.array_equal(load_file(path)["0.weight"], big.T)


def test_load_allocates_no_more_than_one_model_copy(tmp_path: Path) -> None:
    net = Sequential(Dense(1024, 1024), Dense(1024, 1024))  # 8 MiB of float32
    save(net, tmp_path / "x.safetensors")
    target = Sequential(Dense(1024, 1024, seed=3), Dense(1024, 1024, seed=4))
    tracemalloc.start()
    load(target, tmp_path / "x.safetensors")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    model_bytes, largest = 2 * (1024 * 1024 + 1024) * 4, 1024 * 1024 * 4
    # The file is memory-mapped, not copied. What is allocated is ParamSet.load's rollback copy of
    # the old values, plus one tensor at a time for the layout change (Dense stores (in, out)).
    assert peak < model_bytes + largest + (1 << 20), f"peak {peak / 2**20:.1f} MiB for an 8 MiB model"
    assert_same_bits(net, target)


def test_reader_without_mmap_gives_the_same_values(tmp_path: Path) -> None:
    net, target = make_net(1), make_net(9)
    save(net, tmp_path / "x.safetensors")
    load(target, tmp_path / "x.safetensors", mmap=False)
    assert_same_bits(net, target)


def test_mapped_tensors_are_read_only(tmp_path: Path) -> None:
    save_file({"x": np.ones(3)}, tmp_path / "x.safetensors")
    with SafetensorsFile(tmp_path / "x.safetensors") as f:
        with pytest.raises(ValueError):
            f.tensor("x")[0] = 2


def test_unaligned_tensors_from_other_writers_are_read(tmp_path: Path) -> None:
    data = b"\x01" + np.arange(3, dtype="<f4").tobytes()
    header = {
        "a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]},
        "b": {"dtype": "F32", "shape": [3], "data_offsets": [1, 13]},
    }
    loaded = load_file(write_raw(tmp_path / "x.safetensors", header, data))
    assert loaded["b"].tolist() == [0.0, 1.0, 2.0]
    with SafetensorsFile(tmp_path / "x.safetensors") as f:
        assert f.tensor("b").flags.aligned and f.tensor("b").tolist() == [0.0, 1.0, 2.0]


# --- save / load on a model ---------------------------------------------------------------------


def test_save_load_canonical_names_layouts_and_report(tmp_path: Path) -> None:
    net = make_net(1)
    returned = save(net, tmp_path / "m.safetensors", metadata={"step": "10"})
    assert returned == tmp_path / "m.safetensors"
    header = header_of(returned)
    assert header["0.weight"]["shape"] == [4, 3]  # canonical (out, in), though Dense stores (in, out)
    meta = header["__metadata__"]
    assert meta["unifyparams.backend"] == "numpy-test" and meta["unifyparams.layout"] == "canonical"
    assert meta["unifyparams.format_version"] == "1" and meta["step"] == "10"
    target = make_net(5)
    report = load(target, returned)
    assert_same_bits(net, target)
    assert report.loaded == list(up.params(net)) and not report.missing and not report.unexpected
    assert report.backend == "numpy-test" and report.metadata == {"step": "10"} and report.converted == {}
    assert "loaded 8 parameters" in str(report)


def test_save_into_folder_and_load_from_folder(tmp_path: Path) -> None:
    net, target = make_net(1), make_net(2)
    assert save(net, tmp_path) == tmp_path / "model.safetensors"
    load(target, tmp_path)
    assert_same_bits(net, target)


def test_strict_refuses_name_differences_and_lenient_reports_them(tmp_path: Path) -> None:
    save(make_net(1), tmp_path / "m.safetensors")
    other = Sequential(Dense(3, 4), Norm(4))  # lacks 2.*
    message = expect_error(tmp_path / "m.safetensors", "unexpected 2 name(s)", "strict=False", model=other)
    assert "'2.weight'" in message
    report = load(other, tmp_path / "m.safetensors", strict=False)
    assert report.unexpected == ["2.weight", "2.bias"] and not report.missing
    bigger = Sequential(Dense(3, 4), Norm(4), Dense(4, 2), Dense(2, 2))
    report = load(bigger, tmp_path / "m.safetensors", strict=False)
    assert report.missing == ["3.weight", "3.bias"] and "3.weight" not in report.loaded


def test_dtype_casts_are_reported_and_lossy_ones_need_cast(tmp_path: Path) -> None:
    wide = make_net(1)
    for p in up.params(wide).values():
        if p.dtype == np.float32:
            p.native.value = p.native.value.astype(np.float64)
    save(wide, tmp_path / "m.safetensors")
    target = make_net(2)
    report = load(target, tmp_path / "m.safetensors")
    assert report.converted["0.weight"] == "float64 -> float32" and "1.steps" not in report.converted
    assert "converted 7" in str(report)
    ints = Sequential(Block(bias=Variable(np.zeros(3, np.int32))))
    save(Sequential(Block(bias=Variable(np.array([1.5, 2.5, 3.5])))), tmp_path / "f.safetensors")
    expect_error(tmp_path / "f.safetensors", "cast=True", "float64", "int32", model=ints)
    report = load(ints, tmp_path / "f.safetensors", cast=True)
    assert ints.layers[0].bias.value.tolist() == [1, 2, 3] and report.converted == {
        "0.bias": "float64 -> int32"
    }


def test_shapes_that_disagree_with_the_model_are_refused(tmp_path: Path) -> None:
    save(Sequential(Dense(3, 5)), tmp_path / "m.safetensors")
    expect_error(tmp_path / "m.safetensors", "'0.weight'", "(5, 3)", "(4, 3)", model=Sequential(Dense(3, 4)))
    # a 0-d tensor is not broadcast into a vector parameter (ParamSet.load alone would)
    save(Sequential(Block(bias=Variable(np.array(1.0, np.float32)))), tmp_path / "s.safetensors")
    expect_error(
        tmp_path / "s.safetensors",
        "'0.bias'",
        model=Sequential(Block(bias=Variable(np.zeros(3, np.float32)))),
    )


def test_unsavable_models_write_nothing(tmp_path: Path) -> None:
    net = Sequential(Block(bias=Variable(np.zeros(2, np.float128 if hasattr(np, "float128") else object))))
    with pytest.raises(up.CheckpointError, match="cannot save"):
        save(net, tmp_path / "m.safetensors")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(up.CheckpointError, match="reserved"):
        save(make_net(), tmp_path / "m.safetensors", metadata={"unifyparams.backend": "x"})
    with pytest.raises(up.CheckpointError, match="str to str"):
        save(make_net(), tmp_path / "m.safetensors", metadata={"step": 3})  # type: ignore[dict-item]
    assert list(tmp_path.iterdir()) == []


# --- ties ---------------------------------------------------------------------------------------


def test_tied_parameters_are_stored_once_and_load_once_into_a_tied_model(tmp_path: Path) -> None:
    net = shared_net(tied=True, seed=0)
    path = save(net, tmp_path / "m.safetensors")
    header = header_of(path)
    assert "2.weight" not in header and "1.weight" in header
    assert json.loads(header["__metadata__"]["unifyparams.ties"]) == [
        ["1.weight", "2.weight"],
        ["1.bias", "2.bias"],
    ]
    target = shared_net(tied=True, seed=5)
    report = load(target, path)
    assert_same_bits(net, target)
    assert target.layers[1] is target.layers[2] and report.tied == []
    assert "2.weight" in report.loaded


def test_untied_model_gets_tied_on_load(tmp_path: Path) -> None:
    net = shared_net(TieNet, tied=True)
    path = save(net, tmp_path / "m.safetensors")
    target = shared_net(TieNet, tied=False, seed=3)
    report = load(target, path)
    assert report.tied == [("1.weight", "2.weight"), ("1.bias", "2.bias")]
    assert up.ties(target) == [("1.weight", "2.weight"), ("1.bias", "2.bias")]
    assert_same_bits(net, target)
    up.params(target)["1.weight"][0, 0] = 99.0
    assert up.params(target)["2.weight"].numpy()[0, 0] == 99.0


def test_model_that_cannot_tie_is_refused_under_strict(tmp_path: Path) -> None:
    path = save(shared_net(tied=True), tmp_path / "m.safetensors")
    untied = shared_net(tied=False, seed=4)  # the base NumPy adapter cannot tie
    expect_error(path, "cannot tie", "strict=False", model=untied)
    report = load(untied, path, strict=False)
    assert report.not_tied == [("1.weight", "2.weight"), ("1.bias", "2.bias")]
    assert up.params(untied)["1.weight"].numpy().tobytes() == up.params(untied)["2.weight"].numpy().tobytes()


def test_tied_model_with_differing_values_in_the_file_is_refused(tmp_path: Path) -> None:
    save(shared_net(tied=False, seed=1), tmp_path / "m.safetensors")  # 1.* and 2.* differ
    expect_error(tmp_path / "m.safetensors", "share one storage", model=shared_net(tied=True, seed=2))


def test_tie_group_stored_twice_with_two_values_is_refused(tmp_path: Path) -> None:
    arrays = {"0.bias": np.zeros(2, np.float32), "1.bias": np.ones(2, np.float32)}
    save_file(arrays, tmp_path / "m.safetensors", {"unifyparams.ties": '[["0.bias", "1.bias"]]'})
    model = Sequential(
        Block(bias=Variable(np.zeros(2, np.float32))), Block(bias=Variable(np.zeros(2, np.float32)))
    )
    expect_error(tmp_path / "m.safetensors", "different values", "'0.bias'", "'1.bias'", model=model)
    arrays["1.bias"] = arrays["0.bias"].copy()  # stored twice but equal: fine
    save_file(arrays, tmp_path / "m.safetensors", {"unifyparams.ties": '[["0.bias", "1.bias"]]'})
    load(model, tmp_path / "m.safetensors", strict=False)


@pytest.mark.parametrize(
    ("ties", "fragment"),
    [
        ("not json", "not JSON"),
        ('{"a": 1}', "JSON list of groups"),
        ('[["0.bias"]]', "two or more"),
        ('[["0.bias", "0.bias"]]', "distinct"),
        ('[["0.bias", "x"], ["x", "y"]]', "two groups"),
        ('[["x", "y"]]', "stores none"),
    ],
)
def test_malformed_tie_metadata_is_refused(tmp_path: Path, ties: str, fragment: str) -> None:
    save_file({"0.bias": np.zeros(4, np.float32)}, tmp_path / "m.safetensors", {"unifyparams.ties": ties})
    expect_error(tmp_path / "m.safetensors", fragment)


# --- sharding -----------------------------------------------------------------------------------


def test_sizes_and_shard_planning() -> None:
    assert (
        parse_size("5GB") == 5 * 10**9 and parse_size("2GiB") == 2 * 2**30 and parse_size(" 1.5 kb ") == 1500
    )
    for bad in ("5 parsecs", "-1", 0, "GB"):
        with pytest.raises(up.CheckpointError, match="max_shard_size"):
            parse_size(bad)
    assert split([("a", 6), ("b", 6), ("c", 1)], limit=10) == [["a"], ["b", "c"]]
    assert split([("huge", 50), ("b", 1)], limit=10) == [["huge"], ["b"]]
    assert split([], limit=10) == [[]]


def test_sharded_save_writes_hub_style_index_and_loads_from_any_entry_point(tmp_path: Path) -> None:
    net = make_net(1)
    index = save(net, tmp_path / "model.safetensors", max_shard_size=60, metadata={"note": "x"})
    assert index == tmp_path / "model.safetensors.index.json"
    body = json.loads(index.read_text())
    files = sorted(p.name for p in tmp_path.iterdir())
    count = len(files) - 1
    assert count > 1 and files[0] == f"model-00001-of-{count:05d}.safetensors"
    assert set(body["weight_map"]) == set(up.params(net)) and set(body["weight_map"].values()) == set(
        files[:-1]
    )
    assert body["metadata"]["total_size"] == sum(p.numpy().nbytes for p in up.params(net).values())
    assert body["metadata"]["note"] == "x"
    for entry in (index, tmp_path, tmp_path / "model.safetensors"):
        target = make_net(9)
        report = load(target, entry)
        assert_same_bits(net, target)
        assert report.metadata == {"note": "x"} and len(report.files) == count + 1


def test_resaving_removes_files_of_the_previous_layout(tmp_path: Path) -> None:
    net = make_net(1)
    save(net, tmp_path / "model.safetensors", max_shard_size=60)
    save(net, tmp_path / "model.safetensors", max_shard_size=1)  # more shards
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        {*index["weight_map"].values(), "model.safetensors.index.json"}
    )
    save(net, tmp_path / "model.safetensors")  # back to one file
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]
    (tmp_path / "keep.txt").write_text("not ours")
    save(net, tmp_path / "model.safetensors", max_shard_size=60)
    assert (tmp_path / "keep.txt").exists() and not (tmp_path / "model.safetensors").exists()


def _sharded(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    index = save(make_net(1), tmp_path / "model.safetensors", max_shard_size=60)
    return index, json.loads(index.read_text())


def test_index_pointing_outside_its_folder_is_refused(tmp_path: Path) -> None:
    index, body = _sharded(tmp_path)
    body["weight_map"]["0.weight"] = "../elsewhere.safetensors"
    index.write_text(json.dumps(body))
    expect_error(index, "outside its folder")


def test_index_and_shards_that_disagree_are_refused(tmp_path: Path) -> None:
    index, body = _sharded(tmp_path)
    files = list(body["weight_map"].values())
    crowded = max(files, key=files.count)  # a shard holding several tensors stays in the index
    moved = next(n for n, f in body["weight_map"].items() if f == crowded)
    other = next(f for f in files if f != crowded)
    index.write_text(json.dumps({**body, "weight_map": {**body["weight_map"], moved: other}}))
    expect_error(index, "does not match its shards", repr(moved))
    first = files[0]
    index.write_text(json.dumps({**body, "weight_map": {**body["weight_map"], "ghost": first}}))
    expect_error(index, "'ghost'")
    index.write_text('{"weight_map": {"a": "b"}, "weight_map": {}}')
    expect_error(index, "twice")
    index.write_text("[1, 2]")
    expect_error(index, "expected an index")


def test_name_stored_in_two_shards_is_refused(tmp_path: Path) -> None:
    index, body = _sharded(tmp_path)
    shard = tmp_path / sorted(set(body["weight_map"].values()))[0]
    with SafetensorsFile(shard, mmap=False) as f:
        name = f.keys()[0]
    save_file({name: np.zeros(1, np.float32)}, tmp_path / "extra.safetensors", read_metadata(shard))
    body["weight_map"]["zzz"] = "extra.safetensors"
    index.write_text(json.dumps(body))
    expect_error(index, "appears twice", repr(name))


def test_shard_from_another_save_is_detected(tmp_path: Path) -> None:
    _sharded(tmp_path)
    old = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    index = save(make_net(3), tmp_path / "model.safetensors", max_shard_size=60)  # new names, new id
    first_new = sorted(set(json.loads(index.read_text())["weight_map"].values()))[0]
    (tmp_path / first_new).write_bytes(old[sorted(old)[0]])  # an old shard copied over a new one
    expect_error(index, "another save")


def test_missing_checkpoint_and_ambiguous_folder(tmp_path: Path) -> None:
    expect_error(tmp_path / "none.safetensors", "no checkpoint at")
    save_file({"a": np.zeros(1)}, tmp_path / "a.safetensors")
    save_file({"a": np.zeros(1)}, tmp_path / "b.safetensors")
    expect_error(tmp_path, "expected one checkpoint")
    with pytest.raises(up.CheckpointError, match=".safetensors path"):
        save(make_net(), tmp_path / "model.safetensors.index.json")


# --- atomic writes ------------------------------------------------------------------------------


def _fail_after(monkeypatch: Any, tensors: int, error: BaseException) -> None:
    """Make the writer die half-way through tensor number ``tensors`` (counting from 0)."""
    real = fmt.write_tensor
    calls = {"n": 0}

    def flaky(out: Any, info: Any, value: Any, scratch: Any = None) -> None:
        if calls["n"] == tensors:
            out.write(b"\0" * (max(1, info.nbytes) // 2 + 1))
            raise error
        calls["n"] += 1
        real(out, info, value, scratch)

    monkeypatch.setattr(fmt, "write_tensor", flaky)


@pytest.mark.parametrize("error", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_crash_mid_save_leaves_the_old_checkpoint_intact(
    tmp_path: Path, monkeypatch: Any, error: BaseException
) -> None:
    path = save(make_net(1), tmp_path / "m.safetensors")
    before = path.read_bytes()
    _fail_after(monkeypatch, 3, error)
    expected = up.CheckpointError if isinstance(error, OSError) else type(error)
    with pytest.raises(expected) as info:
        save(make_net(2), path)
    if isinstance(error, OSError):
        assert "unchanged" in str(info.value)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"], "temporary file left behind"


def test_crash_in_a_later_shard_leaves_the_old_sharded_checkpoint_intact(
    tmp_path: Path, monkeypatch: Any
) -> None:
    save(make_net(1), tmp_path / "model.safetensors", max_shard_size=60)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    _fail_after(monkeypatch, 5, RuntimeError("simulated crash"))
    with pytest.raises(RuntimeError):
        save(make_net(2), tmp_path / "model.safetensors", max_shard_size=60)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    target = make_net(9)
    load(target, tmp_path)
    assert_same_bits(make_net(1), target)


def test_saved_file_has_ordinary_permissions(tmp_path: Path) -> None:
    path = save(make_net(), tmp_path / "m.safetensors")
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


# --- bad input ----------------------------------------------------------------------------------

ONE = {"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}
TWICE = b'{"w": %s, "w": %s}' % ((json.dumps(ONE["w"]).encode(),) * 2)


def _bad_files() -> list[tuple[str, Callable[[Path], Path], tuple[str, ...]]]:
    def valid(p: Path) -> Path:
        save(make_net(1), p)
        return p

    def truncated(p: Path) -> Path:
        raw = valid(p).read_bytes()
        p.write_bytes(raw[:-10])
        return p

    return [
        ("empty file", lambda p: put(p, b""), ("8-byte header length", "truncated")),
        ("too short", lambda p: put(p, b"\x10\0\0"), ("truncated",)),
        ("truncated data", truncated, ("truncated", "ends at byte")),
        (
            "header longer than file",
            lambda p: write_raw(p, ONE, b"\0" * 8, length=10_000),
            ("claims 10000 bytes",),
        ),
        ("header over the limit", lambda p: write_raw(p, ONE, b"", length=2**63), ("limit",)),
        ("not json", lambda p: put(p, struct.pack("<Q", 4) + b"{abc"), ("not valid JSON",)),
        (
            "not an object",
            lambda p: put(p, struct.pack("<Q", 2) + b"[]"),
            ("starting with '{'",),
        ),
        ("not utf-8", lambda p: put(p, struct.pack("<Q", 3) + b"{\xff}"), ("UTF-8",)),
        (
            "NaN",
            lambda p: write_raw(
                p, {"w": {"dtype": "F32", "shape": [float("nan")], "data_offsets": [0, 0]}}, b""
            ),
            ("NaN",),
        ),
        (
            "deep nesting",
            lambda p: put(p, struct.pack("<Q", 200_001) + b"{" + b"[" * 200_000),
            ("not valid JSON",),
        ),
        (
            "unknown dtype",
            lambda p: write_raw(p, {"w": {"dtype": "F7", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8),
            ("unknown tensor dtype 'F7'", "F32"),
        ),
        (
            "dtype not a string",
            lambda p: write_raw(p, {"w": {"dtype": 4, "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8),
            ("dtype code",),
        ),
        (
            "length vs shape",
            lambda p: write_raw(p, {"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, b"\0" * 8),
            ("needs 12 bytes", "hold 8"),
        ),
        (
            "negative dim",
            lambda p: write_raw(p, {"w": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}, b"\0" * 8),
            ("non-negative",),
        ),
        (
            "bool dim",
            lambda p: write_raw(
                p, {"w": {"dtype": "F32", "shape": [True], "data_offsets": [0, 4]}}, b"\0" * 4
            ),
            ("non-negative",),
        ),
        (
            "reversed offsets",
            lambda p: write_raw(p, {"w": {"dtype": "U8", "shape": [0], "data_offsets": [4, 0]}}, b"\0" * 4),
            ("end before they begin",),
        ),
        (
            "missing field",
            lambda p: write_raw(p, {"w": {"dtype": "F32", "shape": [2]}}, b"\0" * 8),
            ("data_offsets",),
        ),
        (
            "extra field",
            lambda p: write_raw(p, {"w": {**ONE["w"], "x": 1}}, b"\0" * 8),
            ("expected the fields",),
        ),
        (
            "out of range",
            lambda p: write_raw(p, {"w": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}}, b"\0" * 8),
            ("ends at byte 16",),
        ),
        (
            "overlap",
            lambda p: write_raw(
                p, {**ONE, "v": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, b"\0" * 12
            ),
            ("overlap",),
        ),
        (
            "gap",
            lambda p: write_raw(
                p, {"w": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, b"\0" * 12
            ),
            ("belong to no tensor",),
        ),
        ("trailing data", lambda p: write_raw(p, ONE, b"\0" * 12), ("trailing",)),
        (
            "sub-byte not whole bytes",
            lambda p: write_raw(p, {"w": {"dtype": "F4", "shape": [3], "data_offsets": [0, 2]}}, b"\0" * 2),
            ("tensor 'w'", "12 bits, not a whole number of bytes"),
        ),
        (
            "metadata not str",
            lambda p: write_raw(p, {**ONE, "__metadata__": {"a": 1}}, b"\0" * 8),
            ("strings",),
        ),
        (
            "duplicate name",
            lambda p: put(p, struct.pack("<Q", len(TWICE)) + TWICE + b"\0" * 8),
            ("names 'w' twice",),
        ),
        (
            "newer format",
            lambda p: write_raw(p, {**ONE, "__metadata__": {"unifyparams.format_version": "2"}}, b"\0" * 8),
            ("format '2'", "Upgrade"),
        ),
        (
            "foreign layout",
            lambda p: write_raw(p, {**ONE, "__metadata__": {"unifyparams.layout": "keras"}}, b"\0" * 8),
            ("layout 'keras'",),
        ),
        (
            "unrepresentable shape",
            lambda p: write_raw(p, {"w": {"dtype": "F32", "shape": [2**62, 0], "data_offsets": [0, 0]}}, b""),
            ("cannot be represented",),
        ),
        (
            "too many dimensions",
            lambda p: write_raw(
                p, {"w": {"dtype": "F32", "shape": [1] * 70, "data_offsets": [0, 4]}}, b"\0" * 4
            ),
            ("cannot be represented",),
        ),
        ("pickle", lambda p: put(p, pickle.dumps({"0.weight": np.zeros(3)})), ()),
    ]


@pytest.mark.parametrize(("kind", "make", "fragments"), _bad_files(), ids=[n for n, _, _ in _bad_files()])
def test_bad_files_raise_checkpoint_error_and_change_nothing(
    tmp_path: Path, kind: str, make: Callable[[Path], Path], fragments: tuple[str, ...]
) -> None:
    path = make(tmp_path / "bad.safetensors")
    expect_error(path, *fragments)
    if kind in ("newer format", "foreign layout"):
        return  # valid safetensors; only unifyparams' metadata is refused
    with pytest.raises(up.CheckpointError):
        with SafetensorsFile(path) as f:
            for name in f.keys():
                f.tensor(name)


class _Boom:
    ran = False

    def __reduce__(self) -> Any:
        return (_Boom._run, ())

    @staticmethod
    def _run() -> None:
        _Boom.ran = True


def test_nothing_is_ever_unpickled(tmp_path: Path) -> None:
    for payload in (pickle.dumps(_Boom()), struct.pack("<Q", 40) + pickle.dumps(_Boom())[:40]):
        path = tmp_path / "evil.safetensors"
        path.write_bytes(payload)
        expect_error(path)
    assert not _Boom.ran


# --- property-based round trips -----------------------------------------------------------------

DTYPES = [np.float16, np.float32, np.float64, np.int32, np.int64]
# attributes the NumPy adapter knows, grouped by the canonical leaf they map to (one per block)
LEAF_ATTRS = {
    "weight": ("kernel", "gamma"),
    "bias": ("bias", "beta"),
    "running_mean": ("moving_mean",),
    "steps": ("steps",),
}
shapes = st.lists(st.integers(0, 4), min_size=0, max_size=3).map(tuple)


@st.composite
def block_specs(draw: Any) -> dict[str, tuple[Any, tuple[int, ...]]]:
    spec = {}
    for leaf in draw(st.lists(st.sampled_from(sorted(LEAF_ATTRS)), unique=True, max_size=4)):
        attr = draw(st.sampled_from(LEAF_ATTRS[leaf]))
        shape = draw(shapes)
        spec[attr] = (draw(st.sampled_from(DTYPES)), (shape + (2, 3))[:2] if attr == "kernel" else shape)
    return spec


architectures = st.recursive(
    st.lists(block_specs(), min_size=1, max_size=3),
    lambda inner: st.lists(st.one_of(block_specs(), inner), min_size=1, max_size=3),
    max_leaves=6,
)


def fill(dtype: Any, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    if np.dtype(dtype).kind == "f":
        value = rng.normal(size=shape).astype(dtype)
        if value.size:
            flat = value.reshape(-1)
            flat[rng.integers(0, value.size, 2)] = rng.choice(
                np.array([np.nan, np.inf, -0.0, -np.inf], dtype=dtype), 2
            )
        return value
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)


def build(spec: list[Any], rng: np.random.Generator, cls: type[Sequential] = Sequential) -> Sequential:
    layers: list[Module] = []
    for item in spec:
        if isinstance(item, dict):
            layers.append(Block(**{k: Variable(fill(dt, shape, rng)) for k, (dt, shape) in item.items()}))
        else:
            layers.append(build(item, rng))
    return cls(*layers)


def variables(model: Module) -> Iterator[tuple[Module, str, Variable]]:
    for key, var in list(model.variables()):
        yield model, key, var
    for _, child in model.children():
        yield from variables(child)


def tie_like(model: Module, pairs: list[tuple[int, int]]) -> None:
    """Share variables natively: the second of each pair takes the first's Variable if compatible.

    Decided from the structure only, so two models built from one spec tie alike. NaN is removed
    from shared variables (see test_nan_in_tied_parameters_round_trips).
    """
    found = list(variables(model))
    for a, b in pairs:
        if a < len(found) and b < len(found) and a != b:
            (_, ka, va), (mb, kb, vb) = found[a], found[b]
            same_layout = (ka == "kernel") == (kb == "kernel")
            if same_layout and va.value.dtype == vb.value.dtype and va.value.shape == vb.value.shape:
                setattr(mb, kb, va)
                if va.value.dtype.kind == "f":
                    va.value[np.isnan(va.value)] = 0


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    spec=architectures,
    seed=st.integers(0, 2**32 - 1),
    pairs=st.lists(st.tuples(st.integers(0, 12), st.integers(0, 12)), max_size=3),
    shard=st.one_of(st.none(), st.integers(1, 200)),
    mmap=st.booleans(),
)
def test_round_trip_is_bit_for_bit(
    tmp_path_factory: Any,
    spec: list[Any],
    seed: int,
    pairs: list[tuple[int, int]],
    shard: int | None,
    mmap: bool,
) -> None:
    folder = tmp_path_factory.mktemp("rt")
    source = build(spec, np.random.default_rng(seed))
    tie_like(source, pairs)
    target = build(spec, np.random.default_rng(seed + 1))
    tie_like(target, pairs)
    path = save(source, folder / "model.safetensors", max_shard_size=shard)
    report = load(target, path, mmap=mmap)
    assert_same_bits(source, target)
    assert report.loaded == list(up.params(target)) and report.converted == {}
    assert up.ties(target) == up.ties(source)
    with open_checkpoint(path) as ckpt:  # tied names are stored once
        assert len(ckpt.names) == len(up.params(source)) - sum(len(g) - 1 for g in up.ties(source))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    spec=architectures,
    seed=st.integers(0, 2**32 - 1),
    pairs=st.lists(st.tuples(st.integers(0, 12), st.integers(0, 12)), max_size=3),
)
def test_round_trip_ties_an_untied_model(
    tmp_path_factory: Any, spec: list[Any], seed: int, pairs: list[tuple[int, int]]
) -> None:
    folder = tmp_path_factory.mktemp("tie")
    source = build(spec, np.random.default_rng(seed), TieNet)
    tie_like(source, pairs)
    target = build(spec, np.random.default_rng(seed + 1), TieNet)
    load(target, save(source, folder / "m.safetensors"))
    assert_same_bits(source, target)
    assert up.ties(target) == up.ties(source)


def test_nan_in_tied_parameters_round_trips(tmp_path: Path) -> None:
    net = shared_net(tied=True)
    net.layers[1].bias.value[0] = np.nan
    target = shared_net(tied=True, seed=3)
    load(target, save(net, tmp_path / "m.safetensors"))
    assert_same_bits(net, target)


# --- fuzzing the reader -------------------------------------------------------------------------


#: Fuzzing depth; raise it for a longer hunt: UNIFYPARAMS_FUZZ_EXAMPLES=5000 pytest -k fuzz
FUZZ_EXAMPLES = int(os.environ.get("UNIFYPARAMS_FUZZ_EXAMPLES", "400"))


def _fuzz_model() -> Sequential:
    return Sequential(
        Block(
            kernel=Variable(np.arange(6, dtype=np.float32).reshape(2, 3)),
            bias=Variable(np.zeros((), np.int64)),
        ),
        Block(bias=Variable(np.zeros((0, 3), np.float16)), steps=Variable(np.arange(4, dtype=np.int32))),
        Block(gamma=Variable(np.ones(3, np.float64))),
    )


def _valid_bytes(tmp: Path) -> bytes:
    net = _fuzz_model()
    net.layers[2].beta = net.layers[2].gamma  # a tie group in the metadata
    return save(net, tmp / "valid.safetensors").read_bytes()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=8,
)


@st.composite
def corruptions(draw: Any, original: bytes) -> bytes:
    data = bytearray(original)
    n = int.from_bytes(original[:8], "little")
    kind = draw(st.sampled_from(["flip", "truncate", "edit", "length", "append"]))
    if kind == "flip":
        for _ in range(draw(st.integers(1, 6))):
            where = draw(st.integers(0, min(len(data) - 1, 8 + n + 8)) | st.integers(0, len(data) - 1))
            data[where] ^= draw(st.integers(1, 255))
    elif kind == "truncate":
        del data[draw(st.integers(0, len(data) - 1)) :]
    elif kind == "length":
        data[:8] = struct.pack("<Q", draw(st.integers(0, 2**64 - 1) | st.integers(max(0, n - 16), n + 16)))
    elif kind == "append":
        data += draw(st.binary(min_size=1, max_size=16))
    else:
        header = json.loads(original[8 : 8 + n])
        name = draw(st.sampled_from(sorted(header)))
        if name == "__metadata__":
            key = draw(st.sampled_from(sorted(header[name]) + ["unifyparams.ties", "x"]))
            header[name][key] = draw(st.text(max_size=30) | json_values.map(json.dumps))
        else:
            field = draw(st.sampled_from(["dtype", "shape", "data_offsets", "extra", "whole"]))
            value = draw(
                json_values
                | st.sampled_from(["F16", "BF16", "I8", "U64", "BOOL", "C64", "F8_E4M3", "Q4"])
                | st.lists(st.integers(0, 40), max_size=3)
                | st.lists(st.integers(-1, 2**64), min_size=2, max_size=2)
            )
            if field == "whole":
                header[name] = value
            else:
                header[name][field] = value
        raw = json.dumps(header).encode()
        data = bytearray(struct.pack("<Q", len(raw)) + raw + original[8 + n :])
    return bytes(data)


class _Hang(Exception):
    pass


def _alarm(signum: int, frame: Any) -> None:
    raise _Hang()


@pytest.mark.filterwarnings(
    "ignore::numpy.exceptions.ComplexWarning" if hasattr(np, "exceptions") else "ignore"
)
@settings(
    max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_fuzzed_files_raise_checkpoint_error_or_load_valid_data(tmp_path_factory: Any, data: Any) -> None:
    folder = tmp_path_factory.mktemp("fuzz")
    original = _valid_bytes(folder)
    corrupted = data.draw(corruptions(original))
    path = folder / "fuzzed.safetensors"
    path.write_bytes(corrupted)
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(10)  # a hang fails the test instead of stalling the suite
    try:
        try:
            with SafetensorsFile(path) as f:
                values = {name: f.tensor(name) for name in f.keys()}
                for name, value in values.items():
                    assert value.shape == f.info(name).shape and value.dtype == f.info(name).dtype
                    value.tobytes()  # touch every byte
                del values
        except up.CheckpointError:
            pass
        model = _fuzz_model()
        model.layers[2].beta = model.layers[2].gamma
        for strict in (True, False):
            before = snapshot(model)
            try:
                load(model, path, strict=strict, cast=data.draw(st.booleans()))
            except up.CheckpointError:
                assert snapshot(model) == before, "a refused load changed the model"
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@settings(
    max_examples=FUZZ_EXAMPLES // 3,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_fuzzed_indexes_raise_checkpoint_error_or_load_valid_data(tmp_path_factory: Any, data: Any) -> None:
    folder = tmp_path_factory.mktemp("fuzzindex")
    index = save(make_net(1), folder / "model.safetensors", max_shard_size=60)
    text = index.read_text()
    body = json.loads(text)
    files = sorted(set(body["weight_map"].values()))
    odd_names = st.sampled_from(
        [*files, "../x.safetensors", "/etc/passwd", "", ".", "nope.safetensors", "a\\b"]
    )
    kind = data.draw(st.sampled_from(["value", "key", "metadata", "whole", "bytes"]))
    if kind == "value":
        name = data.draw(st.sampled_from(sorted(body["weight_map"])))
        body["weight_map"][name] = data.draw(odd_names | json_values)
    elif kind == "key":
        body["weight_map"][data.draw(st.text(max_size=10))] = data.draw(odd_names)
    elif kind == "metadata":
        key = data.draw(st.sampled_from([*sorted(body["metadata"]), "x"]))
        body["metadata"][key] = data.draw(json_values | st.text(max_size=20))
    elif kind == "whole":
        body = data.draw(json_values)
    raw = json.dumps(body).encode()
    if kind == "bytes":
        raw = bytearray(text.encode())
        for _ in range(data.draw(st.integers(1, 4))):
            raw[data.draw(st.integers(0, len(raw) - 1))] ^= data.draw(st.integers(1, 255))
    index.write_bytes(bytes(raw))
    model = make_net(5)
    before = snapshot(model)
    try:
        load(model, index, strict=data.draw(st.booleans()))
    except up.CheckpointError:
        assert snapshot(model) == before, "a refused load changed the model"
