"""Run on N ranks by tests/test_torch_distributed.py: an FSDP2 model (gloo, CPU) through unifyparams.

``python -m torch.distributed.run --nproc_per_node N tests/distributed/fsdp_params.py OUT_DIR``; each
rank writes ``OUT_DIR/rank<r>.json`` with what it saw and one boolean per check. Files the parent
test checks in one process (a collective save, torch's distributed checkpoint) are left in OUT_DIR.
The ranks run Keras on its torch backend (set by the parent), for ports to and from Keras.
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
from unifyparams.checkpoint.format import SafetensorsFile
from unifyparams_torch import sharding


def build() -> nn.Sequential:
    torch.manual_seed(0)
    # 5 rows over 2 ranks: uneven shards (3 + 2); 2 rows: one each; 1 row: rank 1's shard is empty
    return nn.Sequential(nn.Linear(3, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 2), nn.Linear(2, 7),
                         nn.Linear(7, 1))


def shard(model: nn.Module, mesh: Any) -> nn.Module:
    for layer in (model[0], model[3], model[4], model[5]):
        fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return model


def keras_twin() -> Any:
    """The same function in Keras (torch backend): Dense kernels are stored (in, out)."""
    import keras

    layers = keras.layers
    net = keras.Sequential([keras.Input((3,)), layers.Dense(5), layers.BatchNormalization(epsilon=1e-5, momentum=0.9),
                            layers.ReLU(), layers.Dense(2), layers.Dense(7), layers.Dense(1)])
    return net


def gluon_twin() -> Any:
    """The same function in Gluon (MXNet), built on a first call."""
    from unifyparams_gluon.compat import import_mxnet

    mx = import_mxnet()
    nn_ = mx.gluon.nn
    net = nn_.HybridSequential()
    net.add(nn_.Dense(5, in_units=3), nn_.BatchNorm(in_channels=5, epsilon=1e-5, momentum=0.9), nn_.Activation("relu"),
            nn_.Dense(2, in_units=5), nn_.Dense(7, in_units=2), nn_.Dense(1, in_units=7))
    net.initialize()
    return net


def gluon_out(net: Any, x: np.ndarray) -> np.ndarray:
    from unifyparams_gluon.compat import import_mxnet

    return np.asarray(net(import_mxnet().nd.array(x)).asnumpy())


def keras_out(net: Any, x: np.ndarray) -> np.ndarray:
    import keras

    return np.asarray(keras.ops.convert_to_numpy(net(x, training=False)))


def values(model: Any) -> dict[str, np.ndarray]:
    return {p.name: p.numpy(copy=True) for p in up.params(model).values()}


def same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    return a.keys() == b.keys() and all(a[k].shape == b[k].shape and np.array_equal(a[k], b[k]) for k in a)


def digest(state: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for name in sorted(state):
        h.update(name.encode())
        h.update(np.ascontiguousarray(state[name]).tobytes())
    return h.hexdigest()


def expected_block(full: np.ndarray, rank: int, size: int, dim: int = 0) -> tuple[np.ndarray, int]:
    """This rank's chunk as ``torch.chunk`` cuts it (FSDP2's and distribute_tensor's rule), and its start."""
    chunks = torch.chunk(torch.from_numpy(full), size, dim=dim)
    start = sum(c.shape[dim] for c in chunks[:rank])
    if rank >= len(chunks):
        shape = list(full.shape)
        shape[dim] = 0
        return np.empty(shape, full.dtype), full.shape[dim]
    return chunks[rank].numpy(), start


def fails(fn: Any, kind: type[BaseException]) -> str:
    """The message of the ``kind`` error ``fn()`` raises ("" when it raises none)."""
    try:
        fn()
    except kind as exc:
        return str(exc)
    return ""


