"""The initializer catalog without any framework: formulas, statistics, resolution, streams."""

from __future__ import annotations

import math

import numpy as np
import pytest

import unifyparams as up
from unifyparams import workers
from unifyparams.init import ParamInfo, streams
from unifyparams.init.fans import calculate_gain, compute_fans

from .numpy_framework import Dense, Norm, Sequential

INFO = ParamInfo("0.weight", up.Role.WEIGHT, (400, 300), np.dtype(np.float32))


def fill(init: up.init.Initializer, shape: tuple[int, ...] = (400, 300), seed: int = 0) -> np.ndarray:
    return init.fill(shape, ParamInfo("w", up.Role.WEIGHT, shape, np.dtype(np.float64)), seed).astype(np.float64)


def test_fans_and_gains_match_pytorch_definitions() -> None:
    assert compute_fans((256, 20)) == (20, 256)
    assert compute_fans((8, 3, 5, 5)) == (75, 200)
    assert calculate_gain("relu") == pytest.approx(math.sqrt(2))
    assert calculate_gain("tanh") == pytest.approx(5 / 3)
    assert calculate_gain("leaky_relu") == pytest.approx(math.sqrt(2 / (1 + 0.01**2)))
    with pytest.raises(up.InitializerError, match="2 dimensions"):
        compute_fans((5,), "0.bias")


@pytest.mark.parametrize(
    "init, bound",
    [
        (up.init.XavierUniform(), math.sqrt(6 / 700)),
        (up.init.XavierUniform(gain=2), 2 * math.sqrt(6 / 700)),
        (up.init.KaimingUniform(nonlinearity="relu"), math.sqrt(2) * math.sqrt(3 / 300)),
        (up.init.KaimingUniform(a=math.sqrt(5)), math.sqrt(1 / 300)),  # PyTorch's Linear default
        (up.init.MXNetXavier(), math.sqrt(3 / 350)),
        (up.init.VarianceScaling(2.0, "fan_in", "uniform"), math.sqrt(6 / 300)),
    ],
)
def test_uniform_bounds(init: up.init.Initializer, bound: float) -> None:
    w = fill(init)
    assert np.abs(w).max() <= bound
    assert np.abs(w).max() > 0.99 * bound  # 120,000 samples reach the edge
    n = w.size
    assert abs(w.std() - bound / math.sqrt(3)) <= 6 * bound / math.sqrt(3) / math.sqrt(2 * n) * 1.2


@pytest.mark.parametrize(
    "init, std",
    [
        (up.init.Normal(0, 0.01), 0.01),
        (up.init.XavierNormal(), math.sqrt(2 / 700)),
        (up.init.KaimingNormal(nonlinearity="relu"), math.sqrt(2 / 300)),
        (up.init.VarianceScaling(2.0, "fan_in", "untruncated_normal"), math.sqrt(2 / 300)),
    ],
)
def test_normal_statistics(init: up.init.Initializer, std: float) -> None:
    w = fill(init)
    n = w.size
    assert abs(w.mean()) <= 6 * std / math.sqrt(n)
    assert abs(w.std() - std) <= 6 * std / math.sqrt(2 * n)


def test_truncated_normals() -> None:
    w = fill(up.init.TruncatedNormal(0.0, 1.0, -2.0, 2.0))
    assert w.min() >= -2 and w.max() <= 2
    assert abs(w.std() - 0.8796) < 0.01  # std of N(0, 1) cut at +-2
    keras_he = fill(up.init.get("he_normal"))  # Keras: truncated, variance corrected
    assert np.abs(keras_he).max() <= 2 * math.sqrt(2 / 300) / 0.8796 + 1e-12
    assert abs(keras_he.std() - math.sqrt(2 / 300)) < 0.02 * math.sqrt(2 / 300)


