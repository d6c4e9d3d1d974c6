"""``progress=`` on save, load, port and initialize, and plain displays that fit the terminal."""

from __future__ import annotations

import io
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import unifyparams as up
from unifyparams.display import Table, TreeNode
from unifyparams.porting.report import PortReport, PortRow
from unifyparams.progress import Progress, resolve

from .numpy_framework import Dense, Norm, Sequential


def _net(seed: int = 0) -> Sequential:
    return Sequential(Dense(3, 4, seed=seed + 1), Norm(4), Dense(4, 2, seed=seed + 2))


def _nbytes(model: Any) -> int:
    return sum(p.numpy().nbytes for p in up.params(model).values())


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def __call__(self, done: int, total: int) -> None:
        self.calls.append((done, total))

    def check(self, total: int, tensors: int) -> None:
        assert self.calls, "the callback was never called"
        dones = [d for d, _ in self.calls]
        assert dones == sorted(dones) and all(t == total for _, t in self.calls)
        assert self.calls[-1] == (total, total)
        assert len(self.calls) == tensors  # once per tensor, the last one at done == total: no extra call


def _operations(tmp_path: Path) -> dict[str, Callable[[Any], Any]]:
    saved = tmp_path / "saved.safetensors"
    up.save(_net(5), saved, progress=False)
    return {
        "save": lambda cb: up.save(_net(), tmp_path / "m.safetensors", progress=cb),
        "load": lambda cb: up.load(_net(), saved, progress=cb),
        "load-matched": lambda cb: up.load(_net(), saved, match="order", progress=cb),
        "port": lambda cb: up.port(_net(3), _net(), progress=cb),
        "initialize": lambda cb: up.initialize(_net(), seed=0, progress=cb),
        "paramset-load": lambda cb: up.params(_net()).load(up.params(_net(4)).numpy(), progress=cb),
    }


@pytest.mark.parametrize("what", ["save", "load", "load-matched", "port", "initialize", "paramset-load"])
def test_callback_counts_every_byte_once_per_tensor(tmp_path: Path, what: str) -> None:
    record = Recorder()
    result = _operations(tmp_path)[what](record)
    ps = up.params(_net())
    names = list(result) if what == "initialize" else list(ps)  # initialize leaves a step counter alone
    record.check(sum(ps[n].numpy().nbytes for n in names), len(names))


def test_sharded_save_reports_every_shard(tmp_path: Path) -> None:
    record = Recorder()
    assert up.save(_net(), tmp_path / "m.safetensors", max_shard_size=40, progress=record).name.endswith(".json")
    record.check(_nbytes(_net()), len(up.params(_net())))


def test_zero_work_reports_zero_once(tmp_path: Path) -> None:
    record = Recorder()
    up.port(_net(1), _net(), dry_run=True, progress=record)  # nothing written
    assert record.calls == [(0, 0)]
    record = Recorder()
    up.params(_net()).load({}, strict=False, progress=record)
    assert record.calls == [(0, 0)]


def test_failure_does_not_claim_the_end(tmp_path: Path) -> None:
    record = Recorder()
    with pytest.raises(up.UnifyParamsError):
        up.params(_net()).load({"0.weight": np.zeros((9, 9))}, strict=False, progress=record)
    assert record.calls == []