def main(out: Path) -> dict[str, Any]:
    rank, size = dist.get_rank(), dist.get_world_size()
    model = build()
    reference = copy.deepcopy(model)  # the same model, unsharded, in this process
    mesh = init_device_mesh("cpu", (size,))
    shard(model, mesh)
    checks: dict[str, bool] = {}
    ps, ref = up.params(model), up.params(reference)

    # 1. access: canonical names, global shapes, count, dtype, placement; full and local values
    checks["names"] = list(ps) == list(ref)
    checks["shapes"] = all(ps[n].shape == ref[n].shape for n in ref)
    checks["dtypes"] = all(ps[n].dtype == ref[n].dtype for n in ref)
    checks["count"] = ps.count() == ref.count()
    checks["full_values"] = same(values(model), values(reference))
    placement = sharding.placement(ps["0.weight"])
    block, start = expected_block(ref["0.weight"].numpy(), rank, size)
    checks["placement"] = (
        placement is not None and placement.mesh_shape == (size,) and placement.shard_dims == (0,)
        and placement.local_shape == block.shape and placement.offsets == (start, 0)
    )
    checks["placement_of_plain_buffer"] = sharding.placement(ps["1.running_mean"]) is None
    checks["placement_on_param_and_tree"] = (
        (ps["0.weight"].placement or "").startswith(f"Shard(dim=0) over mesh ({size},)")
        and ps["1.running_mean"].placement is None and f"Shard(dim=0) over mesh ({size},)" in ps.tree()
    )
    for name in ("0.weight", "5.weight", "4.bias"):
        local, at = ps[name].local()  # the core's Param.local(): canonical block and its offsets
        want, begin = expected_block(ref[name].numpy(), rank, size)
        region = ps[name].region
        checks[f"local_{name}"] = (
            np.array_equal(local, want) and at[0] == begin and region is not None and region.shape == want.shape
            and region.global_shape == ref[name].shape
        )
    local_buffer, at = ps["1.running_var"].local()
    checks["local_of_plain_buffer"] = ps["1.running_var"].region is None and at == (0,) and local_buffer.shape == (5,)
    keys = [p.storage_key for p in ps.values()]
    checks["storage_keys"] = len(set(keys)) == len(keys)

    # a DTensor sharded along dim 1 (distribute_tensor, no FSDP): offsets along that dimension
    column = nn.Linear(5, 3)
    column.weight = nn.Parameter(distribute_tensor(column.weight.detach(), mesh, [Shard(1)]))
    columns = np.arange(15, dtype=np.float32).reshape(3, 5)
    up.params(column)["weight"].set(columns)
    part, at = up.params(column)["weight"].local()
    want, begin = expected_block(columns, rank, size, dim=1)
    checks["shard_dim1"] = (
        at == (0, begin) and np.array_equal(part, want) and np.array_equal(up.params(column)["weight"].numpy(), columns)
    )

    # ... saved and loaded collectively: blocks along dim 1 (tensor parallel), a plain bias on rank 0
    column_index = up.save(column, out / "column" / "model.safetensors")
    plain_column = nn.Linear(5, 3)
    up.load(plain_column, column_index)
    checks["column_save"] = np.array_equal(plain_column.weight.detach().numpy(), columns)
    up.params(column)["weight"].set(np.zeros((3, 5), np.float32))
    up.load(column, column_index)
    checks["column_load"] = np.array_equal(up.params(column)["weight"].numpy(), columns)

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

    # 3. collective save: each rank writes its own blocks, rank 0 the index once every rank is done
    folder = out / "collective"
    index = up.save(model, folder / "model.safetensors")
    checks["save_returns_the_index"] = index == folder / "model.safetensors.index.json" and index.is_file()
    body = json.loads(index.read_text())
    mine = [f for f in sorted(folder.glob("model-*.safetensors")) if f.name.startswith(f"model-{rank + 1:05d}-")]
    if mine:
        with SafetensorsFile(mine[0]) as f:
            stored = {n: f.tensor(n) for n in f.keys()}
        want, _ = expected_block(initialized["0.weight"], rank, size)
        checks["rank_file_holds_only_its_blocks"] = (
            (np.array_equal(stored["0.weight"], want) if want.size else "0.weight" not in stored)
            and ("1.running_mean" in stored) == (rank == 0)
        )
    else:  # a rank with no block of anything writes no file
        checks["rank_file_holds_only_its_blocks"] = rank != 0
    refused = fails(lambda: up.save(model, out / "hf", format="transformers"), up.CheckpointError)
    checks["transformers_folder_refused"] = "sharded over" in refused and not (out / "hf").exists()
    checks["index_lists_pieces"] = set(body["slices"]) >= {"0.weight", "0.bias"} and "1.running_mean" in body["weight_map"]
    # every rank loads it back into its shards, reading only its own blocks
    up.initialize(model, seed=99)
    report = up.load(model, index)
    checks["load_collective_save"] = same(values(model), initialized) and report.loaded == list(ps)

    # 4. an ordinary (single-process) checkpoint loads into the shards
    if rank == 0:
        plain = build()
        up.load(plain, index)  # the collective save, in one process, into an unsharded model
        checks["collective_save_loads_unsharded"] = same(values(plain), initialized)
        up.initialize(plain, seed=11)
        up.save(plain, out / "other.safetensors")
    dist.barrier()
    other_model = build()
    up.initialize(other_model, seed=11)
    other = values(other_model)
    up.load(model, out / "other.safetensors")
    checks["ordinary_checkpoint_loads_into_shards"] = same(values(model), other)
    up.load(model, index)

    # 5. torch.distributed.checkpoint in safetensors, both ways (its .metadata pickle is never written)
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint import (
        DefaultLoadPlanner,
        HuggingFaceStorageReader,
        HuggingFaceStorageWriter,
    )

    dcp_folder = out / "dcp"
    dcp.save(model.state_dict(), storage_writer=HuggingFaceStorageWriter(str(dcp_folder), save_distributed=True))
    dist.barrier()
    up.initialize(model, seed=5)
    up.load(model, dcp_folder)
    checks["up_load_reads_dcp"] = same(values(model), initialized)
    fresh = shard(build(), mesh)
    up.initialize(fresh, seed=3)
    state_dict = fresh.state_dict()
    # a unifyparams checkpoint holds parameters, not BatchNorm step counters: a partial load leaves those as they are
    dcp.load(state_dict, storage_reader=HuggingFaceStorageReader(str(folder)),
             planner=DefaultLoadPlanner(allow_partial_load=True))
    fresh.load_state_dict(state_dict)
    checks["dcp_load_reads_up_save"] = same(values(fresh), initialized)
    checks["no_pickle_metadata"] = not (dcp_folder / ".metadata").exists()

    # 6. ports between the sharded model and unsharded Keras, Gluon and torch models, both ways
    x = np.linspace(-1, 1, 12, dtype=np.float32).reshape(4, 3)
    model.eval()
    reference.eval()
    keras_net = keras_twin()
    up.port(model, keras_net)  # every rank: the global values, gathered one tensor at a time
    with torch.no_grad():
        expected_out = model(torch.from_numpy(x)).numpy()
    checks["port_sharded_to_keras"] = bool(np.allclose(keras_out(keras_net, x), expected_out, atol=1e-5))
    up.initialize(keras_net, seed=21)
    up.port(keras_net, model)  # every rank writes its blocks of the converted values
    with torch.no_grad():
        checks["port_keras_to_sharded"] = bool(
            np.allclose(model(torch.from_numpy(x)).numpy(), keras_out(keras_net, x), atol=1e-5))
    gluon_net = gluon_twin()
    up.port(model, gluon_net)
    with torch.no_grad():
        expected_out = model(torch.from_numpy(x)).numpy()
    checks["port_sharded_to_gluon"] = bool(np.allclose(gluon_out(gluon_net, x), expected_out, atol=1e-5))
    up.initialize(gluon_net, seed=22)
    up.port(gluon_net, model)
    with torch.no_grad():
        checks["port_gluon_to_sharded"] = bool(
            np.allclose(model(torch.from_numpy(x)).numpy(), gluon_out(gluon_net, x), atol=1e-5))
    up.port(model, reference)
    checks["port_sharded_to_unsharded_torch"] = same(values(reference), values(model))
    up.load(model, index)

    # gradients are DTensors too: p.grad() is the global gradient (FSDP2 averages over ranks)
    model.train()
    plain_twin = build()
    up.load(plain_twin, index)
    for net in (model, plain_twin):
        net(torch.from_numpy(x)).sum().backward()
    grads = up.params(plain_twin)
    checks["grad"] = all(np.allclose(ps[n].grad(), grads[n].grad(), atol=1e-6) for n in ("0.weight", "4.bias"))

    # 7. all or nothing across ranks
    before = values(model)
    # a file only the last rank cannot open: every rank refuses, nothing changes anywhere
    bad = index if rank != size - 1 else out / "missing.safetensors"
    message = fails(lambda: up.load(model, bad), up.CheckpointError)
    checks["refused_everywhere"] = f"rank {size - 1}" in message and "missing.safetensors" in message
    checks["unchanged_after_refusal"] = same(values(model), before)
    messages = [None] * size
    dist.all_gather_object(messages, message)
    checks["same_error_on_every_rank"] = len(set(messages)) == 1
    # a state that does not fit on one rank only: refused on every rank before any write
    wrong = {n: v.copy() for n, v in before.items()}
    if rank == 1:
        wrong["3.weight"] = np.zeros((3, 3), np.float32)
    message = fails(lambda: ps.load(wrong), up.UnifyParamsError)
    checks["bad_state_on_one_rank_refused_everywhere"] = "rank 1" in message and same(values(model), before)
    # a write that fails part way on rank 1 only: every rank puts its blocks back, one error everywhere
    real = sharding.write_local
    calls = {"n": 0}

    def flaky(tensor: Any, value: np.ndarray) -> None:
        calls["n"] += 1
        if rank == 1 and calls["n"] == 4:
            raise RuntimeError("disk on fire")
        real(tensor, value)

    sharding.write_local = flaky  # type: ignore[assignment]
    try:
        target = {n: v + 1 for n, v in before.items()}
        caught = fails(lambda: ps.load(target), up.errors.WriteError)
    finally:
        sharding.write_local = real  # type: ignore[assignment]
    checks["part_way_failure_fails_every_rank"] = "rank 1" in caught and "disk on fire" in caught
    checks["part_way_failure_changes_nothing"] = same(values(model), before) and "unchanged on all" in caught
    gathered: list[Any] = [None] * size
    dist.all_gather_object(gathered, caught)
    checks["part_way_same_error_on_every_rank"] = len(set(gathered)) == 1
    return {
        "rank": rank, "size": size, "names": list(ps), "shapes": {n: list(ps[n].shape) for n in ps}, "count": ps.count(),
        "placement": str(placement), "digest": digest(initialized), "checks": checks,
    }


