"""Enumeration and reading cost of unifyparams vs each framework's native call.

A model of ~2,000 parameter tensors (1,000 dense layers of 16x16 in a sequential container),
per backend, each backend in its own process. Prints median times and ratios measured in one run:

    python benchmarks/bench_access.py                 # all backends
    python benchmarks/bench_access.py --backend torch --layers 1000 --repeat 15

Aims (issue 2): enumeration (params + names and shapes) within 2x of native; reading every
value within 1.3x of native.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

from _backends import run_each_backend


def median_seconds(fn: Callable[[], Any], repeat: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def build(backend: str, layers: int, width: int) -> tuple[Any, Callable[[], Any], Callable[[], Any]]:
    """The model and the native (enumerate, read-all) calls it is compared with."""
    if backend == "torch":
        import torch

        model = torch.nn.Sequential(*[torch.nn.Linear(width, width) for _ in range(layers)])

        def native_enum() -> Any:
            return [(n, tuple(p.shape)) for n, p in model.named_parameters()]

        def native_read() -> Any:
            return {n: p.detach().numpy() for n, p in model.named_parameters()}

        return model, native_enum, native_read
    if backend == "keras":
        import keras

        # Keras maps a Sequential's graph recursively: nest blocks of 100 layers (same tensor count).
        blocks = [keras.Sequential([keras.layers.Dense(width) for _ in range(min(100, layers - i))])
                  for i in range(0, layers, 100)]
        model = keras.Sequential([keras.Input((width,)), *blocks])

        def native_enum() -> Any:
            return [(v.path, tuple(v.shape)) for v in model.weights]

        def native_read() -> Any:
            return {v.path: keras.ops.convert_to_numpy(v) for v in model.weights}

        return model, native_enum, native_read
    if backend == "gluon":
        from unifyparams_gluon import import_mxnet

        mx = import_mxnet()
        net = mx.gluon.nn.HybridSequential()
        for _ in range(layers):
            net.add(mx.gluon.nn.Dense(width, in_units=width))
        net.initialize()

        def native_enum() -> Any:
            return [(n, p.shape) for n, p in net.collect_params().items()]

        def native_read() -> Any:
            return {n: p.data().asnumpy() for n, p in net.collect_params().items()}

        return net, native_enum, native_read
    raise SystemExit(f"unknown backend {backend!r}")


def run_one(backend: str, layers: int, width: int, repeat: int) -> None:
    import unifyparams as up

    model, native_enum, native_read = build(backend, layers, width)

    def ours_enum() -> Any:
        return [(n, p.shape) for n, p in up.params(model).items()]

    def ours_read() -> Any:
        return up.params(model).numpy()

    tensors = len(native_enum())
    assert len(ours_enum()) == tensors, "unifyparams lists a different number of tensors"
    rows = [
        ("enumerate names+shapes", median_seconds(native_enum, repeat), median_seconds(ours_enum, repeat), 2.0),
        ("read all values", median_seconds(native_read, repeat), median_seconds(ours_read, repeat), 1.3),
    ]
    label = backend + (f"[{os.environ.get('KERAS_BACKEND', 'tensorflow')}]" if backend == "keras" else "")
    for what, native, ours, aim in rows:
        ratio = ours / native
        verdict = "ok" if ratio <= aim else "over aim"
        print(
            f"{label:<18} {what:<24} tensors={tensors:<5} native={native * 1e3:8.2f} ms  "
            f"unifyparams={ours * 1e3:8.2f} ms  ratio={ratio:5.2f}x  (aim <= {aim}x: {verdict})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=["torch", "keras", "gluon"])
    parser.add_argument("--layers", type=int, default=1000)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    if args.backend:
        run_one(args.backend, args.layers, args.width, args.repeat)
        return
    run_each_backend(__file__, ["--layers", str(args.layers), "--width", str(args.width), "--repeat", str(args.repeat)])


if __name__ == "__main__":
    main()
