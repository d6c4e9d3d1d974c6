"""Every example runs on every backend, so the examples never rot."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SCRIPTS = ["access", "initialization", "tying", "lazy_shapes", "porting", "checkpoints"]


@pytest.mark.parametrize("backend", ["torch", "keras", "gluon"])
@pytest.mark.parametrize("script", SCRIPTS)
def test_example_runs(script: str, backend: str, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.syspath_prepend(str(EXAMPLES))
    monkeypatch.setattr(sys, "argv", [f"{script}.py", "--backend", backend])
    runpy.run_path(str(EXAMPLES / f"{script}.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert out.strip(), f"{script} --backend {backend} printed nothing"