def test_orthogonal_eye_dirac_constants() -> None:
    q = fill(up.init.Orthogonal(gain=2.0), (30, 50))
    np.testing.assert_allclose(q @ q.T, 4 * np.eye(30), atol=1e-10)
    q = fill(up.init.Orthogonal(), (50, 30))
    np.testing.assert_allclose(q.T @ q, np.eye(30), atol=1e-10)
    np.testing.assert_array_equal(fill(up.init.Eye(), (3, 4)), np.eye(3, 4))
    d = fill(up.init.Dirac(), (4, 4, 3, 3))
    x = np.random.default_rng(0).normal(size=(4, 5, 5))
    out = np.einsum("oikl,ikl->o", d, x[:, 1:4, 1:4])  # the centre pixel passes through
    np.testing.assert_allclose(out, x[:, 2, 2])
    assert (fill(up.init.Constant(42), (3,)) == 42).all() and (fill(up.init.Ones(), (2,)) == 1).all()


def test_streams_are_keyed_by_name_and_independent_of_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    a = streams.normal((3, 5), "0.weight", 7, 0.0, 1.0, np.dtype(np.float32))
    b = streams.normal((3, 5), "0.weight", 7, 0.0, 1.0, np.dtype(np.float32))
    c = streams.normal((3, 5), "1.weight", 7, 0.0, 1.0, np.dtype(np.float32))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    monkeypatch.setattr(streams, "CHUNK", 4)  # many chunks, filled in parallel
    big1 = streams.uniform((50, 7), "w", 1, -1, 1, np.dtype(np.float32))
    monkeypatch.setattr(streams, "_threads", lambda: 1)
    monkeypatch.setattr(workers, "threads", lambda: 1)
    monkeypatch.setattr(workers, "_pool", None)  # a one-thread pool
    big2 = streams.uniform((50, 7), "w", 1, -1, 1, np.dtype(np.float32))
    assert np.array_equal(big1, big2)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", ["uniform", "normal"])
def test_a_chunk_drawn_in_parts_by_threads_has_the_same_bits(monkeypatch: pytest.MonkeyPatch, kind: str,
                                                             dtype: type) -> None:
    """Parts start part way through a chunk's stream (PCG64 advanced, an odd float32 offset too) and
    are drawn in cache-sized blocks: the values are those of the chunk drawn whole, in one thread, and
    of a strided destination (drawn chunk by chunk into a buffer), for every number of threads."""
    monkeypatch.setattr(streams, "CHUNK", 1001)  # odd chunks: odd part offsets, a Box-Muller pair short
    monkeypatch.setattr(streams, "_MIN_PART", 7)
    monkeypatch.setattr(streams, "_BLOCK", 64)

    def draw(out: np.ndarray | None = None) -> np.ndarray:
        args = (-0.5, 2.0) if kind == "uniform" else (0.1, 0.03)
        return getattr(streams, kind)((3, 1001), "enc.w", 11, *args, np.dtype(dtype), out)

    monkeypatch.setattr(streams, "_threads", lambda: 1)
    whole = draw()
    for threads in (2, 5, 8):  # split in that many parts (the shared pool runs them, whatever its size)
        monkeypatch.setattr(streams, "_threads", lambda t=threads: t)
        assert draw().tobytes() == whole.tobytes(), threads
    strided = draw(np.empty((1001, 3), dtype).T)
    assert np.ascontiguousarray(strided).tobytes() == whole.tobytes()
    assert streams.stream_at(3, "w", 0, 5, np.dtype(dtype)).random(4, dtype=dtype).tobytes() == (
        streams.generator(3, "w").random(9, dtype=dtype)[5:].tobytes())


def test_get_resolves_names_classes_instances_and_callables() -> None:
    assert isinstance(up.init.get("glorot_uniform"), up.init.XavierUniform)
    assert isinstance(up.init.get("xavier_normal"), up.init.XavierNormal)
    assert isinstance(up.init.get("glorot_normal"), up.init.VarianceScaling)  # Keras truncates
    assert isinstance(up.init.get(up.init.Zeros), up.init.Zeros)
    assert isinstance(up.init.get(lambda shape, rng: np.zeros(shape)), up.init.CallableInitializer)
    with pytest.raises(up.InitializerError, match="xavier_uniform"):
        up.init.get("xavier_unifrom")
    for bad in (lambda: up.init.Normal(0, 0), lambda: up.init.Uniform(1, 0), lambda: up.init.KaimingUniform(mode="x"),
                lambda: up.init.Constant("a"), lambda: up.init.KaimingNormal(nonlinearity="swishy")):
        with pytest.raises(up.InitializerError, match="(?i)received"):
            bad()


