"""Run every benchmark at three sizes and write a Markdown and a JSON report with a throughput plot.

    python -m benchmarks                          # default sizes (~10 minutes on 2 cores)
    python -m benchmarks --quick --out /tmp/b     # tiny sizes, one process per framework (< 1 minute)
    python -m benchmarks --sizes 64,256,1024 --tensors 100,1000,10000 --only port,load
    python -m benchmarks --real-models            # also the vgg16 and GPT-2 ports (torchvision, keras-hub)
    python -m benchmarks --keras-backends tensorflow   # Keras on TensorFlow only (default: also on torch, JAX)

Work measured, each against its reference in the same run: enumeration and reads (``access``,
against the framework's own calls), ``port`` (against a transposing copy and ``np.copyto``),
``checkpoint`` (save against write+fsync, load against ``readinto``), ``init`` (against torch's
initializers). Every measurement runs in a fresh process so its peak memory is its own. Keras on
JAX runs in ``.venv-jax`` (JAX needs NumPy 2, MXNet NumPy 1.26; ``.ci/setup-jax`` makes it, once):
its access, port, load and init figures sit beside the other backends'.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from . import _report
from ._worker import ERROR, RECORD

ROOT = Path(__file__).resolve().parents[1]
KINDS = ("access", "port", "checkpoint", "init")
BACKENDS = ("torch", "keras", "gluon")
DIRECTIONS = ("torch-keras", "keras-torch", "torch-gluon", "gluon-torch")
REAL_MODELS = ("bench_zoo_port.py", "bench_families.py")
#: Keras backends the ports, loads and initializations run on (each job in a process of its own).
KERAS_BACKENDS = ("tensorflow", "torch", "jax")
#: The interpreter of Keras on JAX's jobs: its own environment (NumPy 2), made by .ci/setup-jax.
JAX_PYTHON = ROOT / ".venv-jax" / "bin" / "python"


def _numbers(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="64,256,1024", help="MiB of parameters for port, load/save, init")
    parser.add_argument("--tensors", default="100,1000,10000", help="tensor counts for enumeration and reads")
    parser.add_argument("--repeat", type=int, default=3, help="timed rounds for byte-moving work (median)")
    parser.add_argument("--access-repeat", type=int, default=21, help="timed rounds for enumeration and reads")
    parser.add_argument("--only", default=",".join(KINDS), help=f"comma-separated, of {', '.join(KINDS)}")
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--directions", default=",".join(DIRECTIONS), help="port directions")
    parser.add_argument("--keras-backends", default=",".join(KERAS_BACKENDS),
                        help="Keras backends for the byte-moving work (enumeration and reads run on the first)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes, one round, one process per framework (for the tests)")
    parser.add_argument("--real-models", action="store_true",
                        help="also bench_zoo_port.py and bench_families.py (torchvision, keras-hub; long)")
    parser.add_argument("--out", default=str(ROOT / "reports" / "benchmarks"), help="report folder")
    parser.add_argument("--dir", default=None, help="folder for checkpoint files (default: a temporary one)")
    parser.add_argument("--render", metavar="REPORT_JSON", default=None,
                        help="measure nothing: write the Markdown report and the plot of this JSON report again")
    args = parser.parse_args(argv)
    if args.quick:
        defaults = {"sizes": "64,256,1024", "tensors": "100,1000,10000", "repeat": 3, "access_repeat": 21}
        for name, small in (("sizes", "2,4,8"), ("tensors", "20,50,100"), ("repeat", 1), ("access_repeat", 2)):
            if getattr(args, name) == defaults[name]:
                setattr(args, name, small)
    return args


def jobs(args: argparse.Namespace) -> list[dict[str, Any]]:
    only = set(args.only.split(","))
    unknown = only - set(KINDS)
    if unknown:
        raise SystemExit(f"unknown kinds {sorted(unknown)}; choose from {', '.join(KINDS)}")
    backends = [b for b in args.backends.split(",") if b]
    directions = [d for d in args.directions.split(",")
                  if d and all(f in backends for f in d.split("-"))]
    out: list[dict[str, Any]] = []
    for kind in KINDS:
        if kind not in only:
            continue
        targets = directions if kind == "port" else backends
        sizes = _numbers(args.tensors) if kind == "access" else _numbers(args.sizes)
        repeat = args.access_repeat if kind == "access" else args.repeat
        keras_backends = [b for b in args.keras_backends.split(",") if b]
        for target in targets:
            uses_keras = "keras" in target.split("-")
            for keras_backend in (keras_backends if uses_keras and kind != "access" else keras_backends[:1]):
                for size in sizes:
                    out.append({"kind": kind, "target": target, "size": size, "repeat": repeat, "dir": args.dir,
                                "keras_backend": keras_backend})
    return out


def batches(all_jobs: list[dict[str, Any]], quick: bool) -> list[list[dict[str, Any]]]:
    """One job a process; with ``quick``, one process per framework besides torch (imports dominate)."""
    if not quick:
        return [[job] for job in all_jobs]
    by: dict[str, list[dict[str, Any]]] = {}
    for job in all_jobs:
        other = [f for f in job["target"].split("-") if f != "torch"]
        key = other[0] if other else "torch"
        by.setdefault(f"{key}[{job['keras_backend']}]" if key == "keras" else key, []).append(job)
    return list(by.values())


def interpreter(batch: list[dict[str, Any]]) -> str:
    """This Python, or for a batch of Keras-on-JAX jobs ``.venv-jax``'s (made by .ci/setup-jax first)."""
    if not any(j.get("keras_backend") == "jax" and "keras" in j["target"].split("-") for j in batch):
        return sys.executable
    if not getattr(interpreter, "ready", False):
        subprocess.run(["bash", str(ROOT / ".ci" / "setup-jax")], cwd=ROOT, check=True)
        interpreter.ready = True  # type: ignore[attr-defined]
    return str(JAX_PYTHON)


