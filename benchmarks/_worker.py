"""Runs benchmark jobs in this process and prints their records, one JSON line each.

    python -m benchmarks._worker '[{"kind": "port", "target": "torch-keras", "size": 64, "repeat": 3}]'

``python -m benchmarks`` starts one of these per measurement (fresh process: its peak memory is its
own) or, with ``--quick``, one per framework.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

RECORD, ERROR = "@@benchmark-record ", "@@benchmark-error "


def run_job(job: dict[str, Any]) -> list[dict[str, Any]]:
    kind, target, size, repeat = job["kind"], job["target"], job["size"], job["repeat"]
    if kind == "access":
        from .bench_access import records

        return records(target, int(size), repeat)
    if kind == "port":
        from .bench_port import records as port_records

        return port_records(target, size, repeat)
    if kind == "checkpoint":
        from .bench_checkpoint import records as checkpoint_records

        return checkpoint_records(target, size, repeat, job.get("dir"))
    if kind == "init":
        from .bench_init import records as init_records

        return init_records(target, size, repeat)
    raise ValueError(f"unknown benchmark kind {kind!r}")


def main() -> int:
    failed = 0
    for job in json.loads(sys.argv[1]):
        try:
            for rec in run_job(job):
                print(RECORD + json.dumps(rec), flush=True)
        except Exception:  # one failed measurement must not lose the others
            failed += 1
            print(ERROR + json.dumps({**job, "error": traceback.format_exc(limit=8)}), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
