"""The initializer catalog: PyTorch's formulas on the canonical layout, plus Keras and MXNet variants.

| unifyparams | PyTorch | Keras 3 | MXNet |
|---|---|---|---|
| ``Zeros`` / ``Ones`` / ``Constant(v)`` | ``zeros_`` / ``ones_`` / ``constant_`` | ``Zeros`` / ``Ones`` / ``Constant`` | ``Zero`` / ``One`` / ``Constant`` |
| ``Uniform(low, high)`` | ``uniform_(a, b)`` | ``RandomUniform`` | ``Uniform(scale)`` = ``Uniform(-scale, scale)`` |
| ``Normal(mean, std)`` | ``normal_`` | ``RandomNormal`` | ``Normal(sigma)`` |
| ``TruncatedNormal(mean, std, a, b)`` | ``trunc_normal_`` (absolute bounds) | ``TruncatedNormal`` cuts at 2 std: ``a=mean-2*std, b=mean+2*std`` | - |
| ``XavierUniform(gain)`` | ``xavier_uniform_`` | ``GlorotUniform`` | ``Xavier("uniform", "avg", 3)`` |
| ``XavierNormal(gain)`` | ``xavier_normal_`` | ``VarianceScaling(1, "fan_avg", "untruncated_normal")`` (``GlorotNormal`` truncates) | ``Xavier("gaussian", "avg", 1)`` |
| ``KaimingUniform(a, mode, nonlinearity)`` | ``kaiming_uniform_`` | ``HeUniform`` (relu, fan_in) | ``Xavier("uniform", "in", 6)`` (relu) |
| ``KaimingNormal(a, mode, nonlinearity)`` | ``kaiming_normal_`` | ``VarianceScaling(2, "fan_in", "untruncated_normal")`` (``HeNormal`` truncates) | ``Xavier("gaussian", "in", 2)`` |
| ``VarianceScaling(scale, mode, distribution)`` | - | ``VarianceScaling`` (same semantics) | - |
| ``MXNetXavier(rnd_type, factor_type, magnitude)`` | - | - | ``Xavier`` (same semantics) |
| ``Orthogonal(gain)`` | ``orthogonal_`` | ``Orthogonal`` | ``Orthogonal(scale)`` (default scale 1.414) |
| ``Eye()`` / ``Dirac(groups)`` | ``eye_`` / ``dirac_`` | ``Identity`` / - | - |
| ``Sparse(sparsity, std)`` | ``sparse_`` | - | - |
| ``MXNetXavier("gaussian", "avg", 2 / (1 + slope**2))`` (name ``"msraprelu"``) | - | - | ``MSRAPrelu`` |
| ``Bilinear()`` | - | - | ``Bilinear`` |
| ``LSTMBias(forget_bias)`` | - | ``LSTM(unit_forget_bias=True)`` | ``LSTMBias`` |

Where the frameworks differ under one name: Keras's ``GlorotNormal``, ``HeNormal`` and
``LecunNormal`` draw a normal truncated at 2 std (std corrected by 0.8796 so the variance is
kept), PyTorch's ``xavier_normal_`` / ``kaiming_normal_`` do not truncate; MXNet's ``Xavier``
computes ``sqrt(magnitude / factor)`` with ``factor_type`` "avg", "in" or "out" (so the default
``magnitude=3`` with "avg" is Glorot uniform); MXNet's ``Orthogonal`` orthogonalizes a uniform
matrix by SVD and scales by 1.414 by default. Each framework reads fans from its own layout:
here they always come from the canonical one, so one initializer means one bound everywhere.
Resolution by name (:func:`unifyparams.init.get`) keeps each framework's meaning:
``"glorot_normal"`` and ``"he_normal"`` truncate, ``"xavier_normal"`` and ``"kaiming_normal"``
do not.

Random values are drawn in NumPy from ``(seed, stream key)`` (see :mod:`.streams` and :mod:`.keys`), so a seed
gives bit-identical values in every backend; they are not PyTorch's own random stream.

>>> round(XavierUniform().bound((256, 20)), 4)
0.1474
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import InitializerError
from . import streams
from .base import Initializer, ParamInfo
from .fans import calculate_gain, compute_fans, fan_for

Shape = Sequence[int]


def _number(name: str, value: Any, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InitializerError(f"{name} must be a number; received {name}={value!r}")
    value = float(value)
    if not math.isfinite(value) or (positive and value <= 0):
        want = "a finite number > 0" if positive else "a finite number"
        raise InitializerError(f"{name} must be {want}; received {name}={value!r}")
    return value


def _needs_real(init: Initializer, dtype: np.dtype, name: str) -> None:
    """Random values cannot go into an integer or boolean parameter."""
    if np.dtype(dtype).kind in "biu":
        raise InitializerError(
            f"{type(init).__name__} draws real numbers, but parameter {name!r} holds {np.dtype(dtype)}; "
            f"use Zeros, Ones, Constant or a custom initializer for it"
        )


def _needs_ndim(init: Initializer, shape: Sequence[int | None], name: str, allowed: Sequence[int], what: str) -> None:
    if len(shape) not in allowed:
        shown = "(" + ", ".join("?" if d is None else str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"
        raise InitializerError(
            f"{type(init).__name__} needs {what}, but parameter {name!r} has shape {shown}"
        )


def _constant(shape: Shape, info: ParamInfo, value: float, out: np.ndarray | None) -> np.ndarray:
    if out is not None:
        out[...] = value
        return out
    return np.full(tuple(shape), value, dtype=info.dtype)


class Zeros(Initializer):
    """All zeros."""

    builtin = True

    def streams_into(self) -> bool:
        return True

    def __call__(self, shape: Shape, rng: np.random.Generator) -> np.ndarray:
        return np.zeros(tuple(shape))

    def fill(self, shape: Shape, info: ParamInfo, seed: int, out: np.ndarray | None = None) -> np.ndarray:
        return _constant(shape, info, 0, out)


class Ones(Initializer):
    """All ones."""

    builtin = True

    def streams_into(self) -> bool:
        return True

    def __call__(self, shape: Shape, rng: np.random.Generator) -> np.ndarray:
        return np.ones(tuple(shape))

    def fill(self, shape: Shape, info: ParamInfo, seed: int, out: np.ndarray | None = None) -> np.ndarray:
        return _constant(shape, info, 1, out)


class Constant(Initializer):
    """Every element ``value``."""

    builtin = True

    def streams_into(self) -> bool:
        return True

    def __init__(self, value: float):
        self.value = _number("value", value)

    def check(self, shape: Sequence[int | None], dtype: np.dtype, name: str) -> None:
        if np.dtype(dtype).kind in "iu" and not self.value.is_integer():
            raise InitializerError(
                f"Constant({self.value!r}) cannot be stored exactly in parameter {name!r} of dtype "
                f"{np.dtype(dtype)}; give an integer value"
            )

    def __call__(self, shape: Shape, rng: np.random.Generator) -> np.ndarray:
        return np.full(tuple(shape), self.value)

    def fill(self, shape: Shape, info: ParamInfo, seed: int, out: np.ndarray | None = None) -> np.ndarray:
        return _constant(shape, info, self.value, out)


class Uniform(Initializer):
    """U(low, high); PyTorch's ``uniform_`` defaults (0, 1)."""

    builtin = True

    def streams_into(self) -> bool:
        return True

    def __init__(self, low: float = 0.0, high: float = 1.0):
        self.low, self.high = _number("low", low), _number("high", high)
        if not self.low < self.high:
            raise InitializerError(f"Uniform needs low < high; received low={low!r}, high={high!r}")

    def check(self, shape: Sequence[int | None], dtype: np.dtype, name: str) -> None:
        _needs_real(self, dtype, name)

    def __call__(self, shape: Shape, rng: np.random.Generator) -> np.ndarray:
        return rng.uniform(self.low, self.high, size=tuple(shape))

    def fill(self, shape: Shape, info: ParamInfo, seed: int, out: np.ndarray | None = None) -> np.ndarray:
        return streams.uniform(shape, info.stream, seed, self.low, self.high, info.dtype, out)


