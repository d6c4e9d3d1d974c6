"""NumPy references written with PyTorch's conventions (the canonical layout), framework-free.

Dense ``x W^T + b``; cross-correlation in NC* layout; PyTorch's LSTM (gates i, f, g, o) and GRU
(gates r, z, n) equations, batch-first.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def conv_nd(x: np.ndarray, w: np.ndarray, b: np.ndarray, groups: int = 1) -> np.ndarray:
    """PyTorch ``conv{1,2,3}d``: cross-correlation, stride 1, no padding, NC* layout."""
    nd = w.ndim - 2
    kernel = w.shape[2:]
    windows = np.lib.stride_tricks.sliding_window_view(x, kernel, axis=tuple(range(2, 2 + nd)))
    per_group_in, out = x.shape[1] // groups, w.shape[0]
    per_group_out = out // groups
    results = []
    for g in range(groups):
        xs = windows[:, g * per_group_in:(g + 1) * per_group_in]
        ws = w[g * per_group_out:(g + 1) * per_group_out]
        axes = ([1] + [2 + nd + i for i in range(nd)], [1] + [2 + i for i in range(nd)])
        results.append(np.moveaxis(np.tensordot(xs, ws, axes=axes), -1, 1))
    y = np.concatenate(results, axis=1)
    return y + b.reshape((1, -1) + (1,) * nd)


def conv_transpose2d(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """PyTorch ``conv_transpose2d``, stride 1, no padding: weight (in, out, kh, kw)."""
    n, _, h, wd = x.shape
    _, out, kh, kw = w.shape
    y = np.zeros((n, out, h + kh - 1, wd + kw - 1))
    for a in range(kh):
        for c in range(kw):
            y[:, :, a:a + h, c:c + wd] += np.einsum("nihw,io->nohw", x, w[:, :, a, c])
    return y + b.reshape(1, -1, 1, 1)


def lstm(x: np.ndarray, w_ih: np.ndarray, w_hh: np.ndarray, b_ih: np.ndarray, b_hh: np.ndarray) -> np.ndarray:
    """PyTorch LSTM (gates i, f, g, o), batch-first, whole output sequence."""
    hidden = w_hh.shape[1]
    h = np.zeros((x.shape[0], hidden))
    c = np.zeros_like(h)
    out = []
    for t in range(x.shape[1]):
        i, f, g, o = np.split(x[:, t] @ w_ih.T + b_ih + h @ w_hh.T + b_hh, 4, axis=1)
        c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        h = sigmoid(o) * np.tanh(c)
        out.append(h)
    return np.stack(out, axis=1)


def gru(x: np.ndarray, w_ih: np.ndarray, w_hh: np.ndarray, b_ih: np.ndarray, b_hh: np.ndarray) -> np.ndarray:
    """PyTorch GRU: r = σ(W_ir x + b_ir + W_hr h + b_hr), z likewise,
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn)), h' = (1 - z) * n + z * h."""
    hidden = w_hh.shape[1]
    h = np.zeros((x.shape[0], hidden))
    out = []
    for t in range(x.shape[1]):
        i_r, i_z, i_n = np.split(x[:, t] @ w_ih.T + b_ih, 3, axis=1)
        h_r, h_z, h_n = np.split(h @ w_hh.T + b_hh, 3, axis=1)
        r, z = sigmoid(i_r + h_r), sigmoid(i_z + h_z)
        n = np.tanh(i_n + r * h_n)
        h = (1 - z) * n + z * h
        out.append(h)
    return np.stack(out, axis=1)


def simple_rnn(x: np.ndarray, w_ih: np.ndarray, w_hh: np.ndarray, b: np.ndarray) -> np.ndarray:
    h = np.zeros((x.shape[0], w_hh.shape[1]))
    out = []
    for t in range(x.shape[1]):
        h = np.tanh(x[:, t] @ w_ih.T + b + h @ w_hh.T)
        out.append(h)
    return np.stack(out, axis=1)


