"""Layers. Weights are stored the Keras way: Dense kernels (in, out), conv kernels
(*kernel, in, out) on channels-last inputs, recurrent kernels (in, gates * units).

>>> import numpy as np, numpynn as nn
>>> nn.Dense(4, in_features=3).kernel.shape
(3, 4)
>>> nn.Dense(4).kernel.shape          # lazy: the input size comes from the first batch
(None, 4)
"""

from __future__ import annotations

import numpy as np

from . import core
from .core import Module, Variable


def _glorot(shape: tuple[int, ...], fan_in: int, fan_out: int) -> np.ndarray:
    bound = np.sqrt(6.0 / (fan_in + fan_out))
    return core.rng.uniform(-bound, bound, size=shape).astype(np.float32)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


class ReLU(Module):
    def forward(self, x: np.ndarray) -> np.ndarray:
        return np.maximum(x, 0)

    def backward(self, x: np.ndarray, dy: np.ndarray) -> np.ndarray:
        return dy * (x > 0)


class Dense(Module):
    """``y = x @ kernel + bias``; ``in_features=None`` waits for the first batch."""

    def __init__(self, units: int, in_features: int | None = None):
        self.units = units
        value = None if in_features is None else _glorot((in_features, units), in_features, units)
        self.kernel = Variable(value, shape=(in_features, units))
        self.bias = Variable(np.zeros(units, np.float32))

    def build(self, in_features: int) -> None:
        self.kernel.assign(_glorot((in_features, self.units), in_features, self.units))
        self._run_build_callbacks()

    def forward(self, x: np.ndarray) -> np.ndarray:
        if self.kernel.value is None:
            self.build(int(x.shape[-1]))
        kernel = self.kernel.value
        assert kernel is not None
        if x.shape[-1] != kernel.shape[0]:
            raise ValueError(f"Dense expects {kernel.shape[0]} input features, received {x.shape[-1]}")
        return x @ kernel + self.bias.value

    def backward(self, x: np.ndarray, dy: np.ndarray) -> np.ndarray:
        kernel = self.kernel.value
        assert kernel is not None
        flat_x, flat_dy = x.reshape(-1, kernel.shape[0]), dy.reshape(-1, self.units)
        self.kernel.accumulate(flat_x.T @ flat_dy)
        self.bias.accumulate(flat_dy.sum(axis=0))
        return dy @ kernel.T


class LayerNorm(Module):
    """Normalizes the last axis: ``gamma * (x - mean) / sqrt(var + eps) + beta``."""

    def __init__(self, features: int, eps: float = 1e-5):
        self.eps = eps
        self.gamma = Variable(np.ones(features))
        self.beta = Variable(np.zeros(features))

    def forward(self, x: np.ndarray) -> np.ndarray:
        mean, var = x.mean(axis=-1, keepdims=True), x.var(axis=-1, keepdims=True)
        return (x - mean) / np.sqrt(var + self.eps) * self.gamma.value + self.beta.value


class BatchNorm(Module):
    """Inference-mode batch normalization over the last (channels) axis."""

    def __init__(self, features: int, eps: float = 1e-5):
        self.eps = eps
        self.gamma = Variable(np.ones(features))
        self.beta = Variable(np.zeros(features))
        self.moving_mean = Variable(np.zeros(features), trainable=False)
        self.moving_variance = Variable(np.ones(features), trainable=False)

    def forward(self, x: np.ndarray) -> np.ndarray:
        scale = self.gamma.value / np.sqrt(self.moving_variance.value + self.eps)  # type: ignore[operator]
        return (x - self.moving_mean.value) * scale + self.beta.value


class Embedding(Module):
    def __init__(self, count: int, dim: int):
        self.embeddings = Variable(core.rng.normal(0, 0.05, size=(count, dim)))

    def forward(self, idx: np.ndarray) -> np.ndarray:
        table = self.embeddings.value
        assert table is not None
        return table[np.asarray(idx)]


