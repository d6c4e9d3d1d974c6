"""The example third-party adapter (examples/custom_adapter: numpynn) against the conformance suite.

Nothing is installed at test time. The adapter is imported from the example's folder and
registered by hand unless its entry point is already installed; the entry-point route itself is
proven in a subprocess whose ``sys.path`` holds a temporary ``.dist-info`` with an
``entry_points.txt``, which is exactly how Python finds an installed package's entry points.
Every scenario runs in-process through :class:`unifyparams.testing.ConformanceTests`, so the pytest
route is tested too, and so are the per-adapter known failures (file and mapping).
"""

from __future__ import annotations

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
from unifyparams.conformance import Outcome, all_scenarios, run_scenario
from unifyparams.conformance.worker import load_known_failures
from unifyparams.registry import ENTRY_POINT_GROUP
from unifyparams.testing import ConformanceTests, check_outcome, scenario_test_name

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "custom_adapter"
if str(EXAMPLE) not in sys.path:
    sys.path.insert(0, str(EXAMPLE))

from unifyparams_numpynn import NumpyNNAdapter  # noqa: E402
from unifyparams_numpynn.builders import NumpyNNBuilders  # noqa: E402

ENTRY_POINT_INSTALLED = any(ep.name == "numpynn" for ep in metadata.entry_points(group=ENTRY_POINT_GROUP))
if not ENTRY_POINT_INSTALLED:
    up.register_adapter(NumpyNNAdapter)


class TestNumpyNNConformance(ConformanceTests):
    """The ~5 lines a third party writes: every scenario, one test each."""

    @pytest.fixture
    def adapter_name(self) -> str:
        return "numpynn"


def test_one_test_method_per_scenario() -> None:
    for sid in all_scenarios():
        assert callable(getattr(TestNumpyNNConformance, scenario_test_name(sid), None)), sid


def test_example_known_failures_file_lists_nothing(recwarn: pytest.WarningsRecorder) -> None:
    assert load_known_failures(NumpyNNAdapter) == {}
    assert not [w for w in recwarn if "known_failures" in str(w.message)]


