"""Checkpoint save/load speed and peak memory: unifyparams vs safetensors vs the one-copy floor.

A PyTorch model of ``--size-mb`` MiB of float32 (``--tensors`` Linear layers, square weights)
is saved and loaded, median of ``--repeat`` runs, all in one process and one run so the ratios
are comparable (the calls compared run round-robin, medians reported):

    python benchmarks/bench_checkpoint.py                       # ~1 GiB, 8 layers
    python benchmarks/bench_checkpoint.py --size-mb 256 --repeat 5 --dir /some/disk

- floor save: each tensor's bytes written to a file (one copy per tensor), then fsync. The old
  file is deleted first. "crash-safe" writes a new file beside the old one and renames it over
  the old one, the least a save that never leaves a broken checkpoint must do; on this machine's
  file system, writing while the old file still exists is itself slower and much noisier.
- floor load: each tensor read from the file straight into the parameter (``readinto``; one copy).
  Keras on JAX cannot write into an array (JAX arrays are immutable; every load gives each
  variable new memory), so its floor is ``readinto`` into new arrays: the same one copy, plus the
  kernel's first touch of the new pages. Every backend's record shows both floors.
- up.save / up.load: this package (atomic: temporary file, fsync, rename; load validates first).
- safetensors: ``safetensors.torch.save_file`` + fsync (for equal durability), and
  ``safetensors.torch.load_model`` (``load_file`` then ``load_state_dict``).

Files stay in the page cache between save and load (a warm cache; the machine has plenty of RAM), so
loads measure the CPU side, not the disk. Peak RSS is the process high-water mark during one call
(``/proc/self/clear_refs`` resets it), shown above the RSS before the call. Goal: at least 0.8x
the floor's throughput. ``records()`` measures any backend (torch, keras, gluon) for ``python -m
benchmarks``: ``up.save`` against the crash-safe floor (write + fsync beside the old file, then the
rename; plain write + fsync shown beside it), ``up.load`` against ``readinto`` preallocated arrays
(Keras on JAX: new arrays). Each timed call follows a touch of twice the model's bytes of new memory
(``_measure.settle_memory``), for ours and the floors alike.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

if __package__:
    from ._measure import (
        atomic_floor,
        describe,
        judged_first,
        keras_label,
        measure,
        record,
        rss_bytes,
        square_width,
    )
    from .bench_port import build
else:  # run as a script: python benchmarks/bench_checkpoint.py
    from _measure import (
        atomic_floor,
        describe,
        judged_first,
        keras_label,
        measure,
        record,
        rss_bytes,
        square_width,
    )
    from bench_port import build

GIB = 2**30
SAVE_GOAL = LOAD_GOAL = 0.8  # ours' throughput over the floor's, at least
LAYERS = 16


def load_not_atomic(model: Any, path: Path) -> Any:
    """``up.load(..., atomic=False)``: no snapshot of the parameters it overwrites (not atomic)."""
    from unifyparams.checkpoint import load

    return load(model, path, atomic=False)


def build_model(size_mb: int, tensors: int) -> Any:
    import torch

    per_layer = size_mb * 2**20 // 4 // tensors
    width = max(1, math.isqrt(per_layer))
    with torch.device("meta"):
        layers = [torch.nn.Linear(width, width) for _ in range(tensors)]
    model = torch.nn.Sequential(*layers).to_empty(device="cpu")
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(-1, 1, generator=generator)
    return model


def records(backend: str, size_mib: float, repeat: int, folder: str | None = None,
            layers: int = LAYERS) -> list[dict[str, Any]]:
    """Save and load records for ``size_mib`` MiB of square dense layers of ``backend``."""
    import unifyparams as up

    w = square_width(size_mib, layers)
    model, _ = build(backend, layers, w)
    up.initialize(model, up.init.Normal(0.0, 1.0), select="*", seed=0)
    arrays = [np.ascontiguousarray(a) for a in up.params(model).numpy().values()]
    nbytes = sum(a.nbytes for a in arrays)
    targets = [np.empty_like(a) for a in arrays]
    where = Path(folder or tempfile.mkdtemp(prefix="bench_checkpoint_"))
    where.mkdir(parents=True, exist_ok=True)
    ours_path, floor_path = where / f"up-{backend}.safetensors", where / f"floor-{backend}.bin"
    safe_path = where / f"crash-safe-{backend}.bin"

    def write_floor(path: Path) -> None:
        with open(path, "wb") as f:
            for a in arrays:
                f.write(memoryview(a).cast("B"))
            f.flush()
            os.fsync(f.fileno())

    def floor_save() -> None:
        floor_path.unlink(missing_ok=True)  # a new file each time, as up.save writes
        write_floor(floor_path)

    def crash_safe_save() -> None:  # the new file beside the old one, renamed over it, as up.save does
        write_floor(safe_path.with_suffix(".tmp"))
        os.replace(safe_path.with_suffix(".tmp"), safe_path)

    def floor_load() -> None:
        with open(floor_path, "rb", buffering=0) as f:
            for t in targets:
                f.readinto(memoryview(t).cast("B"))

    def floor_load_new() -> None:  # new memory for every array, as a load into JAX needs
        from unifyparams.copying import empty_aligned  # the allocation a JAX load uses (64-byte aligned)

        loaded = []
        with open(floor_path, "rb", buffering=0) as f:
            for a in arrays:
                t = empty_aligned(a.shape, a.dtype)
                f.readinto(memoryview(t).cast("B"))
                loaded.append(t)

    floor_atomic_load = atomic_floor(targets, floor_load)
    label = keras_label() if backend == "keras" else backend
    case = f"{layers} x {w}^2"
    try:
        mine, safe, floor = measure([lambda: up.save(model, ours_path), crash_safe_save, floor_save], repeat,
                                    fresh_memory=2 * nbytes)
        out = [record("save", label, case, round(nbytes / 2**20), "MiB", nbytes,
                      [("up.save(model, path)", mine), ("write + fsync + rename over the old file", safe),
                       ("write + fsync", floor)],
                      ratio_kind="throughput", goal=SAVE_GOAL)]
        mine, direct, floor, atomic, new = measure(
            [lambda: up.load(model, ours_path), lambda: load_not_atomic(model, ours_path), floor_load,
             floor_atomic_load, floor_load_new], repeat, fresh_memory=2 * nbytes)
        floors = judged_first(label, ("readinto preallocated arrays", floor), ("readinto new arrays", new))
        atomic_floor_ = ("readinto + a new copy of what it overwrites", atomic)
        out.append(record("load", label, case, round(nbytes / 2**20), "MiB", nbytes,
                          [("up.load(model, path)", mine), floors[0], atomic_floor_, floors[1]],
                          ratio_kind="throughput", goal=LOAD_GOAL))
        out.append(record("load", label, case, round(nbytes / 2**20), "MiB", nbytes,
                          [("up.load(model, path, atomic=False)", direct), *floors],
                          ratio_kind="throughput", goal=LOAD_GOAL, variant="atomic=False"))
    finally:
        for path in (ours_path, floor_path, safe_path, safe_path.with_suffix(".tmp")):
            path.unlink(missing_ok=True)
        if folder is None:
            where.rmdir()
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--size-mb", type=int, default=1024, help="model size in MiB of float32 (default 1024)"
    )
    parser.add_argument("--tensors", type=int, default=8, help="number of Linear layers (default 8)")
    parser.add_argument("--repeat", type=int, default=5, help="timed rounds (default 5)")
    parser.add_argument("--dir", default=None, help="folder for the files (default: a temporary folder)")
    parser.add_argument("--backend", choices=["torch", "keras", "gluon"],
                        help="instead: up.save/up.load of this backend against the floors only")
    args = parser.parse_args(argv)
    if args.backend:
        for rec in records(args.backend, args.size_mb, args.repeat, args.dir):
            print(describe(rec), flush=True)
        return

    import safetensors.torch as st
    import torch

    import unifyparams as up
    from unifyparams.checkpoint import load, save

    torch.set_num_threads(os.cpu_count() or 1)
    model = build_model(args.size_mb, args.tensors)
    params = list(model.parameters())
    nbytes = sum(p.numel() * p.element_size() for p in params)
    folder = Path(args.dir or tempfile.mkdtemp(prefix="bench_checkpoint_"))
    folder.mkdir(parents=True, exist_ok=True)
    ours, theirs, floor_path = folder / "up.safetensors", folder / "st.safetensors", folder / "floor.bin"
    safe_path = folder / "safe_floor.bin"

    def floor_save() -> None:
        floor_path.unlink(missing_ok=True)  # a new file each time, as up.save writes
        with open(floor_path, "wb") as f:
            for p in params:
                f.write(memoryview(p.detach().numpy()).cast("B"))
            f.flush()
            os.fsync(f.fileno())

    def safe_floor_save() -> None:
        temp = floor_path.with_suffix(".tmp")
        with open(temp, "wb") as f:
            for p in params:
                f.write(memoryview(p.detach().numpy()).cast("B"))
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, safe_path)

    def floor_load() -> None:
        with open(floor_path, "rb", buffering=0) as f:
            for p in params:
                f.readinto(memoryview(p.detach().numpy()).cast("B"))

    def st_save() -> None:
        st.save_file(model.state_dict(), theirs)
        with open(theirs, "rb+") as f:
            os.fsync(f.fileno())

    rows = [
        ("save", "floor (write + fsync)", floor_save),
        ("save", "floor, crash-safe (+ rename)", safe_floor_save),
        ("save", "up.save", lambda: save(model, ours)),
        ("save", "safetensors save_file + fsync", st_save),
        ("load", "floor (readinto params)", floor_load),
        ("load", "up.load (atomic, default)", lambda: load(model, ours)),
        ("load", "safetensors load_model", lambda: st.load_model(model, theirs)),
        ("load", "up.load(atomic=False)", lambda: load_not_atomic(model, ours)),
    ]
    print(
        f"model: {len(params)} tensors, {nbytes / GIB:.2f} GiB float32; torch {torch.__version__}, "
        f"unifyparams {up.__version__}, {os.cpu_count()} CPUs; files in {folder}; median of {args.repeat}"
    )
    print(f"RSS before: {rss_bytes() / GIB:.2f} GiB (the model and the interpreter)")
    print(
        f"{'':5} {'':32} {'median s':>8} {'GB/s':>6} {'x floor':>8} {'best s':>8} {'x floor':>8} {'peak RSS +GiB':>14}"
    )
    for op in ("save", "load"):
        chosen = [(label, fn) for kind, label, fn in rows if kind == op]
        results = measure([fn for _, fn in chosen], args.repeat)
        floor, floor_best = results[0]["seconds"], results[0]["best_seconds"]
        for (label, _), result in zip(chosen, results):
            seconds, best, growth = result["seconds"], result["best_seconds"], result["peak_extra_bytes"] or -1
            print(
                f"{op:5} {label:32} {seconds:8.3f} {nbytes / seconds / 1e9:6.2f} {seconds / floor:8.2f} "
                f"{best:8.3f} {best / floor_best:8.2f} {growth / GIB:14.2f}"
            )
    print(
        "atomic loads (the default) copy each parameter just before overwriting it, to restore every one\n"
        "if the framework refuses a write part way: up to one model of extra memory; atomic=False holds no\n"
        "copy and is not atomic. The +GiB of the loads also counts the memory-mapped file."
    )
    for path in (ours, theirs, floor_path, safe_path):
        path.unlink(missing_ok=True)
    if args.dir is None:
        folder.rmdir()
    sys.stdout.flush()


if __name__ == "__main__":
    main()