@pytest.mark.parametrize("what", ["save", "load", "port", "initialize"])
def test_false_calls_nothing_and_prints_nothing(
    tmp_path: Path, what: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    operations = _operations(tmp_path)
    shown: list[Any] = []
    monkeypatch.setattr(Progress, "_show", lambda self: shown.append(self))
    operations[what](False)
    assert shown == []
    assert capsys.readouterr() == ("", "")


@pytest.mark.parametrize("what", ["save", "load", "port", "initialize"])
def test_true_draws_on_a_stream_that_is_not_a_terminal(
    tmp_path: Path, what: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    operations = _operations(tmp_path)
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)  # rich's stderr console writes to sys.stderr as it is now
    operations[what](True)
    from rich.console import Console

    console = Console(file=io.StringIO(), force_terminal=False)
    with resolve(True, "saving", console=console) as bar:
        bar.start(100)
        bar.advance(60)
        bar.advance(40)
    assert bar.done == bar.total == 100


@pytest.mark.parametrize("what", ["save", "load", "port", "initialize"])
def test_default_off_a_terminal_prints_nothing(
    tmp_path: Path, what: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    operations = _operations(tmp_path)
    monkeypatch.setattr("unifyparams.progress.DELAY", 0.0)  # even slow work: no terminal, no bar
    operations[what](None)
    assert capsys.readouterr() == ("", "")


def test_default_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stderr", Tty())
    monkeypatch.delenv("CI", raising=False)
    assert resolve(None).bar and resolve(None).delay == 0.5  # a terminal: a bar, started lazily
    monkeypatch.setenv("CI", "true")
    assert not resolve(None).active  # CI: nothing
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    monkeypatch.delenv("CI")
    assert not resolve(None).active  # not a terminal: nothing
    with pytest.raises(TypeError, match="progress must be"):
        resolve("yes")  # type: ignore[arg-type]


def test_lazy_bar_starts_only_for_long_work() -> None:
    shown: list[int] = []

    class Spy(Progress):
        def _show(self) -> None:
            from rich.console import Console

            shown.append(self.done)
            self.console = Console(file=io.StringIO())
            super()._show()

    quick = Spy(bar=True, delay=3600)
    with quick:
        quick.start(10)
        quick.advance(10)
    assert shown == []
    slow = Spy(bar=True, delay=0.0)
    with slow:
        slow.start(10)
        slow.advance(10)
    assert shown == [0]


# --- keyword-only flags --------------------------------------------------------------------------
def test_flags_are_keyword_only(tmp_path: Path) -> None:
    net = _net()
    with pytest.raises(TypeError):
        up.params(net)["0.weight"].numpy(True)  # type: ignore[misc]
    with pytest.raises(TypeError):
        up.params(net).numpy(True)  # type: ignore[misc]
    with pytest.raises(TypeError):
        up.save(net, tmp_path / "m.safetensors", None)  # type: ignore[misc]
    with pytest.raises(TypeError):
        up.Initialized(["a"], ["a"])  # type: ignore[misc]
    assert up.Initialized(["a"], pending=["a"]).pending == ["a"]


# --- the terminal --------------------------------------------------------------------------------
def _wide_report() -> PortReport:
    rows = [PortRow(f"encoder.layers.{i}.attention.self.query.weight", f"backbone.transformer_layer_{i}."
                    f"self_attention_layer.query_dense.kernel", "(768, 768)", "transpose", "a problem that is described at some length" if i == 1 else "",
                    layouts="(out, in) -> (in, out)") for i in range(3)]
    return PortReport("torch", "keras", "name", rows, problems=["one problem described in a long sentence " * 3])


@pytest.mark.parametrize("width", [20, 40, 60])
def test_plain_text_fits_a_narrow_terminal(width: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", str(width))
    ps = up.params(Sequential(Dense(300, 400), Norm(400)))
    load = up.params(_net()).load({}, strict=False, progress=False)
    for text in (str(ps), str(_wide_report()), str(load), str(_wide_report().table())):
        lines = text.splitlines()
        assert lines and all(len(line) <= width for line in lines), text
    assert "…" in str(_wide_report())  # long columns are cut with an ellipsis, not wrapped


def test_plain_text_off_a_terminal_is_never_cut(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    text = str(_wide_report())
    assert "…" not in text and "backbone.transformer_layer_0.self_attention_layer.query_dense.kernel" in text
    assert str(up.params(_net()).load({}, strict=False, progress=False)).startswith("loaded 0 parameters; missing")


def test_tree_and_table_cut_the_widest_column() -> None:
    root = TreeNode("Sequential", ("torch",))
    block = root.add("encoder", "Linear")
    block.add("a_rather_long_parameter_name", "(4096, 4096)", "float32")
    block.add("bias", "(4096,)", "float32")
    text = root.text(width=45)
    assert all(len(line) <= 45 for line in text.splitlines())
    assert "a_rather_long…  (4096, 4096)  float32" in text  # the widest column is cut first
    table = Table(("name", "shape"), [("a" * 50, "(3,)")])
    assert table.text(width=20).splitlines()[-1].endswith("(3,)")


def test_reports_render_with_rich() -> None:
    from rich.console import Console

    console = Console(file=io.StringIO(), width=50, color_system=None)
    load = up.params(_net()).load({}, strict=False, progress=False)
    for renderable in (up.params(_net()), _wide_report(), load):
        console.print(renderable)
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert "loaded" in out and "torch -> keras" in out
    assert all(len(line) <= 50 for line in out.splitlines())


def test_print_shows_rich_on_a_terminal_and_plain_text_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    from unifyparams import display

    ps = up.params(Sequential(Dense(3, 4), Dense(4, 2)))
    plain = str(ps)
    assert "\x1b[" not in plain and "weight" in plain
    monkeypatch.setattr(display, "on_terminal", lambda: True)
    styled = str(ps)
    assert "\x1b[" in styled and "weight" in styled  # rich's rendering, with its styles
