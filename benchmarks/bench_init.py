"""Seeded initialization throughput vs each framework's native initializer, ratios in one run.

At --scale 1 each backend gets sixteen 8192x8192 dense layers (~1.07e9 float32 parameters,
4.3 GB) and runs in its own process, one after the other, so only one framework's copy of the
model exists at a time (the reference machine has 2 cores and 24 GiB)::

    python benchmarks/bench_init.py                          # torch, keras, gluon; full size
    python benchmarks/bench_init.py --backend torch --scale 0.25 --repeat 3
    KERAS_BACKEND=torch python benchmarks/bench_init.py --backend keras

Native calls, on the same parameters: PyTorch ``nn.init.xavier_uniform_`` / ``normal_``; Keras
``GlorotUniform`` / ``RandomNormal`` assigned to each kernel; MXNet ``Xavier`` / ``Normal`` through
``initialize(force_reinit=True)``. unifyparams runs ``up.initialize(model, ..., select="*.weight",
seed=0)``. Throughput is parameter bytes per second (GB = 1e9 bytes), best of ``--repeat`` runs;
"ratio" is unifyparams' time over the native time (below 1: faster). "scratch" is the peak
resident memory above the model during unifyparams' call, sampled every millisecond, in units
of one parameter (aim: at most 1).

``records()`` (for ``python -m benchmarks``) compares every backend with torch's own initializers
on torch tensors of the same shapes (for PyTorch: the model's own weights), median of ``repeat``
round-robin runs, and with torch's initializers into new tensors: Keras on JAX, whose every write
needs new memory, is judged against those (``_measure.WRITES_NEW_MEMORY``). Goals: at least 2x
torch's throughput for Xavier-uniform, 1x for normal.
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from collections.abc import Callable
from typing import Any

if __package__:
    from ._backends import run_each_backend
    from ._measure import judged_first, keras_label, measure, record, square_width
else:  # run as a script: python benchmarks/bench_init.py
    from _backends import run_each_backend
    from _measure import judged_first, keras_label, measure, record, square_width

# ours' throughput over torch's ``xavier_uniform_`` / ``normal_`` on the same shapes, at least
GOALS = {"xavier_uniform": 2.0, "normal": 1.0}
LAYERS = 16
PAGE = os.sysconf("SC_PAGE_SIZE")


def rss() -> int:
    """Resident bytes of this process now."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


class PeakRSS:
    """Samples resident memory in a thread while the ``with`` block runs; ``.extra`` is the peak
    above the level at entry."""

    def __init__(self, interval: float = 0.001):
        self.interval, self.extra = interval, 0
        self._stop = threading.Event()

    def __enter__(self) -> PeakRSS:
        self._base = self._peak = rss()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._peak = max(self._peak, rss())
            time.sleep(self.interval)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._peak = max(self._peak, rss())
        self.extra = self._peak - self._base


