"""Copies streamed through the worker threads (unifyparams.streamed): every value lands, in order of
report, each part's pages mapped and let go around it, and a failure says exactly what was copied."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

import unifyparams as up
from unifyparams import copying, memory_write, streamed, transpose_kernel
from unifyparams.errors import WriteError
from unifyparams.workers import threads


@pytest.fixture(autouse=True)
def small_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Parts of 64 KiB (bands of a transpose as narrow as one cache line) and a window of 2 per
    thread: many parts per value, several values in flight."""
    monkeypatch.setattr(streamed, "PART_BYTES", 1 << 16)
    monkeypatch.setattr(streamed, "PARALLEL_BYTES", 1 << 17)
    monkeypatch.setattr(copying, "MIN_BAND_BYTES", 64)


def _pairs() -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    kernel = rng.random((384, 512), dtype=np.float32)  # a transposed view: the kernel's parts, where built
    flat = rng.random((256, 300))  # float64, plain order: flat parts
    conv = rng.random((3, 3, 64, 40), dtype=np.float32)  # a 4-D reordering: copied whole
    cast = rng.random((200, 200))  # float64 into float32: copied whole
    small = rng.random(10, dtype=np.float32)  # small: copied on the calling thread
    half = rng.random((128, 96)).astype(np.float16)  # 2-byte transpose
    return [(np.empty((512, 384), np.float32), kernel.T), (np.empty_like(flat), flat),
            (np.empty((40, 64, 3, 3), np.float32), conv.transpose(3, 2, 0, 1)), (np.empty((200, 200), np.float32), cast),
            (np.empty(10, np.float32), small), (np.empty((96, 128), np.float16), half.T),
            (np.empty((512, 384), np.float32), kernel.T)]


def test_every_value_lands_and_is_reported_once_in_order() -> None:
    pairs = _pairs()
    reported: list[int] = []
    streamed.copy_streamed(pairs, done=reported.append)
    assert reported == list(range(len(pairs)))
    for dst, src in pairs:
        np.testing.assert_array_equal(dst, src.astype(dst.dtype))


def test_each_part_is_prepared_before_and_let_go_after_its_copy() -> None:
    """``before`` sees every part before it is copied and ``after`` once it is; the parts of a split
    value cover it exactly, each one run of the source's memory."""
    dst, src = np.zeros((512, 384), np.float32), np.random.default_rng(1).random((384, 512), dtype=np.float32).T
    events: list[tuple[str, int, int]] = []
    lock = threading.Lock()

    def note(kind: str) -> object:
        def record(part: np.ndarray) -> None:
            with lock:
                events.append((kind, *copying.byte_bounds(part)))
        return record

    streamed.copy_streamed([(dst, src)], done=lambda k: None, before=note("before"), after=note("after"))
    np.testing.assert_array_equal(dst, src)
    befores = [(lo, hi) for kind, lo, hi in events if kind == "before"]
    afters = [(lo, hi) for kind, lo, hi in events if kind == "after"]
    assert sorted(befores) == sorted(afters)
    if transpose_kernel.available():
        assert len(befores) == 384 * 512 * 4 // streamed.PART_BYTES
        start, end = copying.byte_bounds(src)
        spans = sorted(befores)
        assert spans[0][0] == start and spans[-1][1] == end
        assert all(a[1] == b[0] for a, b in zip(spans, spans[1:], strict=False))  # contiguous runs, no gaps
        for lo, hi in spans:
            assert hi - lo == streamed.PART_BYTES  # each part a single run of the source
    for k, (kind, lo, hi) in enumerate(events):
        if kind == "after":
            assert ("before", lo, hi) in events[:k]