class Normal(Initializer):
    """N(mean, std**2); PyTorch's ``normal_`` defaults (0, 1)."""

    builtin = True

    def streams_into(self) -> bool:
        return True

    def __init__(self, mean: float = 0.0, std: float = 1.0):
        self.mean, self.std = _number("mean", mean), _number("std", std, positive=True)

    def check(self, shape: Sequence[int | None], dtype: np.dtype, name: str) -> None:
        _needs_real(self, dtype, name)

    def __call__(self, shape: Shape, rng: np.random.Generator) -> np.ndarray:
        return rng.normal(self.mean, self.std, size=tuple(shape))

    def fill(self, shape: Shape, info: ParamInfo, seed: int, out: np.ndarray | None = None) -> np.ndarray:
        return streams.normal(shape, info.stream, seed, self.mean, self.std, info.dtype, out)


class TruncatedNormal(Initializer):
    """N(mean, std**2) restricted to ``[a, b]``: absolute bounds, as ``torch.nn.init.trunc_normal_``
    (Keras's ``TruncatedNormal`` is ``a = mean - 2 std, b = mean + 2 std``)."""

    builtin = True

    def __init__(self, mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0):
        self.mean, self.std = _number("mean", mean), _number("std", std, positive=True)
        self.a, self.b = _number("a", a), _number("b", b)
        if not self.a < self.b:
            raise InitializerError(f"TruncatedNormal needs a < b; received a={a!r}, b={b!r}")

    def check(self, shape: Sequence[int | None], dtype: np.dtype, name: str) -> None:
        _needs_real(self, dtype, name)

    def __call__(self, shape: Shape, rng: np.random.Generator) -> np.ndarray:
        seed = int(rng.integers(2**63))
        return streams.truncated_normal(shape, "", seed, self.mean, self.std, self.a, self.b, np.dtype(np.float64))

    def fill(self, shape: Shape, info: ParamInfo, seed: int, out: np.ndarray | None = None) -> np.ndarray:
        return streams.truncated_normal(shape, info.stream, seed, self.mean, self.std, self.a, self.b, info.dtype, out)


