"""The MXNet Gluon backend's helpers (surface: tests/backends/__init__.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

import unifyparams as up
from unifyparams.conformance import load_builders
from unifyparams_gluon import GluonAdapter, import_mxnet

mx = import_mxnet()
nn, rnn = mx.gluon.nn, mx.gluon.rnn

NAME = "gluon"
PACKAGE = "unifyparams_gluon"
models = load_builders(NAME)  #: the conformance builders declared for this backend
KINDS = {"sequential": "HybridSequential", "dense": "Dense", "list": "list", "dict": "dict"}
GAMMA_BETA = {"gamma": "weight", "beta": "bias"}


def adapter() -> GluonAdapter:
    a = up.get_adapter(NAME)
    assert isinstance(a, GluonAdapter)
    return a


def tensor(array: np.ndarray) -> Any:
    return mx.nd.array(np.asarray(array))


def total(x: Any) -> Any:
    return x.sum()


def native_numpy(p: up.Param) -> np.ndarray:
    return p.layout.to_canonical(p.native.data().asnumpy())


def gluon_paths(block: Any) -> list[str]:
    """Gluon's own ``save_parameters`` names, with gamma/beta spelled as PyTorch does."""
    return [
        ".".join(GAMMA_BETA.get(part, part) if i == len(name.split(".")) - 1 else part
                 for i, part in enumerate(name.split(".")))
        for name in block._collect_params_with_prefix()
    ]


def assert_native_listing(model: Any, ps: up.ParamSet) -> None:
    """Objects and native names are Gluon's Parameters, in its order (names: tests/test_gluon_naming.py)."""
    natives = list(model._collect_params_with_prefix().values())
    assert [p.native for p in ps.values()] == natives
    assert [p.native_name for p in ps.values()] == [p.name for p in natives]
    for p in ps.values():
        assert p.backend == "gluon"
        if not p.trainable:
            assert p.native.grad_req == "null" and p.grad() is None, p.name


def reused_layer() -> tuple[Any, str, str]:
    dense = nn.Dense(4, in_units=4)
    net = nn.HybridSequential()
    net.add(dense, nn.Activation("relu"), dense)
    net.initialize()
    return net, "2.weight", "one object"


# --- Gluon-specific helpers --------------------------------------------------------------------------
def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def randomize(model: Any, seed: int = 0) -> dict[str, np.ndarray]:
    """Random normal values for every parameter (positive variances); returns what was written."""
    ps = up.params(model)
    r = rng(seed)
    state = {}
    for name, p in ps.items():
        value = r.normal(size=p.shape).astype(np.float32)
        value = np.abs(value) + 0.5 if name.endswith("running_var") else value
        state[name] = next((state[n] for n in p.shared_with if n in state), value)  # tied: one value
    ps.load(state)
    return state


def in_numpy_mode(build: Callable[[], Any]) -> Any:
    mx.npx.set_np()
    try:
        return build()
    finally:
        mx.npx.reset_np()
