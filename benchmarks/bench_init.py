"""Seeded initialization throughput vs each framework's native initializer, ratios in one run.

Sixteen 8192x8192 dense layers (~1.07e9 float32 parameters, 4 GiB) per backend at --scale 1;
each backend in its own process (the machine has 24 GiB):

    python benchmarks/bench_init.py                    # all backends, full size
    python benchmarks/bench_init.py --backend torch --scale 0.25

Native calls: PyTorch ``nn.init.xavier_uniform_`` / ``normal_`` on the same tensors; Keras
``GlorotUniform`` / ``RandomNormal`` assigned to the same variables; MXNet ``Xavier`` /
``Normal`` via ``initialize(force_reinit=True)``. Aim: within 1.5x of native PyTorch; peak memory
no more than the model plus one parameter's worth of scratch (reported as peak RSS).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any


def rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def build(backend: str, layers: int, width: int) -> tuple[Any, dict[str, Callable[[], Any]]]:
    if backend == "torch":
        import torch

        with torch.device("cpu"):
            model = torch.nn.Sequential(*[torch.nn.Linear(width, width, bias=False) for _ in range(layers)])

        def xavier() -> None:
            for m in model:
                torch.nn.init.xavier_uniform_(m.weight)

        def normal() -> None:
            for m in model:
                torch.nn.init.normal_(m.weight, 0.0, 0.01)

        return model, {"xavier_uniform": xavier, "normal": normal}
    if backend == "keras":
        import keras

        model = keras.Sequential([keras.Input((width,))] + [keras.layers.Dense(width, use_bias=False) for _ in range(layers)])

        def keras_init(init: Any) -> Callable[[], None]:
            def run() -> None:
                for layer in model.layers:
                    layer.kernel.assign(init(layer.kernel.shape))
            return run

        return model, {
            "xavier_uniform": keras_init(keras.initializers.GlorotUniform(seed=0)),
            "normal": keras_init(keras.initializers.RandomNormal(0.0, 0.01, seed=0)),
        }
    from unifyparams_gluon import import_mxnet

    mx = import_mxnet()
    net = mx.gluon.nn.HybridSequential()
    for _ in range(layers):
        net.add(mx.gluon.nn.Dense(width, in_units=width, use_bias=False))
    net.initialize()

    def mx_init(init: Any) -> Callable[[], None]:
        def run() -> None:
            net.initialize(init, force_reinit=True)
            mx.nd.waitall()
        return run

    return net, {"xavier_uniform": mx_init(mx.init.Xavier()), "normal": mx_init(mx.init.Normal(0.01))}


def run_one(backend: str, scale: float) -> None:
    import unifyparams as up

    layers = max(1, round(16 * scale))
    width = 8192
    model, native = build(backend, layers, width)
    gib = layers * width * width * 4 / 2**30
    ours = {
        "xavier_uniform": lambda: up.initialize(model, up.init.XavierUniform(), select="*.weight", seed=0),
        "normal": lambda: up.initialize(model, up.init.Normal(0.0, 0.01), select="*.weight", seed=0),
    }
    label = backend + (f"[{os.environ.get('KERAS_BACKEND', 'tensorflow')}]" if backend == "keras" else "")
    for name in ("xavier_uniform", "normal"):
        t_native = timed(native[name])
        t_ours = timed(ours[name])
        print(
            f"{label:<18} {name:<15} {gib:5.2f} GiB  native {gib / t_native:6.2f} GiB/s  "
            f"unifyparams {gib / t_ours:6.2f} GiB/s  ratio {t_ours / t_native:5.2f}x  peak RSS {rss_gib():5.2f} GiB",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=["torch", "keras", "gluon"])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the 16 layers of 8192x8192")
    args = parser.parse_args()
    if args.backend:
        run_one(args.backend, args.scale)
        return
    for backend in ("torch", "keras", "gluon"):
        subprocess.run([sys.executable, __file__, "--backend", backend, "--scale", str(args.scale)], check=True,
                       env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})


if __name__ == "__main__":
    main()
