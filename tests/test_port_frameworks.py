"""Porting proofs: the same architecture built in two frameworks computes the same outputs after
``up.port``, for every ordered pair of backends; and a round trip returns every parameter exactly."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import unifyparams as up
from unifyparams.conformance import load_builders

BACKENDS = ["torch", "keras", "gluon"]
PAIRS = list(itertools.permutations(BACKENDS, 2))


def kit(backend: str) -> Any:
    return load_builders(up.available_adapters()[backend])


def _rng() -> np.random.Generator:
    return np.random.default_rng(42)


ARCHITECTURES: dict[str, tuple[Callable[[Any], Any], Callable[[np.random.Generator], np.ndarray]]] = {
    "mlp": (lambda k: k.mlp(), lambda r: r.normal(size=(3, 20)).astype(np.float32)),
    "nested_blocks": (lambda k: k.nested_blocks(), lambda r: r.normal(size=(3, 4)).astype(np.float32)),
    "lenet": (lambda k: k.lenet(), lambda r: r.normal(size=(2, 1, 28, 28)).astype(np.float32)),
    "residual_block": (lambda k: k.residual_block(), lambda r: r.normal(size=(2, 4, 8, 8)).astype(np.float32)),
    "concat_pool_dense": (lambda k: k.concat_pool_dense(), lambda r: r.normal(size=(2, 3, 8, 8)).astype(np.float32)),
    "embed_gru": (lambda k: k.embed_rnn("gru"), lambda r: r.integers(0, 50, size=(2, 6))),
    "embed_lstm": (lambda k: k.embed_rnn("lstm"), lambda r: r.integers(0, 50, size=(2, 6))),
}


def randomize(model: Any, rng: np.random.Generator) -> None:
    """Fan-in-scaled random values (outputs of order one), positive running variances."""
    ps = up.params(model)
    state = {}
    for name, p in ps.items():
        shape = tuple(int(d) for d in p.shape if d is not None)
        if name.endswith("running_var"):
            value = rng.uniform(0.5, 1.5, size=shape)
        else:
            fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 4
            value = rng.uniform(-1, 1, size=shape) / np.sqrt(fan_in)
        state[name] = value.astype(p.dtype)
    ps.load(state)


@pytest.mark.parametrize("architecture", list(ARCHITECTURES))
@pytest.mark.parametrize("src_backend, dst_backend", PAIRS, ids=[f"{a}-to-{b}" for a, b in PAIRS])
def test_port_keeps_outputs(src_backend: str, dst_backend: str, architecture: str) -> None:
    build, make_input = ARCHITECTURES[architecture]
    src_kit, dst_kit = kit(src_backend), kit(dst_backend)
    src, dst = build(src_kit), build(dst_kit)
    rng = _rng()
    randomize(src, rng)
    report = up.port(src, dst)
    assert report.applied and report.ok, str(report)
    x = make_input(rng)
    expected, got = src_kit.forward(src, x), dst_kit.forward(dst, x)
    diff = float(np.max(np.abs(expected - got)))
    assert diff <= 1e-5, f"{architecture} {src_backend}->{dst_backend}: max abs difference {diff:.3g}\n{report}"


@pytest.mark.parametrize("architecture", ["mlp", "nested_blocks", "lenet", "residual_block", "embed_gru"])
def test_round_trip_is_bit_exact(architecture: str) -> None:
    build, _ = ARCHITECTURES[architecture]
    models = {b: build(kit(b)) for b in BACKENDS}
    randomize(models["torch"], _rng())
    original = up.params(models["torch"]).numpy(copy=True)
    up.port(models["torch"], models["keras"])
    up.port(models["keras"], models["gluon"])
    back = build(kit("torch"))
    up.port(models["gluon"], back)
    for name, value in original.items():
        np.testing.assert_array_equal(up.params(back)[name].numpy(), value, err_msg=name)


def test_dry_run_reports_conversions_and_changes_nothing() -> None:
    src, dst = kit("torch").embed_rnn("lstm"), kit("keras").embed_rnn("lstm")
    before = up.params(dst).numpy(copy=True)
    report = up.port(src, dst, dry_run=True)
    assert not report.applied
    conversions = {r.destination: r.conversion for r in report.rows}
    assert conversions["rnn.bias_l0"] == "sum (b_ih + b_hh)"
    for name, value in before.items():
        np.testing.assert_array_equal(up.params(dst)[name].numpy(), value)


def test_lenet_flatten_permutation_is_reported() -> None:
    report = up.port(kit("torch").lenet(), kit("keras").lenet(), dry_run=True)
    conversions = {r.destination: r.conversion for r in report.rows}
    assert "input order" in conversions["7.weight"] and "16x5x5 map (CHW order)" not in conversions["7.weight"]
    assert "a flattened 5x5x16 map (HWC order)" in conversions["7.weight"]


def test_batchnorm_hyperparameter_mismatch_is_a_warning() -> None:
    import torch

    src = torch.nn.Sequential(torch.nn.BatchNorm1d(5, eps=1e-3))
    dst = kit("keras").single_layer("batchnorm", num_features=5)
    report = up.port(src, dst)
    assert any("eps" in w for w in report.warnings), report.warnings


@pytest.mark.parametrize("src_backend, dst_backend", [("torch", "keras"), ("keras", "torch")])
def test_transformer_block_ports_where_frameworks_offer_attention(src_backend: str, dst_backend: str) -> None:
    """PyTorch's TransformerEncoderLayer (packed in_proj) <-> a Keras block on MultiHeadAttention.
    MXNet Gluon 1.9.1 has no attention layer: its builder says so."""
    src_kit, dst_kit = kit(src_backend), kit(dst_backend)
    src, dst = src_kit.transformer_block(), dst_kit.transformer_block()
    rng = _rng()
    randomize(src, rng)
    report = up.port(src, dst)
    assert report.ok, str(report)
    x = rng.normal(size=(2, 5, 16)).astype(np.float32)
    diff = float(np.max(np.abs(src_kit.forward(src, x) - dst_kit.forward(dst, x))))
    assert diff <= 1e-5, f"transformer {src_backend}->{dst_backend}: {diff:.3g}\n{report}"
    from unifyparams.conformance import Unsupported

    with pytest.raises(Unsupported, match="attention"):
        kit("gluon").transformer_block()
