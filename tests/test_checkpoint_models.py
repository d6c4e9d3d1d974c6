"""Checkpoints with real frameworks: save from any backend, load into any backend, and
interoperability with the ``safetensors`` package in both directions.

Models come from each adapter's conformance builders (found through the ``unifyparams.builders``
entry point), so the same architectures are compared in PyTorch, Keras and Gluon.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np
import pytest
import safetensors.numpy
import safetensors.torch
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import unifyparams as up
from unifyparams.checkpoint import load, load_file, save, save_file
from unifyparams.conformance import ModelBuilders, load_builders

BACKENDS = ["torch", "keras", "gluon"]
SHARED_GROUPS = [("2.weight", "4.weight"), ("2.bias", "4.bias")]


@cache
def kit(backend: str) -> ModelBuilders:
    """The backend's conformance builders (the ``unifyparams.builders`` entry point)."""
    builders = load_builders(backend)
    assert isinstance(builders, ModelBuilders)
    return builders


def _floats(*shape: int) -> Callable[[np.random.Generator], np.ndarray]:
    return lambda rng: rng.normal(size=shape).astype(np.float32)


def _tokens(*shape: int, high: int) -> Callable[[np.random.Generator], np.ndarray]:
    return lambda rng: rng.integers(0, high, size=shape).astype(np.int64)


#: Architectures whose canonical names agree in every backend: (builder call, input maker).
ARCHITECTURES: dict[
    str, tuple[Callable[[ModelBuilders], Any], Callable[[np.random.Generator], np.ndarray]]
] = {
    "mlp": (lambda k: k.mlp(), _floats(3, 20)),
    "nested_blocks": (lambda k: k.nested_blocks(), _floats(3, 4)),
    "custom_model": (lambda k: k.custom_model(), _tokens(3, 5, high=50)),
    "dense": (lambda k: k.single_layer("dense", in_features=5, out_features=3), _floats(3, 5)),
    "conv1d": (
        lambda k: k.single_layer("conv1d", in_channels=2, out_channels=3, kernel_size=3),
        _floats(2, 2, 9),
    ),
    "conv2d": (
        lambda k: k.single_layer("conv2d", in_channels=2, out_channels=3, kernel_size=3),
        _floats(2, 2, 7, 7),
    ),
    "batchnorm": (lambda k: k.single_layer("batchnorm", num_features=4), _floats(3, 4)),
    "layernorm": (lambda k: k.single_layer("layernorm", num_features=4), _floats(3, 4)),
    "embedding": (
        lambda k: k.single_layer("embedding", num_embeddings=10, embedding_dim=4),
        _tokens(3, 6, high=10),
    ),
}


def randomize(model: Any, seed: int) -> dict[str, np.ndarray]:
    """Give every parameter fresh values (variances positive); return them, canonical layout."""
    rng = np.random.default_rng(seed)
    ps = up.params(model)
    values = {}
    for name, p in ps.items():
        value = rng.normal(size=p.shape).astype(p.dtype)
        values[name] = np.abs(value) + 0.5 if p.role == up.Role.RUNNING_VAR else value
    for group in ps.storage_groups():  # one storage, one value
        values.update({name: values[group[0]] for name in group})
    ps.load(values)
    return ps.numpy(copy=True)


def assert_values(model: Any, expected: dict[str, np.ndarray]) -> None:
    got = up.params(model).numpy()
    assert list(got) == list(expected)
    for name, value in expected.items():
        assert got[name].dtype == value.dtype and np.array_equal(got[name], value), f"{name} differs"


