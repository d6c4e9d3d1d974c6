"""Hostile checkpoint files and folders: readers stay bounded and contained, saves touch only what they wrote.

Each reader is given files a hostile user would craft (a negative ndim, shapes declaring gigabytes in
a few hundred bytes, external or virtual HDF5 storage, zip bombs, symlinks out of a folder) and
must answer with a :class:`~unifyparams.errors.CheckpointError` in bounded memory; the command line
prints one line and exits 2. Saves are given stale indexes naming foreign files, crashes between
renames, and temporaries of killed saves.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tracemalloc
import zipfile
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

import unifyparams as up
from unifyparams.checkpoint import atomic
from unifyparams.checkpoint.atomic import AtomicFile, host_tag
from unifyparams.checkpoint.format import save_file
from unifyparams.cli import main
from unifyparams.formats import read
from unifyparams_gluon.params_file import V2_MAGIC, V3_MAGIC, write_params_file

from .numpy_framework import Dense, Norm, Sequential

ROOT = Path(__file__).resolve().parent.parent


def make_net(seed: int = 1) -> Sequential:
    return Sequential(Dense(3, 4, seed=seed), Norm(4), Dense(4, 2, seed=seed + 1))


def values(model: Any) -> dict[str, bytes]:
    return {name: p.numpy().tobytes() for name, p in up.params(model).items()}


def cli(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    _, err = capsys.readouterr()
    return code, err


def refused(path: Path, *fragments: str, limit: int = 32 << 20) -> str:
    """Reading ``path`` raises CheckpointError mentioning ``fragments``, allocating under ``limit`` bytes."""
    tracemalloc.start()
    try:
        with pytest.raises(up.CheckpointError) as info:
            read(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < limit, f"reading a {path.stat().st_size}-byte file allocated {peak} bytes"
    for fragment in fragments:
        assert fragment in str(info.value), str(info.value)
    return str(info.value)


# --- Gluon .params ---------------------------------------------------------------------------
def params_bytes(ndim: int, dims: list[int], data: bytes, magic: int = V2_MAGIC, flag: int = 0) -> bytes:
    """One named array in MXNet's NDArray list format, with whatever header fields a test wants."""
    out = (0x112).to_bytes(8, "little") + bytes(8) + (1).to_bytes(8, "little")
    out += magic.to_bytes(4, "little") + bytes(4) + ndim.to_bytes(4, "little", signed=True)
    out += b"".join(d.to_bytes(8, "little", signed=True) for d in dims)
    out += (1).to_bytes(4, "little") + bytes(4) + flag.to_bytes(4, "little") + data
    return out + (1).to_bytes(8, "little") + (1).to_bytes(8, "little") + b"w"


