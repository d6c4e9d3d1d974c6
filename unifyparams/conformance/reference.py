"""NumPy reference implementations of layers, with PyTorch's conventions and canonical weights.

Scenarios compare a framework's own forward pass with these, which proves that the canonical
layout an adapter reports is the one the framework actually computes with.

>>> import numpy as np
>>> dense(np.ones((2, 3)), {"weight": np.ones((4, 3)), "bias": np.zeros(4)}).shape
(2, 4)
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

Weights = Mapping[str, np.ndarray]


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def dense(x: np.ndarray, w: Weights) -> np.ndarray:
    """``y = x W^T + b`` with ``W`` of shape (out, in)."""
    return x @ w["weight"].T + w["bias"]


def conv(x: np.ndarray, w: Weights) -> np.ndarray:
    """Cross-correlation, stride 1, no padding; ``x`` (N, C, *spatial), weight (O, C, *kernel)."""
    weight = w["weight"].astype(np.float64)
    spatial = weight.shape[2:]
    windows = np.lib.stride_tricks.sliding_window_view(
        np.asarray(x, dtype=np.float64), spatial, axis=tuple(range(2, x.ndim))  # type: ignore[call-overload]
    )
    # windows: (N, C, *out_spatial, *kernel)
    nd = len(spatial)
    c_axes = [1] + [2 + nd + i for i in range(nd)]
    out = np.tensordot(windows, weight, axes=(c_axes, [1] + [2 + i for i in range(nd)]))
    # out: (N, *out_spatial, O) -> (N, O, *out_spatial)
    out = np.moveaxis(out, -1, 1)
    bias = w["bias"].reshape((1, -1) + (1,) * nd)
    return out + bias


def embedding(idx: np.ndarray, w: Weights) -> np.ndarray:
    return w["weight"][idx]


def layer_norm(x: np.ndarray, w: Weights, eps: float = 1e-5) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    var = x.var(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * w["weight"] + w["bias"]


def batch_norm(x: np.ndarray, w: Weights, eps: float = 1e-5) -> np.ndarray:
    """Inference mode, channels on axis 1."""
    shape = (1, -1) + (1,) * (x.ndim - 2)
    mean, var = w["running_mean"].reshape(shape), w["running_var"].reshape(shape)
    return (x - mean) / np.sqrt(var + eps) * w["weight"].reshape(shape) + w["bias"].reshape(shape)


def _recurrent_biases(w: Weights, gates: int, hidden: int) -> tuple[np.ndarray, np.ndarray]:
    """(b_ih, b_hh) from PyTorch-style biases, or from a Keras-style single ``bias_l0``."""
    if "bias_ih_l0" in w:
        return w["bias_ih_l0"], w["bias_hh_l0"]
    bias = w["bias_l0"]
    if bias.ndim == 2:  # GRU reset_after: rows are (input bias, recurrent bias)
        return bias[0], bias[1]
    return bias, np.zeros(gates * hidden, dtype=bias.dtype)


def lstm(x: np.ndarray, w: Weights) -> np.ndarray:
    """PyTorch LSTM equations, gates (i, f, g, o); ``x`` (N, T, F) -> (N, T, H)."""
    hidden = w["weight_hh_l0"].shape[1]
    b_ih, b_hh = _recurrent_biases(w, 4, hidden)
    n = x.shape[0]
    h = np.zeros((n, hidden))
    c = np.zeros((n, hidden))
    outputs = []
    for t in range(x.shape[1]):
        gates = x[:, t] @ w["weight_ih_l0"].T + b_ih + h @ w["weight_hh_l0"].T + b_hh
        i, f, g, o = np.split(gates, 4, axis=1)
        c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        h = sigmoid(o) * np.tanh(c)
        outputs.append(h)
    return np.stack(outputs, axis=1)


def gru(x: np.ndarray, w: Weights) -> np.ndarray:
    """PyTorch GRU equations, gates (r, z, n); ``x`` (N, T, F) -> (N, T, H)."""
    hidden = w["weight_hh_l0"].shape[1]
    b_ih, b_hh = _recurrent_biases(w, 3, hidden)
    h = np.zeros((x.shape[0], hidden))
    outputs = []
    for t in range(x.shape[1]):
        gi = x[:, t] @ w["weight_ih_l0"].T + b_ih
        gh = h @ w["weight_hh_l0"].T + b_hh
        i_r, i_z, i_n = np.split(gi, 3, axis=1)
        h_r, h_z, h_n = np.split(gh, 3, axis=1)
        r = sigmoid(i_r + h_r)
        z = sigmoid(i_z + h_z)
        n_ = np.tanh(i_n + r * h_n)
        h = (1 - z) * n_ + z * h
        outputs.append(h)
    return np.stack(outputs, axis=1)


def mlp_sum_gradients(x: np.ndarray, w: Weights) -> dict[str, np.ndarray]:
    """Gradients of ``sum(mlp(x))`` for the [Dense, ReLU, Dense] MLP, by hand."""
    z = x @ w["0.weight"].T + w["0.bias"]
    h = np.maximum(z, 0)
    out_features = w["2.weight"].shape[0]
    dy = np.ones((x.shape[0], out_features))
    dh = dy @ w["2.weight"]
    dz = dh * (z > 0)
    return {
        "0.weight": dz.T @ x,
        "0.bias": dz.sum(axis=0),
        "2.weight": dy.T @ h,
        "2.bias": dy.sum(axis=0),
    }


def relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0)


def max_pool2d(x: np.ndarray, size: int = 2) -> np.ndarray:
    """Non-overlapping max pooling of (N, C, H, W), floor of the spatial size."""
    n, c, h, w = x.shape
    x = x[:, :, : h - h % size, : w - w % size]
    return x.reshape(n, c, h // size, size, w // size, size).max(axis=(3, 5))


def lenet(x: np.ndarray, w: Weights) -> np.ndarray:
    """The builders' LeNet on canonical input (N, 1, 28, 28); the flatten is channels-first."""
    h = max_pool2d(relu(conv(np.pad(x, ((0, 0), (0, 0), (2, 2), (2, 2))), _layer(w, "0"))))
    h = max_pool2d(relu(conv(h, _layer(w, "3"))))
    h = h.reshape(h.shape[0], -1)
    h = relu(dense(h, _layer(w, "7")))
    h = relu(dense(h, _layer(w, "9")))
    return dense(h, _layer(w, "11"))


def concat_pool_dense(x: np.ndarray, weights: list[np.ndarray]) -> np.ndarray:
    """The builders' DenseNet-style model on canonical input (N, 3, 8, 8), from its six tensors in
    model order: two 'same' 3x3 convs of the input, concatenated on channels, globally averaged,
    then a dense layer reading the 8 pooled features."""
    a_w, a_b, b_w, b_b, d_w, d_b = weights
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    a = relu(conv(padded, {"weight": a_w, "bias": a_b}))
    b = relu(conv(padded, {"weight": b_w, "bias": b_b}))
    pooled = np.concatenate([a, b], axis=1).mean(axis=(2, 3))
    return dense(pooled, {"weight": d_w, "bias": d_b})


def _layer(w: Weights, prefix: str) -> dict[str, np.ndarray]:
    return {"weight": w[f"{prefix}.weight"], "bias": w[f"{prefix}.bias"]}