def test_a_failed_copy_stops_the_stream_and_says_what_was_copied(monkeypatch: pytest.MonkeyPatch) -> None:
    """The third value's copy fails: the parts in flight finish, nothing after is started, and the
    error names the values copied whole and those that may be partly copied."""
    pairs = [(np.zeros((512, 384), np.float32), np.ones((384, 512), np.float32).T) for _ in range(6)]
    failing = pairs[2][0]
    real = streamed.copy_into

    def copy_into(dst: np.ndarray, src: np.ndarray, threaded: bool = True) -> None:
        if np.shares_memory(dst, failing):
            raise MemoryError("no memory for a few kilobytes")
        real(dst, src, threaded)

    monkeypatch.setattr(streamed, "copy_into", copy_into)
    reported: list[int] = []
    with pytest.raises(streamed.StreamError) as caught:
        streamed.copy_streamed(pairs, done=reported.append)
    error = caught.value
    assert isinstance(error.cause, MemoryError)
    assert error.done == reported == [0, 1]
    assert 2 in error.partial and all(k > 2 for k in error.partial if k != 2)
    for k in error.done:
        assert (pairs[k][0] == 1).all()
    for k in range(6):
        if k not in error.done and k not in error.partial:
            assert (pairs[k][0] == 0).all(), f"value {k} was written after the failure"


def test_a_load_whose_copy_fails_names_what_holds_new_values(monkeypatch: pytest.MonkeyPatch) -> None:
    """Through a load: the WriteError says which parameters hold new values, which may be partly
    written, which keep their old ones; and it says the model changed."""
    net = torch.nn.Sequential(*[torch.nn.Linear(256, 256, bias=False) for _ in range(5)])
    state = {name: np.full(value.shape, 7.0, np.float32) for name, value in up.params(net).numpy().items()}
    real = streamed.copy_into
    target = net[3].weight.detach().numpy()

    def copy_into(dst: np.ndarray, src: np.ndarray, threaded: bool = True) -> None:
        if np.shares_memory(dst, target):
            raise MemoryError("no memory for a few kilobytes")
        real(dst, src, threaded)

    monkeypatch.setattr(streamed, "copy_into", copy_into)
    with pytest.raises(WriteError) as caught:
        up.params(net).load(state)
    message = str(caught.value)
    assert caught.value.changed and caught.value.parameter is not None
    assert "'3.weight'" in message and "may be partly written" in message and "Reload or re-initialize" in message
    for i in range(3):
        assert (net[i].weight.detach().numpy() == 7.0).all()
        assert f"{i}.weight" in caught.value.not_restored


def test_copy_all_reports_progress_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    net = torch.nn.Sequential(*[torch.nn.Linear(256, 256) for _ in range(3)])
    state = {name: np.full(value.shape, 2.0, np.float32) for name, value in up.params(net).numpy().items()}
    sizes: list[int] = []
    real = memory_write.copy_all

    def spy(targets: list[memory_write.Target], what: str, advance: object) -> None:
        real(targets, what, lambda n: sizes.append(n))

    monkeypatch.setattr(memory_write, "copy_all", spy)
    up.params(net).load(state)
    assert sizes == [p.numel() * 4 for p in net.parameters()]
    assert all((p.detach().numpy() == 2.0).all() for p in net.parameters())


def test_a_wide_transpose_splits_into_bands_of_whole_pages_of_each_destination_row(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Bands of a transposed copy write at least MIN_BAND_BYTES of each destination row, unless that
    would leave a worker thread without a band."""
    monkeypatch.setattr(copying, "MIN_BAND_BYTES", 1 << 12)
    if not transpose_kernel.available():
        pytest.skip("bands are the compiled transpose's (test_the_compiled_transpose_is_built says why)")
    wide = np.empty((64, 4096), np.float32)  # destination rows of 16 KiB
    parts = copying.split(wide, np.ones((4096, 64), np.float32).T, 1 << 12)
    assert parts is not None and [d.shape[1] for d, _ in parts] == [1024] * 4
    narrow = np.empty((4096, 256), np.float32)  # rows of 1 KiB: still a band per thread
    parts = copying.split(narrow, np.ones((256, 4096), np.float32).T, 1 << 12)
    assert parts is not None and len(parts) == min(threads(), 256 // 16)


def test_a_callback_that_raises_stops_the_stream_and_is_not_called_again() -> None:
    """``done`` raising (a commit the framework refuses) is raised as it is, once the parts in flight
    finish; ``done`` is not called for that value again, nor for any after it."""
    pairs = [(np.zeros((512, 384), np.float32), np.ones((384, 512), np.float32).T) for _ in range(5)]
    calls: list[int] = []

    def done(k: int) -> None:
        calls.append(k)
        if k == 1:
            raise RuntimeError("assign refused")

    with pytest.raises(RuntimeError, match="assign refused"):
        streamed.copy_streamed(pairs, done=done)
    assert calls == [0, 1]