def test_params_with_negative_ndim_is_refused_not_a_segfault(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "evil.params"
    path.write_bytes(params_bytes(-1, [], bytes(16)))
    refused(path, "ndim is -1")
    code, err = cli(capsys, "inspect", path)
    assert code == 2 and err.count("\n") == 1 and err.startswith("unifyparams: error:") and "ndim" in err


@pytest.mark.parametrize("dims", [[1 << 30, 3], [1 << 40], [1 << 62, 1 << 62], [7, -2]])
def test_params_declaring_huge_or_negative_shapes_allocate_nothing(tmp_path: Path, dims: list[int]) -> None:
    path = tmp_path / "huge.params"
    path.write_bytes(params_bytes(len(dims), dims, bytes(500)))  # ~600 bytes in all
    refused(path, "array 0", limit=1 << 20)


def test_every_truncation_of_a_params_file_is_refused(tmp_path: Path) -> None:
    good = tmp_path / "good.params"
    write_params_file({"0.weight": np.arange(6, dtype=np.float32).reshape(2, 3), "0.bias": np.ones(2)}, good)
    raw = good.read_bytes()
    cut = tmp_path / "cut.params"
    for n in range(len(raw)):
        cut.write_bytes(raw[:n])
        refused(cut)
    cut.write_bytes(raw + b"\0")
    refused(cut, "follow the names list")


def test_params_corruptions_are_named(tmp_path: Path) -> None:
    path = tmp_path / "x.params"
    path.write_bytes(params_bytes(1, [2], bytes(8), flag=99))
    refused(path, "unknown dtype flag 99")
    path.write_bytes(params_bytes(1, [2], bytes(8), magic=0x12345678))
    refused(path, "magic 0x12345678")
    sparse = bytearray(params_bytes(1, [2], bytes(8)))
    sparse[28:32] = (1).to_bytes(4, "little")  # storage type row_sparse
    path.write_bytes(bytes(sparse))
    refused(path, "row_sparse")
    write_params_file({"a": np.zeros(1), "b": np.zeros(1)}, path)
    path.write_bytes(path.read_bytes().replace(b"\x01\x00\x00\x00\x00\x00\x00\x00b", b"\x01\x00\x00\x00\x00\x00\x00\x00a"))
    refused(path, "appears twice")


def test_params_reader_matches_mxnet_and_needs_no_mxnet(tmp_path: Path) -> None:
    path = tmp_path / "net.params"
    arrays = {"0.weight": np.arange(6, dtype=np.float32).reshape(2, 3), "1.gamma": np.ones(3, np.float16),
              "2.l0_i2h_weight": np.arange(8, dtype=np.float64).reshape(4, 2), "i": np.arange(3, dtype=np.int64),
              "empty": np.zeros((0, 2), np.float32)}
    write_params_file(arrays, path)
    ckpt = read(path)
    assert list(ckpt.tensors) == ["0.weight", "1.weight", "2.weight_ih_l0", "i", "empty"]
    for (key, value), got in zip(arrays.items(), ckpt.tensors.values()):
        assert got.dtype == value.dtype and np.array_equal(got, value), key
    script = f"import sys; from unifyparams.formats import read; read({str(path)!r}); assert 'mxnet' not in sys.modules"
    subprocess.run([sys.executable, "-c", script], check=True, cwd=ROOT)
    scalar = bytearray(params_bytes(0, [], np.float32(3).tobytes(), magic=V3_MAGIC))
    path.write_bytes(bytes(scalar))
    assert read(path).tensors["w"].shape == ()  # v3 (NumPy semantics): ndim 0 is a scalar


@pytest.mark.gluon
def test_params_reader_reads_what_mxnet_saves(tmp_path: Path) -> None:
    from unifyparams_gluon import import_mxnet

    mx = import_mxnet()
    net = mx.gluon.nn.HybridSequential()
    net.add(mx.gluon.nn.Dense(4, in_units=3), mx.gluon.nn.BatchNorm(in_channels=4), mx.gluon.rnn.LSTM(5, input_size=4))
    net.initialize()
    net.save_parameters(str(tmp_path / "n.params"))
    native = mx.nd.load(str(tmp_path / "n.params"))
    ours = read(tmp_path / "n.params")
    assert len(ours.tensors) == len(native)
    for got, want in zip(ours.tensors.values(), native.values()):
        assert got.dtype == want.dtype and np.array_equal(got, want.asnumpy())


# --- Keras .h5 -------------------------------------------------------------------------------


def test_h5_external_storage_is_refused_and_convert_copies_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"SECRET" * 100)
    path = tmp_path / "evil.weights.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("layers/dense/vars/0", shape=(600,), dtype="u1", external=[(str(secret), 0, 600)])
    refused(path, "external file", "secret.txt")
    dst = tmp_path / "out.safetensors"
    code, err = cli(capsys, "convert", path, dst)
    assert code == 2 and err.count("\n") == 1 and not dst.exists()


def test_h5_virtual_dataset_and_external_link_read_no_other_file(tmp_path: Path) -> None:
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["x"] = np.arange(10.0)
    layout = h5py.VirtualLayout(shape=(10,), dtype="f8")
    layout[:] = h5py.VirtualSource(str(other), "x", shape=(10,))
    path = tmp_path / "virtual.h5"
    with h5py.File(path, "w") as f:
        f.create_virtual_dataset("layers/d/vars/0", layout)
    refused(path, "virtual dataset")
    with h5py.File(path, "w") as f:
        f["layers/d/vars/0"] = np.ones(2, np.float32)
        f["linked"] = h5py.ExternalLink(str(other), "x")
        f["soft"] = h5py.SoftLink("/layers/d/vars/0")
    assert list(read(path).tensors) == ["layers/d/vars/0"]  # links are not followed


