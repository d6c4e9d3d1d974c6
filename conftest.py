"""Doctests of the package: ``pytest -q --doctest-modules unifyparams`` (no framework needed).

Every example runs in a scratch folder with ``up`` (unifyparams), ``np`` (NumPy) and ``net``, a
fresh model of the tests' NumPy framework (``tests/numpy_framework.py``: ``Dense(3, 4)``,
``Norm(4)``, ``Dense(4, 2)``, Dense kernels stored ``(in, out)`` as Keras does). A run made only
of doctests fails if any framework got imported: the core's examples must not need one.
"""

from __future__ import annotations

import os
import sys

# JAX reads XLA_FLAGS when it first starts: four host devices, so that the tests of Keras'
# distribution API on JAX run (not skip) wherever pytest runs them; .ci/test sets it too.
if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4").strip()
from typing import Any

import numpy as np
import pytest
from _pytest.doctest import DoctestItem

import unifyparams as up

#: Modules that a doctest run must leave unimported.
FRAMEWORKS = ("torch", "keras", "tensorflow", "mxnet", "jax")


def numpy_net(seed: int = 1) -> Any:
    """The doctests' model: ``Sequential(Dense(3, 4), Norm(4), Dense(4, 2))`` of the NumPy framework."""
    from tests.numpy_framework import Dense, Norm, NumpyAdapter, Sequential

    up.register_adapter(NumpyAdapter)
    return Sequential(Dense(3, 4, seed=seed), Norm(4), Dense(4, 2, seed=seed + 1))


@pytest.fixture(autouse=True)
def _doctest_setup(request: pytest.FixtureRequest) -> None:
    if not isinstance(request.node, DoctestItem):
        return
    request.getfixturevalue("monkeypatch").chdir(request.getfixturevalue("tmp_path"))
    namespace = request.getfixturevalue("doctest_namespace")
    namespace.update(up=up, np=np, net=numpy_net(), numpy_net=numpy_net)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    items = getattr(session, "items", [])
    if not items or not all(isinstance(item, DoctestItem) for item in items):
        return
    imported = [name for name in FRAMEWORKS if name in sys.modules]
    if imported:
        print(f"\ndoctests imported framework(s) {imported}; the core's examples must run without them")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
