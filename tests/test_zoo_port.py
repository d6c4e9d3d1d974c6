"""Porting proofs on real model definitions nobody here wrote: torchvision, MXNet's Gluon model zoo and
``keras.applications`` (tests/zoo.py), random weights, inference mode, judged by outputs.

For every pair the zoos implement as the same function (shared/reference/real-models.md: the sources
were read), in every direction among the frameworks that have it, into Gluon destinations that are
deferred (initialized, never run) and ones that have already run an inference forward: randomize the
source, ``up.port(src, dst, example_input=x)``, and the destination's output on ``x`` must equal the
source's within 1e-4 relative (max abs difference / max abs output). Then checkpoints across zoos:
a torchvision file into the Gluon zoo model, a Keras VGG16 file into torchvision's vgg16.

Each source is built and randomized once per module (one architecture's models are kept at a time:
VGG is 0.5 GiB a model); every destination is built fresh, because a port writes into it. A destination
whose port was just verified by its outputs is a randomized model of its framework with a known output,
so it becomes that framework's source for the directions that follow (a Gluon zoo model that has run
costs ~10 s to build at VGG's size here); when the port failed, the source is built and randomized on
its own, so one failure never hides behind another.
"""

from __future__ import annotations

import gc
import itertools
import re
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import unifyparams as up

from . import zoo

TOLERANCE = 1e-4


# grouped by architecture, so each one's sources are built once; vgg16 last, so the Keras VGG16 checkpoint
# test below finds its source still built
ARCHS = ["resnet18", "resnet34", "alexnet", "squeezenet1_0", "squeezenet1_1", "inception_v3", "densenet121",
         "densenet169", "vgg19", "vgg16"]
assert sorted(ARCHS) == sorted(zoo.TORCH)


def _cases() -> list[Any]:
    cases = []
    for arch in ARCHS:
        for src, dst in itertools.permutations(zoo.frameworks(arch), 2):
            for state in ("deferred", "run") if dst == "gluon" else ("",):
                case_id = f"{arch}-{src}-to-{dst}" + (f"-{state}" if state else "")
                cases.append(pytest.param(arch, src, dst, state or "deferred", id=case_id))
    return cases


SOURCE_ORDER = ("torch", "gluon", "keras")  # the order _cases() gives each architecture's sources in


class Sources:
    """Randomized source models and their reference outputs, one architecture at a time; a framework's
    source is dropped once the cases have moved on to the next framework's (memory: VGG)."""

    def __init__(self) -> None:
        self.arch: str | None = None
        self.models: dict[str, tuple[Any, np.ndarray]] = {}
        self.done: set[str] = set()

    def get(self, framework: str, arch: str) -> tuple[Any, np.ndarray]:
        if arch != self.arch:
            self.arch, self.models, self.done = arch, {}, set()
            gc.collect()  # Keras and Gluon models hold reference cycles: free the last architecture's now
        finished = set(SOURCE_ORDER[: SOURCE_ORDER.index(framework)])
        if finished - self.done:
            self.done |= finished
            for name in finished:
                self.models.pop(name, None)
            gc.collect()
        if framework not in self.models:
            # a Gluon source has run once (its shapes are known only after a forward): writing into it
            # is the "after an inference forward" state of the Gluon adapter
            model = zoo.build(framework, arch, state="run")
            zoo.randomize(model, zlib.crc32(f"{framework}/{arch}".encode()))
            expected = zoo.forward(framework, model, zoo.example_input(arch))
            assert np.all(np.isfinite(expected)) and np.max(np.abs(expected)) > 0
            self.models[framework] = (model, expected)
        return self.models[framework]

    def adopt(self, framework: str, arch: str, model: Any, output: np.ndarray) -> None:
        """A destination verified by its outputs serves as ``framework``'s source from now on."""
        if arch == self.arch and framework not in self.models and framework not in self.done:
            self.models[framework] = (model, output)


@pytest.fixture(scope="module")
def sources() -> Iterator[Sources]:
    yield Sources()
    gc.collect()


@pytest.fixture(autouse=True)
def _free_destination() -> Iterator[None]:
    """Each test's destination (0.5-1.3 GiB at VGG's size) is freed before the next one is built."""
    yield
    gc.collect()


def _port(src: Any, dst: Any, x: np.ndarray) -> up.PortReport:
    """The port under test: the example input is the same NCHW image both models are judged on."""
    return up.port(src, dst, example_input=x)


def _summary(report: Any, limit: int = 8) -> str:
    """The report's problems and warnings, short enough to read in a failure."""
    lines = [f"problem: {p}" for p in report.problems[:limit]]
    lines += [f"  ... {len(report.problems) - limit} more problem(s)"] if len(report.problems) > limit else []
    lines += [f"warning: {w}" for w in report.warnings[:limit]]
    return "\n".join(lines)


