"""``up.init``: one catalog of initializers for every framework (see :mod:`.catalog` for the table).

>>> import unifyparams as up
>>> up.initialize(net, up.init.XavierUniform(), seed=0)     # doctest: +SKIP
>>> up.init.get("glorot_uniform")
XavierUniform(gain=1.0)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import InitializerError
from .base import CallableInitializer, Initializer, ParamInfo
from .catalog import (
    Constant,
    Dirac,
    Eye,
    KaimingNormal,
    KaimingUniform,
    MXNetXavier,
    Normal,
    Ones,
    Orthogonal,
    TruncatedNormal,
    Uniform,
    VarianceScaling,
    XavierNormal,
    XavierUniform,
    Zeros,
)
from .fans import calculate_gain, compute_fans

#: Names users of the three frameworks type, each with the initializer it means *in that framework*
#: (Keras's ``glorot_normal`` and ``he_normal`` truncate; PyTorch's ``xavier_normal`` does not).
_NAMES: dict[str, Callable[[], Initializer]] = {
    "zeros": Zeros, "zero": Zeros, "ones": Ones, "one": Ones,
    "uniform": Uniform, "random_uniform": lambda: Uniform(-0.05, 0.05),
    "normal": Normal, "random_normal": lambda: Normal(0.0, 0.05),
    "truncated_normal": TruncatedNormal,
    "xavier_uniform": XavierUniform, "glorot_uniform": XavierUniform,
    "xavier_normal": XavierNormal,
    "glorot_normal": lambda: VarianceScaling(1.0, "fan_avg", "truncated_normal"),
    "kaiming_uniform": KaimingUniform, "he_uniform": lambda: KaimingUniform(nonlinearity="relu"),
    "kaiming_normal": KaimingNormal,
    "he_normal": lambda: VarianceScaling(2.0, "fan_in", "truncated_normal"),
    "lecun_uniform": lambda: VarianceScaling(1.0, "fan_in", "uniform"),
    "lecun_normal": lambda: VarianceScaling(1.0, "fan_in", "truncated_normal"),
    "variance_scaling": VarianceScaling,
    "xavier": MXNetXavier, "mxnet_xavier": MXNetXavier,
    "orthogonal": Orthogonal, "eye": Eye, "identity": Eye, "dirac": Dirac,
}


def get(identifier: Any) -> Initializer:
    """An :class:`Initializer` from a name, a class, an instance or a callable ``fn(shape, rng)``."""
    if isinstance(identifier, Initializer):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Initializer):
        return identifier()
    if isinstance(identifier, str):
        key = identifier.lower().replace("-", "_")
        if key not in _NAMES:
            import difflib

            close = difflib.get_close_matches(key, list(_NAMES), n=3)
            raise InitializerError(
                f"unknown initializer {identifier!r}; did you mean {close or sorted(_NAMES)[:6]}? "
                f"Known names: {', '.join(sorted(_NAMES))}"
            )
        return _NAMES[key]()
    if callable(identifier):
        return CallableInitializer(identifier)
    raise InitializerError(
        f"expected an initializer (a name, an up.init class or instance, or a callable fn(shape, rng)); "
        f"received {type(identifier).__name__}: {identifier!r}"
    )


__all__ = [
    "CallableInitializer", "Constant", "Dirac", "Eye", "Initializer", "KaimingNormal", "KaimingUniform",
    "MXNetXavier", "Normal", "Ones", "Orthogonal", "ParamInfo", "TruncatedNormal", "Uniform",
    "VarianceScaling", "XavierNormal", "XavierUniform", "Zeros", "calculate_gain", "compute_fans", "get",
]
