"""Every safetensors dtype round-trips through our writer and reader, and files the ``safetensors``
package writes (NumPy and PyTorch) read the same through us as through it.

The sub-byte kinds (``F4``, ``F6_*``) are packed in files, low bits first, and one byte per element
in memory (``ml_dtypes``); the packing is checked against torch's ``float4_e2m1fn_x2``.
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np
import pytest
import safetensors
import safetensors.numpy

import unifyparams as up
from unifyparams.checkpoint import SafetensorsFile, load_file, save_file
from unifyparams.checkpoint import format as fmt
from unifyparams.checkpoint.dtypes import KNOWN_CODES, dtype_for, pack_bits, unpack_bits
from unifyparams.common.dtypes import SAFETENSORS, bits_of

#: The codes the brief lists (safetensors 0.8), plus the two fnuz float8 kinds and C64.
CODES = ["BOOL", "U8", "I8", "I16", "U16", "F16", "BF16", "I32", "U32", "F32", "F64", "I64", "U64",
         "F8_E5M2", "F8_E4M3", "F8_E8M0", "F4", "F6_E2M3", "F6_E3M2", "F8_E4M3FNUZ", "F8_E5M2FNUZ", "C64"]


def write_raw(path: Path, header: dict[str, Any], data: bytes) -> Path:
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return path


def header_of(path: Path) -> dict[str, Any]:
    raw = path.read_bytes()
    return json.loads(raw[8 : 8 + int.from_bytes(raw[:8], "little")])


def codes_safetensors_defines(tmp_path: Path) -> set[str]:
    """The dtype codes of the installed ``safetensors``, from its refusal of an unknown one."""
    path = write_raw(tmp_path / "probe.safetensors", {"w": {"dtype": "NOPE", "shape": [0], "data_offsets": [0, 0]}}, b"")
    with pytest.raises(safetensors.SafetensorError) as info:
        safetensors.safe_open(path, framework="numpy")
    return set(re.findall(r"`([A-Z0-9_]+)`", str(info.value).split("expected one of", 1)[1]))


def random_values(code: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Values of every bit pattern the kind has (NaN included): compared by bits, not by value."""
    dtype = dtype_for(code)
    if code == "BOOL":
        return rng.integers(0, 2, size=shape).astype(bool)
    bits = bits_of(dtype)
    raw = rng.integers(0, 1 << min(bits, 8), size=(*shape, dtype.itemsize), dtype=np.uint8)
    return raw.view(dtype).reshape(shape)


def test_our_table_is_the_one_safetensors_defines(tmp_path: Path) -> None:
    assert set(KNOWN_CODES) == set(SAFETENSORS) == codes_safetensors_defines(tmp_path)
    assert set(CODES) == set(KNOWN_CODES)
    for code in CODES:
        assert dtype_for(code).name == SAFETENSORS[code]


@pytest.mark.parametrize("code", CODES)
@pytest.mark.parametrize("mmap", [True, False])
def test_every_dtype_round_trips_and_safetensors_reads_it(tmp_path: Path, code: str, mmap: bool) -> None:
    rng = np.random.default_rng(len(code))
    arrays = {
        "a": random_values(code, (3, 8), rng),
        "t": np.asarray(random_values(code, (8, 4), rng)).T,  # non-contiguous: the chunked path
        "e": random_values(code, (0, 4), rng),
        "s": random_values(code, (4,), rng),
    }
    path = tmp_path / "x.safetensors"
    save_file(arrays, path, metadata={"k": "v"})
    assert {e["dtype"] for n, e in header_of(path).items() if n != "__metadata__"} == {code}
    with SafetensorsFile(path, mmap=mmap) as f:
        assert f.metadata == {"k": "v"}
        for name, value in arrays.items():
            got = f.tensor(name)
            assert got.dtype == value.dtype and got.shape == value.shape
            assert got.tobytes() == np.ascontiguousarray(value).tobytes(), name
            assert f.info(name).nbytes == value.size * bits_of(value.dtype) // 8
            assert f.slice(name, (slice(None), slice(1, 3)) if value.ndim == 2 else slice(1, 3)).tobytes() == (
                np.ascontiguousarray(value[:, 1:3] if value.ndim == 2 else value[1:3]).tobytes()
            )
    with safetensors.safe_open(path, framework="numpy") as st:  # the package accepts what we write
        for name, value in arrays.items():
            assert st.get_slice(name).get_dtype() == code and st.get_slice(name).get_shape() == list(value.shape)
    resaved = tmp_path / "y.safetensors"
    save_file(load_file(path), resaved, metadata={"k": "v"})
    assert resaved.read_bytes() == path.read_bytes()


