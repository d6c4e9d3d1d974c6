"""Run a benchmark script once per backend, each in its own process (frameworks import once per
process, and one backend's memory must not count against the next).

>>> run_each_backend(__file__, ["--repeat", "3"])      # doctest: +SKIP
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence

BACKENDS = ("torch", "keras", "gluon")


def run_each_backend(script: str, args: Sequence[str]) -> None:
    """``python script --backend B *args`` for every backend, one after another."""
    for backend in BACKENDS:
        subprocess.run([sys.executable, script, "--backend", backend, *args], check=True,
                       env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
