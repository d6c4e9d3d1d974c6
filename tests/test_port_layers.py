"""Porting single layers whose layouts differ most between PyTorch and Keras, proven by outputs:
conv 1d/2d/3d, grouped, depthwise, transposed, bidirectional and stacked recurrent layers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import pytest
import torch
from torch import nn

import unifyparams as up

L = keras.layers
RNG = np.random.default_rng(7)


def torch_forward(model: nn.Module, x: np.ndarray) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        out = model(torch.from_numpy(x))
    if isinstance(out, tuple):
        out = out[0]
    return out.numpy()


def keras_forward(model: Any, x: np.ndarray, channels_last: bool) -> np.ndarray:
    if channels_last:
        x = np.moveaxis(x, 1, -1)
    out = keras.ops.convert_to_numpy(model(x, training=False))
    return np.moveaxis(out, -1, 1) if channels_last else out


def keras_seq(input_shape: tuple[int, ...], *layers: Any) -> Any:
    return keras.Sequential([keras.Input(input_shape), *layers])


class _FirstOutput(nn.Module):
    """An RNN in a container whose only child is ``0``, returning the output sequence."""

    def __init__(self, rnn: nn.Module):
        super().__init__()
        self.add_module("0", rnn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._modules["0"](x)[0]


CASES: dict[str, tuple[Callable[[], Any], Callable[[], Any], tuple[int, ...], bool]] = {
    # name: (torch builder, keras builder, canonical input shape, keras channels-last)
    "conv1d": (lambda: nn.Sequential(nn.Conv1d(4, 6, 3)), lambda: keras_seq((9, 4), L.Conv1D(6, 3)), (2, 4, 9), True),
    "conv3d": (lambda: nn.Sequential(nn.Conv3d(2, 3, (2, 3, 2))), lambda: keras_seq((5, 6, 4, 2), L.Conv3D(3, (2, 3, 2))),
               (2, 2, 5, 6, 4), True),
    "grouped conv2d": (lambda: nn.Sequential(nn.Conv2d(4, 6, 3, groups=2)), lambda: keras_seq((7, 7, 4), L.Conv2D(6, 3, groups=2)),
                       (2, 4, 7, 7), True),
    "depthwise conv2d": (lambda: nn.Sequential(nn.Conv2d(3, 6, 3, groups=3)),
                         lambda: keras_seq((7, 7, 3), L.DepthwiseConv2D(3, depth_multiplier=2)), (2, 3, 7, 7), True),
    "transposed conv2d": (lambda: nn.Sequential(nn.ConvTranspose2d(4, 5, 3)), lambda: keras_seq((6, 6, 4), L.Conv2DTranspose(5, 3)),
                          (2, 4, 6, 6), True),
    "bidirectional lstm": (lambda: _FirstOutput(nn.LSTM(5, 6, batch_first=True, bidirectional=True)),
                           lambda: keras_seq((4, 5), L.Bidirectional(L.LSTM(6, return_sequences=True))), (2, 4, 5), False),
    "bidirectional gru": (lambda: _FirstOutput(nn.GRU(5, 6, batch_first=True, bidirectional=True)),
                          lambda: keras_seq((4, 5), L.Bidirectional(L.GRU(6, return_sequences=True))), (2, 4, 5), False),
    "stacked lstm": (lambda: _FirstOutput(nn.LSTM(5, 6, num_layers=2, batch_first=True)),
                     lambda: keras_seq((4, 5), L.LSTM(6, return_sequences=True), L.LSTM(6, return_sequences=True)), (2, 4, 5), False),
}


def randomize(model: Any) -> None:
    ps = up.params(model)
    ps.load({n: RNG.uniform(-0.4, 0.4, size=p.shape).astype(p.dtype) for n, p in ps.items()})


@pytest.mark.parametrize("direction", ["torch-to-keras", "keras-to-torch"])
@pytest.mark.parametrize("case", list(CASES))
def test_port_layer_keeps_outputs(case: str, direction: str) -> None:
    build_torch, build_keras, shape, channels_last = CASES[case]
    t_model, k_model = build_torch(), build_keras()
    src, dst = (t_model, k_model) if direction == "torch-to-keras" else (k_model, t_model)
    randomize(src)
    report = up.port(src, dst)
    assert report.ok, str(report)
    x = RNG.normal(size=shape).astype(np.float32)
    diff = np.abs(torch_forward(t_model, x) - keras_forward(k_model, x, channels_last)).max()
    assert diff <= 1e-5, f"{case} {direction}: max abs difference {diff:.3g}\n{report}"
