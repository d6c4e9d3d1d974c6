"""The conformance suite's own machinery: ids, verdicts, the matrix, the command line.

The scenarios themselves run per adapter: tests/test_conformance_{torch,keras,gluon}.py (each a
five-line hookup of :class:`unifyparams.testing.ConformanceTests`), and the example adapter's in
tests/test_third_party_adapter.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from unifyparams.conformance import builders_class, load_builders
from unifyparams.conformance.discovery import BuildersNotFoundError, all_rows
from unifyparams.conformance.known import unknown_ids
from unifyparams.conformance.report import Outcome, cells, markdown_report, summary
from unifyparams.conformance.runner import main, selected_ids
from unifyparams.conformance.suite import scenario_cases, scenario_id, scenario_tests, scenario_title
from unifyparams.testing import ConformanceTests, scenario_test_name

SCENARIOS = scenario_tests(ConformanceTests)


def test_every_scenario_is_a_test_with_a_title() -> None:
    assert len(SCENARIOS) == 49
    for sid, fn in SCENARIOS.items():
        assert scenario_id(fn.__name__) == sid and scenario_test_name(sid) == fn.__name__
        assert scenario_title(fn), f"{sid}: a scenario's docstring is its title in --list and in reports"


def test_many_layer_kinds_are_parametrized() -> None:
    cases = scenario_cases(ConformanceTests)
    kinds = ["dense", "conv1d", "conv2d", "batchnorm", "layernorm", "embedding", "lstm", "gru"]
    assert sorted(cases["access.layer_kinds"]) == sorted(kinds)
    assert sorted(cases["access.canonical_layouts"]) == sorted(kinds)


def test_rows_come_from_the_builders_not_the_adapters() -> None:
    rows = all_rows()
    assert rows["keras[tensorflow]"] == ("keras", {"KERAS_BACKEND": "tensorflow"})
    assert rows["keras[torch]"] == ("keras", {"KERAS_BACKEND": "torch"})
    assert rows["torch"] == ("torch", {}) and rows["gluon"] == ("gluon", {})
    assert builders_class("torch").__name__ == "TorchModels"
    with pytest.raises(BuildersNotFoundError, match=r"unifyparams\.builders.*closest: \['torch'\]"):
        load_builders("trch")


def test_list_keeps_keras_row_labels(capsys: pytest.CaptureFixture[str]) -> None:
    """Rich markup must not eat ``[tensorflow]`` in --list or in errors."""
    assert main(["--list"]) == 0
    out = capsys.readouterr().out
    assert "keras[tensorflow]" in out and "keras[torch]" in out, out
    assert "access.layer_kinds  Names, shapes, roles and flags of every layer kind" in out
    assert main(["--backend", "nope"]) == 2
    out = capsys.readouterr().out
    assert "'nope'" in out and "keras[tensorflow]" in out, out


def test_scenario_selection_by_substring_and_glob() -> None:
    assert selected_ids("tie.bad") == ["tie.bad_ties"]
    assert selected_ids("access.layer_kinds[gru]") == ["access.layer_kinds"]
    assert set(selected_ids("lazy.*")) == {s for s in SCENARIOS if s.startswith("lazy.")}


def test_known_failure_ids_are_checked() -> None:
    ids = scenario_cases(ConformanceTests)
    assert unknown_ids(["access.gradient", "access.layer_kinds[gru]"], ids) == []
    problems = unknown_ids(["access.gradeint", "access.layer_kinds[cnn]"], ids)
    assert "'access.gradeint' names no scenario (closest: access.gradient" in problems[0]
    assert "access.layer_kinds[cnn]" in problems[1]


def test_matrix_cells_summary_and_markdown() -> None:
    results = {
        "keras[torch]": [
            Outcome("access.layer_kinds", "keras[torch]", "pass", case="dense"),
            Outcome("access.layer_kinds", "keras[torch]", "fail", "AssertionError: gru.bias", case="gru"),
            Outcome("access.variants", "keras[torch]", "skip", "keras offers no other form of a model"),
        ],
        "torch": [Outcome("access.layer_kinds", "torch", "pass", case=c) for c in ("dense", "gru")],
    }
    ids = ["access.layer_kinds", "access.variants"]
    grid = cells(results, ids)
    assert grid["keras[torch]", "access.layer_kinds"].status == "fail"
    assert grid["keras[torch]", "access.layer_kinds"].reason.startswith("gru: ")
    assert grid["torch", "access.variants"].status == "missing"
    assert summary(results, ids) == "2 backend row(s) x 2 scenario(s): 1 fail, 1 missing, 1 pass, 1 skip"
    md = markdown_report(results, ids)
    assert "| scenario | keras[torch] | torch |" in md
    assert "| access.variants | skip (keras offers no other form of a model) | no result" in md


def test_report_from_one_row(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The command line runs pytest per row and writes the same matrix as Markdown and JSON."""
    code = main(["--backend", "torch", "-k", "access.layer_kinds", "--report", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "1 backend row(s) x 1 scenario(s): 1 pass" in out, out
    data = json.loads((tmp_path / "conformance.json").read_text())
    assert sorted(o["case"] for o in data["torch"]) == sorted(scenario_cases(ConformanceTests)["access.layer_kinds"])
    assert all(o["status"] == "pass" and o["scenario"] == "access.layer_kinds" for o in data["torch"])
    assert "| access.layer_kinds | pass |" in (tmp_path / "conformance.md").read_text()