def test_sub_byte_packing_is_low_bits_first(tmp_path: Path) -> None:
    f4 = np.array([1, 2, 3, 4, 0xF, 0], np.uint8).view(ml_dtypes.float4_e2m1fn)
    f6 = np.array([1, 2, 3, 0x3F], np.uint8).view(ml_dtypes.float6_e2m3fn)
    save_file({"f4": f4, "f6": f6}, tmp_path / "x.safetensors")
    raw = (tmp_path / "x.safetensors").read_bytes()
    header = header_of(tmp_path / "x.safetensors")
    start = len(raw) - 3 - 3
    assert header["f4"] == {"dtype": "F4", "shape": [6], "data_offsets": [0, 3]}
    assert header["f6"] == {"dtype": "F6_E2M3", "shape": [4], "data_offsets": [3, 6]}
    assert raw[start : start + 3] == bytes([0x21, 0x43, 0x0F])
    word = 1 | 2 << 6 | 3 << 12 | 0x3F << 18
    assert raw[start + 3 :] == word.to_bytes(3, "little")
    values = np.arange(64, dtype=np.uint8)
    assert np.array_equal(unpack_bits(pack_bits(values, 6), 6, 64), values)
    assert np.array_equal(unpack_bits(pack_bits(values % 16, 4), 4, 64), values % 16)
    assert load_file(tmp_path / "x.safetensors")["f4"].astype(np.float32).tolist() == [0.5, 1.0, 1.5, 2.0, -6.0, 0.0]


def test_sub_byte_tensors_that_are_not_whole_bytes_are_refused(tmp_path: Path) -> None:
    with pytest.raises(up.CheckpointError, match="whole number of bytes"):
        save_file({"w": np.zeros(3, ml_dtypes.float4_e2m1fn)}, tmp_path / "x.safetensors")
    with pytest.raises(up.CheckpointError, match="whole number of bytes"):
        save_file({"w": np.zeros(6, ml_dtypes.float6_e3m2fn)}, tmp_path / "x.safetensors")
    assert not (tmp_path / "x.safetensors").exists()
    path = write_raw(tmp_path / "odd.safetensors", {"w": {"dtype": "F4", "shape": [3], "data_offsets": [0, 2]}}, b"\0\0")
    with pytest.raises(up.CheckpointError, match=r"tensor 'w'.*whole number of bytes") as info:
        SafetensorsFile(path)
    assert str(path) in str(info.value)


