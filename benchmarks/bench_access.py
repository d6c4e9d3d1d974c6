"""Enumeration and reading cost of unifyparams vs each framework's native call.

A model of ~2,000 parameter tensors (1,000 dense layers of 16x16 in a sequential container),
per backend, each backend in its own process. Prints median times and ratios measured in one run
(``records()`` returns them for ``python -m benchmarks``):

    python benchmarks/bench_access.py                 # all backends
    python benchmarks/bench_access.py --backend torch --layers 1000 --repeat 15

Goals: enumeration (params + names and shapes) and reading every value each within 1.2x of the
native call (``named_parameters()``, Keras ``model.weights`` with path and shape, Gluon
``collect_params()``; reads: the framework's own read loop).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

if __package__:
    from ._backends import run_each_backend
    from ._measure import describe, keras_label, measure, record
else:  # run as a script: python benchmarks/bench_access.py
    from _backends import run_each_backend
    from _measure import describe, keras_label, measure, record

ENUMERATE_GOAL = 1.2  # ours' time over native, at most
READ_GOAL = 1.2


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


def records(backend: str, tensors: int, repeat: int, width: int = 16) -> list[dict[str, Any]]:
    """Enumeration and read records for a model of ``tensors`` parameter tensors (dense layers with bias)."""
    import unifyparams as up

    model, native_enum, native_read = build(backend, max(1, tensors // 2), width)

    def ours_enum() -> Any:
        return [(n, p.shape) for n, p in up.params(model).items()]

    def ours_read() -> Any:
        return up.params(model).numpy()

    count = len(native_enum())
    assert len(ours_enum()) == count, "unifyparams lists a different number of tensors"
    nbytes = sum(a.nbytes for a in ours_read().values())
    label = keras_label() if backend == "keras" else backend
    native_name = {"torch": "named_parameters()", "keras": "model.weights + path/shape",
                   "gluon": "collect_params()"}[backend]
    read_name = {"torch": "p.detach().numpy() loop", "keras": "ops.convert_to_numpy loop",
                 "gluon": "p.data().asnumpy() loop"}[backend]
    out = []
    for kind, ours, native, ours_name, ref_name, goal in (
        ("enumerate", ours_enum, native_enum, "up.params(model) names+shapes", native_name, ENUMERATE_GOAL),
        ("read", ours_read, native_read, "up.params(model).numpy()", read_name, READ_GOAL),
    ):
        mine, theirs = measure([ours, native], repeat)
        out.append(record(kind, label, "names+shapes" if kind == "enumerate" else "all values", count,
                          "tensors", nbytes, [(ours_name, mine), (ref_name, theirs)], ratio_kind="time",
                          goal=goal))
    return out


def run_one(backend: str, layers: int, width: int, repeat: int) -> None:
    for rec in records(backend, 2 * layers, repeat, width):
        print(describe(rec), flush=True)


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
