"""Parameters sharded over ranks by FSDP2 / DTensor: two gloo ranks on the CPU, in a subprocess.

The ranks run tests/distributed/fsdp_params.py (access, writes, initialize, save and load); each writes
what it saw to a JSON file, checked here against an unsharded model built in this process.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch  # noqa: E402  (installed in every CI environment that runs this file)

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


@pytest.fixture(scope="module")
def fsdp_run(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    assert torch.distributed.is_available(), "this PyTorch build has no torch.distributed: the install is broken"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for attempt in range(2):
        out = tmp_path_factory.mktemp("fsdp")
        command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr",
                   "127.0.0.1", "--master_port", str(_free_port()), str(SCRIPTS / "fsdp_params.py"), str(out)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
        results = [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)
                   if (out / f"rank{r}.json").exists()]
        errors = [r["error"] for r in results if "error" in r]
        # One relaunch, only when a rank process died by a signal without a Python error (a gloo
        # teardown abort seen once in ~10 runs on a loaded 2-core machine); any error, any failed
        # check, and a second crash fail the test.
        crashed = done.returncode != 0 and not errors and "Signal" in done.stderr
        if not crashed or attempt == 1:
            break
        warnings.warn(f"relaunching the two-rank run after a signal: {done.stderr[-500:]}", stacklevel=1)
    assert done.returncode == 0 and len(results) == 2, (errors, done.stdout[-3000:], done.stderr[-3000:])
    return results


@pytest.mark.parametrize("rank", [0, 1])
def test_every_check_passes_on_every_rank(fsdp_run: list[dict[str, Any]], rank: int) -> None:
    checks = fsdp_run[rank]["checks"]
    assert checks and all(checks.values()), {k: v for k, v in checks.items() if not v}


def test_ranks_agree_with_the_unsharded_model(fsdp_run: list[dict[str, Any]]) -> None:
    import unifyparams as up

    script = _script("fsdp_params")
    plain = script.build()
    ps = up.params(plain)
    up.initialize(plain, seed=7)  # one process, no mesh: the same global values as on 2 ranks
    for result in fsdp_run:
        assert result["names"] == list(ps)
        assert result["shapes"] == {n: list(ps[n].shape) for n in ps}
        assert result["count"] == ps.count()
        assert result["digest"] == script.digest(script.values(plain))
    assert fsdp_run[0]["placement"].startswith("Shard(dim=0) over mesh (2,)")
