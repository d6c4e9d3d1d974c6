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
    Bilinear,
    Constant,
    Dirac,
    Eye,
    KaimingNormal,
    KaimingUniform,
    LSTMBias,
    MXNetXavier,
    Normal,
    Ones,
    Orthogonal,
    Sparse,
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
    "zeros": Zeros, "zero": Zeros, "ones": Ones, "one": Ones, "constant": lambda: Constant(0.0),
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
    "sparse": lambda: Sparse(0.1), "bilinear": Bilinear, "lstm_bias": LSTMBias, "lstmbias": LSTMBias,
    "msraprelu": lambda: MXNetXavier("gaussian", "avg", 2.0 / (1 + 0.25**2)),
    "msra_prelu": lambda: MXNetXavier("gaussian", "avg", 2.0 / (1 + 0.25**2)),
}

#: Every class of the catalog by name, for ``get("XavierUniform")`` and Keras-style config dicts.
_CLASSES: dict[str, type[Initializer]] = {
    cls.__name__: cls
    for cls in (Zeros, Ones, Constant, Uniform, Normal, TruncatedNormal, XavierUniform, XavierNormal,
                KaimingUniform, KaimingNormal, VarianceScaling, MXNetXavier, Orthogonal, Eye, Dirac, Sparse,
                Bilinear, LSTMBias)
}


def get(identifier: Any) -> Initializer:
    """An :class:`Initializer` from a name, a class, an instance, a config or a callable.

    Names are those users of the three frameworks type (``"xavier_uniform"``, ``"glorot_uniform"``,
    ``"he_normal"``, ``"zeros"``, ...; each means what it means in its framework) or a class name
    (``"XavierUniform"``); a config is ``{"class_name": "Normal", "config": {"std": 0.01}}``, as
    :meth:`Initializer.get_config` and Keras write them; a callable is ``fn(shape, rng)``.

    >>> get("he_uniform")
    KaimingUniform(a=0.0, mode='fan_in', nonlinearity='relu')
    >>> get({"class_name": "Normal", "config": {"std": 0.01}})
    Normal(mean=0.0, std=0.01)
    """
    if isinstance(identifier, Initializer):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Initializer):
        return identifier()
    if isinstance(identifier, str):
        if identifier in _CLASSES:
            return _CLASSES[identifier]()
        key = identifier.lower().replace("-", "_")
        if key not in _NAMES:
            import difflib

            close = difflib.get_close_matches(key, list(_NAMES) + list(_CLASSES), n=3)
            hint = f"did you mean {' or '.join(map(repr, close))}? " if close else ""
            raise InitializerError(
                f"unknown initializer name; {hint}expected one of: {', '.join(sorted(_NAMES))}, or an "
                f"up.init class name. Received: {identifier!r}"
            )
        return _NAMES[key]()
    if isinstance(identifier, dict) and "class_name" in identifier:
        cls = _CLASSES.get(identifier["class_name"])
        if cls is None:
            raise InitializerError(
                f"unknown initializer class; expected one of {', '.join(sorted(_CLASSES))}. "
                f"Received: class_name={identifier['class_name']!r}"
            )
        try:
            return cls.from_config(dict(identifier.get("config") or {}))
        except TypeError as exc:
            raise InitializerError(f"bad config for {cls.__name__}: {exc}. Received: {identifier!r}") from exc
    if callable(identifier):
        return CallableInitializer(identifier)
    raise InitializerError(
        f"expected an initializer: a name, an up.init class or instance, a config dict or a callable "
        f"fn(shape, rng). Received: {type(identifier).__name__} {identifier!r}"
    )


__all__ = [
    "Bilinear", "CallableInitializer", "Constant", "Dirac", "Eye", "Initializer", "KaimingNormal",
    "KaimingUniform", "LSTMBias", "MXNetXavier", "Normal", "Ones", "Orthogonal", "ParamInfo", "Sparse",
    "TruncatedNormal", "Uniform", "VarianceScaling", "XavierNormal", "XavierUniform", "Zeros", "calculate_gain",
    "compute_fans", "get",
]
