"""Run on 2 ranks by tests/test_torch_distributed.py: an FSDP2 model (gloo, CPU) through unifyparams.

``python -m torch.distributed.run --nproc_per_node 2 tests/distributed/fsdp_params.py OUT_DIR``; each
rank writes ``OUT_DIR/rank<r>.json`` with what it saw and one boolean per check.
"""

from __future__ import annotations

import copy
import hashlib
import json
import sys
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard
from torch.distributed.tensor import Shard, distribute_tensor

import unifyparams as up
from unifyparams.errors import CheckpointError
from unifyparams_torch import sharding


def build() -> nn.Sequential:
    torch.manual_seed(0)
    # 5 rows over 2 ranks: uneven shards (3 + 2); 2 rows: one each; 1 row: rank 1's shard is empty
    return nn.Sequential(nn.Linear(3, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 2), nn.Linear(2, 7),
                         nn.Linear(7, 1))


def values(model: nn.Module) -> dict[str, np.ndarray]:
    return {p.name: p.numpy(copy=True) for p in up.params(model).values()}


def same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    return a.keys() == b.keys() and all(a[k].shape == b[k].shape and np.array_equal(a[k], b[k]) for k in a)


def digest(state: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for name in sorted(state):
        h.update(name.encode())
        h.update(np.ascontiguousarray(state[name]).tobytes())
    return h.hexdigest()


def main(out: Path) -> dict[str, Any]:
    rank = dist.get_rank()
    model = build()
    reference = copy.deepcopy(model)  # the same model, unsharded, in this process
    mesh = init_device_mesh("cpu", (2,))
    for layer in (model[0], model[3], model[4], model[5]):
        fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    checks: dict[str, bool] = {}
    ps, ref = up.params(model), up.params(reference)

    # 1. access: canonical names, global shapes, count, dtype, placement; full and local values
    checks["names"] = list(ps) == list(ref)
    checks["shapes"] = all(ps[n].shape == ref[n].shape for n in ref)
    checks["dtypes"] = all(ps[n].dtype == ref[n].dtype for n in ref)
    checks["count"] = ps.count() == ref.count()
    checks["full_values"] = same(values(model), values(reference))
    placement = sharding.placement(ps["0.weight"])
    checks["placement"] = (
        placement is not None and placement.mesh_shape == (2,) and placement.shard_dims == (0,)
        and placement.local_shape == ((3, 3) if rank == 0 else (2, 3))
        and placement.offsets == ((0, 0) if rank == 0 else (3, 0))
    )
    checks["placement_of_plain_buffer"] = sharding.placement(ps["1.running_mean"]) is None
    shard, offsets = sharding.local(ps["0.weight"])
    full = ref["0.weight"].numpy()
    checks["local_shard"] = np.array_equal(shard, full[offsets[0] : offsets[0] + shard.shape[0]])
    tail, tail_at = sharding.local(ps["5.weight"])
    checks["empty_shard"] = tail.shape == ((1, 7) if rank == 0 else (0, 7)) and tail_at == ((0, 0) if rank == 0 else (1, 0))
    keys = [p.storage_key for p in ps.values()]
    checks["storage_keys"] = len(set(keys)) == len(keys)

    # a DTensor sharded along dim 1 (distribute_tensor, no FSDP): offsets along that dimension
    column = nn.Linear(5, 3)
    column.weight = nn.Parameter(distribute_tensor(column.weight.detach(), mesh, [Shard(1)]))
    columns = np.arange(15, dtype=np.float32).reshape(3, 5)
    up.params(column)["weight"].set(columns)
    part, at = sharding.local(up.params(column)["weight"])
    checks["shard_dim1"] = (
        at == ((0, 0) if rank == 0 else (0, 3)) and np.array_equal(part, columns[:, at[1] : at[1] + part.shape[1]])
        and np.array_equal(up.params(column)["weight"].numpy(), columns)
    )

    # 2. writes take global values; each rank writes its slice
    new = np.arange(15, dtype=np.float32).reshape(5, 3)
    ps["0.weight"].set(new)
    checks["set"] = np.array_equal(ps["0.weight"].numpy(), new)
    state = {n: np.full(ref[n].numpy().shape, i, dtype=ref[n].dtype) for i, n in enumerate(ref)}
    ps.load(state)
    checks["paramset_load"] = same(values(model), state)
    up.initialize(model, seed=7)
    up.initialize(reference, seed=7)
    initialized = values(model)
    checks["initialize_same_as_unsharded"] = same(initialized, values(reference))

    # 3. save: rank 0 writes an ordinary checkpoint; load: every rank writes its slices
    path = out / "model.safetensors"
    returned = sharding.save(model, path)
    checks["save_returns_path"] = returned == path
    if rank == 0:
        plain = build()
        up.load(plain, path)
        checks["saved_file_loads_unsharded"] = same(values(plain), initialized)
        up.initialize(plain, seed=11)
        up.save(plain, out / "other.safetensors")
    dist.barrier()
    other_model = build()
    up.initialize(other_model, seed=11)
    other = values(other_model)
    sharding.load(model, out / "other.safetensors")
    checks["sharding_load"] = same(values(model), other)
    up.load(model, path)  # plain up.load on every rank works too
    checks["up_load"] = same(values(model), initialized)
    # gradients are DTensors too: p.grad() is the global gradient (FSDP2 averages over ranks)
    x = torch.linspace(-1, 1, 12).reshape(4, 3)
    for net in (model, reference):
        net(x).sum().backward()
    checks["grad"] = all(np.allclose(ps[n].grad(), ref[n].grad(), atol=1e-6) for n in ("0.weight", "4.bias"))

    # all or nothing across ranks: rank 1 cannot open its file, so both refuse, nothing changes
    before = values(model)
    bad = path if rank == 0 else out / "missing.safetensors"
    try:
        sharding.load(model, bad)
        checks["refused_everywhere"] = False
    except CheckpointError as exc:
        checks["refused_everywhere"] = "rank 1" in str(exc)
    checks["unchanged_after_refusal"] = same(values(model), before)
    # a write refused on one rank is refused on every rank
    checks["agree"] = sharding.agree("no" if rank == 1 else None) is not None
    return {
        "rank": rank, "names": list(ps), "shapes": {n: list(ps[n].shape) for n in ps}, "count": ps.count(),
        "placement": str(placement), "digest": digest(initialized), "checks": checks,
    }


if __name__ == "__main__":
    dist.init_process_group("gloo")
    out_dir = Path(sys.argv[1])
    try:
        result = main(out_dir)
    except Exception:
        result = {"rank": dist.get_rank(), "error": traceback.format_exc(), "checks": {}}
    (out_dir / f"rank{dist.get_rank()}.json").write_text(json.dumps(result, indent=1))
    dist.barrier()  # no rank tears gloo down while the other still talks to it (an abort at exit otherwise)
    dist.destroy_process_group()
    sys.exit(1 if "error" in result else 0)
