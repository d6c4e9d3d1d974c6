"""Collective save and load of a sharded model against one process doing the same, with peak memory.

    python benchmarks/bench_distributed.py                    # 1 GiB model, 2 ranks, 3 rounds
    python benchmarks/bench_distributed.py --mib 64 --ranks 2 --repeat 1 --out /tmp/b

A model of ``--mib`` MiB (float32 ``Linear(4096, 4096)`` layers, no bias) is built on PyTorch's meta
device, sharded by FSDP2 over ``--ranks`` gloo ranks on this machine (or not sharded, in one
process), allocated (each rank only its shard) and initialized. Then, timed between barriers:
``up.save(model, folder)`` (each rank writes its own blocks, rank 0 the index) and
``up.load(model, index)`` (each rank reads its own blocks' bytes; warm page cache), next to one
process saving and loading the whole unsharded model, and to the floor: writing the same bytes
with ``write`` + ``fsync`` and reading them back with ``readinto``. Memory is each process's peak
anonymous resident memory during the operation above what it held before (its model or shard
excluded), sampled every 2 ms (``RssAnon``: allocations, not the file pages a memory map makes
resident). The values loaded are checked against the values saved.

Writes ``distributed.json`` and ``distributed.md`` to ``--out`` (default ``reports/benchmarks``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__:
    from ._measure import PeakMemory
else:  # run as a script (and by torch.distributed.run): python benchmarks/bench_distributed.py
    from _measure import PeakMemory

ROOT = Path(__file__).resolve().parents[1]
LAYER = 4096  # a 4096 x 4096 float32 weight is 64 MiB


def _worker(args: argparse.Namespace) -> None:
    """One process: one rank of a sharded run, or the whole model alone (``--ranks 1``)."""
    import numpy as np
    import torch
    import torch.distributed as dist
    from torch import nn

    import unifyparams as up

    sharded = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if sharded:
        dist.init_process_group("gloo")
    rank = dist.get_rank() if sharded else 0
    layers = max(1, args.mib // 64)
    with torch.device("meta"):
        model = nn.Sequential(*[nn.Linear(LAYER, LAYER, bias=False) for _ in range(layers)])
    if sharded:
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        mesh = init_device_mesh("cpu", (dist.get_world_size(),))
        for layer in model:
            fully_shard(layer, mesh=mesh)
        fully_shard(model, mesh=mesh)
    model.to_empty(device="cpu")
    up.initialize(model, up.init.Normal(0.02), seed=1)
    local_bytes = sum(p.local()[0].nbytes for p in up.params(model).values())
    folder = Path(args.dir)

    def sync() -> None:
        if sharded:
            dist.barrier()

    def digest() -> list[float]:  # a few global values, to check the load
        return [float(p.local()[0].reshape(-1)[:7].sum()) for p in up.params(model).values()]

    def timed(work: Any, watched: bool) -> tuple[float, int]:
        """Seconds between barriers around ``work()`` (every rank), and the extra peak when ``watched``."""
        sync()
        with PeakMemory(active=watched) as memory:
            sync()
            start = time.perf_counter()
            work()
            sync()
            elapsed = time.perf_counter() - start
        return elapsed, memory.extra

    def zero() -> None:
        with torch.no_grad():
            for p in model.parameters():
                p.zero_() if not sharded else p.to_local().zero_()

    saved = digest()
    index = folder / "ckpt" / "model.safetensors.index.json" if sharded else folder / "ckpt" / "model.safetensors"
    works = {
        "save": lambda: up.save(model, folder / "ckpt" / "model.safetensors"),
        "load": lambda: up.load(model, index),
        "plain_load": lambda: up.load(model, index, atomic=False),  # no copy of what it overwrites: not atomic
    }
    rounds: list[dict[str, float]] = []
    memory: dict[str, float] = {}
    for round_ in range(args.repeat + 1):  # the last round measures memory (its sampling thread is not timed)
        watched = round_ == args.repeat
        if rank == 0:
            shutil.rmtree(folder / "ckpt", ignore_errors=True)
        times: dict[str, float] = {}
        for what, work in works.items():
            if what != "save":
                zero()
            times[f"{what}_s"], memory[f"{what}_extra"] = timed(work, watched)
            if what != "save":
                assert digest() == saved, "the values loaded differ from the values saved"
        if not watched:
            rounds.append(times)
    for row in rounds:
        row.update(memory)
    result = {"rank": rank, "local_bytes": local_bytes, "rounds": rounds}
    if not sharded:  # the floor, on the same bytes: write + fsync, then readinto
        data = np.ones(local_bytes // 4, np.float32)
        floor: list[dict[str, float]] = []
        for _ in range(args.repeat):
            path = folder / "floor.bin"
            start = time.perf_counter()
            with open(path, "wb") as f:
                f.write(memoryview(data).cast("B"))
                f.flush()
                os.fsync(f.fileno())
            write_s = time.perf_counter() - start
            into = np.empty_like(data)
            start = time.perf_counter()
            with open(path, "rb") as f:
                f.readinto(memoryview(into).cast("B"))
            floor.append({"write_s": write_s, "read_s": time.perf_counter() - start})
        result["floor"] = floor
    Path(args.result).with_name(f"{Path(args.result).stem}-rank{rank}.json").write_text(json.dumps(result))
    if sharded:
        dist.barrier()
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(ranks: int, args: argparse.Namespace, work: Path) -> list[dict[str, Any]]:
    result = work / f"run{ranks}.json"
    folder = work / f"files{ranks}"
    folder.mkdir()
    tail = [str(Path(__file__).resolve()), "--worker", "--mib", str(args.mib), "--repeat", str(args.repeat),
            "--dir", str(folder), "--result", str(result)]
    if ranks > 1:
        command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(ranks), "--master_addr",
                   "127.0.0.1", "--master_port", str(_free_port()), *tail]
    else:
        command = [sys.executable, *tail]
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 2) // ranks))}
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return [json.loads((work / f"run{ranks}-rank{r}.json").read_text()) for r in range(ranks)]


def _median(rows: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def report(single: list[dict[str, Any]], sharded: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    one = single[0]
    model = one["local_bytes"]
    gib = model / 2**30
    floor_write, floor_read = _median(one["floor"], "write_s"), _median(one["floor"], "read_s")
    rows = []
    for what, key, extra in (("save", "save_s", "save_extra"), ("load", "load_s", "load_extra"),
                             ("load, atomic=False", "plain_load_s", "plain_load_extra")):
        alone = _median(one["rounds"], key)
        together = max(_median(r["rounds"], key) for r in sharded)  # the slowest rank decides
        floor = floor_write if what == "save" else floor_read
        rows.append({
            "work": what, "one_process_s": alone, "ranks_s": together, "floor_s": floor,
            "speed_vs_one_process": alone / together, "one_process_vs_floor": floor / alone,
            "ranks_vs_floor": floor / together,
            "one_process_extra_mib": max(r[extra] for r in one["rounds"]) / 2**20,
            "per_rank_extra_mib": max(max(x[extra] for x in r["rounds"]) for r in sharded) / 2**20,
            "per_rank_shard_mib": max(r["local_bytes"] for r in sharded) / 2**20,
        })
    return {"model_gib": gib, "ranks": len(sharded), "repeat": args.repeat, "cpus": os.cpu_count(), "rows": rows}


def markdown(data: dict[str, Any]) -> str:
    lines = [
        f"# Collective save and load: {data['model_gib']:.2f} GiB model, {data['ranks']} ranks (FSDP2, gloo, "
        f"CPU) against one process",
        "",
        f"`python benchmarks/bench_distributed.py` on {data['cpus']} CPUs; medians of {data['repeat']} round(s); "
        "time is the slowest rank's, between barriers; memory, measured in one more round (its sampling thread untimed), is each process's peak anonymous resident memory "
        "(RssAnon: allocations, not mapped file pages) above what it held before (its model or shard excluded). Floor: the same bytes written with write + fsync, "
        "read back with readinto, by one process.",
        "",
        "| work | one process | ranks | ranks vs one process | floor | one process vs floor | ranks vs floor "
        "| extra peak, one process | extra peak per rank | shard per rank |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in data["rows"]:
        lines.append(
            f"| {r['work']} | {r['one_process_s']:.2f} s | {r['ranks_s']:.2f} s | {r['speed_vs_one_process']:.2f}x "
            f"| {r['floor_s']:.2f} s | {r['one_process_vs_floor']:.2f}x | {r['ranks_vs_floor']:.2f}x "
            f"| {r['one_process_extra_mib']:.0f} MiB | {r['per_rank_extra_mib']:.0f} MiB "
            f"| {r['per_rank_shard_mib']:.0f} MiB |"
        )
    lines += ["", "Ratios above 1x are faster than the reference. A load is atomic by default: each rank keeps a "
              "copy of the blocks it overwrites until every rank has finished (its shard, at most), so that a "
              "failure on any rank is put back everywhere; `atomic=False` holds none and is not all or nothing. "
              "On a virtual machine a process's first touch of fresh memory can be slow (this one: about 1 s per "
              "256 MiB for a new process), and that copy is fresh memory: it is most of the atomic load's time "
              "here.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mib", type=int, default=1024, help="model size in MiB (multiples of 64)")
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "reports" / "benchmarks"))
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        _worker(args)
        return
    with tempfile.TemporaryDirectory(prefix="bench-distributed-") as tmp:
        work = Path(tmp)
        single = _run(1, args, work)
        sharded = _run(args.ranks, args, work)
    data = report(single, sharded, args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "distributed.json").write_text(json.dumps(data, indent=1) + "\n")
    text = markdown(data)
    (out / "distributed.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
