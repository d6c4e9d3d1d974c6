"""Finding the adapter, on every backend: packages import no framework; an adapter owns its models only."""

from __future__ import annotations

import subprocess
import sys
from types import ModuleType

import numpy as np

import unifyparams as up

FRAMEWORKS = ("torch", "tensorflow", "keras", "mxnet", "jax")


def test_importing_the_adapter_package_imports_no_framework(backend: ModuleType) -> None:
    code = (
        f"import sys, unifyparams as up, {backend.PACKAGE}\n"
        f"cls = up.available_adapters()[{backend.NAME!r}]\n"
        f"print(cls.name, cls.__module__.split('.')[0], sorted(m for m in {FRAMEWORKS!r} if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == [backend.NAME, backend.PACKAGE, "[]"]


def test_the_adapter_owns_the_frameworks_models_and_layers_only(backend: ModuleType) -> None:
    net = backend.models.mlp()
    adapter = up.adapter_for(net)
    assert adapter.name == backend.NAME and adapter is backend.adapter()
    assert up.params(net).backend == backend.NAME
    assert adapter.owns(net) and adapter.owns(backend.models.child(net, "0"))
    assert not adapter.owns(np.zeros(3)) and not adapter.owns(backend.tensor(np.zeros(3, np.float32)))
    assert not adapter.owns(next(iter(up.params(net).values())).native)  # a parameter is not a model
