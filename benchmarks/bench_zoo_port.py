"""Porting a real model, torchvision vgg16 <-> keras.applications VGG16 (138M parameters, 0.5 GiB of
float32), against a hand-written native copy of the same data, ratios measured in one run.

The native copy is what a user who knows both layouts writes, one tensor at a time with each
framework's own ops (NumPy's transposes are several times slower):

- torch -> Keras: ``kernel.assign(ops.transpose(w, (2, 3, 1, 0)))`` for each conv, ``(1, 0)`` for each
  dense weight, and for ``fc1`` the input axis reordered from torchvision's (512, 7, 7) flatten to
  Keras' (7, 7, 512) one (``reshape -> transpose -> reshape``);
- Keras -> torch: the inverse transposes with the Keras backend's own ops (``ops.transpose(kernel, (3, 2, 0, 1))``),
  then one contiguous ``weight.copy_(torch.from_numpy(...))`` per tensor (the fastest route measured here).

``up.port`` is timed as a user calls it (``up.port(src, dst)``) and with ``example_input=`` (a traced
forward on each side learns the dataflow; VGG's forward costs a few tenths of a second here). Both
methods write the same destination; each result is checked against the source's outputs.
``up.port(atomic=False)`` skips the snapshot that makes the default all or nothing (one copy of the
destination, which a hand-written copy does not make either). The calls compared run round-robin,
medians reported. Aim: ``up.port`` within 1.1x of the native copy.

    python benchmarks/bench_zoo_port.py                 # needs torchvision's model definitions: bash .ci/setup
    python benchmarks/bench_zoo_port.py --repeat 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from tests import zoo  # noqa: E402  (torchvision loaded without its package)

GIB = 2**30


def pairs(torch_model: Any, keras_model: Any) -> list[tuple[Any, Any]]:
    """(torch module, Keras layer) of every conv and dense layer, in the order both zoos define them."""
    import torch

    t_layers = [m for m in torch_model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    k_layers = [layer for layer in keras_model.layers if layer.weights]
    assert len(t_layers) == len(k_layers) == 16, (len(t_layers), len(k_layers))
    return list(zip(t_layers, k_layers))


def native_torch_to_keras(layer_pairs: list[tuple[Any, Any]]) -> None:
    import keras
    import torch

    ops = keras.ops
    first_dense = True
    for t, k in layer_pairs:
        w = ops.convert_to_tensor(t.weight.detach().numpy())
        if isinstance(t, torch.nn.Conv2d):
            k.kernel.assign(ops.transpose(w, (2, 3, 1, 0)))
        elif first_dense:  # (4096, 512*7*7) in CHW order -> (7*7*512, 4096) in HWC order
            first_dense = False
            w = ops.transpose(ops.reshape(w, (t.out_features, 512, 7, 7)), (2, 3, 1, 0))
            k.kernel.assign(ops.reshape(w, (7 * 7 * 512, t.out_features)))
        else:
            k.kernel.assign(ops.transpose(w, (1, 0)))
        k.bias.assign(ops.convert_to_tensor(t.bias.detach().numpy()))


def native_keras_to_torch(layer_pairs: list[tuple[Any, Any]]) -> None:
    import keras
    import torch

    ops = keras.ops
    first_dense = True
    with torch.no_grad():
        for t, k in layer_pairs:
            if isinstance(t, torch.nn.Conv2d):
                w = ops.transpose(k.kernel, (3, 2, 0, 1))
            elif first_dense:  # (7*7*512, 4096) in HWC order -> (4096, 512*7*7) in CHW order
                first_dense = False
                w = ops.transpose(ops.reshape(k.kernel, (7, 7, 512, t.out_features)), (3, 2, 0, 1))
            else:
                w = ops.transpose(k.kernel, (1, 0))
            # the backend's transpose, then one contiguous copy: a strided torch copy_ of the
            # permuted kernel is ~2.5x slower for fc1 here
            t.weight.copy_(torch.from_numpy(ops.convert_to_numpy(w)).reshape(t.weight.shape))
            t.bias.copy_(torch.from_numpy(ops.convert_to_numpy(k.bias)))


def measure(fns: list[Callable[[], Any]], repeat: int) -> list[tuple[float, float]]:
    """(median, best) seconds of each function, run round-robin ``repeat`` times after one warm-up."""
    for fn in fns:
        fn()
    samples: list[list[float]] = [[] for _ in fns]
    for round_ in range(repeat):
        order = list(range(len(fns)))
        for i in order if round_ % 2 == 0 else reversed(order):  # alternate who runs after whom
            start = time.perf_counter()
            fns[i]()
            samples[i].append(time.perf_counter() - start)
    return [(statistics.median(s), min(s)) for s in samples]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3, help="timed rounds (default 3)")
    args = parser.parse_args(argv)

    import keras
    import torch

    import unifyparams as up

    t_model, k_model = zoo.build("torch", "vgg16"), zoo.build("keras", "vgg16")
    layer_pairs = pairs(t_model, k_model)
    x = zoo.example_input("vgg16")
    nbytes = sum(p.numel() * p.element_size() for p in t_model.parameters())
    print(
        f"vgg16: {sum(p.numel() for p in t_model.parameters()):,} parameters, {nbytes / GIB:.2f} GiB float32; "
        f"torch {torch.__version__}, keras {keras.__version__} ({keras.backend.backend()}), {os.cpu_count()} CPUs; "
        f"median of {args.repeat}"
    )

    def check(label: str, src_fw: str, src: Any, dst_fw: str, dst: Any) -> None:
        error = zoo.relative_error(zoo.forward(src_fw, src, x), zoo.forward(dst_fw, dst, x))
        assert error <= 1e-4, f"{label}: outputs differ by {error:.3g} relative"

    rows = []
    directions = (
        ("torch -> keras", "torch", t_model, "keras", k_model, lambda: native_torch_to_keras(layer_pairs)),
        ("keras -> torch", "keras", k_model, "torch", t_model, lambda: native_keras_to_torch(layer_pairs)),
    )
    for label, src_fw, src, dst_fw, dst, native in directions:
        zoo.randomize(src, 0)  # values the destination does not have yet
        calls = [
            ("native copy", native),
            ("up.port", lambda src=src, dst=dst: up.port(src, dst)),
            ("up.port(atomic=False)", lambda src=src, dst=dst: up.port(src, dst, atomic=False)),
            ("up.port(example_input=x)", lambda src=src, dst=dst: up.port(src, dst, example_input=x)),
        ]
        for name, fn in calls:  # each method alone gives the right model
            zoo.randomize(dst, 1)
            fn()
            check(f"{label}, {name}", src_fw, src, dst_fw, dst)
        results = measure([fn for _, fn in calls], args.repeat)
        base, base_best = results[0]
        for (name, _), (seconds, best) in zip(calls, results):
            rows.append((label, name, seconds, nbytes / seconds / 1e9, seconds / base, best / base_best))
    print(f"{'direction':15} {'method':26} {'median s':>8} {'GB/s':>6} {'x native':>8} {'best x':>7}")
    for label, name, seconds, rate, ratio, best_ratio in rows:
        print(f"{label:15} {name:26} {seconds:8.3f} {rate:6.2f} {ratio:8.2f} {best_ratio:7.2f}")


if __name__ == "__main__":
    main()