class Conv(Module):
    """Channels-last convolution (cross-correlation), stride 1, any rank; ``padding`` zeros on
    each side of every spatial axis. ``input_size`` (the spatial size, optional) sets
    ``input_shape``: numpynn never needs it, tools that run the model on their own may."""

    def __init__(self, in_channels: int, filters: int, kernel_size: int, rank: int, padding: int = 0,
                 input_size: int | tuple[int, ...] | None = None):
        self.rank = rank
        self.padding = padding
        if input_size is not None:
            size = (input_size,) * rank if isinstance(input_size, int) else tuple(input_size)
            if len(size) != rank:
                raise ValueError(f"input_size must give {rank} spatial sizes; received {input_size}")
            self.input_shape = size + (in_channels,)
        shape = (kernel_size,) * rank + (in_channels, filters)
        fan_in = in_channels * kernel_size**rank
        self.kernel = Variable(_glorot(shape, fan_in, filters * kernel_size**rank))
        self.bias = Variable(np.zeros(filters))

    def forward(self, x: np.ndarray) -> np.ndarray:
        kernel = self.kernel.value
        assert kernel is not None
        r = self.rank
        if self.padding:
            x = np.pad(x, [(0, 0)] + [(self.padding, self.padding)] * r + [(0, 0)])
        windows = np.lib.stride_tricks.sliding_window_view(x, kernel.shape[:r], axis=tuple(range(1, r + 1)))  # type: ignore[call-overload]
        # windows: (N, *out_spatial, C, *kernel); kernel: (*kernel, C, O)
        axes = ([r + 1] + [r + 2 + i for i in range(r)], [r] + list(range(r)))
        return np.tensordot(windows, kernel, axes=axes) + self.bias.value


class Conv1d(Conv):
    def __init__(self, in_channels: int, filters: int, kernel_size: int, padding: int = 0,
                 input_size: int | None = None):
        super().__init__(in_channels, filters, kernel_size, rank=1, padding=padding, input_size=input_size)


class Conv2d(Conv):
    def __init__(self, in_channels: int, filters: int, kernel_size: int, padding: int = 0,
                 input_size: int | tuple[int, int] | None = None):
        super().__init__(in_channels, filters, kernel_size, rank=2, padding=padding, input_size=input_size)


class MaxPool2d(Module):
    """Non-overlapping max pooling of channels-last (N, H, W, C) maps; odd edges are dropped."""

    def __init__(self, size: int = 2):
        self.size = size

    def forward(self, x: np.ndarray) -> np.ndarray:
        n, h, w, c = x.shape
        k = self.size
        x = x[:, : h - h % k, : w - w % k]
        return x.reshape(n, h // k, k, w // k, k, c).max(axis=(2, 4))


class GlobalAvgPool2d(Module):
    """The mean over the spatial axes of channels-last (N, H, W, C) maps: (N, C) features."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        return x.mean(axis=(1, 2))


class Flatten(Module):
    """(N, ...) -> (N, features), row-major: a channels-last map flattens in (H, W, C) order."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        return x.reshape(x.shape[0], -1)


class Concatenate(Module):
    """Joins its inputs along ``axis`` (the last, channels-last maps' channels, by default)."""

    def __init__(self, axis: int = -1):
        self.axis = axis

    def forward(self, *inputs: np.ndarray) -> np.ndarray:
        return np.concatenate(inputs, axis=self.axis)


class LSTM(Module):
    """Batch-first LSTM returning the whole sequence; gates (i, f, g, o); one bias."""

    def __init__(self, input_size: int, units: int):
        self.units = units
        self.kernel = Variable(_glorot((input_size, 4 * units), input_size, units))
        self.recurrent_kernel = Variable(_glorot((units, 4 * units), units, units))
        self.bias = Variable(np.zeros(4 * units))

    def forward(self, x: np.ndarray) -> np.ndarray:
        h = np.zeros((x.shape[0], self.units), x.dtype)
        c = np.zeros_like(h)
        outputs = []
        for t in range(x.shape[1]):
            gates = x[:, t] @ self.kernel.value + h @ self.recurrent_kernel.value + self.bias.value
            i, f, g, o = np.split(gates, 4, axis=1)
            c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
            h = _sigmoid(o) * np.tanh(c)
            outputs.append(h)
        return np.stack(outputs, axis=1)


class GRU(Module):
    """Batch-first GRU (reset gate applied after the recurrent matmul); gates stored (z, r, n),
    with separate input and recurrent biases."""

    def __init__(self, input_size: int, units: int):
        self.units = units
        self.kernel = Variable(_glorot((input_size, 3 * units), input_size, units))
        self.recurrent_kernel = Variable(_glorot((units, 3 * units), units, units))
        self.input_bias = Variable(np.zeros(3 * units))
        self.recurrent_bias = Variable(np.zeros(3 * units))

    def forward(self, x: np.ndarray) -> np.ndarray:
        h = np.zeros((x.shape[0], self.units), x.dtype)
        outputs = []
        for t in range(x.shape[1]):
            xz, xr, xn = np.split(x[:, t] @ self.kernel.value + self.input_bias.value, 3, axis=1)
            hz, hr, hn = np.split(h @ self.recurrent_kernel.value + self.recurrent_bias.value, 3, axis=1)
            z, r = _sigmoid(xz + hz), _sigmoid(xr + hr)
            h = (1 - z) * np.tanh(xn + r * hn) + z * h
            outputs.append(h)
        return np.stack(outputs, axis=1)
