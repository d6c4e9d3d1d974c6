"""Bytes moved the cheapest way the memory allows: a load reads a contiguous tensor from the file
straight into the parameter (``os.preadv``, :func:`unifyparams.mapped.reader`) instead of copying it
from the file map, a save copies every transposed tensor through one buffer, and a save writes a
Gluon parameter from its own memory (no copy first). Each keeps what a load and a save promise:
the values, and all or nothing."""

from __future__ import annotations

import mmap
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import unifyparams as up
from unifyparams import mapped, streamed
from unifyparams.checkpoint import format as fmt


def _net(width: int = 256, layers: int = 4) -> torch.nn.Sequential:
    torch.manual_seed(0)
    return torch.nn.Sequential(*[torch.nn.Linear(width, width) for _ in range(layers)])


def _values(net: torch.nn.Module) -> dict[str, np.ndarray]:
    return {name: np.array(value, copy=True) for name, value in up.params(net).numpy().items()}


@pytest.fixture
def spy_reads(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """Every read ``mapped.reader`` makes: (bytes, file offset)."""
    reads: list[tuple[int, int]] = []
    lock = threading.Lock()
    real = mapped._pread_into

    def spy(file: Any, target: memoryview, offset: int) -> int:
        with lock:
            reads.append((len(target), offset))
        return real(file, target, offset)

    monkeypatch.setattr(mapped, "_pread_into", spy)
    return reads


def test_reader_reads_only_bytes_as_they_are_from_an_open_registered_file(tmp_path: Path) -> None:
    values = np.arange(1 << 16, dtype=np.float32).reshape(256, 256)
    path = tmp_path / "raw.bin"
    path.write_bytes(values.tobytes())
    with open(path, "rb") as f:
        m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        unregistered = np.frombuffer(m, np.float32).reshape(256, 256)
        assert mapped.reader(np.empty_like(unregistered), unregistered) is None  # not the library's map
        mapped.register(m, f)
        src = np.frombuffer(m, np.float32).reshape(256, 256)
        dst = np.empty_like(src)
        fill = mapped.reader(dst, src)
        assert fill is not None
        fill(dst)
        np.testing.assert_array_equal(dst, values)
        rows = np.empty((128, 256), np.float32)
        np.copyto(rows, 0)
        mapped.reader(rows, src[64:192])(rows)  # type: ignore[misc]  # an offset into the file
        np.testing.assert_array_equal(rows, values[64:192])
        assert mapped.reader(np.empty((256, 256), np.float32), src.T) is None  # a transpose: copied
        assert mapped.reader(np.empty((256, 256), np.float64), src) is None  # a cast: copied
        assert mapped.reader(np.empty((256, 256), np.float32).T, src) is None  # a strided destination
        read_only = np.empty_like(src)
        read_only.flags.writeable = False
        assert mapped.reader(read_only, src) is None
        assert mapped.reader(np.empty(8, np.float32), src.reshape(-1)[:8]) is None  # too small to be worth it
    assert mapped.reader(dst, src) is None  # the file is closed: the map is copied from


def test_what_a_read_leaves_is_copied_from_the_map(tmp_path: Path) -> None:
    """The file ends early (or a read fails): the rest of the bytes come from the map, as before."""
    values = np.arange(1 << 16, dtype=np.uint8)
    path = tmp_path / "raw.bin"
    path.write_bytes(values.tobytes())
    with open(path, "rb") as f:
        target = np.zeros(1 << 15, np.uint8)
        assert mapped._pread_into(f, memoryview(target), (1 << 16) - 4096) == 4096  # the file's end
        mapped._read_into(f, target, values[: 1 << 15], 1 << 16)  # nothing there: all from the "map"
        np.testing.assert_array_equal(target, values[: 1 << 15])
    assert mapped._pread_into(f, memoryview(target), 0) == 0  # closed


def test_a_load_reads_contiguous_tensors_from_the_file(tmp_path: Path, spy_reads: list[tuple[int, int]]) -> None:
    source, target = _net(), _net()
    up.initialize(source, up.init.Normal(0.0, 1.0), select="*", seed=3)
    up.save(source, tmp_path / "m.safetensors")
    up.load(target, tmp_path / "m.safetensors")
    for name, value in _values(source).items():
        np.testing.assert_array_equal(up.params(target)[name].numpy(), value)
    weights = 4 * 256 * 256 * 4
    assert sum(n for n, _ in spy_reads) >= weights  # every weight (and any bias over 64 KiB) was read so
    assert len({offset for _, offset in spy_reads}) == len(spy_reads)  # no byte read twice


def test_streamed_parts_read_directly_skip_the_mapping_hooks() -> None:
    """``direct`` takes the parts it offers a fill for; ``before``/``after`` see only the others."""
    plain = np.arange(1 << 16, dtype=np.float32)
    kernel = np.arange(1 << 16, dtype=np.float32).reshape(256, 256)
    pairs = [(np.empty_like(plain), plain), (np.empty((256, 256), np.float32), kernel.T)]
    direct_parts: list[int] = []
    hooked: list[int] = []

    def direct(dst: np.ndarray, src: np.ndarray) -> Any:
        if not src.flags.c_contiguous:
            return None
        direct_parts.append(src.nbytes)
        return lambda out: np.copyto(out, src)

    streamed.copy_streamed(pairs, done=lambda k: None, before=lambda s: hooked.append(s.nbytes),
                           after=lambda s: None, direct=direct)
    np.testing.assert_array_equal(pairs[0][0], plain)
    np.testing.assert_array_equal(pairs[1][0], kernel.T)
    assert sum(direct_parts) == plain.nbytes
    assert sum(hooked) == kernel.nbytes


def test_a_read_failing_part_way_still_loads_every_value(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          spy_reads: list[tuple[int, int]]) -> None:
    """Reads of the file fail after the first few (an I/O error): a write into parameters' own memory
    keeps no snapshot to undo, so the rest is copied from the file map, and the load is whole."""
    source, target = _net(), _net()
    up.initialize(source, up.init.Normal(0.0, 1.0), select="*", seed=4)
    up.save(source, tmp_path / "m.safetensors")
    real, calls = os.preadv, {"n": 0}

    def failing(fd: int, buffers: Any, offset: int) -> int:
        calls["n"] += 1
        if calls["n"] > 2:
            raise OSError(5, "Input/output error")
        return real(fd, buffers, offset)

    monkeypatch.setattr(os, "preadv", failing)
    up.load(target, tmp_path / "m.safetensors")
    assert calls["n"] > 2
    for name, value in _values(source).items():
        np.testing.assert_array_equal(up.params(target)[name].numpy(), value, err_msg=name)


def test_a_save_copies_transposed_tensors_through_two_buffers_ahead_of_the_write(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each tensor after the first is put in C order on the save's own thread while the one before
    it is written, into one of two buffers kept for the whole file (no new memory per tensor)."""
    monkeypatch.setattr(fmt, "PREPARE_AHEAD_BYTES", 0)
    rng = np.random.default_rng(0)
    shapes = [(300, 200), (300, 200), (100, 200), (200, 300), (50, 40)]  # the first two the largest: no growth
    kernels = {f"k{i}": rng.random(shape, dtype=np.float32) for i, shape in enumerate(shapes)}
    taken: list[tuple[np.ndarray, str]] = []
    real = fmt.Scratch.take

    def take(self: fmt.Scratch, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
        taken.append((real(self, dtype, shape), threading.current_thread().name))
        return taken[-1][0]

    monkeypatch.setattr(fmt.Scratch, "take", take)
    fmt.save_file({name: k.T for name, k in kernels.items()}, tmp_path / "t.safetensors")
    assert len(taken) == len(shapes)
    threads = [name for _, name in taken]
    assert threads.count("MainThread") == 1, threads  # the first tensor; every later one ahead of its write
    buffers: list[np.ndarray] = []
    for array, _ in taken:
        if not any(np.shares_memory(array, b) for b in buffers):
            buffers.append(array)
    assert len(buffers) == 2  # one being written while the other is filled, both reused
    loaded = fmt.load_file(tmp_path / "t.safetensors")
    for name, k in kernels.items():
        np.testing.assert_array_equal(loaded[name], k.T)


def test_a_gluon_save_writes_large_parameters_from_their_own_memory(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from unifyparams_gluon import GluonAdapter, import_mxnet

    mx = import_mxnet()
    net = mx.gluon.nn.HybridSequential()
    net.add(mx.gluon.nn.Dense(512, in_units=1024), mx.gluon.nn.Dense(8, in_units=512))
    net.initialize(mx.init.Normal(1.0))
    expected = _values(net)
    real = GluonAdapter.read

    def read(self: Any, native: Any) -> np.ndarray:
        assert native.data().size * 4 < (1 << 20), f"{native.name} was copied to be saved"
        return real(self, native)

    monkeypatch.setattr(GluonAdapter, "read", read)
    up.save(net, tmp_path / "g.safetensors")
    monkeypatch.setattr(GluonAdapter, "read", real)
    stored = fmt.load_file(tmp_path / "g.safetensors")
    assert set(stored) == set(expected)
    for name, value in expected.items():
        np.testing.assert_array_equal(stored[name], value, err_msg=name)
