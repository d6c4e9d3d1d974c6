"""`python -m benchmarks --quick` runs every kind of work and writes its reports (JSON, Markdown, PNG).

It runs in the main pass only: the benchmark starts its own processes, each on the Keras backend of
the environment (TensorFlow in the main pass), so a rerun under ``KERAS_BACKEND=torch`` would measure
the same thing again for a minute.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
KINDS = {"enumerate", "read", "port", "save", "load", "init"}

pytestmark = [pytest.mark.torch, pytest.mark.keras, pytest.mark.gluon]


def test_quick_benchmark_writes_reports(tmp_path: Path) -> None:
    if os.environ.get("KERAS_BACKEND") == "torch":
        pytest.skip("ran in the TensorFlow pass: the benchmark does not depend on the Keras backend")
    out = tmp_path / "bench"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": "tensorflow"}
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "--quick", "--out", str(out)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads((out / "benchmarks.json").read_text(encoding="utf-8"))
    assert not report["errors"]
    assert {"cpu_count", "platform", "versions"} <= set(report["machine"])
    records = report["records"]
    assert {r["kind"] for r in records} == KINDS
    backends = {r["backend"].split("[")[0] for r in records if r["kind"] in ("enumerate", "load", "init")}
    assert backends == {"torch", "keras", "gluon"}
    keras_backends = {r["backend"] for r in records if r["kind"] in ("load", "init") and r["backend"].startswith("keras")}
    assert keras_backends == {"keras[tensorflow]", "keras[torch]", "keras[jax]"}  # JAX in .venv-jax (.ci/setup-jax)
    assert {"jax", "numpy", "torch"} <= set(report["machine"]["versions_jax_environment"])
    for r in records:
        assert r["reference"]["label"] and r["reference"]["seconds"] > 0, r
        assert r["ratio"] > 0 and r["goal"] and isinstance(r["met"], bool), r
        assert r["ratio_kind"] in ("time", "throughput")
    # all-or-nothing writes beside the same work with atomic=False, each against the same floor
    assert {r["kind"] for r in records if r.get("variant") == "atomic=False"} == {"port", "load", "init"}
    # loads and inits show the floor in memory already touched and the one in new memory; Keras on
    # JAX, whose every write needs new memory, is judged against the latter
    for r in records:
        if r["kind"] not in ("load", "init"):
            continue
        labels = [r["reference"]["label"]] + [o["label"] for o in r["other_references"]]
        new_memory = [label for label in labels if label.endswith(("new arrays", "new tensors"))]
        assert len(new_memory) == 1 and len(labels) >= 2, labels
        assert (r["reference"]["label"] == new_memory[0]) == (r["backend"] == "keras[jax]"), r
    for kind in KINDS:  # three sizes each, so scaling shows
        assert len({r["size"] for r in records if r["kind"] == kind}) == 3, kind
    markdown = (out / "benchmarks.md").read_text(encoding="utf-8")
    assert "| work | backend |" in markdown and "|---|" in markdown and "met?" in markdown
    assert (out / "throughput.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
