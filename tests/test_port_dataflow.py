"""Ports that used to be silently wrong or refused: dense inputs from dataflow, layer families from
the class hierarchy, hyper-parameters in every match mode, tied destinations, matched checkpoint loads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import unifyparams as up
from unifyparams.conformance import load_builders

from .test_port_frameworks import randomize


def kit(backend: str) -> Any:
    return load_builders(up.available_adapters()[backend])


def _close(a: np.ndarray, b: np.ndarray) -> None:
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-4 * max(1.0, float(np.abs(b).max())))


def test_keras_into_deferred_gluon_through_a_flatten() -> None:
    """The source knows the flatten's shape; the destination's dense layer waits for its inputs."""
    import keras

    from unifyparams_gluon import import_mxnet

    nn = import_mxnet().gluon.nn
    L = keras.layers
    src = keras.Sequential([keras.Input((8, 8, 3)), L.Conv2D(4, 3, activation="relu"), L.Flatten(), L.Dense(5)])
    dst = nn.HybridSequential()
    dst.add(nn.Conv2D(4, 3, activation="relu"), nn.Flatten(), nn.Dense(5))
    dst.initialize()
    randomize(src, np.random.default_rng(0))
    report = up.port(src, dst)
    assert "HWC order" in next(r.conversion for r in report.rows if r.destination == "2.weight")
    x = np.random.default_rng(1).normal(size=(2, 3, 8, 8)).astype(np.float32)
    _close(kit("gluon").forward(dst, x), kit("keras").forward(src, x))


def test_torch_trace_establishes_what_each_linear_reads() -> None:
    import torch

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3)
            self.fc = torch.nn.Linear(4 * 6 * 6, 8)
            self.out = torch.nn.Linear(8, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = torch.flatten(torch.relu(self.conv(x)), 1)  # inside forward, as torchvision does
            return self.out(torch.relu(self.fc(torch.nn.functional.dropout(h, 0.5, self.training))))

    net = Net().train()
    x = np.zeros((1, 3, 8, 8), np.float32)
    facts = up.porting.dense_facts(up.params(net), net, x)
    assert facts["fc"] == up.DenseInput.flattened((4, 6, 6), reason=facts["fc"].reason)
    assert facts["out"].kind == "features"
    assert net.training  # the trace ran in eval mode and put the flags back

    class Permuted(Net):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.out(self.fc(self.conv(x).permute(0, 2, 3, 1).reshape(x.shape[0], -1)))

    permuted = Permuted()
    assert up.porting.dense_facts(up.params(permuted), permuted, x)["fc"].kind == "unknown"


def test_unknown_dense_input_is_refused_with_the_way_out() -> None:
    """A subclassed Keras CNN has no graph: the flatten order cannot be established, so it is stated."""
    import torch

    from .backends.keras import subclassed_cnn

    dst = subclassed_cnn()
    src = torch.nn.Sequential()
    src.add_module("conv", torch.nn.Conv2d(3, 4, 3))
    src.add_module("flat", torch.nn.Flatten())
    src.add_module("fc", torch.nn.Linear(144, 5))
    before = up.params(dst).numpy(copy=True)
    with pytest.raises(up.PortError) as info:
        up.port(src, dst)
    assert "not established" in str(info.value) and "dst_dense_inputs" in str(info.value)
    assert all(np.array_equal(v, up.params(dst)[k].numpy()) for k, v in before.items())
    randomize(src, np.random.default_rng(2))
    up.port(src, dst, dst_dense_inputs={"fc": up.DenseInput.flattened((4, 6, 6), channels_last=True)})
    x = np.random.default_rng(3).normal(size=(2, 3, 8, 8)).astype(np.float32)
    _close(kit("keras").forward(dst, x), src(torch.from_numpy(x)).detach().numpy())


def test_subclasses_of_known_layers_are_understood() -> None:
    import keras
    import torch

    class LayerNorm2d(torch.nn.LayerNorm):  # as torchvision's ConvNeXt defines it
        pass

    class MyDense(keras.layers.Dense):
        pass

    torch_adapter, keras_adapter = up.get_adapter("torch"), up.get_adapter("keras")
    assert torch_adapter.layer_family(LayerNorm2d(4)) == "layernorm"
    assert torch_adapter.layer_family(torch.nn.LazyConv2d(4, 3)) == "conv2d"
    assert keras_adapter.layer_family(MyDense(3)) == "dense"
    assert keras_adapter.layer_family(keras.layers.BatchNormalization()) == "batchnorm"
    src = torch.nn.Sequential(torch.nn.Linear(3, 4), LayerNorm2d(4))
    dst = keras.Sequential([keras.Input((3,)), MyDense(4), keras.layers.LayerNormalization(epsilon=1e-5)])
    assert up.port(src, dst).applied


def test_hyperparameters_differing_slightly_are_reported_in_every_mode() -> None:
    import torch

    src = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4, eps=1e-5))
    dst = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4, eps=1.001e-5))
    mapping = {name: name for name in up.params(dst)}
    for match in ("auto", "order", mapping):
        report = up.port(src, dst, match=match)
        assert any("eps differs" in w and "1.001e-05" in w for w in report.warnings), (match, report.warnings)


def test_a_tied_destination_fed_by_two_different_sources_is_refused() -> None:
    import torch

    src = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 4))
    dst = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 4))
    dst[1].weight = dst[0].weight
    with pytest.raises(up.PortError, match="share one storage"):
        up.port(src, dst)
    src[1].weight = src[0].weight  # the same source for both: fine
    assert up.port(src, dst).applied


def test_checkpoint_loads_match_like_ports(tmp_path: Path) -> None:
    import torch

    class Named(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = torch.nn.Conv2d(3, 4, 3)
            self.classifier = torch.nn.Linear(144, 5)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.classifier(torch.flatten(torch.relu(self.features(x)), 1))

    src = Named().eval()
    randomize(src, np.random.default_rng(4))
    up.save(src, tmp_path / "named.safetensors")
    dst = kit("keras")._sequential((8, 8, 3), *_keras_twin())
    with pytest.raises(up.CheckpointError):
        up.load(dst, tmp_path / "named.safetensors")  # names differ
    report = up.load(dst, tmp_path / "named.safetensors", match="order")
    assert report.port is not None and report.port.applied and len(report.loaded) == 4
    x = np.random.default_rng(5).normal(size=(2, 3, 8, 8)).astype(np.float32)
    _close(kit("keras").forward(dst, x), src(torch.from_numpy(x)).detach().numpy())
    torch.save(src.state_dict(), tmp_path / "plain.pt")  # another tool's file: no layer kinds recorded
    with pytest.raises(up.CheckpointError, match="no known kinds"):
        up.load(dst, tmp_path / "plain.pt", match="order")


def _keras_twin() -> list[Any]:
    import keras

    L = keras.layers
    return [L.Conv2D(4, 3, activation="relu"), L.Flatten(), L.Dense(5)]
