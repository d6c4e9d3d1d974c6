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
- up.save / up.load: this package (atomic: temporary file, fsync, rename; load validates first).
- safetensors: ``safetensors.torch.save_file`` + fsync (for equal durability), and
  ``safetensors.torch.load_model`` (``load_file`` then ``load_state_dict``).

Files stay in the page cache between save and load (a warm cache; the machine has plenty of RAM), so
loads measure the CPU side, not the disk. Peak RSS is the process high-water mark during one call
(``/proc/self/clear_refs`` resets it), shown above the RSS before the call. Aim: within 1.5x of
the floor.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

GIB = 2**30


def rss_bytes(field: str = "VmRSS") -> int:
    """Current (VmRSS) or peak (VmHWM) resident memory; falls back to getrusage's peak."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
        return True
    except OSError:
        return False


def run_once(fn: Callable[[], Any]) -> tuple[float, int]:
    """(seconds, peak RSS growth in bytes, or -1 where the peak cannot be reset) of one call."""
    gc.collect()
    before = rss_bytes()
    precise = reset_peak()
    start = time.perf_counter()
    fn()
    seconds = time.perf_counter() - start
    return seconds, (rss_bytes("VmHWM") - before) if precise else -1


def measure(fns: list[Callable[[], Any]], repeat: int) -> list[tuple[float, float, int]]:
    """Median and fastest seconds, and largest peak growth of each function, run round-robin ``repeat`` times.

    Interleaving spreads the machine's background noise (page-cache writeback above all) evenly
    over the functions compared, instead of charging it to whichever ran during it; the order
    alternates between rounds so no function always follows the same one.
    """
    for fn in fns:
        fn()  # warm-up
    samples: list[list[tuple[float, int]]] = [[] for _ in fns]
    for round_ in range(repeat):
        order = list(range(len(fns)))
        for i in order if round_ % 2 == 0 else reversed(order):  # alternate who runs after whom
            samples[i].append(run_once(fns[i]))
    return [
        (statistics.median(t for t, _ in runs), min(t for t, _ in runs), max(g for _, g in runs))
        for runs in samples
    ]


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
    args = parser.parse_args(argv)

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
        floor, floor_best = results[0][0], results[0][1]
        for (label, _), (seconds, best, growth) in zip(chosen, results):
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