def jax_versions() -> dict[str, str]:
    """The package versions of ``.venv-jax``, where Keras on JAX's jobs ran."""
    code = ("import importlib.metadata as m, json; print(json.dumps({n: m.version(n) for n in "
            "('numpy', 'jax', 'jaxlib', 'keras', 'torch')}))")
    proc = subprocess.run([str(JAX_PYTHON), "-c", code], capture_output=True, text=True)
    return json.loads(proc.stdout) if proc.returncode == 0 else {}


def run_batch(batch: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": batch[0].get("keras_backend", "tensorflow"),
           "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}
    proc = subprocess.run([interpreter(batch), "-m", "benchmarks._worker", json.dumps(batch)], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    records, errors = [], []
    for line in proc.stdout.splitlines():
        if line.startswith(RECORD):
            records.append(json.loads(line[len(RECORD):]))
        elif line.startswith(ERROR):
            errors.append(json.loads(line[len(ERROR):]))
    if proc.returncode and not errors:
        errors.append({**batch[0], "error": f"worker exited {proc.returncode}:\n{proc.stderr[-3000:]}"})
    return records, errors


def run_real_models() -> dict[str, str]:
    outputs = {}
    for script in REAL_MODELS:
        print(f"benchmarks: {script} ...", file=sys.stderr, flush=True)
        proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script)], cwd=ROOT, capture_output=True,
                              text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
        outputs[script] = proc.stdout + (f"\n(exit {proc.returncode})\n{proc.stderr[-3000:]}" if proc.returncode
                                         else "")
    return outputs


def render(report: dict[str, Any], out: Path) -> None:
    """The Markdown report and the plot of ``report`` (the JSON's content) into ``out``."""
    plot_name = None
    if any(r["kind"] in _report.BYTE_KINDS for r in report["records"]):
        plot_name = "throughput.png"
        _report.plot(report["records"], out / plot_name)
    report["plot"] = plot_name
    (out / "benchmarks.md").write_text(_report.markdown(report, plot_name), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.render:
        source = Path(args.render)
        render(json.loads(source.read_text(encoding="utf-8")), source.parent)
        return 0
    command = shlex.join(["python", "-m", "benchmarks", *(sys.argv[1:] if argv is None else argv)])
    started, clock = time.strftime("%Y-%m-%d %H:%M:%S %Z"), time.perf_counter()
    machine = _report.machine()
    all_jobs = jobs(args)
    records: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    work = batches(all_jobs, args.quick)
    for i, batch in enumerate(work, 1):
        names = ", ".join(f"{j['kind']} {j['target']} {j['size']:g}" + (
            f" (keras on {j['keras_backend']})" if "keras" in j["target"] else "") for j in batch)
        print(f"benchmarks [{i}/{len(work)}] {names}", file=sys.stderr, flush=True)
        start = time.perf_counter()
        got, failed = run_batch(batch)
        records += got
        errors += failed
        for err in failed:
            print(f"  FAILED {err.get('kind')} {err.get('target')} {err.get('size')}:\n{err['error']}",
                  file=sys.stderr, flush=True)
        for rec in got:
            print(f"  {rec['kind']:<9} {rec['backend']:<26} {rec['case']:<15} {rec['size']:>6g} {rec['size_unit']:<7}"
                  f" ratio {rec['ratio']:5.2f}x (goal {rec['goal']}: {'met' if rec['met'] else 'not met'})",
                  file=sys.stderr, flush=True)
        print(f"  ({time.perf_counter() - start:.1f} s)", file=sys.stderr, flush=True)
    real = run_real_models() if args.real_models else {}
    if getattr(interpreter, "ready", False):  # Keras on JAX ran in its own environment: its versions too
        machine["versions_jax_environment"] = jax_versions()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {
        "command": command, "started": started, "seconds": time.perf_counter() - clock, "machine": machine,
        "settings": {"sizes_mib": _numbers(args.sizes), "tensors": _numbers(args.tensors), "repeat": args.repeat,
                     "access_repeat": args.access_repeat, "quick": args.quick, "one_process_per_measurement":
                     not args.quick},
        "records": records, "errors": errors, "real_models": real,
    }
    render(report, out)
    with tempfile.NamedTemporaryFile("w", dir=out, delete=False, suffix=".tmp", encoding="utf-8") as f:
        json.dump(report, f, indent=1)
    os.replace(f.name, out / "benchmarks.json")
    met = sum(r["met"] for r in records)
    print(f"benchmarks: {len(records)} results, {met} meet their goal, {len(errors)} failed; "
          f"{report['seconds']:.0f} s; report in {out / 'benchmarks.md'}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
