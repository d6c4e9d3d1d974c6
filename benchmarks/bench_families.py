"""Porting a GPT-2-small-sized model (124M parameters) from Hugging Face transformers into a
keras-hub ``GPT2Backbone``, against keras-hub's own converter on the same weights, ratios from
one run.

- ``up.port(hf, backbone)``: no hints (the recipe is chosen from the two classes), the default
  all-or-nothing write, and with ``atomic=False``;
- keras-hub's converter: ``GPT2Backbone.from_preset(folder)`` on the ``save_pretrained`` folder,
  timed without building the backbone (its build is timed apart and subtracted), so that both
  sides do the same work: read the weights, split ``c_attn``, reshape, assign;
- the floor: one plain ``np.copyto`` of every tensor's bytes.

Every method runs once before timing (recipes loaded, TensorFlow's assign traced). Both results
are checked to be identical. Aim: ``up.port`` within 1.2x of the converter.

    python benchmarks/bench_families.py               # needs the model libraries: bash .ci/setup
    python benchmarks/bench_families.py --repeat 3 --layers 12
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
np.bool = bool  # type: ignore[attr-defined]  (MXNet, imported by unifyparams' Gluon adapter when present)


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--hidden", type=int, default=768)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    import keras_hub
    import torch
    import transformers

    import unifyparams as up

    heads = max(1, args.hidden // 64)
    config = transformers.GPT2Config(n_layer=args.layers, n_embd=args.hidden, n_head=heads)
    hf = transformers.GPT2LMHeadModel(config).eval()
    count = sum(p.numel() for p in hf.transformer.parameters())
    nbytes = sum(p.numel() * p.element_size() for p in hf.transformer.parameters())

    def build() -> Any:
        return keras_hub.models.GPT2Backbone(
            vocabulary_size=config.vocab_size, num_layers=args.layers, num_heads=heads, hidden_dim=args.hidden,
            intermediate_dim=4 * args.hidden, max_sequence_length=config.n_positions, dropout=config.resid_pdrop)

    ours, ours_fast = build(), build()
    folder = tempfile.mkdtemp(prefix="bench-families-")
    hf.save_pretrained(folder)
    sources = [p.detach().numpy() for p in hf.transformer.parameters()]
    targets = [np.empty_like(a) for a in sources]

    results: dict[str, list[float]] = {"up.port": [], "up.port(atomic=False)": [], "keras-hub converter": [],
                                       "plain copy": []}
    reference: Any = None
    up.port(hf, ours)  # warm up: recipes loaded, TensorFlow's assign traced (keras-hub's converter too, below)
    up.port(hf, ours_fast, atomic=False)
    keras_hub.models.GPT2Backbone.from_preset(folder)
    for _ in range(args.repeat):
        results["up.port"].append(timed(lambda: up.port(hf, ours)))
        results["up.port(atomic=False)"].append(timed(lambda: up.port(hf, ours_fast, atomic=False)))
        build_time = timed(build)
        total = time.perf_counter()
        reference = keras_hub.models.GPT2Backbone.from_preset(folder)
        results["keras-hub converter"].append(time.perf_counter() - total - build_time)
        results["plain copy"].append(timed(lambda: [np.copyto(t, s) for t, s in zip(targets, sources)]))
    for a, b in zip(ours.weights, reference.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    del torch

    converter = statistics.median(results["keras-hub converter"])
    print(f"GPT-2 {args.layers} layers x {args.hidden}: {count / 1e6:.0f}M parameters, {nbytes / 2**20:.0f} MiB; "
          f"median of {args.repeat}; keras backend {os.environ.get('KERAS_BACKEND', 'tensorflow')}")
    print(f"{'method':26s} {'seconds':>8s} {'vs converter':>13s} {'GB/s':>6s}")
    for name, times in results.items():
        t = statistics.median(times)
        print(f"{name:26s} {t:8.3f} {t / converter:12.2f}x {nbytes / t / 1e9:6.2f}")


if __name__ == "__main__":
    main()