def hybrid(out: Path) -> dict[str, bool]:
    """4 ranks only: a 2x2 mesh (replicate x shard, HSDP); a save stores each block once."""
    rank = dist.get_rank()
    mesh = init_device_mesh("cpu", (2, 2), mesh_dim_names=("replicate", "shard"))
    model = build()
    for layer in (model[0], model[3], model[4], model[5]):
        fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    up.initialize(model, seed=13)
    plain = build()
    up.initialize(plain, seed=13)
    checks = {"hybrid_initialize": same(values(model), values(plain))}
    region = up.params(model)["0.weight"].region
    checks["hybrid_owner"] = region is not None and region.owner == (rank in (0, 1))
    index = up.save(model, out / "hybrid" / "model.safetensors")
    body = json.loads(index.read_text())
    checks["hybrid_each_block_once"] = len(body["slices"]["0.weight"]["files"]) == 2
    up.initialize(model, seed=1)
    up.load(model, index)
    checks["hybrid_load"] = same(values(model), values(plain))
    return checks


if __name__ == "__main__":
    dist.init_process_group("gloo")
    out_dir = Path(sys.argv[1])
    try:
        result = main(out_dir)
        if dist.get_world_size() == 4:
            result["checks"].update(hybrid(out_dir))
    except BaseException:  # noqa: BLE001  (torch's CheckpointException is a BaseException)
        result = {"rank": dist.get_rank(), "error": traceback.format_exc(), "checks": {}}
    (out_dir / f"rank{dist.get_rank()}.json").write_text(json.dumps(result, indent=1))
    dist.barrier()  # no rank tears gloo down while the other still talks to it (an abort at exit otherwise)
    dist.destroy_process_group()
    sys.exit(1 if "error" in result else 0)
