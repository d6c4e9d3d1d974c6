"""``up.load`` reads the frameworks' own files into any backend, without running code from them."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

import unifyparams as up
from unifyparams.conformance import load_builders


def kit(backend: str):
    return load_builders(up.available_adapters()[backend])


def randomized(model):
    ps = up.params(model)
    ps.load({n: np.random.default_rng(0).uniform(0.5, 1.5, size=p.shape).astype(p.dtype) for n, p in ps.items()})
    return model


@pytest.mark.parametrize("target", ["torch", "keras", "gluon"])
def test_torch_state_dict_loads_into_every_backend(tmp_path: Path, target: str) -> None:
    source = randomized(kit("torch").single_layer("batchnorm", num_features=5))
    torch.save(source.state_dict(), tmp_path / "model.pt")  # num_batches_tracked included
    model = kit(target).single_layer("batchnorm", num_features=5)
    report = up.load(model, tmp_path / "model.pt")
    assert sorted(report.loaded) == sorted(up.params(source))
    for name, value in up.params(source).numpy().items():
        np.testing.assert_array_equal(up.params(model)[name].numpy(), value)


@pytest.mark.parametrize("target", ["torch", "keras"])
def test_gluon_params_file_loads_with_canonical_names(tmp_path: Path, target: str) -> None:
    source = randomized(kit("gluon").nested_blocks())
    source.save_parameters(str(tmp_path / "model.params"))
    model = kit(target).nested_blocks()
    up.load(model, tmp_path / "model.params")
    for name, value in up.params(source).numpy().items():
        np.testing.assert_array_equal(up.params(model)[name].numpy(), value)


def test_pickled_code_is_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    (tmp_path / "evil.pt").write_bytes(pickle.dumps({"0.weight": Payload()}, protocol=2))
    model = kit("torch").mlp()
    before = up.params(model).numpy(copy=True)
    with pytest.raises(up.CheckpointError):
        up.load(model, tmp_path / "evil.pt")
    assert not marker.exists()
    for name, value in before.items():
        np.testing.assert_array_equal(up.params(model)[name].numpy(), value)


def test_keras_h5_is_refused_with_the_way_to_load_it(tmp_path: Path) -> None:
    model = kit("keras").mlp()
    model.save_weights(str(tmp_path / "model.weights.h5"))
    with pytest.raises(up.CheckpointError, match="load_weights"):
        up.load(kit("torch").mlp(), tmp_path / "model.weights.h5")
