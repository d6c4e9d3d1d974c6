"""The core's collective operations on a framework-free sharded adapter (ranks are threads).

What tests/test_torch_distributed.py proves on FSDP2 over real processes, proved here for the core
alone (NumPy 1 and 2): collective writes agreed before the first write and after the last, a
failure on one rank put back on every rank with one error, the collective save (each rank its own
blocks, the index last), loads reading only the own block, torch-style piece files without an
index, and pieces that do not tile refused.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import unifyparams as up
from unifyparams.checkpoint import open_checkpoint, save_file
from unifyparams.checkpoint.pieces import PiecedTensor, encode_offsets
from unifyparams.errors import CheckpointError, WriteError

from . import sharded_numpy as sn

up.register_adapter(sn.ShardedNumpyAdapter)


def values(model: Any) -> dict[str, np.ndarray]:
    return {n: p.numpy(copy=True) for n, p in up.params(model).items()}


def plain_values(seed: int) -> dict[str, np.ndarray]:
    """The global values of ``build(seed)``, unsharded (the plain NumPy adapter)."""
    net = sn.Sequential(*sn.build(seed).layers)
    return {n: p.numpy(copy=True) for n, p in up.params(net).items()}


def same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def on_ranks(size: int, fn: Any, seed: int = 0) -> list[Any]:
    group = sn.ThreadGroup(size)
    return group.run(lambda rank: fn(rank, sn.shard_model(sn.build(seed), group, rank)))


@pytest.fixture(autouse=True)
def _no_injected_failure() -> Any:
    adapter = up.get_adapter("numpy-sharded")
    yield adapter
    adapter.fail_block_write_on = None  # type: ignore[attr-defined]
    sn._counts.clear()


@pytest.mark.parametrize("size", [2, 3, 4])
def test_global_values_local_blocks_and_canonical_regions(size: int) -> None:
    expected = plain_values(0)

    def body(rank: int, net: Any) -> tuple[bool, bool]:
        ps = up.params(net)
        kernel = ps["0.weight"]  # native (3, 5) sharded along rows: canonical (5, 3) along columns
        block, at = kernel.local()
        start, stop = sn.chunk(3, rank, size)
        region_ok = kernel.region is not None and kernel.region.offsets == (0, start) and block.shape == (5, stop - start)
        return same(values(net), expected) and region_ok, np.array_equal(block, expected["0.weight"][:, start:stop])

    assert all(all(r) for r in on_ranks(size, body)), on_ranks(size, body)


@pytest.mark.parametrize("size", [2, 4])
def test_save_writes_each_ranks_blocks_and_one_index(tmp_path: Path, size: int) -> None:
    target = tmp_path / "ckpt" / "model.safetensors"
    results = on_ranks(size, lambda rank, net: up.save(net, target))
    index = target.parent / "model.safetensors.index.json"
    assert results == [index] * size
    body = json.loads(index.read_text())
    assert body["weight_map"] == {"1.steps": f"model-00001-of-{size:05d}.safetensors"}  # unsharded: rank 0 only
    files = sorted(p.name for p in target.parent.glob("*.safetensors"))
    assert len(files) == min(size, 3) and body["slices"]["0.weight"]["shape"] == [5, 3]  # 3 rows: ranks with rows
    with open_checkpoint(index) as ckpt:  # one process reads it whole
        assert isinstance(ckpt.value("0.weight"), PiecedTensor)
        np.testing.assert_array_equal(ckpt.tensor("0.weight"), plain_values(0)["0.weight"])
    plain = sn.Sequential(*sn.build(5).layers)
    up.load(plain, index)  # into an unsharded model of another adapter
    assert same({n: p.numpy() for n, p in up.params(plain).items()}, plain_values(0))


def test_load_into_shards_from_a_collective_save_and_from_an_ordinary_file(tmp_path: Path) -> None:
    target = tmp_path / "model.safetensors"
    on_ranks(3, lambda rank, net: up.save(net, target), seed=0)
    plain = sn.Sequential(*sn.build(9).layers)
    up.save(plain, tmp_path / "plain.safetensors")
    results = on_ranks(2, lambda rank, net: (up.load(net, target.with_name(target.name + ".index.json")),
                                             values(net), up.load(net, tmp_path / "plain.safetensors"), values(net)),
                       seed=4)
    for result in results:
        assert not isinstance(result, BaseException), result
        assert same(result[1], plain_values(0)) and same(result[3], plain_values(9))


def test_a_file_missing_on_one_rank_is_refused_on_every_rank(tmp_path: Path) -> None:
    good = tmp_path / "good.safetensors"
    on_ranks(2, lambda rank, net: up.save(net, good), seed=1)
    index = good.with_name(good.name + ".index.json")

    def body(rank: int, net: Any) -> Any:
        before = values(net)
        try:
            up.load(net, index if rank == 0 else tmp_path / "missing.safetensors")
        except CheckpointError as exc:
            return str(exc), same(values(net), before)
        return "loaded", False

    (first, kept0), (second, kept1) = on_ranks(2, body, seed=2)
    assert first == second and "failed on rank 1" in first and "missing.safetensors" in first
    assert kept0 and kept1


def test_a_write_failing_part_way_on_one_rank_is_put_back_on_every_rank(_no_injected_failure: Any) -> None:
    _no_injected_failure.fail_block_write_on = (1, 3)  # rank 1's third block write raises

    def body(rank: int, net: Any) -> Any:
        before = values(net)
        try:
            up.params(net).load({n: v + 1 for n, v in before.items()})
        except WriteError as exc:
            return str(exc), exc.changed, same(values(net), before)
        return "written", True, False

    results = on_ranks(3, body)
    messages = {r[0] for r in results}
    assert len(messages) == 1, messages
    message = messages.pop()
    assert "failed on rank 1" in message and "simulated failure on rank 1" in message
    assert "unchanged on all 3 ranks" in message
    assert all(changed is False and kept for _, changed, kept in results)


def test_a_state_that_does_not_fit_on_one_rank_is_refused_everywhere() -> None:
    def body(rank: int, net: Any) -> Any:
        state = values(net)
        if rank == 2:
            state["0.weight"] = np.zeros((2, 2), np.float32)
        try:
            up.params(net).load(state)
        except up.UnifyParamsError as exc:
            return str(exc)
        return "loaded"

    messages = set(on_ranks(3, body))
    assert len(messages) == 1 and "failed on rank 2" in messages.pop()


def test_seeded_init_is_the_same_on_any_number_of_ranks() -> None:
    plain = sn.Sequential(*sn.build(0).layers)
    up.initialize(plain, up.init.XavierUniform(), seed=3)
    expected = {n: p.numpy(copy=True) for n, p in up.params(plain).items()}
    for size in (2, 4):
        def body(rank: int, net: Any) -> bool:
            up.initialize(net, up.init.XavierUniform(), seed=3)
            return same(values(net), expected)

        assert on_ranks(size, body) == [True] * size


def _piece_files(folder: Path, pieces: list[tuple[str, tuple[int, int], np.ndarray]]) -> None:
    """Files as torch's distributed checkpoint writes them: blocks under one name, offsets in the header."""
    folder.mkdir()
    for i, (name, at, value) in enumerate(pieces):
        save_file({name: value}, folder / f"shard-{i + 1:05d}-model-00001-of-00001.safetensors",
                  metadata=encode_offsets({name: at}))