@pytest.mark.parametrize("kind", ["contiguous", "chunked", "gzip", "chunk-size"])
def test_h5_declaring_more_than_it_stores_is_refused_in_bounded_memory(tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"{kind}.h5"
    with h5py.File(path, "w") as f:
        if kind == "contiguous":  # 8 GiB declared, nothing stored: reading would allocate 8 GiB of fill
            f.create_dataset("layers/d/vars/0", shape=(1 << 30,), dtype="f8")
        elif kind == "chunked":  # a few chunks written, the rest fill values
            d = f.create_dataset("layers/d/vars/0", shape=(4096,), dtype="f8", chunks=(64,))
            d[:64] = 1.0
        elif kind == "gzip":  # 16 MiB of zeros in a few KiB
            f.create_dataset("layers/d/vars/0", data=np.zeros(1 << 21), chunks=(1 << 18,), compression="gzip")
        else:
            f.create_dataset("layers/d/vars/0", data=np.zeros(4), chunks=(1 << 26,), maxshape=(None,),
                             compression="gzip")  # one 512 MiB chunk to inflate for 4 values
    refused(path, "layers/d/vars/0", limit=8 << 20)


def test_h5_normal_weights_still_read(tmp_path: Path) -> None:
    path = tmp_path / "ok.weights.h5"
    with h5py.File(path, "w") as f:
        f["layers/dense/vars/0"] = np.arange(12, dtype=np.float32).reshape(3, 4)
        f.create_dataset("layers/dense/vars/1", data=np.ones(4, np.float32), chunks=(2,))
        f.create_dataset("layers/norm/vars/0", data=np.arange(64.0), chunks=(16,), compression="gzip", shuffle=True)
    ckpt = read(path)
    assert np.array_equal(ckpt.tensors["layers/dense/vars/0"], np.arange(12, dtype=np.float32).reshape(3, 4))
    assert np.array_equal(ckpt.tensors["layers/norm/vars/0"], np.arange(64.0))


# --- PyTorch .pt -----------------------------------------------------------------------------
def test_pt_zip_bomb_is_refused_before_torch_inflates_it(tmp_path: Path) -> None:
    import torch
    good = tmp_path / "good.pt"
    torch.save({"w": torch.zeros(1 << 22)}, good)  # 16 MiB of zeros
    bomb = tmp_path / "bomb.pt"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as out:
        for record in src.infolist():
            out.writestr(record.filename, src.read(record.filename))
    assert bomb.stat().st_size < 1 << 20
    refused(bomb, "zip records declare", limit=4 << 20)


def test_pt_views_larger_than_the_file_are_refused(tmp_path: Path) -> None:
    import torch
    path = tmp_path / "expanded.pt"
    torch.save({"w": torch.ones(1).expand(1 << 28)}, path)  # one float viewed as a GiB
    refused(path, "zero-stride", limit=4 << 20)


def test_pt_legacy_storage_sizes_are_checked_before_loading(tmp_path: Path) -> None:
    import torch
    path = tmp_path / "legacy.pt"
    torch.save({"w": torch.arange(4.0)}, path, _use_new_zipfile_serialization=False)
    assert np.array_equal(read(path).tensors["w"], np.arange(4.0, dtype=np.float32))
    raw = path.read_bytes()
    four = b"K\x04N"  # BININT1 4 (the storage's numel), NONE: the end of its persistent id
    assert raw.count(four) == 1
    path.write_bytes(raw.replace(four, b"J" + (1 << 30).to_bytes(4, "little") + b"N"))
    refused(path, "storages declare", limit=4 << 20)


@pytest.mark.torch
def test_pt_zip_files_are_memory_mapped_and_legacy_ones_read_plainly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch
    real_load = torch.load
    calls: list[Any] = []

    def recording(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs.get("mmap"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", recording)
    state = {"w": torch.arange(6.0).reshape(2, 3), "b": torch.ones(2, dtype=torch.bfloat16)}
    torch.save(state, tmp_path / "zip.pt")
    torch.save(state, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    for name, mapped in (("zip.pt", True), ("legacy.pt", False)):
        calls.clear()
        ckpt = read(tmp_path / name)
        assert calls == [mapped], name
        assert np.array_equal(ckpt.tensors["w"], np.arange(6.0, dtype=np.float32).reshape(2, 3))
        assert ckpt.tensors["b"].dtype.name == "bfloat16" and ckpt.tensors["b"].astype(np.float32).tolist() == [1, 1]


@pytest.mark.torch
@pytest.mark.parametrize("kind", ["float8_e4m3fnuz", "float8_e5m2fnuz", "float8_e4m3fn", "float8_e5m2", "float8_e8m0fnu"])
def test_pt_with_every_float8_kind_loads_bit_for_bit(tmp_path: Path, kind: str) -> None:
    import torch
    bits = torch.arange(256, dtype=torch.int32).to(torch.uint8).reshape(16, 16)
    path = tmp_path / f"{kind}.pt"
    torch.save({"w": bits.clone().view(getattr(torch, kind))}, path)
    array = read(path).tensors["w"]
    assert array.dtype.name == kind and array.shape == (16, 16)
    assert array.view(np.uint8).tobytes() == bits.numpy().tobytes()


# --- shards and folders ----------------------------------------------------------------------
def test_a_shard_symlinked_out_of_the_folder_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "ckpt"
    index = up.save(make_net(), folder / "model.safetensors", max_shard_size=60)
    shard = sorted(set(json.loads(index.read_text())["weight_map"].values()))[0]
    outside = tmp_path / "elsewhere.safetensors"
    (folder / shard).rename(outside)
    (folder / shard).symlink_to(outside)
    with pytest.raises(up.CheckpointError, match="outside the index's folder"):
        up.load(make_net(5), index)
    with pytest.raises(up.CheckpointError, match="outside"):
        read(index)


def test_a_hub_cache_snapshot_of_symlinks_into_one_blobs_folder_loads(tmp_path: Path) -> None:
    blobs, snapshot = tmp_path / "blobs", tmp_path / "snapshots" / "abc"
    net = make_net(2)
    index = up.save(net, blobs / "model.safetensors", max_shard_size=60)
    snapshot.mkdir(parents=True)
    for f in blobs.iterdir():
        (snapshot / f.name).symlink_to(f)
    target = make_net(9)
    up.load(target, snapshot / index.name)
    assert values(target) == values(net)


# --- saves -----------------------------------------------------------------------------------
@pytest.mark.parametrize("max_shard_size", [None, 60])
def test_save_next_to_a_stale_index_deletes_none_of_the_files_it_names(tmp_path: Path, max_shard_size: Any) -> None:
    foreign = {"train.py": b"print('train')\n", "README.md": b"# mine\n"}
    for name, data in foreign.items():
        (tmp_path / name).write_bytes(data)
    look_alike = tmp_path / "model-00001-of-00002.safetensors"  # our naming, not our save
    save_file({"x": np.zeros(2)}, look_alike)
    stale = {"metadata": {"unifyparams.checkpoint_id": "0" * 32},
             "weight_map": {"a": "train.py", "b": "README.md", "c": look_alike.name}}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(stale))
    net = make_net(3)
    path = up.save(net, tmp_path / "model.safetensors", max_shard_size=max_shard_size)
    for name, data in foreign.items():
        assert (tmp_path / name).read_bytes() == data
    assert look_alike.exists()
    target = make_net(8)
    up.load(target, path)
    assert values(target) == values(net)


def test_resave_removes_only_the_earlier_saves_own_shards(tmp_path: Path) -> None:
    first = up.save(make_net(1), tmp_path / "model.safetensors", max_shard_size=60)
    old_shards = set(json.loads(first.read_text())["weight_map"].values())
    net = make_net(2)
    second = up.save(net, tmp_path / "model.safetensors", max_shard_size=60)
    new_shards = set(json.loads(second.read_text())["weight_map"].values())
    assert not old_shards & new_shards  # new names: the old checkpoint stayed whole until the switch
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*new_shards, second.name])
    up.save(net, tmp_path / "model.safetensors")  # single file: the index and its shards go
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors"]


def test_a_crash_at_any_rename_of_a_sharded_save_leaves_the_old_checkpoint_loadable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old_net = make_net(1)
    index = up.save(old_net, tmp_path / "model.safetensors", max_shard_size=60)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    real_commit = AtomicFile.commit
    renames = len(before)  # the new save renames as many files: its shards, then its index
    for k in range(renames):
        calls = {"n": 0}

        def failing(self: AtomicFile, k: int = k, calls: dict[str, int] = calls) -> None:
            if calls["n"] == k:
                raise OSError(28, "No space left on device")
            calls["n"] += 1
            real_commit(self)

        monkeypatch.setattr(AtomicFile, "commit", failing)
        with pytest.raises(up.CheckpointError, match=r"unchanged \(verified\)"):
            up.save(make_net(7), tmp_path / "model.safetensors", max_shard_size=60)
        monkeypatch.setattr(AtomicFile, "commit", real_commit)
        assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before, f"rename {k}"
        target = make_net(9)
        up.load(target, index)
        assert values(target) == values(old_net)


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_stale_temporaries_of_killed_saves_are_cleaned_and_only_ours(tmp_path: Path) -> None:
    net = make_net(4)
    up.save(net, tmp_path / "model.safetensors")
    header = (tmp_path / "model.safetensors").read_bytes()[:200]
    dead, alive, host = _dead_pid(), os.getppid(), host_tag()
    ours = tmp_path / f".model.safetensors.up{dead}h{host}-abcd1234.tmp"
    ours.write_bytes(header)  # a killed save's partial file
    empty = tmp_path / f".model-00001-of-00002.safetensors.up{dead}h{host}-abcd1235.tmp"
    empty.touch()  # killed before its first write
    kept = {
        "running": tmp_path / f".model.safetensors.up{alive}h{host}-abcd1236.tmp",  # a save still running
        "other host": tmp_path / f".model.safetensors.up{dead}h{'0' * 6 if host != '0' * 6 else '1' * 6}-abcd1237.tmp",
        "not ours": tmp_path / f".model.safetensors.up{dead}h{host}-abcd1238.tmp",
        "other target": tmp_path / f".notes.txt.up{dead}h{host}-abcd1239.tmp",
    }
    for name, path in kept.items():
        path.write_bytes(b"user data" if name == "not ours" else header)
    link = tmp_path / f".model.safetensors.up{dead}h{host}-abcd1240.tmp"
    link.symlink_to(tmp_path / "model.safetensors")
    up.save(net, tmp_path / "model.safetensors")
    assert not ours.exists() and not empty.exists()
    assert all(path.exists() for path in kept.values()) and link.is_symlink()
    assert not atomic._LIVE


def test_a_failed_single_file_save_says_unchanged_only_when_it_is(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "model.safetensors"
    up.save(make_net(1), path)
    before = path.read_bytes()

    def full(self: AtomicFile) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(AtomicFile, "finish", full)
    with pytest.raises(up.CheckpointError, match=r"unchanged \(verified\)") as info:
        up.save(make_net(2), path)
    assert "No space left" in str(info.value) and path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors"]


# --- command line ----------------------------------------------------------------------------
def test_cli_prints_one_line_and_exits_2_for_any_reader_error_and_memory_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = tmp_path / "bad.params"
    bad.write_bytes(params_bytes(2, [1 << 40, 1 << 40], bytes(64)))
    for argv in (("inspect", bad), ("convert", bad, tmp_path / "o.safetensors"), ("diff", bad, bad)):
        code, err = cli(capsys, *argv)
        assert code == 2 and err.count("\n") == 1 and err.startswith("unifyparams: error:"), err
    assert not (tmp_path / "o.safetensors").exists()

    def no_memory(*args: Any, **kwargs: Any) -> Any:
        raise MemoryError

    monkeypatch.setattr("unifyparams.cli.read", no_memory)
    code, err = cli(capsys, "inspect", bad)
    assert code == 2 and err.count("\n") == 1 and "out of memory" in err