# --- every backend to every backend -------------------------------------------------------------


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
@pytest.mark.parametrize("dst", BACKENDS)
@pytest.mark.parametrize("src", BACKENDS)
def test_checkpoint_moves_between_backends(tmp_path: Path, src: str, dst: str, arch: str) -> None:
    build, make_input = ARCHITECTURES[arch]
    source = build(kit(src))
    values = randomize(source, seed=1)
    path = save(source, tmp_path / "model.safetensors")
    target = build(kit(dst))
    report = load(target, path, strict=True)
    assert report.loaded == list(values) and not report.missing and not report.unexpected
    assert report.backend == src and report.converted == {}
    assert_values(target, values)
    with open(path, "r+b") as f:  # the model must not alias the (memory-mapped) file
        f.seek(64)
        f.write(b"\0" * (path.stat().st_size - 64))
    assert_values(target, values)
    x = make_input(np.random.default_rng(0))
    np.testing.assert_allclose(kit(dst).forward(target, x), kit(src).forward(source, x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dst", BACKENDS)
@pytest.mark.parametrize("src", BACKENDS)
def test_dense_after_flatten_keeps_its_meaning_across_flatten_orders(tmp_path: Path, src: str, dst: str) -> None:
    """LeNet: Keras flattens (H, W, C), PyTorch and Gluon (C, H, W). Files keep the first dense
    weight after a flatten in channels-first order; save and load permute for channels-last models."""
    source = kit(src).lenet()
    randomize(source, seed=8)
    target = kit(dst).lenet()
    load(target, save(source, tmp_path / "m.safetensors"))
    x = np.random.default_rng(0).normal(size=(2, 1, 28, 28)).astype(np.float32)
    np.testing.assert_allclose(kit(dst).forward(target, x), kit(src).forward(source, x), rtol=1e-4, atol=1e-4)


def test_torch_state_dict_of_a_cnn_loads_into_keras(tmp_path: Path) -> None:
    import torch

    source = kit("torch").lenet()
    randomize(source, seed=9)
    torch.save(source.state_dict(), tmp_path / "lenet.pt")
    target = kit("keras").lenet()
    load(target, tmp_path / "lenet.pt")
    x = np.random.default_rng(1).normal(size=(2, 1, 28, 28)).astype(np.float32)
    np.testing.assert_allclose(kit("keras").forward(target, x), kit("torch").forward(source, x), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dst", BACKENDS)
@pytest.mark.parametrize("src", BACKENDS)
def test_sharded_checkpoint_moves_between_backends(tmp_path: Path, src: str, dst: str) -> None:
    source = kit(src).nested_blocks()
    values = randomize(source, seed=2)
    index = save(source, tmp_path / "model.safetensors", max_shard_size=200)
    assert index.name == "model.safetensors.index.json"
    assert len(set(json.loads(index.read_text())["weight_map"].values())) > 3
    target = kit(dst).nested_blocks()
    load(target, tmp_path)
    assert_values(target, values)


@pytest.mark.parametrize("dst", BACKENDS)
@pytest.mark.parametrize("src", BACKENDS)
def test_tied_layers_are_stored_once_and_come_back_tied(tmp_path: Path, src: str, dst: str) -> None:
    source = kit(src).shared_mlp(shared=True)
    values = randomize(source, seed=3)
    path = save(source, tmp_path / "model.safetensors")
    with safetensors.safe_open(str(path), "numpy") as f:
        assert "4.weight" not in f.keys() and "2.weight" in f.keys()
    x = np.random.default_rng(0).normal(size=(3, 20)).astype(np.float32)

    tied = kit(dst).shared_mlp(shared=True)  # already tied: loaded once
    assert load(tied, path).tied == []
    assert_values(tied, values)
    assert up.ties(tied) == SHARED_GROUPS

    untied = kit(dst).shared_mlp(shared=False)  # tied by the load
    before = up.params(untied).numpy(copy=True)
    if "tie" in up.adapter_for(untied).missing_capabilities:
        with pytest.raises(up.CheckpointError, match="cannot tie"):
            load(untied, path)
        assert_values(untied, before)
        assert load(untied, path, strict=False).not_tied == SHARED_GROUPS
        return
    report = load(untied, path)
    assert report.tied == SHARED_GROUPS and up.ties(untied) == SHARED_GROUPS
    assert_values(untied, values)
    np.testing.assert_allclose(kit(dst).forward(untied, x), kit(src).forward(source, x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_recurrent_layers_round_trip_within_a_backend(tmp_path: Path, backend: str, kind: str) -> None:
    build = kit(backend).single_layer
    source = build(kind, input_size=3, hidden_size=4)
    values = randomize(source, seed=4)
    target = build(kind, input_size=3, hidden_size=4)
    load(target, save(source, tmp_path / "m.safetensors"))
    assert_values(target, values)


@pytest.mark.parametrize("backend", BACKENDS)
def test_names_that_differ_across_backends_are_reported(tmp_path: Path, backend: str) -> None:
    """Keras has one LSTM bias where PyTorch has two: a checkpoint cannot map them (up.port can)."""
    path = save(kit("torch").single_layer("lstm", input_size=3, hidden_size=4), tmp_path / "m.safetensors")
    target = kit(backend).single_layer("lstm", input_size=3, hidden_size=4)
    names = list(up.params(target))
    if names == list(up.params(kit("torch").single_layer("lstm", input_size=3, hidden_size=4))):
        load(target, path)
        return
    before = up.params(target).numpy(copy=True)
    with pytest.raises(up.CheckpointError, match="strict=False"):
        load(target, path)
    assert_values(target, before)
    report = load(target, path, strict=False)
    assert report.missing and report.unexpected


@pytest.mark.parametrize("backend", BACKENDS)
def test_refused_load_leaves_the_framework_model_unchanged(tmp_path: Path, backend: str) -> None:
    path = save(kit("torch").mlp(hidden=16), tmp_path / "m.safetensors")
    target = kit(backend).mlp(hidden=8)
    before = up.params(target).numpy(copy=True)
    with pytest.raises(up.CheckpointError, match=r"(?s)shape.*'0.weight'.*\(8, 20\).*\(16, 20\)"):
        load(target, path)
    assert_values(target, before)


@pytest.mark.parametrize("dst", BACKENDS)
def test_float64_checkpoint_loads_into_float32_models_and_is_reported(tmp_path: Path, dst: str) -> None:
    source = kit("torch").mlp().double()
    values = randomize(source, seed=5)
    target = kit(dst).mlp()
    report = load(target, save(source, tmp_path / "m.safetensors"))
    assert report.converted == {name: "float64 -> float32" for name in values}
    assert_values(target, {k: v.astype(np.float32) for k, v in values.items()})


# --- interoperability with the safetensors package ----------------------------------------------


def test_files_we_write_load_with_safetensors(tmp_path: Path) -> None:
    model = kit("torch").shared_mlp()
    randomize(model, seed=6)
    path = save(model, tmp_path / "m.safetensors", metadata={"note": "hi"})
    theirs = safetensors.torch.load_file(path)
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("4.")}  # tied: stored once
    assert theirs.keys() == state.keys()
    for name, value in state.items():
        assert torch.equal(theirs[name], value)
    with safetensors.safe_open(str(path), "numpy") as f:
        assert f.metadata()["note"] == "hi" and f.metadata()["format"] == "pt"
    ours = load_file(path)
    for name, value in safetensors.numpy.load_file(path).items():
        assert np.array_equal(ours[name], value)


def test_files_safetensors_writes_load_into_any_backend(tmp_path: Path) -> None:
    source = kit("torch").mlp()
    values = randomize(source, seed=7)
    safetensors.torch.save_model(source, str(tmp_path / "hub.safetensors"))  # no unifyparams metadata
    for backend in BACKENDS:
        target = kit(backend).mlp()
        report = load(target, tmp_path / "hub.safetensors")
        assert report.backend is None
        assert_values(target, values)


@pytest.mark.parametrize("dst", BACKENDS)
def test_tied_file_without_tie_metadata_loads_into_tied_models(tmp_path: Path, dst: str) -> None:
    """safetensors.torch.save_model stores a shared tensor once and records no tie."""
    source = kit("torch").shared_mlp()
    values = randomize(source, seed=9)
    safetensors.torch.save_model(source, str(tmp_path / "hub.safetensors"))
    tied = kit(dst).shared_mlp(shared=True)
    load(tied, tmp_path / "hub.safetensors")
    assert_values(tied, values)
    untied = kit(dst).shared_mlp(shared=False)  # nothing says 4.* is 2.*: strict refuses
    with pytest.raises(up.CheckpointError, match="missing 2 name"):
        load(untied, tmp_path / "hub.safetensors")


TORCH_SPECIAL = [torch.bfloat16, torch.float8_e4m3fn, torch.float8_e5m2]


@pytest.mark.parametrize("dtype", TORCH_SPECIAL, ids=str)
def test_bfloat16_and_float8_bits_survive_both_ways(tmp_path: Path, dtype: torch.dtype) -> None:
    tensor = torch.randn(5, 3).to(dtype)
    safetensors.torch.save_file({"w": tensor}, str(tmp_path / "theirs.safetensors"))
    ours = load_file(tmp_path / "theirs.safetensors")["w"]
    assert ours.dtype == np.dtype(getattr(ml_dtypes, str(dtype).removeprefix("torch.")))
    assert ours.view(np.uint8).tobytes() == tensor.view(torch.uint8).numpy().tobytes()
    save_file({"w": ours}, tmp_path / "ours.safetensors")
    back = safetensors.torch.load_file(str(tmp_path / "ours.safetensors"))["w"]
    assert back.dtype == dtype and torch.equal(back.view(torch.uint8), tensor.view(torch.uint8))


def test_bfloat16_torch_model_round_trips(tmp_path: Path) -> None:
    source = kit("torch").mlp().to(torch.bfloat16)
    target = kit("torch").mlp().to(torch.bfloat16)
    load(target, save(source, tmp_path / "m.safetensors"))
    for (name, a), b in zip(source.state_dict().items(), target.state_dict().values()):
        assert torch.equal(a.view(torch.int16), b.view(torch.int16)), name


NUMPY_DTYPES = ["float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
                "uint64", "bool", "complex64"]  # fmt: skip
arrays = st.dictionaries(
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12).filter(
        lambda name: name != "__metadata__"
    ),
    st.tuples(
        st.sampled_from(NUMPY_DTYPES), st.lists(st.integers(0, 4), max_size=3), st.integers(0, 2**32 - 1)
    ),
    max_size=6,
)


def _make(specs: dict[str, tuple[str, list[int], int]]) -> dict[str, np.ndarray]:
    out = {}
    for name, (dtype, shape, seed) in specs.items():
        raw = np.random.default_rng(seed).integers(
            0, 256, size=int(np.prod(shape)) * np.dtype(dtype).itemsize
        )
        value = raw.astype(np.uint8).view(dtype).reshape(shape)
        out[name] = value if dtype != "bool" else np.asarray(value.view(np.uint8) % 2 == 1)
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(specs=arrays, metadata=st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3))
def test_random_files_cross_check_with_safetensors(
    tmp_path_factory: Any, specs: dict[str, Any], metadata: dict[str, str]
) -> None:
    folder = tmp_path_factory.mktemp("x")
    values = _make(specs)
    save_file(values, folder / "ours.safetensors", metadata)
    theirs = safetensors.numpy.load_file(str(folder / "ours.safetensors"))
    safetensors.numpy.save_file(values, str(folder / "theirs.safetensors"), metadata or None)
    ours = load_file(folder / "theirs.safetensors")
    for loaded in (theirs, ours):
        assert loaded.keys() == values.keys()
        for name, value in values.items():
            assert loaded[name].dtype == value.dtype and loaded[name].shape == value.shape
            assert loaded[name].tobytes() == value.tobytes()
