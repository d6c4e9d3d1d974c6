"""Copies between host arrays (:mod:`unifyparams.copying`) and uninterrupted blocks: framework-free."""

from __future__ import annotations

import os
import signal
import threading

import numpy as np
import pytest

from unifyparams import copying
from unifyparams.uninterrupted import uninterrupted

#: (source shape, permutation of it that the destination holds)
CASES = [
    ((64, 48), (1, 0)),
    ((3, 3, 40, 24), (3, 2, 0, 1)),  # a Keras conv kernel (H, W, I, O) into PyTorch's (O, I, H, W)
    ((5, 7, 9), (2, 0, 1)),
    ((1, 300, 1, 17), (3, 1, 0, 2)),  # size-1 axes
    ((2000, 33), (0, 1)),  # the same order: one flat copy
]


@pytest.fixture(params=[False, True], ids=["one-thread", "tiled"])
def tiled(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Small arrays through the tiled, threaded path too (its thresholds lowered)."""
    if request.param:
        monkeypatch.setattr(copying, "PARALLEL_BYTES", 0)
        monkeypatch.setattr(copying, "TILE_BYTES", 256)
    return bool(request.param)


@pytest.mark.parametrize(("shape", "axes"), CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16, np.uint8])
def test_every_layout_is_copied_exactly(tiled: bool, shape: tuple[int, ...], axes: tuple[int, ...], dtype: type) -> None:
    source = np.arange(np.prod(shape)).astype(dtype).reshape(shape)
    src = source.transpose(axes)
    dst = np.full(src.shape, 7, dtype)
    copying.copy_into(dst, src)
    assert np.array_equal(dst, src)


def test_strided_and_reversed_arrays_on_both_sides(tiled: bool) -> None:
    base = np.arange(40 * 30, dtype=np.float32).reshape(40, 30)
    src = base[::-2, 3::2]  # negative and non-unit strides
    out = np.zeros((40, 60), np.float32)
    dst = out[::2, ::4][:, : src.shape[1]][:, ::-1]
    copying.copy_into(dst, src)
    assert np.array_equal(dst, src)
    untouched = np.ones(out.shape, bool)
    untouched[::2, ::4][:, : src.shape[1]] = False
    assert not out[untouched].any()  # nothing written outside the destination view


def test_casts_as_numpy_same_kind_and_refuses_other_shapes() -> None:
    dst = np.zeros((2, 3), np.float32)
    copying.copy_into(dst, np.arange(6, dtype=np.float64).reshape(3, 2).T)
    assert dst.tolist() == [[0.0, 2.0, 4.0], [1.0, 3.0, 5.0]]
    with pytest.raises(ValueError, match=r"destination \(2, 3\), source \(3, 2\)"):
        copying.copy_into(dst, np.zeros((3, 2), np.float32))
    with pytest.raises(TypeError):
        copying.copy_into(np.zeros(3, np.int32), np.zeros(3, np.float64))  # not same_kind


def test_tiles_cover_every_element_once() -> None:
    shape = (37, 5, 11)
    seen = np.zeros(shape, int)
    for tile in copying._tiles(shape, 50):
        assert seen[tile].size <= 50
        seen[tile] += 1
    assert (seen == 1).all()


def test_a_signal_inside_an_uninterrupted_block_arrives_after_it() -> None:
    steps: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        with uninterrupted():
            os.kill(os.getpid(), signal.SIGINT)
            steps.append("after the signal")  # still runs: the handler waits
    assert steps == ["after the signal"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back


def test_handlers_are_put_back_and_other_threads_are_left_alone() -> None:
    seen: list[int] = []
    previous = signal.signal(signal.SIGUSR1, lambda signum, frame: seen.append(signum))
    try:
        with uninterrupted():
            os.kill(os.getpid(), signal.SIGUSR1)
            assert seen == []
        assert seen == [signal.SIGUSR1]
        result: list[str] = []
        thread = threading.Thread(target=lambda: result.append(_in_a_thread()))
        thread.start()
        thread.join()
        assert result == ["ran"]
    finally:
        signal.signal(signal.SIGUSR1, previous)


def _in_a_thread() -> str:
    with uninterrupted():  # signal.signal would raise outside the main thread: nothing is replaced
        return "ran"
