"""Porting ~1 GiB of float32 parameters PyTorch -> Keras and Keras -> PyTorch, against the floor.

The floor is one (transposing, for dense kernels) copy per tensor with each framework's own ops:
``variable.assign(tensor.T)`` into Keras, ``param.copy_(tensor.T)`` into PyTorch. Ratios are
measured in one run; peak RSS is reported.

    python benchmarks/bench_port.py                 # 16 dense layers of 4096x4096 (1 GiB per model)
    python benchmarks/bench_port.py --layers 4
"""

from __future__ import annotations

import argparse
import resource
import time

import keras
import numpy as np
import torch

import unifyparams as up


def rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--layers", type=int, default=16)
    parser.add_argument("--width", type=int, default=4096)
    args = parser.parse_args()
    w, n = args.width, args.layers
    gib = n * w * w * 4 / 2**30
    t_model = torch.nn.Sequential(*[torch.nn.Linear(w, w, bias=False) for _ in range(n)])
    k_model = keras.Sequential([keras.Input((w,))] + [keras.layers.Dense(w, use_bias=False) for _ in range(n)])
    t_weights = [m.weight for m in t_model]
    k_kernels = [layer.kernel for layer in k_model.layers]
    print(f"{n} dense layers of {w}x{w}: {gib:.2f} GiB per model; RSS after building {rss_gib():.2f} GiB")

    def floor_t2k() -> None:  # the backend's own transposing copy (NumPy's is ~10x slower)
        for t, k in zip(t_weights, k_kernels):
            k.assign(keras.ops.transpose(keras.ops.convert_to_tensor(t.detach().numpy())))

    def floor_k2t() -> None:
        with torch.no_grad():
            for t, k in zip(t_weights, k_kernels):
                t.copy_(torch.from_numpy(keras.ops.convert_to_numpy(k)).T)

    rows = []
    for label, floor, ours in (
        ("torch -> keras", floor_t2k, lambda: up.port(t_model, k_model)),
        ("keras -> torch", floor_k2t, lambda: up.port(k_model, t_model)),
    ):
        start = time.perf_counter()
        floor()
        t_floor = time.perf_counter() - start
        start = time.perf_counter()
        ours()
        t_ours = time.perf_counter() - start
        rows.append((label, t_floor, t_ours))
        print(f"{label}: floor {gib / t_floor:5.2f} GiB/s, up.port {gib / t_ours:5.2f} GiB/s, "
              f"ratio {t_ours / t_floor:4.2f}x, peak RSS {rss_gib():.2f} GiB")
    assert np.array_equal(up.params(t_model)["0.weight"].numpy(), up.params(k_model)["0.weight"].numpy())


if __name__ == "__main__":
    main()
