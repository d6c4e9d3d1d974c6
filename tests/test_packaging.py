"""Packaging: the wheel built from this tree (typing markers, license, metadata, extras) and
``unifyparams --version``.

The wheel is built once, offline (``pip wheel --no-deps --no-build-isolation``, with this
environment's setuptools), from a copy of the files a build reads, so a concurrent build in the
checkout cannot interfere. No framework is needed. The tests name backends by their packages'
names only where they must: a test that says the Keras package's name is rerun under every Keras
backend (tests/conftest.py), and this file has nothing backend-specific to rerun.
"""

from __future__ import annotations

import email
import email.message
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

import unifyparams
from unifyparams.cli import main

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pytest's own dependency
    import tomli as tomllib  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parents[1]
LINUX = {"sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64"}


def _pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[zipfile.ZipFile]:
    setuptools = pytest.importorskip("setuptools")
    assert Version(setuptools.__version__) >= Version("77"), (
        f"setuptools {setuptools.__version__} cannot build this project (SPDX license, license-files): "
        "install unifyparams[test]"
    )
    tmp = tmp_path_factory.mktemp("packaging")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "*.so")
    shutil.copytree(ROOT / "unifyparams", src / "unifyparams", ignore=ignore)
    shutil.copytree(ROOT / "adapters", src / "adapters", ignore=ignore)
    out = tmp / "dist"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
         "-w", str(out), str(src)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    (path,) = out.glob("unifyparams-*.whl")
    with zipfile.ZipFile(path) as archive:
        yield archive


def _dist_info(wheel: zipfile.ZipFile) -> str:
    (name,) = {n.split("/")[0] for n in wheel.namelist() if n.split("/")[0].endswith(".dist-info")}
    return name


@pytest.fixture(scope="module")
def metadata(wheel: zipfile.ZipFile) -> email.message.Message:
    return email.message_from_bytes(wheel.read(f"{_dist_info(wheel)}/METADATA"))


def _extras(metadata: email.message.Message) -> dict[str, set[str]]:
    """Each extra -> the distributions it installs on Linux (self-references expanded)."""
    requirements = [Requirement(r) for r in metadata.get_all("Requires-Dist", [])]

    def pulled(extra: str) -> set[str]:
        names: set[str] = set()
        for req in requirements:
            if req.marker is None or not req.marker.evaluate({**LINUX, "extra": extra}):
                continue
            if req.name == "unifyparams":
                for inner in req.extras:
                    names |= pulled(inner)
            else:
                names.add(req.name)
        return names

    return {extra: pulled(extra) for extra in metadata.get_all("Provides-Extra", [])}