def test_files_written_by_safetensors_numpy_read_the_same(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    arrays = {code: random_values(code, (2, 3), rng) for code in CODES if not SAFETENSORS[code].startswith(("float8", "float4", "float6", "bfloat"))}
    arrays["big-endian"] = np.arange(4, dtype=">i4")
    path = tmp_path / "np.safetensors"
    safetensors.numpy.save_file(arrays, str(path), metadata={"m": "1"})
    with SafetensorsFile(path) as f:
        assert f.metadata == {"m": "1"}
        for name, value in arrays.items():
            little = value.astype(value.dtype.newbyteorder("<"))
            assert f.tensor(name).dtype == little.dtype and f.tensor(name).tobytes() == little.tobytes(), name
    ours = tmp_path / "ours.safetensors"
    save_file(arrays, ours)
    for name, value in safetensors.numpy.load_file(str(ours)).items():
        assert value.tobytes() == arrays[name].astype(arrays[name].dtype.newbyteorder("<")).tobytes(), name


def test_slices_read_part_of_a_tensor(tmp_path: Path) -> None:
    big = np.arange(4 * 5 * 3, dtype=np.float32).reshape(4, 5, 3)
    bf = big.astype(ml_dtypes.bfloat16)
    save_file({"w": big, "bf": bf}, tmp_path / "x.safetensors")
    for mmap in (True, False):
        with SafetensorsFile(tmp_path / "x.safetensors", mmap=mmap) as f:
            for index in (0, -1, slice(1, 3), (slice(None), 2), (Ellipsis, 1), (1, slice(0, 5, 2)), (0, 0, 0)):
                for name, value in (("w", big), ("bf", bf)):
                    part = f.slice(name, index)
                    assert part.dtype == value.dtype and np.array_equal(part, value[index]), (name, index)
                    assert part.flags.writeable
            with pytest.raises(up.CheckpointError, match=r"x.safetensors: cannot read 7 of tensor 'w' \(shape \[4, 5, 3\]\)"):
                f.slice("w", 7)
            with pytest.raises(up.CheckpointError, match="cannot read"):
                f.slice("bf", (0, 0, 0, 0))
            with pytest.raises(up.CheckpointError, match="no tensor named"):
                f.slice("nope", 0)


def test_the_header_bound_is_checked_before_safetensors_opens_the_file(tmp_path: Path, monkeypatch: Any) -> None:
    path = tmp_path / "x.safetensors"
    path.write_bytes(struct.pack("<Q", fmt.HEADER_LIMIT + 1) + b"{}")
    opened: list[Any] = []
    monkeypatch.setattr(fmt, "safe_open", lambda *a, **k: opened.append(a))
    with pytest.raises(up.CheckpointError, match="limit"):
        SafetensorsFile(path)
    assert not opened


def test_safetensors_errors_become_checkpoint_errors_naming_the_file(tmp_path: Path) -> None:
    path = write_raw(tmp_path / "x.safetensors", {"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8)
    raw = path.read_bytes()
    for cut in range(len(raw)):
        path.write_bytes(raw[:cut])
        with pytest.raises(up.CheckpointError) as info:
            SafetensorsFile(path)
        assert str(path) in str(info.value)


# --- files written by safetensors.torch -----------------------------------------------------------
@pytest.mark.torch
def test_files_written_by_safetensors_torch_read_bit_for_bit(tmp_path: Path) -> None:
    import torch
    from safetensors.torch import load_file as torch_load_file
    from safetensors.torch import save_file as torch_save_file

    g = torch.Generator().manual_seed(0)
    bits8 = torch.randint(0, 256, (4, 6), dtype=torch.uint8, generator=g)
    state = {
        "f32": torch.randn(3, 4, generator=g),
        "bf16": torch.randn(3, 4, generator=g).to(torch.bfloat16),
        "f16": torch.randn(5, generator=g).half(),
        "i64": torch.arange(6).reshape(2, 3),
        "bool": torch.tensor([True, False]),
        "u16": torch.arange(4).to(torch.uint16),
        "f4": bits8.clone().view(torch.float4_e2m1fn_x2),  # packed pairs: a (4, 12) F4 tensor in the file
    }
    for name in ("float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz", "float8_e8m0fnu"):
        state[name] = bits8.clone().view(getattr(torch, name))
    path = tmp_path / "torch.safetensors"
    torch_save_file(state, str(path))
    header = header_of(path)
    assert header["f4"]["dtype"] == "F4" and header["f4"]["shape"] == [4, 12]
    assert header["float8_e8m0fnu"]["dtype"] == "F8_E8M0"
    with SafetensorsFile(path) as f:
        for name, t in state.items():
            got = f.tensor(name)
            if name == "f4":
                packed = t.view(torch.uint8).numpy()
                assert got.dtype == np.dtype(ml_dtypes.float4_e2m1fn) and got.shape == (4, 12)
                unpacked = np.stack([packed & 0xF, packed >> 4], axis=-1).reshape(4, 12)
                assert np.array_equal(got.view(np.uint8), unpacked)
                continue
            assert got.dtype.name == str(t.dtype).removeprefix("torch."), name
            assert got.tobytes() == t.contiguous().view(torch.uint8).numpy().tobytes(), name
        ours = {name: f.tensor(name) for name in f.keys()}
    resaved = tmp_path / "ours.safetensors"
    save_file(ours, resaved)
    back = torch_load_file(str(resaved))
    for name, t in state.items():
        assert back[name].dtype == t.dtype and back[name].shape == t.shape, name
        assert torch.equal(back[name].view(torch.uint8), t.view(torch.uint8)), name
