"""The example third-party adapter (examples/custom_adapter: numpynn) against the conformance suite.

Nothing is installed at test time. The adapter and its builders are imported from the example's
folder and registered by hand unless their entry points are installed; the entry-point route
itself is proven in a subprocess whose ``sys.path`` holds a temporary ``.dist-info`` with an
``entry_points.txt``, which is exactly how Python finds an installed package's entry points.
Every scenario runs in-process through :class:`unifyparams.testing.ConformanceTests` (the class
below is the five lines a third party writes), and so do the known failures (file and mapping),
through pytest and through ``python -m unifyparams.conformance``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import warnings
from importlib import metadata
from pathlib import Path

import pytest

import unifyparams as up
from unifyparams.conformance import BUILDERS_GROUP, Outcome, register_builders
from unifyparams.conformance.known import load_known_failures
from unifyparams.conformance.suite import scenario_cases, scenario_tests
from unifyparams.registry import ENTRY_POINT_GROUP
from unifyparams.testing import ConformanceTests, check_outcome, scenario_test_name

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "custom_adapter"
if str(EXAMPLE) not in sys.path:
    sys.path.insert(0, str(EXAMPLE))

from unifyparams_numpynn import NumpyNNAdapter  # noqa: E402
from unifyparams_numpynn.builders import NumpyNNBuilders  # noqa: E402

if not any(ep.name == "numpynn" for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)):
    up.register_adapter(NumpyNNAdapter)
if not any(ep.name == "numpynn" for ep in metadata.entry_points(group=BUILDERS_GROUP)):
    register_builders(NumpyNNBuilders)

IDS = scenario_cases(ConformanceTests)


class TestNumpyNNConformance(ConformanceTests):
    """The ~5 lines a third party writes: every scenario, one test each."""

    @pytest.fixture
    def adapter_name(self) -> str:
        return "numpynn"


def test_one_test_method_per_scenario() -> None:
    for sid in scenario_tests(ConformanceTests):
        assert callable(getattr(TestNumpyNNConformance, scenario_test_name(sid), None)), sid


def test_example_known_failures_file_lists_nothing(recwarn: pytest.WarningsRecorder) -> None:
    assert load_known_failures(NumpyNNBuilders, IDS) == {}
    assert not [w for w in recwarn if "known_failures" in str(w.message)]


def _run(args: list[str], cwd: Path, extra_path: list[Path]) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([*map(str, extra_path), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["COLUMNS"] = "160"
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _dist_info(folder: Path, name: str, adapter: str, builders: str) -> None:
    """A ``.dist-info`` declaring an adapter and its builders, as `pip install` would leave it."""
    dist = folder / f"{name.replace('-', '_')}-0.1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1.0\n")
    (dist / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\n{adapter}\n\n[{BUILDERS_GROUP}]\n{builders}\n"
    )


def test_entry_point_route(tmp_path: Path) -> None:
    """A temporary dist-info on sys.path registers numpynn and its builders, as `pip install` of the
    example would; then `python -m unifyparams.conformance --backend numpynn` runs every scenario on it."""
    _dist_info(tmp_path, "unifyparams-numpynn-probe", "numpynn = unifyparams_numpynn:NumpyNNAdapter",
               "numpynn = unifyparams_numpynn.builders:NumpyNNBuilders")
    probe = textwrap.dedent(f"""
        from importlib import metadata
        import unifyparams as up
        from unifyparams.conformance import builders_class
        eps = [ep for ep in metadata.entry_points(group={ENTRY_POINT_GROUP!r}) if ep.name == "numpynn"]
        assert any(ep.dist.name == "unifyparams-numpynn-probe" for ep in eps), eps
        assert up.available_adapters()["numpynn"].__name__ == "NumpyNNAdapter"
        assert builders_class("numpynn").__name__ == "NumpyNNBuilders"
        import numpy as np, numpynn as nn
        ps = up.params(nn.Sequential(nn.Dense(3, in_features=5)))
        assert ps.backend == "numpynn" and ps["0.weight"].shape == (3, 5), ps
        print("entry point ok")
    """)
    done = _run(["-c", probe], tmp_path, [tmp_path, EXAMPLE])
    assert done.returncode == 0 and "entry point ok" in done.stdout, done.stderr
    done = _run(["-m", "unifyparams.conformance", "--backend", "numpynn"], tmp_path, [tmp_path, EXAMPLE])
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert f"1 backend row(s) x {len(IDS)} scenario(s)" in out, out
    assert "FAIL" not in out and "ERROR" not in out and "no result" not in out, out


# --- known failures ------------------------------------------------------------------------------


def _builders_with(known: object) -> type:
    return type("KnownFailuresBuilders", (NumpyNNBuilders,), {"known_failures": known, "__module__": __name__})


def test_known_failures_file(tmp_path: Path) -> None:
    listing = tmp_path / "known_failures.txt"
    listing.write_text(
        "# comments and blank lines are ignored\n\n"
        "access.mlp_names_shapes  # mlp builder is broken on purpose\n"
        "access.nested_blocks\n"
        "no.such.scenario  # a typo\n"
        "two words  # malformed\n"
        "access.layer_kinds[gru]  # one case of a parametrized scenario\n"
    )
    with pytest.warns(UserWarning) as caught:
        known = load_known_failures(_builders_with(listing), IDS)
    assert known == {
        "access.mlp_names_shapes": "mlp builder is broken on purpose",
        "access.nested_blocks": "listed in known_failures.txt",
        "access.layer_kinds[gru]": "one case of a parametrized scenario",
    }
    messages = " ".join(str(w.message) for w in caught)
    assert "'no.such.scenario' names no scenario" in messages
    assert "known_failures.txt:6" in messages and "malformed" in messages


def test_known_failures_mapping_and_missing_file(tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="access.gradeint.*closest: access.gradient"):
        known = load_known_failures(_builders_with({"access.gradient": "r", "access.gradeint": "typo"}), IDS)
    assert known == {"access.gradient": "r"}
    with pytest.warns(UserWarning, match="cannot read"):
        assert load_known_failures(_builders_with(tmp_path / "absent.txt"), IDS) == {}
    # a relative path is read next to the module of the class that sets it (here tests/)
    relative = "../examples/custom_adapter/unifyparams_numpynn/known_failures.txt"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_known_failures(_builders_with(relative), IDS) == {}


def test_recorded_outcomes_become_pytest_verdicts() -> None:
    failing = Outcome("access.mlp_names_shapes", "numpynn", "xfail", "broken mlp")
    passing = Outcome("access.nested_blocks", "numpynn", "xpass", "listed as known failure (stale entry) but passed")
    with pytest.raises(pytest.xfail.Exception, match="known failure: broken mlp"):
        check_outcome(failing)
    with pytest.raises(pytest.fail.Exception, match="XPASS"):
        check_outcome(passing)
    with pytest.raises(pytest.fail.Exception, match="names"):
        check_outcome(Outcome("access.mlp_names_shapes", "numpynn", "fail", "ConformanceFailure: names: ..."))


KF_MODULE = '''
from unifyparams_numpynn import NumpyNNAdapter
from unifyparams_numpynn.builders import NumpyNNBuilders


class BrokenBuilders(NumpyNNBuilders):
    """``mlp`` builds the wrong model, so access.mlp_names_shapes fails; nested_blocks still passes."""

    backend = "numpynn_kf"
    known_failures = "known_failures.txt"   # next to this module

    def mlp(self, in_features=20, hidden=256, out_features=10):
        import numpynn as nn

        return nn.Sequential(nn.Dense(out_features, in_features=in_features))


class KnownFailuresAdapter(NumpyNNAdapter):
    name = "numpynn_kf"
    priority = 10
'''

KF_TESTS = '''
import pytest
import unifyparams as up
from unifyparams.conformance import register_builders
from unifyparams.testing import ConformanceTests
from kf_adapter import BrokenBuilders, KnownFailuresAdapter

up.register_adapter(KnownFailuresAdapter)
register_builders(BrokenBuilders)


class TestKnownFailures(ConformanceTests):
    @pytest.fixture
    def adapter_name(self):
        return "numpynn_kf"
'''


def test_known_failures_through_pytest_and_the_command_line(tmp_path: Path) -> None:
    """End to end in fresh processes: the builders name a file; the listed failure is an xfail, the
    listed pass an XPASS(strict) failure, and the typo is reported; by pytest and by the matrix."""
    (tmp_path / "kf_adapter.py").write_text(KF_MODULE)
    (tmp_path / "test_kf.py").write_text(KF_TESTS)
    (tmp_path / "known_failures.txt").write_text(
        "access.mlp_names_shapes  # mlp builder is broken on purpose\n"
        "access.nested_blocks  # stale: passes\n"
        "no.such.scenario  # typo\n"
    )
    done = _run(
        ["-m", "pytest", "test_kf.py", "-q", "-rA", "-p", "no:cacheprovider",
         "-k", "mlp_names_shapes or nested_blocks or custom_model"],
        tmp_path, [tmp_path, EXAMPLE],
    )
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert re.search(r"\b1 failed, 1 passed, \d+ deselected, 1 xfailed\b", out), out
    assert "XFAIL test_kf.py::TestKnownFailures::test_access__mlp_names_shapes" in out, out
    assert "FAILED test_kf.py::TestKnownFailures::test_access__nested_blocks" in out and "XPASS" in out, out
    assert "'no.such.scenario' names no scenario" in out, out

    _dist_info(tmp_path, "kf-probe", "numpynn_kf = kf_adapter:KnownFailuresAdapter", "numpynn_kf = kf_adapter:BrokenBuilders")
    done = _run(["-m", "unifyparams.conformance", "--backend", "numpynn_kf", "-k", "access.[mn][le]*",
                 "--report", str(tmp_path / "reports")], tmp_path, [tmp_path, EXAMPLE])
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    statuses = {o["scenario"]: o["status"] for o in json.loads((tmp_path / "reports" / "conformance.json").read_text())["numpynn_kf"]}
    assert statuses["access.mlp_names_shapes"] == "xfail" and statuses["access.nested_blocks"] == "xpass", out
    assert "xfail" in out and "XPASS" in out, out
    assert "no.such.scenario" in out, out