def _run(args: list[str], cwd: Path, extra_path: list[Path]) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([*map(str, extra_path), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["COLUMNS"] = "160"
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_entry_point_route(tmp_path: Path) -> None:
    """A temporary dist-info on sys.path registers numpynn, as `pip install` of the example would;
    then `python -m unifyparams.conformance --backend numpynn` runs every scenario on it."""
    dist = tmp_path / "unifyparams_numpynn_probe-0.1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: unifyparams-numpynn-probe\nVersion: 0.1.0\n")
    (dist / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\nnumpynn = unifyparams_numpynn:NumpyNNAdapter\n")
    probe = textwrap.dedent(f"""
        from importlib import metadata
        import unifyparams as up
        eps = [ep for ep in metadata.entry_points(group={ENTRY_POINT_GROUP!r}) if ep.name == "numpynn"]
        assert any(ep.dist.name == "unifyparams-numpynn-probe" for ep in eps), eps
        assert up.available_adapters()["numpynn"].__name__ == "NumpyNNAdapter"
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
    n = len(all_scenarios())
    assert f"1 backend row(s) x {n} scenario(s)" in out, out
    assert "FAIL" not in out and "ERROR" not in out and "no result" not in out, out


# --- known failures ------------------------------------------------------------------------------


class BrokenBuilders(NumpyNNBuilders):
    """``mlp`` builds the wrong model, so access.mlp_names_shapes fails; nested_blocks still passes."""

    def mlp(self, in_features: int = 20, hidden: int = 256, out_features: int = 10) -> object:
        import numpynn as nn

        return nn.Sequential(nn.Dense(out_features, in_features=in_features))


def _adapter_with(known: object) -> type:
    return type("KnownFailuresAdapter", (NumpyNNAdapter,), {"known_failures": known, "__module__": __name__})


def test_known_failures_file(tmp_path: Path) -> None:
    listing = tmp_path / "known_failures.txt"
    listing.write_text(
        "# comments and blank lines are ignored\n\n"
        "access.mlp_names_shapes  # mlp builder is broken on purpose\n"
        "access.nested_blocks\n"
        "no.such.scenario  # a typo\n"
        "two words  # malformed\n"
    )
    with pytest.warns(UserWarning) as caught:
        known = load_known_failures(_adapter_with(listing))
    assert known == {
        "access.mlp_names_shapes": "mlp builder is broken on purpose",
        "access.nested_blocks": "listed in known_failures.txt",
    }
    messages = " ".join(str(w.message) for w in caught)
    assert "'no.such.scenario' names no scenario" in messages
    assert "known_failures.txt:6" in messages and "malformed" in messages


def test_known_failures_mapping_and_missing_file(tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="access.gradeint.*closest: access.gradient"):
        known = load_known_failures(_adapter_with({"access.gradient": "r", "access.gradeint": "typo"}))
    assert known == {"access.gradient": "r"}
    with pytest.warns(UserWarning, match="cannot read"):
        assert load_known_failures(_adapter_with(tmp_path / "absent.txt")) == {}
    # a relative path is read next to the module of the class that sets it (here tests/)
    relative = "../examples/custom_adapter/unifyparams_numpynn/known_failures.txt"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_known_failures(_adapter_with(relative)) == {}


def _outcome(sid: str, known: dict[str, str]) -> Outcome:
    return run_scenario(all_scenarios()[sid], BrokenBuilders(), known_failures=known, backend="numpynn")


def test_listed_failure_is_xfail_and_listed_pass_is_a_failure() -> None:
    known = {"access.mlp_names_shapes": "broken mlp", "access.nested_blocks": "stale entry"}
    failing, passing = _outcome("access.mlp_names_shapes", known), _outcome("access.nested_blocks", known)
    assert (failing.status, failing.reason) == ("xfail", "broken mlp")
    assert passing.status == "xpass" and "stale entry" in passing.reason
    with pytest.raises(pytest.xfail.Exception, match="known failure: broken mlp"):
        check_outcome(failing)
    with pytest.raises(pytest.fail.Exception, match="XPASS"):
        check_outcome(passing)
    unlisted = _outcome("access.mlp_names_shapes", {})
    assert unlisted.status == "fail"
    with pytest.raises(pytest.fail.Exception, match="names"):
        check_outcome(unlisted)


KF_MODULE = '''
from unifyparams_numpynn import NumpyNNAdapter
from unifyparams_numpynn.builders import NumpyNNBuilders


class BrokenBuilders(NumpyNNBuilders):
    backend = "numpynn_kf"

    def mlp(self, in_features=20, hidden=256, out_features=10):
        import numpynn as nn

        return nn.Sequential(nn.Dense(out_features, in_features=in_features))


class KnownFailuresAdapter(NumpyNNAdapter):
    name = "numpynn_kf"
    priority = 10
    builders = "kf_adapter:BrokenBuilders"
    known_failures = "known_failures.txt"   # next to this module
'''

KF_TESTS = '''
import pytest
import unifyparams as up
from unifyparams.testing import ConformanceTests
from kf_adapter import KnownFailuresAdapter

up.register_adapter(KnownFailuresAdapter)


class TestKnownFailures(ConformanceTests):
    @pytest.fixture
    def adapter_name(self):
        return "numpynn_kf"
'''


def test_known_failures_through_pytest_route_and_worker(tmp_path: Path) -> None:
    """End to end in a fresh process: the adapter attribute names a file; the pytest route turns
    the listed failure into an xfail, the listed pass into a failure, and warns about the typo."""
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

    worker = textwrap.dedent("""
        import unifyparams as up
        from kf_adapter import KnownFailuresAdapter
        from unifyparams.conformance.worker import run_row
        up.register_adapter(KnownFailuresAdapter)
        for o in run_row("numpynn_kf", "access.[mn][le]*"):
            print(o.scenario, o.status)
    """)
    done = _run(["-c", worker], tmp_path, [tmp_path, EXAMPLE])
    assert done.returncode == 0, done.stderr
    assert "access.mlp_names_shapes xfail" in done.stdout and "access.nested_blocks xpass" in done.stdout
    assert "no.such.scenario" in done.stderr