def test_initialize_numpy_model_role_aware_and_all_or_nothing() -> None:
    net = Sequential(Dense(3, 4), Dense(4, 2))
    names = up.initialize(net, up.init.Constant(2.0))
    assert names == ["0.weight", "0.bias", "1.weight", "1.bias"]
    ps = up.params(net)
    assert (ps["0.weight"].numpy() == 2).all() and (ps["0.bias"].numpy() == 0).all()
    before = ps.numpy(copy=True)
    calls = []

    def second_fails(shape, rng):
        calls.append(shape)
        return np.zeros(shape) if len(calls) == 1 else np.zeros((1,))

    with pytest.raises(up.InitializerError, match="1.weight"):
        up.initialize(net, second_fails, select="*.weight")
    for name, value in before.items():
        np.testing.assert_array_equal(ps[name].numpy(), value)  # the first weight did not change either


def test_force_false_skips_parameters_initialized_before() -> None:
    net = Sequential(Dense(3, 4))
    up.initialize(net, up.init.Constant(1.0), select="0.weight")
    assert up.initialize(net, up.init.Constant(5.0), select="*", force=False) == ["0.bias"]
    assert (up.params(net)["0.weight"].numpy() == 1).all()


# --- distributions in detail ---------------------------------------------------------------------


def _binomial_ok(hits: int, n: int, p: float) -> bool:
    """``hits`` out of ``n`` within six standard errors of probability ``p``."""
    return abs(hits / n - p) <= 6 * math.sqrt(p * (1 - p) / n)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_normal_has_the_normal_shape(dtype: type) -> None:
    """Box-Muller (float32) and ziggurat (float64): mean, std and the 1- and 2-sigma masses."""
    w = streams.normal((1000, 1001), "w", 11, 0.5, 2.0, np.dtype(dtype))
    assert w.dtype == dtype
    z = (w.astype(np.float64) - 0.5) / 2.0
    n = z.size
    assert abs(z.mean()) <= 6 / math.sqrt(n) and abs(z.std() - 1) <= 6 / math.sqrt(2 * n)
    assert _binomial_ok(int((np.abs(z) < 1).sum()), n, 0.682689492)
    assert _binomial_ok(int((np.abs(z) < 2).sum()), n, 0.954499736)


def test_normal_with_a_tiny_std_does_not_underflow() -> None:
    w = streams.normal((300, 300), "w", 0, 0.0, 1e-25, np.dtype(np.float32)).astype(np.float64)
    assert abs(w.std() / 1e-25 - 1) < 0.02


@pytest.mark.parametrize("mean, std, a, b", [(1.0, 1.0, 3.0, 3.5), (0.0, 1.0, -3.5, -3.0), (0.0, 0.02, -0.04, 0.04)])
def test_truncated_normal_stays_in_bounds_with_the_truncated_mean(mean: float, std: float, a: float, b: float) -> None:
    w = streams.truncated_normal((300, 400), "w", 2, mean, std, a, b, np.dtype(np.float64))
    assert w.min() >= a and w.max() <= b
    alpha, beta = (a - mean) / std, (b - mean) / std
    pdf = [math.exp(-x * x / 2) / math.sqrt(2 * math.pi) for x in (alpha, beta)]
    mass = 0.5 * (math.erf(beta / math.sqrt(2)) - math.erf(alpha / math.sqrt(2)))
    expected = mean + std * (pdf[0] - pdf[1]) / mass
    assert abs(w.mean() - expected) <= 6 * std / math.sqrt(w.size)  # the truncated std is below std


