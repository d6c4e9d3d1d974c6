"""Copies between host arrays (:mod:`unifyparams.copying`) and uninterrupted blocks: framework-free."""

from __future__ import annotations

import os
import signal
import threading

import numpy as np
import pytest

from unifyparams import copying, transpose_kernel
from unifyparams.uninterrupted import uninterrupted
from unifyparams.workers import threads

#: (source shape, permutation of it that the destination holds)
CASES = [
    ((64, 48), (1, 0)),
    ((37, 83), (1, 0)),  # not whole 16 x 16 blocks either way
    ((256, 17), (1, 0)),
    ((3, 3, 40, 24), (3, 2, 0, 1)),  # a Keras conv kernel (H, W, I, O) into PyTorch's (O, I, H, W)
    ((5, 7, 9), (2, 0, 1)),
    ((1, 300, 1, 17), (3, 1, 0, 2)),  # size-1 axes
    ((2000, 33), (0, 1)),  # the same order: one flat copy
]


@pytest.fixture(params=["one-thread", "tiled", "kernel"])
def tiled(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Small arrays through the tiled, threaded path too (its thresholds lowered), and through the
    compiled transpose (``kernel``: its threshold lowered; the other two run without it)."""
    if request.param == "kernel":
        if not transpose_kernel.available():
            pytest.skip("the compiled transpose is not built here (test_the_compiled_transpose_is_built says why)")
        monkeypatch.setattr(copying, "KERNEL_BYTES", 0)
        monkeypatch.setattr(copying, "PARALLEL_BYTES", 0)
        monkeypatch.setattr(transpose_kernel, "_MIN_ROWS", 16)
    else:
        monkeypatch.setattr(transpose_kernel, "_kernel", None)
        monkeypatch.setattr(transpose_kernel, "_loaded", True)
    if request.param == "tiled":
        monkeypatch.setattr(copying, "PARALLEL_BYTES", 0)
        monkeypatch.setattr(copying, "TILE_BYTES", 256)
    return request.param != "one-thread"


@pytest.mark.parametrize(("shape", "axes"), CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.int16, np.uint8])
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


def test_the_compiled_transpose_is_built() -> None:
    """CI builds the kernel (a C compiler is there); a missing build would silently fall back to NumPy."""
    if not (os.uname().machine in ("x86_64", "AMD64") and "avx2" in open("/proc/cpuinfo").read()):
        pytest.skip("the kernel needs an x86-64 CPU with AVX2")
    assert transpose_kernel.available()


@pytest.mark.skipif(not transpose_kernel.available(), reason="the compiled transpose is not built here")
@pytest.mark.parametrize("rows", [16, 17, 31, 64, 100, 257])
@pytest.mark.parametrize("cols", [16, 23, 48, 130])  # 2-byte blocks are 32 x 32: remainders both ways
@pytest.mark.parametrize("parts", [1, 2, 3])
@pytest.mark.parametrize(("bits_type", "dtype"), [(np.uint32, np.float32), (np.uint16, np.float16),
                                                   (np.uint16, "bfloat16")])
def test_the_kernel_moves_every_bit_of_padded_rows(monkeypatch: pytest.MonkeyPatch, rows: int, cols: int,
                                                   parts: int, bits_type: type, dtype: object) -> None:
    """Bits, not floats: NaN payloads and signalling NaNs pass unchanged; rows wider than the matrix
    (views into larger arrays) on both sides; parts of rows per thread; nothing written outside."""
    import ml_dtypes

    dtype = np.dtype(ml_dtypes.bfloat16 if dtype == "bfloat16" else dtype)
    monkeypatch.setattr(transpose_kernel, "_MIN_ROWS", 1)
    top = np.iinfo(bits_type).max
    bits = np.random.default_rng(rows * cols).integers(0, top, size=(cols + 3, rows + 5), dtype=bits_type,
                                                       endpoint=True)
    source = bits.view(dtype)[1 : cols + 1, 2 : rows + 2]  # (cols, rows), row stride rows + 5
    out = np.zeros((rows + 2, cols + 7), bits_type)
    dst = out.view(dtype)[1 : rows + 1, 3 : cols + 3]
    assert transpose_kernel.transpose(dst, source.T, parts)
    assert dst.view(bits_type).tobytes() == np.ascontiguousarray(source.T).view(bits_type).tobytes()
    outside = np.ones(out.shape, bool)
    outside[1 : rows + 1, 3 : cols + 3] = False
    assert not out[outside].any()


@pytest.mark.skipif(not transpose_kernel.available(), reason="the compiled transpose is not built here")
def test_the_kernel_declines_what_it_does_not_do() -> None:
    """Not 4- or 2-byte, too small, not a transpose, rows that overlap: left to NumPy (False, nothing written)."""
    a = np.arange(64 * 64, dtype=np.float32).reshape(64, 64)
    out = np.zeros((64, 64), np.float32)
    assert not transpose_kernel.transpose(out.astype(np.float64), a.T.astype(np.float64))
    assert not transpose_kernel.transpose(out[:8], a.T[:8])  # fewer rows than one block
    assert not transpose_kernel.transpose(out, a)  # the same order: a plain copy
    assert not transpose_kernel.transpose(out, np.lib.stride_tricks.as_strided(a, (64, 64), (4, 8)))
    assert not out.any()


@pytest.mark.skipif(not transpose_kernel.available(), reason="the compiled transpose is not built here")
def test_copy_into_hands_a_large_float32_transpose_to_the_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    """Either orientation (the destination or the source row-major), conv kernels whose spatial axes
    merge away (1 x 1); a float64 transpose stays NumPy's."""
    calls: list[tuple[int, ...]] = []
    real = transpose_kernel.transpose

    def spy(dst: np.ndarray, src: np.ndarray, parts: int | None = None) -> bool:
        done = real(dst, src, parts)
        if done:
            calls.append(dst.shape)
        return done

    monkeypatch.setattr(transpose_kernel, "transpose", spy)
    kernel = np.random.default_rng(0).random((300, 200), dtype=np.float32)
    for dst, src in ((np.empty((200, 300), np.float32), kernel.T),
                     (np.empty((300, 200), np.float32).T, np.ascontiguousarray(kernel.T)),
                     (np.empty((200, 300, 1, 1), np.float32), kernel.reshape(1, 1, 300, 200).transpose(3, 2, 0, 1)),
                     (np.empty((200, 300)), kernel.T.astype(np.float64))):
        copying.copy_into(dst, src)
        assert np.array_equal(dst, src)
    assert len(calls) == 3


@pytest.mark.parametrize("shape", [(0, 3), (3, 5), (7,), (1024, 1024), (3, 1 << 20)])
def test_empty_aligned_starts_at_the_alignment_and_large_arrays_at_a_huge_page(shape: tuple[int, ...]) -> None:
    out = copying.empty_aligned(shape, np.dtype(np.float32))
    assert out.shape == shape and out.dtype == np.float32 and out.flags.c_contiguous and out.flags.writeable
    if out.size:
        assert out.ctypes.data % 64 == 0
    if out.nbytes >= copying.HUGE_PAGE_ARRAY_BYTES:
        assert out.ctypes.data % copying.HUGE_PAGE_BYTES == 0
    out[...] = 1.0  # every byte is the array's own
    assert copying.empty_aligned((4,), np.dtype(np.int8), alignment=256).ctypes.data % 256 == 0


def test_empty_aligned_refuses_an_alignment_that_is_not_a_power_of_two() -> None:
    with pytest.raises(ValueError, match="power of two, got 48"):
        copying.empty_aligned((4,), np.dtype(np.float32), alignment=48)


def test_a_transpose_in_a_stream_is_cut_into_bands_no_narrower_than_min_band_bytes() -> None:
    """Alone, a transpose narrower than a band per thread is cut so every thread has one; in a
    stream (``fill_threads=False``) the other values keep the threads busy, and it stays whole."""
    if not transpose_kernel.available():
        pytest.skip("the compiled transpose is not built here (test_the_compiled_transpose_is_built says why)")
    src = np.zeros((1024, 1024), np.float32).T
    dst = np.empty((1024, 1024), np.float32)
    assert len(copying.split(dst, src, 1 << 20, fill_threads=False) or []) == 1
    alone = copying.split(dst, src, 1 << 20) or []
    assert len(alone) == min(threads(), 4)