def test_wheel_ships_typing_markers_and_the_license(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    dist_info = _dist_info(wheel)
    packages = wheel.read(f"{dist_info}/top_level.txt").decode().split()
    assert "unifyparams" in packages and len(packages) == 4  # the core and the three adapter packages
    for package in packages:
        assert f"{package}/py.typed" in names, package
    licenses = [n for n in names if n.startswith(f"{dist_info}/licenses/")]
    assert licenses == [f"{dist_info}/licenses/LICENSE"]
    text = wheel.read(licenses[0]).decode()
    assert text == (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text
    # nothing from outside the packages (tests, examples, benchmarks, caches)
    assert {n.split("/")[0] for n in names} == set(packages) | {dist_info}
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)


def test_the_wheel_carries_the_compiled_transpose_and_drawer(wheel: zipfile.ZipFile) -> None:
    """Built from their C sources when a compiler is there (as in CI), for the stable ABI (one wheel
    per platform, every Python from 3.10)."""
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("no C compiler here: the wheel is built without the optional kernels")
    assert "unifyparams/_transpose.abi3.so" in wheel.namelist()
    assert "unifyparams/_draws.abi3.so" in wheel.namelist()
    assert "-cp310-abi3-" in wheel.filename


def test_every_adapter_and_recipe_entry_point_is_in_the_wheel(wheel: zipfile.ZipFile) -> None:
    text = wheel.read(f"{_dist_info(wheel)}/entry_points.txt").decode()
    groups: dict[str, dict[str, str]] = {}
    group = ""
    for line in text.splitlines():
        if line.startswith("["):
            group = line.strip("[]")
            groups[group] = {}
        elif "=" in line:
            key, value = (part.strip() for part in line.split("=", 1))
            groups[group][key] = value
    assert groups["console_scripts"] == {"unifyparams": "unifyparams.cli:main"}
    for name in ("unifyparams.adapters", "unifyparams.builders", "unifyparams.recipes"):
        assert groups[name] == {k: str(v) for k, v in _pyproject()["project"]["entry-points"][name].items()}
        assert len(groups[name]) == 3
        for target in groups[name].values():
            module = target.split(":")[0].replace(".", "/")
            assert {f"{module}.py", f"{module}/__init__.py"} & set(wheel.namelist()), target


def test_metadata_license_classifiers_and_one_version(metadata: email.message.Message) -> None:
    assert metadata["Version"] == unifyparams.__version__ == "0.1.0"
    assert metadata["License-Expression"] == "Apache-2.0"
    assert metadata.get_all("License-File") == ["LICENSE"]
    classifiers = metadata.get_all("Classifier", [])
    assert "Typing :: Typed" in classifiers
    assert "Topic :: Scientific/Engineering :: Artificial Intelligence" in classifiers
    prefix = "Programming Language :: Python :: 3."
    versions = [c.rsplit(" :: ", 1)[1] for c in classifiers if c.startswith(prefix)]
    assert versions and all(v in SpecifierSet(metadata["Requires-Python"]) for v in versions)
    assert "3.11" in versions  # the version CI runs
    # the SPDX expression replaces license classifiers (setuptools refuses both)
    assert not any(c.startswith("License ::") for c in classifiers)


def test_core_requirements(metadata: email.message.Message) -> None:
    core = {r.name for r in map(Requirement, metadata.get_all("Requires-Dist", [])) if r.marker is None}
    assert core == {"numpy", "rich", "safetensors", "ml_dtypes"}


def test_extras_are_pyprojects_and_no_backend_forces_another(metadata: email.message.Message) -> None:
    extras = _extras(metadata)
    assert set(extras) == set(_pyproject()["project"]["optional-dependencies"])
    expected = {"tensorflow", "jax", "torch", "gluon", "families", "docs", "all", "checkpoint", "test"}
    assert expected <= set(extras)
    backends = {"tensorflow": "tensorflow-cpu", "jax": "jax", "torch": "torch", "gluon": "mxnet"}
    for extra, names in extras.items():
        brought = {backend for backend, package in backends.items() if package in names}
        if extra == "all":  # the development set: Keras on TensorFlow
            assert brought == {"torch", "tensorflow", "gluon"}, names
        elif extra in backends:
            assert brought == {extra}, (extra, names)
        else:
            assert not brought, (extra, names)
    # the Keras front end: what the tensorflow and jax extras share, an extra of its own, alone
    (front_end,) = extras["tensorflow"] & extras["jax"]
    assert extras[front_end] == {front_end}
    assert extras["tensorflow"] == {front_end, "tensorflow-cpu"}
    assert extras["jax"] == {front_end, "jax"}
    assert front_end in extras["all"]
    assert extras["checkpoint"] == set()  # kept for old install commands: safetensors is core now
    assert extras["families"] == {"transformers", "safetensors"}
    assert extras["docs"] == {"mkdocs", "mkdocs-material", "mkdocstrings"}


def test_version_flag(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"unifyparams {unifyparams.__version__}\n"


def test_version_flag_of_the_installed_command() -> None:
    script = Path(sys.executable).with_name("unifyparams")
    if not script.exists():
        pytest.skip(f"no unifyparams command next to {sys.executable} (not installed in this environment)")
    result = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=120)
    assert (result.returncode, result.stdout, result.stderr) == (0, "unifyparams 0.1.0\n", "")