def best_time(fn: Callable[[], Any], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def build(backend: str, layers: int, width: int) -> tuple[Any, dict[str, Callable[[], Any]]]:
    """The model and the native initializers for ``backend``."""
    if backend == "torch":
        import torch

        linear = [torch.nn.utils.skip_init(torch.nn.Linear, width, width, bias=False) for _ in range(layers)]
        for m in linear:
            m.weight.data.zero_()  # touch the pages, as a real model's construction does
        model = torch.nn.Sequential(*linear)

        def xavier() -> None:
            for m in model:
                torch.nn.init.xavier_uniform_(m.weight)

        def normal() -> None:
            for m in model:
                torch.nn.init.normal_(m.weight, 0.0, 0.01)

        return model, {"xavier_uniform": xavier, "normal": normal}
    if backend == "keras":
        import keras

        dense = [keras.layers.Dense(width, use_bias=False, kernel_initializer="zeros") for _ in range(layers)]
        model = keras.Sequential([keras.Input((width,)), *dense])

        def keras_init(init: Any) -> Callable[[], None]:
            def run() -> None:
                for layer in dense:
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
    net.initialize(mx.init.Zero())
    mx.nd.waitall()

    def mx_init(init: Any) -> Callable[[], None]:
        def run() -> None:
            net.initialize(init, force_reinit=True)
            mx.nd.waitall()

        return run

    return net, {"xavier_uniform": mx_init(mx.init.Xavier()), "normal": mx_init(mx.init.Normal(0.01))}


def records(backend: str, size_mib: float, repeat: int, layers: int = LAYERS) -> list[dict[str, Any]]:
    """Xavier-uniform and normal records for ``size_mib`` MiB of square dense layers of ``backend``."""
    import torch

    import unifyparams as up

    w = square_width(size_mib, layers)
    model, _ = build(backend, layers, w)
    if backend == "torch":
        weights = [m.weight for m in model]
    else:
        weights = [torch.zeros(w, w) for _ in range(layers)]  # torch's reference on the same shapes
    nbytes = layers * w * w * 4

    def torch_xavier() -> None:
        for t in weights:
            torch.nn.init.xavier_uniform_(t)

    def torch_normal() -> None:
        for t in weights:
            torch.nn.init.normal_(t, 0.0, 0.01)

    def into_new(init: Callable[[torch.Tensor], Any]) -> Callable[[], Any]:
        def run() -> list[torch.Tensor]:  # torch's initializer into new tensors, as a write to JAX needs
            made = [torch.empty(w, w) for _ in range(layers)]
            for t in made:
                init(t)
            return made

        return run

    def ours(init: Any, atomic: bool) -> Callable[[], Any]:
        return lambda: up.initialize(model, init, select="*.weight", seed=0, atomic=atomic)

    cases = (
        ("xavier_uniform", up.init.XavierUniform(), torch_xavier, into_new(torch.nn.init.xavier_uniform_),
         "up.initialize(XavierUniform)", "torch xavier_uniform_"),
        ("normal", up.init.Normal(0.0, 0.01), torch_normal, into_new(lambda t: torch.nn.init.normal_(t, 0.0, 0.01)),
         "up.initialize(Normal)", "torch normal_"),
    )
    label = keras_label() if backend == "keras" else backend
    out = []
    for case, init, reference, reference_new, ours_name, ref_name in cases:
        mine, direct, theirs, theirs_new = measure(
            [ours(init, True), ours(init, False), reference, reference_new], repeat, fresh_memory=2 * nbytes)
        references = judged_first(label, (ref_name, theirs), (f"{ref_name} into new tensors", theirs_new))
        for variant, name, measured in ((None, ours_name, mine), ("atomic=False", f"{ours_name[:-1]}, atomic=False)", direct)):
            extra = {"variant": variant} if variant else {}
            out.append(record("init", label, case, round(nbytes / 2**20), "MiB", nbytes,
                              [(name, measured), *references], ratio_kind="throughput",
                              goal=GOALS[case], layers=f"{layers} x {w}^2", **extra))
    return out


def run_one(backend: str, scale: float, width: int, repeat: int) -> None:
    import unifyparams as up

    layers = max(1, round(16 * scale))
    model, native = build(backend, layers, width)
    nbytes = layers * width * width * 4
    ours = {
        "xavier_uniform": lambda: up.initialize(model, up.init.XavierUniform(), select="*.weight", seed=0),
        "normal": lambda: up.initialize(model, up.init.Normal(0.0, 0.01), select="*.weight", seed=0),
    }
    label = backend + (f"[{os.environ.get('KERAS_BACKEND', 'tensorflow')}]" if backend == "keras" else "")
    for name in ("xavier_uniform", "normal"):
        with PeakRSS() as peak:
            t_ours = best_time(ours[name], repeat)
        t_native = best_time(native[name], repeat)
        print(
            f"{label:<18} {name:<15} {layers:2d} x {width}^2 ({nbytes / 1e9:4.2f} GB)  "
            f"native {nbytes / t_native / 1e9:5.2f} GB/s  unifyparams {nbytes / t_ours / 1e9:5.2f} GB/s  "
            f"ratio {t_ours / t_native:4.2f}x  scratch {peak.extra / (width * width * 4):4.2f} param(s)  "
            f"RSS {rss() / 2**30:5.2f} GiB",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=["torch", "keras", "gluon"], help="one backend (default: all, one by one)")
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the sixteen layers (default 1)")
    parser.add_argument("--width", type=int, default=8192, help="layer width (default 8192)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per measurement; the best counts (default 1)")
    args = parser.parse_args()
    if args.backend:
        run_one(args.backend, args.scale, args.width, args.repeat)
        return
    run_each_backend(__file__, ["--scale", str(args.scale), "--width", str(args.width), "--repeat", str(args.repeat)])


if __name__ == "__main__":
    main()