class _Scaled(Initializer):
    """A uniform or normal initializer whose scale follows from the shape."""

    builtin = True

    distribution = "uniform"  # or "normal" / "truncated_normal"

    def streams_into(self) -> bool:
        return self.distribution in ("uniform", "normal")

    def scale(self, shape: Shape, name: str = "") -> float:
        raise NotImplementedError  # abstract: each subclass defines its scale

    def bound(self, shape: Shape) -> float:
        """The uniform bound (or the normal std) for ``shape``."""
        return self.scale(shape)

    def check(self, shape: Sequence[int | None], dtype: np.dtype, name: str) -> None:
        _needs_real(self, dtype, name)
        if len(shape) < 2:
            compute_fans(tuple(d or 0 for d in shape), name)  # raises: fans need two dimensions

    def __call__(self, shape: Shape, rng: np.random.Generator) -> np.ndarray:
        s = self.scale(shape)
        if self.distribution == "uniform":
            return rng.uniform(-s, s, size=tuple(shape))
        if self.distribution == "truncated_normal":
            seed = int(rng.integers(2**63))
            return streams.truncated_normal(shape, "", seed, 0.0, s, -2 * s, 2 * s, np.dtype(np.float64))
        return rng.normal(0.0, s, size=tuple(shape))

    def fill(self, shape: Shape, info: ParamInfo, seed: int, out: np.ndarray | None = None) -> np.ndarray:
        if math.prod(shape) == 0:  # nothing to fill (and zero fans): a no-op, as in PyTorch
            return out if out is not None else np.empty(tuple(shape), dtype=info.dtype)
        s = self.scale(shape, info.name)
        if self.distribution == "uniform":
            return streams.uniform(shape, info.stream, seed, -s, s, info.dtype, out)
        if self.distribution == "truncated_normal":
            return streams.truncated_normal(shape, info.stream, seed, 0.0, s, -2 * s, 2 * s, info.dtype, out)
        return streams.normal(shape, info.stream, seed, 0.0, s, info.dtype, out)