@pytest.mark.parametrize("arch, src_fw, dst_fw, dst_state", _cases())
def test_zoo_port_keeps_outputs(sources: Sources, arch: str, src_fw: str, dst_fw: str, dst_state: str) -> None:
    src, expected = sources.get(src_fw, arch)
    dst = zoo.build(dst_fw, arch, state=dst_state)
    x = zoo.example_input(arch)
    report = _port(src, dst, x)
    assert report.applied and report.ok, f"{arch} {src_fw}->{dst_fw} ({dst_state}):\n{_summary(report)}"
    got = zoo.forward(dst_fw, dst, x)
    error = zoo.relative_error(expected, got)
    assert error <= TOLERANCE, (
        f"{arch} {src_fw}->{dst_fw} ({dst_state}): the port reported success but outputs differ by "
        f"{error:.3g} relative\n{_summary(report)}"
    )
    _check_report(arch, src_fw, dst_fw, report)
    sources.adopt(dst_fw, arch, dst, got)


def _check_report(arch: str, src_fw: str, dst_fw: str, report: Any) -> None:
    """The facts a user reads in the report, on the layers where the zoos differ."""
    crosses_layouts = "keras" in (src_fw, dst_fw)  # channels-last on one side only
    if arch.startswith("vgg"):  # fc1 reads the flattened 512x7x7 map: (C, H, W) vs Keras' (H, W, C)
        fc1, fc2 = [r for r in report.rows if r.shape.startswith("(4096, ")][:2]  # the weights (biases: "(4096,)")
        if crosses_layouts:  # (4096, 25088), or "?" for a deferred destination
            assert "flatten" in fc1.conversion.lower() and fc1.conversion != fc2.conversion, str(fc1)
        else:  # both flatten (C, H, W): the same plain copy as fc2
            assert fc1.conversion == fc2.conversion, f"{fc1}\n{fc2}"
    if arch.startswith("densenet"):  # the classifier reads 1024 globally pooled features: no reordering
        classifier = next(r for r in report.rows if r.shape.startswith("(1000, "))
        assert "flatten" not in classifier.conversion.lower(), str(classifier)
        if crosses_layouts:  # Keras' DenseNet batch norms use eps 1.001e-5, the others 1e-5: reported
            eps = [w for w in report.warnings if "eps" in w]
            assert eps and all("1.001e-05" in w and re.search(r"(?<![\d.])1e-05", w) for w in eps), eps[:2]


# --------------------------------------------------------------------------------------------------
# checkpoints across zoos: same matcher as port (match="order": the zoos name their layers differently)


@pytest.mark.parametrize("dst_state", ["deferred", "run"])
def test_torchvision_checkpoint_loads_into_gluon_zoo(tmp_path: Path, dst_state: str) -> None:
    src = zoo.build("torch", "resnet18")
    zoo.randomize(src, 7)
    x = zoo.example_input("resnet18")
    expected = zoo.forward("torch", src, x)
    path = tmp_path / "resnet18.safetensors"
    up.save(src, path)
    dst = zoo.build("gluon", "resnet18", state=dst_state)
    report = up.load(dst, path, match="order")  # strict: a problem would have raised
    assert report.port is not None and report.port.applied and report.port.ok, str(report.port)
    error = zoo.relative_error(expected, zoo.forward("gluon", dst, x))
    assert error <= TOLERANCE, f"torchvision resnet18 checkpoint -> Gluon resnet18_v1 ({dst_state}): {error:.3g}"


def test_keras_vgg16_checkpoint_loads_into_torchvision(sources: Sources, tmp_path: Path) -> None:
    src, expected = sources.get("keras", "vgg16")
    path = tmp_path / "vgg16.safetensors"
    up.save(src, path)
    dst = zoo.build("torch", "vgg16")
    report = up.load(dst, path, match="order")
    assert report.port is not None and report.port.applied and report.port.ok, str(report.port)
    error = zoo.relative_error(expected, zoo.forward("torch", dst, zoo.example_input("vgg16")))
    assert error <= TOLERANCE, f"Keras VGG16 checkpoint -> torchvision vgg16: {error:.3g}"


# --------------------------------------------------------------------------------------------------
# the harness itself


def test_zoo_loads_torchvision_without_its_package() -> None:
    import sys

    tv = zoo.torchvision_models()
    assert "torchvision" not in sys.modules, "tests/zoo.py must never make plain `torchvision` importable"
    assert tv.resnet18.__module__.startswith(zoo.PACKAGE)
    assert up.params(zoo.build("torch", "squeezenet1_1")).count() == 1_235_496  # torchvision's documented size