@pytest.fixture(params=["compiled", "numpy"])
def drawers(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Uniforms drawn by the compiled drawer (unifyparams.draw_kernel, where built) and by NumPy."""
    from unifyparams import draw_kernel

    if request.param == "numpy":
        monkeypatch.setattr(draw_kernel, "_library", None)
        monkeypatch.setattr(draw_kernel, "_loaded", True)
    elif not draw_kernel.available():
        pytest.skip("the compiled drawer is not built here")
    return str(request.param)


def test_the_compiled_drawer_is_built() -> None:
    """CI builds it (a C compiler with 128-bit integers is there); a missing build would silently
    fall back to NumPy."""
    import os

    from unifyparams import draw_kernel

    if os.uname().machine not in ("x86_64", "AMD64", "aarch64", "arm64"):
        pytest.skip("built with 128-bit integers: 64-bit CPUs")
    assert draw_kernel.available()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", [0, 2, 6, 8, 10, 4098])  # four lanes: whole groups and every remainder
def test_the_compiled_drawer_has_the_bits_and_leaves_the_stream_of_generator_random(dtype: type, size: int) -> None:
    from unifyparams import draw_kernel

    if not draw_kernel.available():
        pytest.skip("the compiled drawer is not built here")
    scale = 2.0 ** (-24 if dtype == np.float32 else -53)
    bits = np.random.PCG64(2024)
    got = np.empty(size, dtype)
    assert draw_kernel.uniform(bits, got, 3.0 * scale, -1.5)
    reference = np.random.Generator(np.random.PCG64(2024))
    expected = reference.random(size, dtype=dtype) * np.dtype(dtype).type(3.0) + np.dtype(dtype).type(-1.5)
    assert got.tobytes() == expected.astype(dtype).tobytes()
    assert np.random.Generator(bits).random(3).tobytes() == reference.random(3).tobytes()  # the stream after


def test_the_compiled_drawer_declines_what_it_cannot_draw() -> None:
    """An odd float32 length, a buffered half word, another bit generator, a strided or integer
    array: nothing drawn, the stream untouched (the caller's NumPy path takes them)."""
    from unifyparams import draw_kernel

    buffered = np.random.Generator(np.random.PCG64(1))
    buffered.random(1, dtype=np.float32)
    cases = [(np.random.PCG64(1), np.empty(3, np.float32)), (buffered.bit_generator, np.empty(4, np.float32)),
             (np.random.Philox(1), np.empty(4, np.float32)), (np.random.PCG64(1), np.empty(8, np.float32)[::2]),
             (np.random.PCG64(1), np.empty(4, np.int32))]
    for bits, out in cases:
        before = repr(bits.state)
        assert not draw_kernel.uniform(bits, out, 1.0, 0.0)
        assert repr(bits.state) == before


def test_the_streams_values_are_pinned(drawers: str) -> None:
    """The seeded values are part of the library's contract (a seed gives the same model in every
    release): a faster way to draw them must give these bits. Uniforms are exact arithmetic on
    PCG64's words, so they are the same on every machine and NumPy."""
    import hashlib

    for dtype, digest in ((np.float32, "663fef0d8a97af96"), (np.float64, "e6833272fbb688f4")):
        values = streams.uniform((3, 1001), "enc.w", 11, -0.5, 2.0, np.dtype(dtype))
        assert hashlib.sha256(values.tobytes()).hexdigest()[:16] == digest, dtype


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", [1, 2, 7, 64, 129])
@pytest.mark.parametrize("span", [2.5, 1e-35, 0.0, -3.0])
def test_scaled_uniform_has_the_bits_of_generator_random(monkeypatch: pytest.MonkeyPatch, drawers: str, dtype: type,
                                                          size: int, span: float) -> None:
    """Same values as ``Generator.random(dtype) * span + offset``, from a fresh stream or one with half
    a float32 word buffered, in blocks that end odd; the stream is left where ``random`` leaves it."""
    monkeypatch.setattr(streams, "_BLOCK", 16)
    gen = np.dtype(dtype).type
    for skip in (0, 1, 3):
        ours, theirs = streams.generator(5, "w"), streams.generator(5, "w")
        ours.random(skip, dtype=dtype)
        theirs.random(skip, dtype=dtype)
        got = np.empty(size, dtype)
        streams.scaled_uniform(ours, got, span, 0.25)
        expected = theirs.random(size, dtype=dtype)
        expected *= gen(span)
        expected += gen(0.25)
        assert got.tobytes() == expected.tobytes(), skip
        assert ours.random(5, dtype=dtype).tobytes() == theirs.random(5, dtype=dtype).tobytes(), skip


@pytest.fixture(params=["compiled", "numpy"])
def transposes(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Copies into transposed views through the compiled transpose (where built) and through NumPy."""
    from unifyparams import copying, transpose_kernel

    if request.param == "numpy":
        monkeypatch.setattr(transpose_kernel, "_kernel", None)
        monkeypatch.setattr(transpose_kernel, "_loaded", True)
    else:
        monkeypatch.setattr(copying, "KERNEL_BYTES", 0)
        monkeypatch.setattr(transpose_kernel, "_MIN_ROWS", 1)
    return str(request.param)


@pytest.mark.parametrize("kind", ["uniform", "normal"])
@pytest.mark.parametrize(("shape", "band"), [((53, 61), 37), ((200, 64), 2560)])  # bands of whole rows too
def test_a_strided_view_is_drawn_band_by_band_with_the_same_bits(monkeypatch: pytest.MonkeyPatch, kind: str,
                                                                 transposes: str, shape: tuple[int, int],
                                                                 band: int) -> None:
    """A transposed destination is drawn a small band at a time (bands end inside rows, inside Box-Muller
    halves and at chunk ends), each band from its own place in the stream: the values are those of a
    contiguous draw, and a reserved buffer is used rather than a new one."""
    monkeypatch.setattr(streams, "CHUNK", 1001 if band < 100 else 8192)
    monkeypatch.setattr(streams, "BAND", band)
    monkeypatch.setattr(streams, "_MIN_PART", band)
    monkeypatch.setattr(streams, "_bands", streams._BandBuffers())
    args = (-0.5, 2.0) if kind == "uniform" else (0.1, 0.03)
    for dtype in (np.float32, np.float64):
        expected = getattr(streams, kind)(shape, "enc.w", 11, *args, np.dtype(dtype))
        streams.reserve(np.dtype(dtype))
        reserved = {id(b) for b in streams._bands._free[np.dtype(dtype)]}
        native = np.empty(shape[::-1], dtype)
        getattr(streams, kind)(shape, "enc.w", 11, *args, np.dtype(dtype), native.T)
        assert native.T.tobytes() == expected.tobytes(), dtype
        assert {id(b) for b in streams._bands._free[np.dtype(dtype)]} == reserved  # all given back, none new


def test_uniform_float32_stays_within_its_bounds() -> None:
    w = streams.uniform((2000, 1000), "w", 4, -0.25, 0.75, np.dtype(np.float32))
    assert w.min() >= np.float32(-0.25) and w.max() <= np.float32(0.75)
    assert _binomial_ok(int((w < 0.25).sum()), w.size, 0.5)


def test_chunks_drawn_into_a_strided_view_give_the_same_values(monkeypatch: pytest.MonkeyPatch,
                                                               transposes: str) -> None:
    """A transposed native buffer is filled through its canonical view, chunk by chunk."""
    monkeypatch.setattr(streams, "CHUNK", 1000)  # chunks end inside rows
    for shape, perm in [((37, 29), (1, 0)), ((6, 5, 3, 3), (2, 3, 1, 0)), ((4, 300), (1, 0))]:
        for draw in (
            lambda out, shape=shape: streams.uniform(shape, "w", 3, -1, 1, np.dtype(np.float32), out),
            lambda out, shape=shape: streams.normal(shape, "w", 3, 0, 1, np.dtype(np.float32), out),
            lambda out, shape=shape: streams.truncated_normal(shape, "w", 3, 0, 1, -1, 1, np.dtype(np.float64), out),
        ):
            expected = draw(None)
            native = np.empty(tuple(shape[i] for i in np.argsort(perm)), expected.dtype)
            view = native.transpose(perm)
            assert draw(view) is view
            np.testing.assert_array_equal(view, expected)


# --- resolution and configuration ---------------------------------------------------------------


def test_configs_round_trip_and_resolve() -> None:
    for init in (up.init.VarianceScaling(2.0, "fan_out", "untruncated_normal"), up.init.KaimingUniform(a=0.2),
                 up.init.MXNetXavier("gaussian", "in", 2.0), up.init.TruncatedNormal(0, 0.1, -0.2, 0.2),
                 up.init.Constant(3.0), up.init.Dirac(2)):
        config = init.get_config()
        assert repr(type(init).from_config(config)) == repr(init)
        again = up.init.get({"class_name": type(init).__name__, "config": config})
        assert repr(again) == repr(init)
    assert isinstance(up.init.get("XavierUniform"), up.init.XavierUniform)
    assert up.init.get("constant").value == 0.0
    assert up.init.get("he_uniform").gain == pytest.approx(math.sqrt(2))
    with pytest.raises(up.InitializerError, match="Received"):
        up.init.get({"class_name": "Gaussian"})
    with pytest.raises(up.InitializerError, match="Received"):
        up.init.get({"class_name": "Normal", "config": {"sigma": 1}})
    with pytest.raises(up.InitializerError, match="Received: int 3"):
        up.init.get(3)


def test_param_keyword_is_detected_for_subclasses_and_callables() -> None:
    seen = []

    class Verbose(up.init.Initializer):
        def __call__(self, shape, rng, param=None):
            seen.append((param.name, param.role, param.shape, param.backend))
            return np.zeros(shape)

    Verbose().fill((2, 3), INFO, 0)
    up.init.get(lambda shape, rng, param: seen.append(param.name) or np.zeros(shape)).fill((1,), INFO, 0)
    assert seen == [("0.weight", up.Role.WEIGHT, (400, 300), ""), "0.weight"]


# --- initialize() on the NumPy test framework ----------------------------------------------------


def test_catalog_values_reach_a_transposed_native_layout_unchanged() -> None:
    net = Sequential(Dense(30, 20), Dense(20, 5))  # kernels stored (in, out): canonical (out, in)
    up.initialize(net, up.init.XavierUniform(), seed=8)
    info = ParamInfo("1.weight", up.Role.WEIGHT, (5, 20), np.dtype(np.float32))
    expected = up.init.XavierUniform().fill((5, 20), info, 8)
    np.testing.assert_array_equal(up.params(net)["1.weight"].numpy(), expected)
    assert net.layers[1].kernel.value.shape == (20, 5)


def test_catalog_errors_are_found_before_any_write() -> None:
    net = Sequential(Dense(3, 4), Norm(4))
    before = up.params(net).numpy(copy=True)
    with pytest.raises(up.InitializerError, match=r"2 dimensions.*'0\.bias'"):
        up.initialize(net, up.init.XavierUniform(), select="*", seed=0)  # 0.weight first, then 0.bias
    with pytest.raises(up.InitializerError, match=r"draws real numbers.*'1\.steps'.*int64"):
        up.initialize(net, up.init.Normal(), select="*", seed=0)
    with pytest.raises(up.InitializerError, match=r"Constant\(0\.5\).*'1\.steps'"):
        up.initialize(net, up.init.Constant(0.5), select="*")
    with pytest.raises(up.InitializerError, match=r"Eye needs a 2-D.*'0\.bias'"):
        up.initialize(net, up.init.Eye(), select="0.*")
    for name, value in before.items():
        np.testing.assert_array_equal(up.params(net)[name].numpy(), value)
    up.initialize(net, up.init.Constant(3), select="1.steps")
    assert up.params(net)["1.steps"].numpy() == 3


def test_role_rules_apply_to_models_and_not_to_chosen_parameters() -> None:
    net = Sequential(Dense(3, 4), Norm(4))
    names = up.initialize(net, up.init.Constant(2.0))
    assert names == ["0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean"]  # steps: Role.OTHER, untouched
    assert names.pending == []
    ps = up.params(net)
    assert (ps["1.weight"].numpy() == 1).all() and (ps["1.running_mean"].numpy() == 0).all()
    assert up.initialize(ps.select("*.bias"), up.init.Constant(0.1)) == ["0.bias", "1.bias"]
    assert np.allclose(ps["1.bias"].numpy(), 0.1)
    up.initialize(ps["0.bias"], up.init.Constant(0.2))
    assert np.allclose(ps["0.bias"].numpy(), 0.2)
    assert up.initialize(net, up.init.Ones(), select=["1.weight", "0.bias"]) == ["0.bias", "1.weight"]
    with pytest.raises(up.ParameterNotFoundError, match="0.bias"):
        up.initialize(net, up.init.Ones(), select=["0.bais"])
    with pytest.raises(up.InitializerError, match="needs an initializer"):
        up.initialize(ps, None)


@pytest.mark.parametrize("bad", [-1, 1.5, True, "7", None.__class__])
def test_seeds_must_be_non_negative_ints(bad: object) -> None:
    net = Sequential(Dense(3, 4))
    with pytest.raises(up.InitializerError, match="seed"):
        up.initialize(net, up.init.Normal(), seed=bad)  # type: ignore[arg-type]
    with pytest.raises(up.InitializerError, match="seed"):
        up.seed(bad)  # type: ignore[arg-type]


def test_a_refused_write_restores_what_a_custom_initializer_wrote(numpy_adapter) -> None:
    net = Sequential(Dense(3, 4), Dense(4, 2))
    before = up.params(net).numpy(copy=True)
    numpy_adapter.fail_writes_after = 1  # the second write fails
    with pytest.raises(up.WriteError, match="refused"):
        up.initialize(net, lambda shape, rng: np.ones(shape), select="*.weight")
    for name, value in before.items():
        np.testing.assert_array_equal(up.params(net)[name].numpy(), value)


def test_non_finite_values_pass_only_when_allowed() -> None:
    net = Sequential(Dense(3, 4))
    with pytest.raises(up.InitializerError, match="non-finite.*0.weight"):
        up.initialize(net, lambda shape, rng: np.full(shape, np.inf), select="0.weight")
    up.initialize(net, lambda shape, rng: np.full(shape, np.inf), select="0.weight", allow_nonfinite=True)
    assert np.isinf(up.params(net)["0.weight"].numpy()).all()


def test_empty_parameters_are_a_no_op() -> None:
    net = Sequential(Dense(0, 4))
    assert up.initialize(net, up.init.XavierUniform(), seed=0) == ["0.weight", "0.bias"]


def test_sparse_bilinear_and_lstm_bias() -> None:
    w = fill(up.init.Sparse(0.3, std=0.5), (10, 400))
    assert ((w == 0).sum(axis=0) == 3).all()  # ceil(0.3 * 10) zeros in every column, as torch.nn.init.sparse_
    assert abs(w[w != 0].std() - 0.5) <= 6 * 0.5 / math.sqrt(2 * 2800)
    k = fill(up.init.Bilinear(), (2, 3, 4, 4))
    np.testing.assert_allclose(k[1, 2], np.outer([0.25, 0.75, 0.75, 0.25], [0.25, 0.75, 0.75, 0.25]))  # MXNet's
    np.testing.assert_array_equal(fill(up.init.LSTMBias(2.0), (8,)), [0, 0, 2, 2, 0, 0, 0, 0])
    with pytest.raises(up.InitializerError, match="4 gates"):
        up.init.LSTMBias().check((6,), np.dtype(np.float32), "0.bias_l0")
    with pytest.raises(up.InitializerError, match="sparsity"):
        up.init.Sparse(1.5)
    assert isinstance(up.init.get("msraprelu"), up.init.MXNetXavier)
