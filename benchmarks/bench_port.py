"""Porting float32 dense layers between frameworks (PyTorch <-> Keras, PyTorch <-> Gluon) against the floor.

The floors are measured in the same run on the same shapes: a transposing copy (``dst.copy_(src.T)``,
torch's own strided copy; a Dense kernel is stored transposed in Keras) and a plain ``np.copyto``
of every tensor's bytes. The goal: ``up.port`` at least 0.8x the transposing copy's throughput.
Peak memory above the models is reported (``records()`` returns the results for ``python -m benchmarks``).

    python benchmarks/bench_port.py                 # 16 dense layers of 4096x4096 (1 GiB per model)
    python benchmarks/bench_port.py --layers 4 --directions torch-keras,keras-torch
"""

from __future__ import annotations

import argparse
import os
from typing import Any

import numpy as np

if __package__:
    from ._measure import atomic_floor, describe, keras_label, measure, record, square_width
else:  # run as a script: python benchmarks/bench_port.py
    from _measure import atomic_floor, describe, keras_label, measure, record, square_width

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
DIRECTIONS = ("torch-keras", "keras-torch", "torch-gluon", "gluon-torch")
GOAL = 0.8  # ours' throughput over the transposing copy's, at least
LAYERS = 16


def build(framework: str, layers: int, width: int) -> tuple[Any, list[Any]]:
    """A model of ``layers`` square dense layers without bias, and its weight tensors."""
    if framework == "torch":
        import torch

        model = torch.nn.Sequential(*[torch.nn.Linear(width, width, bias=False) for _ in range(layers)])
        return model, [m.weight for m in model]
    if framework == "keras":
        import keras

        model = keras.Sequential([keras.Input((width,))]
                                 + [keras.layers.Dense(width, use_bias=False) for _ in range(layers)])
        return model, [layer.kernel for layer in model.layers]
    from unifyparams_gluon import import_mxnet

    mx = import_mxnet()
    net = mx.gluon.nn.HybridSequential()
    for _ in range(layers):
        net.add(mx.gluon.nn.Dense(width, in_units=width, use_bias=False))
    net.initialize()
    mx.nd.waitall()
    return net, [p for p in net.collect_params().values()]


def records(direction: str, size_mib: float, repeat: int, layers: int = LAYERS,
            width: int | None = None) -> list[dict[str, Any]]:
    """One record: ``up.port`` of ``size_mib`` MiB of square dense layers, ``direction`` as "torch-keras"."""
    import torch

    import unifyparams as up

    source, target = direction.split("-")
    w = width or square_width(size_mib, layers)
    src_model, _ = build(source, layers, w)
    dst_model, _ = build(target, layers, w)
    nbytes = layers * w * w * 4
    up.initialize(src_model, up.init.Normal(0.0, 1.0), select="*", seed=0)

    floor_src = [torch.randn(w, w) for _ in range(layers)]
    floor_dst = [torch.empty(w, w) for _ in range(layers)]
    np_src = [t.numpy() for t in floor_src]
    np_dst = [t.numpy() for t in floor_dst]

    def transposing_copy() -> None:
        with torch.no_grad():
            for s, d in zip(floor_src, floor_dst):
                d.copy_(s.T)

    def plain_copy() -> None:
        for s, d in zip(np_src, np_dst):
            np.copyto(d, s)

    def ours() -> None:
        up.port(src_model, dst_model)

    def ours_direct() -> None:
        up.port(src_model, dst_model, atomic=False)

    mine, direct, floor, plain, floor_atomic = measure(
        [ours, ours_direct, transposing_copy, plain_copy, atomic_floor(np_dst, transposing_copy)], repeat,
        fresh_memory=2 * nbytes)
    first = next(iter(up.params(src_model)))
    np.testing.assert_array_equal(up.params(src_model)[first].numpy(), up.params(dst_model)[first].numpy())
    label = "->".join(keras_label() if f == "keras" else f for f in (source, target))
    case = f"{layers} x {w}^2"
    return [record("port", label, case, round(nbytes / 2**20), "MiB", nbytes,
                   [("up.port(src, dst)", mine), ("torch copy_ of a transposed view", floor),
                    ("np.copyto", plain), ("a new copy of the destination + the transposing copy", floor_atomic)],
                   ratio_kind="throughput", goal=GOAL),
            record("port", label, case, round(nbytes / 2**20), "MiB", nbytes,
                   [("up.port(src, dst, atomic=False)", direct), ("torch copy_ of a transposed view", floor),
                    ("np.copyto", plain)], ratio_kind="throughput", goal=GOAL, variant="atomic=False")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--layers", type=int, default=LAYERS)
    parser.add_argument("--width", type=int, default=4096)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--directions", default="torch-keras,keras-torch",
                        help=f"comma-separated, of {', '.join(DIRECTIONS)} (default torch-keras,keras-torch)")
    args = parser.parse_args()
    size = args.layers * args.width**2 * 4 / 2**20
    for direction in args.directions.split(","):
        for rec in records(direction, size, args.repeat, args.layers, args.width):
            print(describe(rec), flush=True)
            for other in rec["other_references"]:
                print(f"{'':26} vs {other['label']}: {other['gbps']:.2f} GB/s, ratio {other['ratio']:.2f}x")


if __name__ == "__main__":
    main()