def test_torch_style_piece_files_without_an_index_read_whole_and_by_block(tmp_path: Path) -> None:
    full = np.arange(20, dtype=np.float32).reshape(5, 4)
    _piece_files(tmp_path / "dcp", [("w", (0, 0), full[:3]), ("w", (3, 0), full[3:])])
    with open_checkpoint(tmp_path / "dcp") as ckpt:
        np.testing.assert_array_equal(ckpt.tensor("w"), full)
        np.testing.assert_array_equal(ckpt.value("w").read((2, 1), (2, 3)), full[2:4, 1:4])  # across two pieces


@pytest.mark.parametrize(("pieces", "error"), [
    ([((0, 0), slice(0, 3)), ((2, 0), slice(2, 5))], "overlap"),
    ([((0, 0), slice(0, 2)), ((3, 0), slice(3, 5))], "cover 16 of its 20 elements"),
])
def test_pieces_that_do_not_tile_are_refused(tmp_path: Path, pieces: list[Any], error: str) -> None:
    full = np.arange(20, dtype=np.float32).reshape(5, 4)
    _piece_files(tmp_path / "bad", [("w", at, full[rows]) for at, rows in pieces])
    with pytest.raises(CheckpointError, match=error):
        open_checkpoint(tmp_path / "bad")