def deep_rnn(kind: str, x: np.ndarray, w: dict[str, np.ndarray], layers: int, hidden: int) -> np.ndarray:
    """PyTorch's ``nn.LSTM``/``nn.GRU`` (batch_first, bidirectional, ``layers`` deep) in NumPy;
    ``w`` holds PyTorch's names (``weight_ih_l0``, ``bias_hh_l1_reverse``, ...)."""
    step = _lstm_step if kind == "lstm" else _gru_step
    seq = x
    for k in range(layers):
        outputs = []
        for sfx, order in ((f"l{k}", range(seq.shape[1])), (f"l{k}_reverse", reversed(range(seq.shape[1])))):
            zeros = np.zeros((seq.shape[0], hidden))
            state: Any = (zeros, zeros) if kind == "lstm" else zeros
            out = np.zeros((seq.shape[0], seq.shape[1], hidden))
            for t in order:
                out[:, t], state = step(seq[:, t], state, w, sfx)
            outputs.append(out)
        seq = np.concatenate(outputs, axis=2)
    return seq


def _lstm_step(x: np.ndarray, state: tuple[np.ndarray, np.ndarray], w: dict[str, np.ndarray], sfx: str) -> Any:
    h, c = state
    gates = x @ w[f"weight_ih_{sfx}"].T + w[f"bias_ih_{sfx}"] + h @ w[f"weight_hh_{sfx}"].T + w[f"bias_hh_{sfx}"]
    i, f, g, o = np.split(gates, 4, axis=1)  # PyTorch: input, forget, cell, output
    c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
    h = sigmoid(o) * np.tanh(c)
    return h, (h, c)


def _gru_step(x: np.ndarray, state: np.ndarray, w: dict[str, np.ndarray], sfx: str) -> Any:
    h = state
    xr, xz, xn = np.split(x @ w[f"weight_ih_{sfx}"].T + w[f"bias_ih_{sfx}"], 3, axis=1)  # PyTorch: r, z, n
    hr, hz, hn = np.split(h @ w[f"weight_hh_{sfx}"].T + w[f"bias_hh_{sfx}"], 3, axis=1)
    r, z = sigmoid(xr + hr), sigmoid(xz + hz)
    n = np.tanh(xn + r * hn)
    h = (1 - z) * n + z * h
    return h, h


def mlp_gradients(x: np.ndarray, w: dict[str, np.ndarray], upstream: np.ndarray) -> dict[str, np.ndarray]:
    """Backpropagation through Dense -> ReLU -> Dense by hand, for d(loss)/d(output) = upstream."""
    z = x @ w["0.weight"].T + w["0.bias"]
    h = np.maximum(z, 0)
    dz = (upstream @ w["2.weight"]) * (z > 0)
    return {"0.weight": dz.T @ x, "0.bias": dz.sum(0), "2.weight": upstream.T @ h, "2.bias": upstream.sum(0)}


def mlp_forward(x: np.ndarray, w: dict[str, np.ndarray]) -> np.ndarray:
    return np.maximum(x @ w["0.weight"].T + w["0.bias"], 0) @ w["2.weight"].T + w["2.bias"]


def assert_close(got: np.ndarray, expected: np.ndarray, atol: float = 1e-4) -> None:
    """Shapes equal and every element within ``atol``; the message gives the largest difference."""
    assert got.shape == expected.shape, f"shape {got.shape} != expected {expected.shape}"
    diff = float(np.max(np.abs(got - expected)))
    assert diff <= atol, f"max abs difference {diff:.3g} > {atol}"


def randomize(ps: Any, seed: int = 0, positive: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """Load random canonical values into ``ps`` (in [0.5, 1.5) for names ending in ``positive``,
    else [-0.5, 0.5)); one value per group of shared parameters; return them as float64."""
    rng = np.random.default_rng(seed)
    state: dict[str, np.ndarray] = {}
    for name, p in ps.items():
        low, high = (0.5, 1.5) if name.endswith(positive) else (-0.5, 0.5)
        value = rng.uniform(low, high, size=tuple(int(d) for d in p.shape)).astype(p.dtype)
        state[name] = next((state[n] for n in p.shared_with if n in state), value)
    ps.load(state)
    return {k: v.astype(np.float64) for k, v in state.items()}
