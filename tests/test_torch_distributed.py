"""Parameters sharded over ranks by FSDP2 / DTensor: 2 and 4 gloo ranks on the CPU, in a subprocess.

The ranks run tests/distributed/fsdp_params.py (access, writes, initialize, collective save and
load, torch's distributed checkpoint both ways, ports to and from Keras, failures on one rank);
each writes what it saw to a JSON file, checked here against an unsharded model built in this
process, and the files they saved are loaded here, in one process, into PyTorch and Keras.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch  # noqa: E402  (installed in every CI environment that runs this file)

import unifyparams as up

pytestmark = pytest.mark.torch

SCRIPTS = Path(__file__).parent / "distributed"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _script(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(f"distributed_{name}", SCRIPTS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _launch(ranks: int, out_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    assert torch.distributed.is_available(), "this PyTorch build has no torch.distributed: the install is broken"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "KERAS_BACKEND": "torch"}
    for attempt in range(2):
        out = out_factory.mktemp(f"fsdp{ranks}")
        command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(ranks), "--master_addr",
                   "127.0.0.1", "--master_port", str(_free_port()), str(SCRIPTS / "fsdp_params.py"), str(out)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=400, env=env)
        results = [json.loads((out / f"rank{r}.json").read_text()) for r in range(ranks)
                   if (out / f"rank{r}.json").exists()]
        errors = [r["error"] for r in results if "error" in r]
        # One relaunch, only when a rank process died by a signal without a Python error (a gloo
        # teardown abort seen once in ~10 runs on a loaded 2-core machine); any error, any failed
        # check, and a second crash fail the test.
        crashed = done.returncode != 0 and not errors and "Signal" in done.stderr
        if not crashed or attempt == 1:
            break
        warnings.warn(f"relaunching the {ranks}-rank run after a signal: {done.stderr[-500:]}", stacklevel=1)
    assert done.returncode == 0 and len(results) == ranks, (errors, done.stdout[-3000:], done.stderr[-3000:])
    return out, results


@pytest.fixture(scope="module", params=[2, 4], ids=["2-ranks", "4-ranks"])
def fsdp_run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    return _launch(request.param, tmp_path_factory)


def test_every_check_passes_on_every_rank(fsdp_run: tuple[Path, list[dict[str, Any]]]) -> None:
    for result in fsdp_run[1]:
        checks = result["checks"]
        assert checks and all(checks.values()), (result["rank"], {k: v for k, v in checks.items() if not v})


def test_ranks_agree_with_the_unsharded_model(fsdp_run: tuple[Path, list[dict[str, Any]]]) -> None:
    script = _script("fsdp_params")
    plain = script.build()
    ps = up.params(plain)
    up.initialize(plain, seed=7)  # one process, no mesh: the same global values as on N ranks
    for result in fsdp_run[1]:
        assert result["names"] == list(ps)
        assert result["shapes"] == {n: list(ps[n].shape) for n in ps}
        assert result["count"] == ps.count()
        assert result["digest"] == script.digest(script.values(plain))
    assert fsdp_run[1][0]["placement"].startswith(f"Shard(dim=0) over mesh ({fsdp_run[1][0]['size']},)")


def _seeded_plain() -> tuple[Any, Any]:
    script = _script("fsdp_params")
    plain = script.build()
    up.initialize(plain, seed=7)
    return script, plain


def test_the_collective_save_loads_in_one_process_into_torch_keras_and_gluon(
    fsdp_run: tuple[Path, list[dict[str, Any]]],
) -> None:
    """What N ranks saved, each its own blocks, one process loads into PyTorch, Keras and Gluon."""
    script, plain = _seeded_plain()
    index = fsdp_run[0] / "collective" / "model.safetensors.index.json"
    ranks = fsdp_run[1][0]["size"]
    pieces = len(torch.chunk(torch.arange(5), ranks))  # 5 rows: 3 + 2 on 2 ranks, 2 + 2 + 1 (+ nothing) on 4
    assert len(json.loads(index.read_text())["slices"]["0.weight"]["files"]) == pieces
    torch_net = script.build()
    up.initialize(torch_net, seed=1)
    up.load(torch_net, index)
    assert script.same(script.values(torch_net), script.values(plain))
    keras_net = script.keras_twin()
    up.load(keras_net, index)
    x = np.linspace(-1, 1, 12, dtype=np.float32).reshape(4, 3)
    plain.eval()
    with torch.no_grad():
        expected = plain(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(script.keras_out(keras_net, x), expected, atol=1e-5)
    gluon_net = script.gluon_twin()
    up.load(gluon_net, index)
    np.testing.assert_allclose(script.gluon_out(gluon_net, x), expected, atol=1e-5)


def test_torch_distributed_checkpoint_files_load_in_one_process(fsdp_run: tuple[Path, list[dict[str, Any]]]) -> None:
    """torch.distributed.checkpoint's safetensors (one file per rank, offsets in the header) load anywhere."""
    script, plain = _seeded_plain()
    folder = fsdp_run[0] / "dcp"
    assert len(list(folder.glob("*.safetensors"))) == fsdp_run[1][0]["size"]
    net = script.build()
    report = up.load(net, folder)
    assert script.same(script.values(net), script.values(plain)) and len(report.files) == fsdp_run[1][0]["size"]


def test_pieces_that_do_not_tile_are_refused(fsdp_run: tuple[Path, list[dict[str, Any]]], tmp_path: Path) -> None:
    script, _ = _seeded_plain()
    folder = tmp_path / "ckpt"
    shutil.copytree(fsdp_run[0] / "collective", folder)
    index = folder / "model.safetensors.index.json"
    body = json.loads(index.read_text())
    body["slices"]["0.weight"]["shape"] = [6, 3]  # one row more than the pieces hold
    index.write_text(json.dumps(body))
    net = script.build()
    before = script.values(net)
    with pytest.raises(up.CheckpointError, match="cover 15 of its 18 elements"):
        up.load(net, index)
    assert script.same(script.values(net), before)
    body["slices"]["0.weight"]["files"] = body["slices"]["0.weight"]["files"][:-1]  # a rank's file left out
    body["slices"]["0.weight"]["shape"] = [5, 3]
    index.write_text(json.dumps(body))
    with pytest.raises(up.CheckpointError, match="holds a piece of '0.weight'"):
        up.load(net, index)