def test_offsets_that_are_not_a_list_of_counts_are_refused(tmp_path: Path) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    for i in range(2):
        save_file({"w": np.zeros((2, 2), np.float32)}, folder / f"r{i}.safetensors",
                  metadata={"DCP_SHARDING_INFO": json.dumps({"w": {"saved_offsets": [-1, 0]}})})
    with pytest.raises(CheckpointError, match="non-negative integers"):
        open_checkpoint(folder)


def test_a_save_failing_on_one_rank_leaves_the_earlier_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rank 1 cannot write its file: every rank raises the same error, no new file is left, and the
    checkpoint saved there before is untouched and still loads."""
    from unifyparams.checkpoint import collective

    target = tmp_path / "model.safetensors"
    on_ranks(2, lambda rank, net: up.save(net, target), seed=1)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    real = collective.write_file

    def failing(out: Any, infos: Any, value_of: Any, metadata: Any = None) -> None:
        if _rank.get() == 1:
            raise OSError(28, "No space left on device")
        real(out, infos, value_of, metadata)

    _rank = _RankOf()
    monkeypatch.setattr(collective, "write_file", failing)

    def body(rank: int, net: Any) -> str:
        _rank.set(rank)
        try:
            up.save(net, target)
        except up.UnifyParamsError as exc:
            return str(exc)
        return "saved"

    messages = set(on_ranks(2, body, seed=2))
    assert len(messages) == 1
    message = messages.pop()
    assert "failed on rank 1" in message and "No space left on device" in message
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # nothing new, nothing replaced
    plain = sn.Sequential(*sn.build(7).layers)
    up.load(plain, target.with_name(target.name + ".index.json"))
    assert same({n: p.numpy() for n, p in up.params(plain).items()}, plain_values(1))


class _RankOf:
    """The rank of the calling thread, as the test sets it."""

    def __init__(self) -> None:
        import threading

        self._local = threading.local()

    def set(self, rank: int) -> None:
        self._local.rank = rank

    def get(self) -> int:
        return int(getattr(self._local, "rank", -1))


def test_saving_again_replaces_the_earlier_files(tmp_path: Path) -> None:
    target = tmp_path / "model.safetensors"
    on_ranks(2, lambda rank, net: up.save(net, target), seed=1)
    first = sorted(p.name for p in tmp_path.glob("*.safetensors"))
    on_ranks(2, lambda rank, net: up.save(net, target), seed=2)
    second = sorted(p.name for p in tmp_path.glob("*.safetensors"))
    assert len(first) == len(second) == 2 and not set(first) & set(second)  # new names, the old ones removed
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*second, "model.safetensors.index.json"])
    plain = sn.Sequential(*sn.build(7).layers)
    up.load(plain, target.with_name(target.name + ".index.json"))
    assert same({n: p.numpy() for n, p in up.params(plain).items()}, plain_values(2))


def test_a_port_from_a_sharded_model_failing_on_one_rank_fails_on_every_rank(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every value of a sharded source is a collective read; rank 1's destination refuses its third
    write: the ranks agree after each value, so none waits for another, and every rank's
    destination is put back, with one error."""
    rank_of = _RankOf()
    real = sn.NumpyAdapter.write
    writes: dict[int, int] = {}

    def refusing(self: Any, native: Any, value: np.ndarray) -> None:
        rank = rank_of.get()
        writes[rank] = writes.get(rank, 0) + 1
        if rank == 1 and writes[rank] == 3:
            raise RuntimeError("destination full")
        real(self, native, value)

    monkeypatch.setattr(sn.NumpyAdapter, "write", refusing)

    def body(rank: int, net: Any) -> Any:
        rank_of.set(rank)
        plain = sn.Sequential(*sn.build(8).layers)
        before = {n: p.numpy(copy=True) for n, p in up.params(plain).items()}
        try:
            up.port(net, plain)
        except up.UnifyParamsError as exc:
            after = {n: p.numpy() for n, p in up.params(plain).items()}
            return str(exc), same(after, before)
        return "ported", False

    results = on_ranks(2, body)
    assert results[0][0] == results[1][0] and "failed on rank 1" in results[0][0] and "destination full" in results[0][0]
    assert all(kept for _, kept in results)
    monkeypatch.setattr(sn.NumpyAdapter, "write", real)
    ported = on_ranks(2, lambda rank, net: (up.port(net, plain := sn.Sequential(*sn.build(8).layers)),
                                            {n: p.numpy(copy=True) for n, p in up.params(plain).items()})[1])
    assert all(same(values_, plain_values(0)) for values_ in ported)
