"""Write a benchmark report's summary table into README.md's "## Performance" section and
docs/performance.md, between the ``<!-- benchmarks:start -->`` / ``<!-- benchmarks:end -->`` markers,
and copy its plot to docs/assets/throughput.png:

    python -m benchmarks.readme reports/benchmarks/benchmarks.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

from . import _report

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- benchmarks:start -->", "<!-- benchmarks:end -->"
PLOT = Path("docs") / "assets" / "throughput.png"


def block(report: dict[str, Any], image: str | None, source: str = "reports/benchmarks/benchmarks.json") -> str:
    """The generated text: which run produced it, the table, how to read it (and the plot)."""
    m = report["machine"]
    settings = report["settings"]
    sizes = "/".join(f"{s:g}" for s in settings["sizes_mib"])
    tensors = "/".join(f"{t:g}" for t in settings["tensors"])
    lines = [
        f"Measured by `{report['command']}` ({report['started']}, {report['seconds'] / 60:.1f} minutes; "
        f"sizes {sizes} MiB, {tensors} tensors) on {m['cpu_count']} CPUs, "
        + ", ".join(f"{k} {v}" for k, v in m["versions"].items() if k != "matplotlib")
        + f"; generated with `python -m benchmarks.readme {source}`. "
        "Every ratio compares with its reference measured in the same run, in the same process.",
        "",
        _report.summary_table(report["records"]),
        "",
        "Enumeration and reads: unifyparams' time over the native call's (lower is better). Port, load, "
        "save and init: unifyparams' throughput over the reference's (higher is better). \"met?\" says "
        "at how many of the three sizes the goal holds. Extra peak: the rise of the process's resident "
        "high-water mark above its size before the call (which holds the model), at the largest size, "
        "which counts the pages of a memory-mapped checkpoint a load reads; \"allocated\": the peak of "
        "the memory the call itself allocated (anonymous memory). Writes are all or nothing by default: a "
        "parameter the framework writes is copied first (free on TensorFlow), one written by a plain copy "
        "into its memory needs no copy (`atomic=False` skips the copies; its rows measure the same work "
        "without them).",
    ]
    if report.get("errors"):
        lines += ["", f"{len(report['errors'])} measurement(s) failed in this run; see the full report."]
    if image:
        lines += ["", f"![Throughput against size: unifyparams solid, the reference dashed]({image})"]
    return "\n".join(lines)


def replace_between(text: str, new: str, where: str) -> str:
    if text.count(START) != 1 or text.count(END) != 1 or text.index(START) > text.index(END):
        raise SystemExit(f"{where}: expected one {START} followed by one {END}")
    head, rest = text.split(START)
    _, tail = rest.split(END)
    return f"{head}{START}\n{new}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("report", type=Path, help="benchmarks.json written by python -m benchmarks")
    parser.add_argument("--root", type=Path, default=ROOT, help="the repository (default: this one)")
    args = parser.parse_args(argv)
    report = json.loads(args.report.read_text(encoding="utf-8"))
    plot = args.report.parent / "throughput.png"
    try:
        source = args.report.resolve().relative_to(args.root.resolve()).as_posix()
    except ValueError:
        source = str(args.report)
    image = None
    if report.get("plot") and plot.exists():
        (args.root / PLOT).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(plot, args.root / PLOT)
        image = PLOT.relative_to("docs").as_posix()
    for page, with_image in (("README.md", False), ("docs/performance.md", True)):
        path = args.root / page
        text = path.read_text(encoding="utf-8")
        path.write_text(replace_between(text, block(report, image if with_image else None, source), page),
                        encoding="utf-8")
        print(f"benchmarks.readme: wrote the table into {page}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
