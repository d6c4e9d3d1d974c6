"""The benchmark report: machine description, the summary table, the detailed table, the plot."""

from __future__ import annotations

import importlib.metadata
import os
import platform
from collections.abc import Iterable
from pathlib import Path
from typing import Any

MIB = 2**20
WORK = {  # kind/case -> what the row says
    ("enumerate", "names+shapes"): "enumerate names + shapes",
    ("read", "all values"): "read every value",
    ("port", None): "port dense layers",
    ("save", None): "save",
    ("load", None): "load",
    ("init", "xavier_uniform"): "init Xavier-uniform",
    ("init", "normal"): "init normal",
}
ORDER = ["enumerate", "read", "port", "load", "save", "init"]
BYTE_KINDS = ("port", "load", "save", "init")
PACKAGES = ("unifyparams", "numpy", "torch", "keras", "tensorflow-cpu", "tensorflow", "mxnet", "safetensors",
            "matplotlib")


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    memory = None
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            memory = int(f.readline().split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {
        "cpu_count": os.cpu_count(), "cpu": cpu, "platform": platform.platform(),
        "python": platform.python_version(), "memory_bytes": memory,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "versions": versions,
    }


def _work(rec: dict[str, Any]) -> str:
    """What the row says: the work, and its variant (``atomic=False``) where it has one."""
    work = WORK.get((rec["kind"], rec["case"])) or WORK.get((rec["kind"], None)) or rec["kind"]
    return f"{work}, {rec['variant']}" if rec.get("variant") else work


def _size(rec: dict[str, Any]) -> str:
    return f"{rec['size']:g} {rec['size_unit']}"


def _mib(nbytes: int) -> str:
    return f"+{nbytes / MIB:.0f} MiB" if nbytes >= 10 * MIB else f"+{nbytes / MIB:.1f} MiB"


def _peak(rec: dict[str, Any]) -> str:
    """Resident peak (file pages a memory map made resident included), then the allocated peak."""
    peak = rec["ours"].get("peak_extra_bytes")
    if peak is None:
        return "n/a"
    text = _mib(peak)
    if rec["kind"] in BYTE_KINDS and rec["nbytes"]:
        text += f" ({peak / rec['nbytes']:.2f}x model)"
    anon = rec["ours"].get("peak_anon_bytes")
    if anon is not None:
        text += f"; allocated {_mib(anon)}"
    return text


def groups(records: Iterable[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Records of one (work, backend), sizes ascending, in the report's order."""
    by: dict[tuple[str, str, str, str], list[dict[str, Any]]] = {}
    for rec in records:
        case = rec["case"] if rec["kind"] in ("enumerate", "read", "init") else ""  # else the shape
        by.setdefault((rec["kind"], case, rec.get("variant", ""), rec["backend"]), []).append(rec)
    keyed = sorted(by.items(), key=lambda kv: (ORDER.index(kv[0][0]) if kv[0][0] in ORDER else 99, kv[0][1],
                                               kv[0][2], kv[0][3]))
    return [sorted(recs, key=lambda r: r["size"]) for _, recs in keyed]


def summary_table(records: list[dict[str, Any]]) -> str:
    """One row per work and backend: the ratio at each size, the goal and whether every size meets it."""
    lines = [
        "| work | backend | reference (same run) | ratio is | sizes | ratio at each size | goal | met? "
        "| extra peak, largest size |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for recs in groups(records):
        first, last = recs[0], recs[-1]
        ratio_is = "time, ours / ref" if first["ratio_kind"] == "time" else "throughput, ours / ref"
        unit = first["size_unit"]
        sizes = " / ".join(f"{r['size']:g}" for r in recs) + f" {unit}"
        ratios = " / ".join(f"{r['ratio']:.2f}x" for r in recs)
        met = sum(r["met"] for r in recs)
        verdict = "yes" if met == len(recs) else ("no" if met == 0 else f"{met} of {len(recs)} sizes")
        lines.append(f"| {_work(first)} | {first['backend']} | {first['reference']['label']} | {ratio_is} "
                     f"| {sizes} | {ratios} | {first['goal']} | {verdict} | {_peak(last)} |")
    return "\n".join(lines)


def _figure(rec: dict[str, Any], m: dict[str, Any]) -> str:
    if rec["kind"] in BYTE_KINDS and m.get("gbps"):
        return f"{m['gbps']:.2f} GB/s"
    return f"{m['seconds'] * 1e3:.2f} ms"


def detail_table(records: list[dict[str, Any]]) -> str:
    lines = ["| work | backend | size | unifyparams | reference | ratio | goal | met? | extra peak (ours) "
             "| extra peak (reference) | other references |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for recs in groups(records):
        for rec in recs:
            ours, ref = rec["ours"], rec["reference"]
            ref_peak = ref.get("peak_extra_bytes")
            others = "; ".join(f"{o['label']} {_figure(rec, o)} ({o['ratio']:.2f}x)"
                               for o in rec.get("other_references", [])) or ""
            lines.append(
                f"| {_work(rec)} | {rec['backend']} | {_size(rec)} | {ours['label']}: {_figure(rec, ours)} "
                f"| {ref['label']}: {_figure(rec, ref)} | {rec['ratio']:.2f}x | {rec['goal']} "
                f"| {'yes' if rec['met'] else 'no'} | {_peak(rec)} "
                f"| {'n/a' if ref_peak is None else f'+{ref_peak / MIB:.1f} MiB'} | {others} |")
    return "\n".join(lines)


def machine_text(m: dict[str, Any]) -> str:
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items())
    memory = f", {m['memory_bytes'] / 2**30:.0f} GiB memory" if m.get("memory_bytes") else ""
    load = (f"; load average at start {m['load_average'][0]:.2f}" if m.get("load_average") else "")
    jax = m.get("versions_jax_environment")
    jax_text = ("; Keras on JAX in `.venv-jax`: " + ", ".join(f"{k} {v}" for k, v in jax.items())) if jax else ""
    return (f"{m['cpu_count']} CPUs ({m['cpu']}){memory}; {m['platform']}; Python {m['python']}; "
            f"{versions}{jax_text}{load}")


def markdown(report: dict[str, Any], plot_name: str | None) -> str:
    parts = [
        "# unifyparams benchmarks", "",
        f"Command: `{report['command']}` ({report['started']}, {report['seconds']:.0f} s).", "",
        f"Machine: {machine_text(report['machine'])}.", "",
        "Every figure sits next to its reference measured in the same run, on the same shapes, in the same "
        "process (one fresh process per measurement unless `--quick`). Ratios: for enumeration and reads "
        "unifyparams' time over the native call's (below 1 is faster; goal at most 1.2x); for port, load, "
        "save and init unifyparams' throughput over the floor's (above 1 is faster). Times are medians of "
        f"{report['settings']['repeat']} round-robin runs after one warm-up "
        f"({report['settings'].get('access_repeat', report['settings']['repeat'])} for enumeration and reads); "
        "before each timed port, load, save or init, twice its bytes of new memory are touched and freed, so "
        "every call (ours and the floors) allocates memory the virtual machine's host has just backed. Saves "
        "are judged against the least a save that never leaves a broken checkpoint must do: write and fsync "
        "a new file beside the old one, then rename it over the old one (the old file's pages stay in the "
        "page cache until then); plain write + fsync is shown beside it. Keras on "
        "JAX loads are judged against `readinto` into new arrays, and its inits against torch's initializer into "
        "new tensors: a JAX array cannot be written in place, so every write needs new memory (the other "
        "floors are shown beside them). Extra peak is the rise of the "
        "process's resident high-water mark (VmHWM, reset before each call) above its resident size just "
        "before the call, which already holds the model; it counts the pages of a memory-mapped checkpoint "
        "a load reads (page cache: shared, reclaimable). \"allocated\" is the peak of anonymous memory "
        "(RssAnon, sampled every 2 ms in the untimed warm-up run): what the call itself allocated.", "",
        "## Summary", "", summary_table(report["records"]), "",
    ]
    if plot_name:
        parts += [f"![Throughput against size]({plot_name})", ""]
    parts += ["## Every measurement", "", detail_table(report["records"]), ""]
    if report.get("errors"):
        parts += ["## Failed measurements", ""]
        for err in report["errors"]:
            parts += [f"- {err.get('kind')} {err.get('target')} {err.get('size')}:", "", "```text",
                      err.get("error", "").rstrip(), "```", ""]
    for name, text in report.get("real_models", {}).items():
        parts += [f"## Real models: `{name}`", "", "```text", text.rstrip(), "```", ""]
    return "\n".join(parts)


def plot(records: list[dict[str, Any]], path: Path) -> None:
    """Throughput (GB/s) against size, one panel per work, unifyparams solid, the reference dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("port", "port (reference: torch copy_ of a transposed view)"),
              ("load", "load (reference: readinto preallocated arrays)"),
              ("save", "save (reference: write + fsync + rename over the old file)"),
              ("init", "init (reference: torch's initializer)")]
    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5))
    for ax, (kind, title) in zip(axes.flat, panels):
        for i, recs in enumerate(g for g in groups(records) if g[0]["kind"] == kind):
            color = f"C{i % 10}"
            name = recs[0]["backend"] + (f" {recs[0]['case']}" if kind == "init" else "")
            name += f" ({recs[0]['variant']})" if recs[0].get("variant") else ""
            sizes = [r["size"] for r in recs]
            ax.plot(sizes, [r["ours"]["gbps"] for r in recs], "o-", color=color, label=f"{name}: unifyparams")
            ax.plot(sizes, [r["reference"]["gbps"] for r in recs], "x--", color=color, alpha=0.6,
                    label=f"{name}: reference")
        ax.set_xscale("log", base=2)
        ticks = sorted({r["size"] for r in records if r["kind"] == kind})
        if ticks:
            ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
            ax.minorticks_off()
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("size (MiB)")
        ax.set_ylabel("throughput (GB/s)")
        ax.grid(True, alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7)
    fig.suptitle("unifyparams throughput against size (solid) and the reference measured in the same run "
                 "(dashed)", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