class XavierUniform(_Scaled):
    """U(-b, b), ``b = gain * sqrt(6 / (fan_in + fan_out))`` (Glorot & Bengio)."""

    def __init__(self, gain: float = 1.0):
        self.gain = _number("gain", gain, positive=True)

    def scale(self, shape: Shape, name: str = "") -> float:
        fan_in, fan_out = compute_fans(shape, name)
        return self.gain * math.sqrt(6.0 / (fan_in + fan_out))


class XavierNormal(_Scaled):
    """N(0, s**2), ``s = gain * sqrt(2 / (fan_in + fan_out))``, not truncated."""

    distribution = "normal"

    def __init__(self, gain: float = 1.0):
        self.gain = _number("gain", gain, positive=True)

    def scale(self, shape: Shape, name: str = "") -> float:
        fan_in, fan_out = compute_fans(shape, name)
        return self.gain * math.sqrt(2.0 / (fan_in + fan_out))


def _check_mode(mode: str) -> str:
    if mode not in ("fan_in", "fan_out"):
        raise InitializerError(f"mode must be 'fan_in' or 'fan_out'; received mode={mode!r}")
    return mode


class KaimingUniform(_Scaled):
    """U(-b, b), ``b = gain * sqrt(3 / fan)``, gain from the nonlinearity (He et al.)."""

    def __init__(self, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu"):
        self.a, self.mode, self.nonlinearity = _number("a", a), _check_mode(mode), nonlinearity
        self.gain = calculate_gain(nonlinearity, self.a)

    def scale(self, shape: Shape, name: str = "") -> float:
        return self.gain * math.sqrt(3.0 / fan_for(self.mode, shape, name))


class KaimingNormal(_Scaled):
    """N(0, s**2), ``s = gain / sqrt(fan)``, not truncated."""

    distribution = "normal"

    def __init__(self, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu"):
        self.a, self.mode, self.nonlinearity = _number("a", a), _check_mode(mode), nonlinearity
        self.gain = calculate_gain(nonlinearity, self.a)

    def scale(self, shape: Shape, name: str = "") -> float:
        return self.gain / math.sqrt(fan_for(self.mode, shape, name))


class VarianceScaling(_Scaled):
    """Keras's ``VarianceScaling``: variance ``scale / fan``; ``truncated_normal`` cuts at 2 std and
    corrects the std by 0.8796 so the variance stays ``scale / fan``."""

    def __init__(self, scale: float = 1.0, mode: str = "fan_in", distribution: str = "truncated_normal"):
        self.variance = _number("scale", scale, positive=True)
        if mode not in ("fan_in", "fan_out", "fan_avg"):
            raise InitializerError(f"mode must be 'fan_in', 'fan_out' or 'fan_avg'; received mode={mode!r}")
        if distribution not in ("truncated_normal", "untruncated_normal", "uniform"):
            raise InitializerError(
                "distribution must be 'truncated_normal', 'untruncated_normal' or 'uniform'; "
                f"received distribution={distribution!r}"
            )
        self.mode = mode
        self.distribution = {"untruncated_normal": "normal"}.get(distribution, distribution)

    def get_config(self) -> dict[str, Any]:
        distribution = {"normal": "untruncated_normal"}.get(self.distribution, self.distribution)
        return {"scale": self.variance, "mode": self.mode, "distribution": distribution}

    def scale(self, shape: Shape, name: str = "") -> float:
        variance = self.variance / fan_for(self.mode, shape, name)
        if self.distribution == "uniform":
            return math.sqrt(3.0 * variance)
        if self.distribution == "truncated_normal":
            return math.sqrt(variance) / 0.87962566103423978
        return math.sqrt(variance)


class MXNetXavier(_Scaled):
    """MXNet's ``Xavier(rnd_type, factor_type, magnitude)``: scale ``sqrt(magnitude / factor)``."""

    def __init__(self, rnd_type: str = "uniform", factor_type: str = "avg", magnitude: float = 3.0):
        if rnd_type not in ("uniform", "gaussian"):
            raise InitializerError(f"rnd_type must be 'uniform' or 'gaussian'; received rnd_type={rnd_type!r}")
        if factor_type not in ("avg", "in", "out"):
            raise InitializerError(f"factor_type must be 'avg', 'in' or 'out'; received factor_type={factor_type!r}")
        self.rnd_type, self.factor_type = rnd_type, factor_type
        self.magnitude = _number("magnitude", magnitude, positive=True)
        self.distribution = "uniform" if rnd_type == "uniform" else "normal"

    def scale(self, shape: Shape, name: str = "") -> float:
        fan_in, fan_out = compute_fans(shape, name)
        factor = {"avg": (fan_in + fan_out) / 2.0, "in": fan_in, "out": fan_out}[self.factor_type]
        return math.sqrt(self.magnitude / factor)


class Orthogonal(Initializer):
    """A (semi-)orthogonal matrix times ``gain``, as ``torch.nn.init.orthogonal_`` (QR of a normal
    matrix with the sign of R's diagonal folded in), trailing dimensions flattened."""

    builtin = True

    def __init__(self, gain: float = 1.0):
        self.gain = _number("gain", gain, positive=True)

    def check(self, shape: Sequence[int | None], dtype: np.dtype, name: str) -> None:
        _needs_real(self, dtype, name)
        _needs_ndim(self, shape, name, range(2, 33), "at least 2 dimensions")

    def __call__(self, shape: Shape, rng: np.random.Generator) -> np.ndarray:
        if len(shape) < 2:
            raise InitializerError(f"Orthogonal needs at least 2 dimensions; received shape {tuple(shape)}")
        rows = int(shape[0])
        cols = math.prod(shape) // rows if rows else 0
        flat = rng.standard_normal((rows, cols))
        if rows < cols:
            flat = flat.T
        q, r = np.linalg.qr(flat)
        q *= np.sign(np.diag(r))
        if rows < cols:
            q = q.T
        return (self.gain * q).reshape(tuple(shape))


class Eye(Initializer):
    """The identity matrix (2-D parameters only), as ``torch.nn.init.eye_``."""

    builtin = True

    def check(self, shape: Sequence[int | None], dtype: np.dtype, name: str) -> None:
        _needs_ndim(self, shape, name, (2,), "a 2-D parameter")

    def __call__(self, shape: Shape, rng: np.random.Generator) -> np.ndarray:
        if len(shape) != 2:
            raise InitializerError(f"Eye needs a 2-D parameter; received shape {tuple(shape)}")
        return np.eye(int(shape[0]), int(shape[1]))


class Dirac(Initializer):
    """Convolution weights that pass their input through, as ``torch.nn.init.dirac_``."""

    builtin = True

    def __init__(self, groups: int = 1):
        if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
            raise InitializerError(f"groups must be an int >= 1; received groups={groups!r}")
        self.groups = groups

    def check(self, shape: Sequence[int | None], dtype: np.dtype, name: str) -> None:
        _needs_ndim(self, shape, name, (3, 4, 5), "a 3-, 4- or 5-D convolution weight")
        if shape[0] is not None and shape[0] % self.groups:
            raise InitializerError(
                f"Dirac(groups={self.groups}) needs out channels divisible by groups, but parameter "
                f"{name!r} has {shape[0]}"
            )

    def __call__(self, shape: Shape, rng: np.random.Generator) -> np.ndarray:
        if len(shape) not in (3, 4, 5) or shape[0] % self.groups:
            raise InitializerError(
                f"Dirac needs a 3-, 4- or 5-D convolution weight whose out channels divide by groups="
                f"{self.groups}; received shape {tuple(shape)}"
            )
        out = np.zeros(tuple(shape))
        per_group = shape[0] // self.groups
        centre = tuple(k // 2 for k in shape[2:])
        for g in range(self.groups):
            for d in range(min(per_group, shape[1])):
                out[(g * per_group + d, d, *centre)] = 1.0
        return out


class Sparse(Initializer):
    """A 2-D weight whose columns each hold ``ceil(sparsity * rows)`` zeros at random rows, the rest
    N(0, std**2), as ``torch.nn.init.sparse_`` (Martens 2010)."""

    builtin = True

    def __init__(self, sparsity: float, std: float = 0.01):
        self.sparsity = _number("sparsity", sparsity)
        if not 0.0 <= self.sparsity <= 1.0:
            raise InitializerError(f"sparsity must be in [0, 1]. Received: sparsity={sparsity!r}")
        self.std = _number("std", std, positive=True)

    def check(self, shape: Sequence[int | None], dtype: np.dtype, name: str) -> None:
        _needs_real(self, dtype, name)
        _needs_ndim(self, shape, name, (2,), "a 2-D parameter")

    def __call__(self, shape: Shape, rng: np.random.Generator) -> np.ndarray:
        rows, cols = (int(d) for d in shape)
        values = rng.normal(0.0, self.std, size=(rows, cols))
        zeros = math.ceil(self.sparsity * rows)
        if zeros:
            where = np.argsort(rng.random((rows, cols)), axis=0)[:zeros]  # a random permutation per column
            values[where, np.arange(cols)] = 0.0
        return values


class Bilinear(Initializer):
    """Bilinear-interpolation kernels for upsampling with a transposed convolution, as MXNet's
    ``Bilinear`` (4-D weights; every (in, out) pair gets the same ``kH x kW`` filter)."""

    builtin = True

    def check(self, shape: Sequence[int | None], dtype: np.dtype, name: str) -> None:
        _needs_real(self, dtype, name)
        _needs_ndim(self, shape, name, (4,), "a 4-D convolution weight")

    def __call__(self, shape: Shape, rng: np.random.Generator) -> np.ndarray:
        height, width = int(shape[2]), int(shape[3])
        f = math.ceil(width / 2.0)
        c = (2 * f - 1 - f % 2) / (2.0 * f)
        x = 1 - np.abs(np.arange(width) / f - c)
        y = 1 - np.abs(np.arange(height) / f - c)
        return np.broadcast_to(np.outer(y, x), tuple(shape)).copy()


class LSTMBias(Initializer):
    """Zeros, except ``forget_bias`` for the forget gate: the second quarter of a 1-D LSTM bias in
    the canonical gate order (i, f, g, o). MXNet's ``LSTMBias``; Keras's ``unit_forget_bias=True``.
    PyTorch adds two biases: give it one of them (``select="*.bias_ih_*"``), zeros to the other."""

    builtin = True

    def __init__(self, forget_bias: float = 1.0):
        self.forget_bias = _number("forget_bias", forget_bias)

    def check(self, shape: Sequence[int | None], dtype: np.dtype, name: str) -> None:
        _needs_real(self, dtype, name)
        _needs_ndim(self, shape, name, (1,), "a 1-D LSTM bias")
        if shape[0] is not None and shape[0] % 4:
            raise InitializerError(f"LSTMBias needs a bias of 4 gates, but parameter {name!r} has {shape[0]} values")

    def __call__(self, shape: Shape, rng: np.random.Generator) -> np.ndarray:
        hidden = int(shape[0]) // 4
        out = np.zeros(tuple(shape))
        out[hidden : 2 * hidden] = self.forget_bias
        return out
