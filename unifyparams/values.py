"""The rules a value must follow to be written into a parameter: one place for every writer.

``Param.prepare`` (``p.set``, ``p.update``, ``p[i] = v``), ``ParamSet.load`` (and through it
``up.load`` and ``up.port``) and initialization all check values here, so they accept and refuse
the same things:

- **Arrays only, with a real shape.** Anything NumPy can turn into a numeric array is accepted
  (lists, scalars, framework tensors with ``__array__``); a ragged nested list, ``None``, strings
  or objects are refused with a :class:`~unifyparams.errors.ShapeMismatchError` or
  :class:`~unifyparams.errors.DtypeMismatchError`, never a raw ``ValueError``.
- **No broadcasting.** The value's shape must equal the parameter's canonical shape (dimensions
  not known yet match anything): a 0-d value or Python float is refused for a ``(4, 3)``
  parameter; write ``np.full(shape, value)`` to mean it.
- **Dtypes by value where it matters.** A cast NumPy calls safe always happens. An integer (or
  bool) value into a narrower integer (or bool) dtype is accepted only when every value fits
  (``int64`` 300 into ``int8`` is refused instead of becoming 44); ``cast=True`` accepts it
  anyway, with NumPy's wrap-around. Float -> narrower float (``float64`` -> ``float32``) and
  integer -> float round as usual, but finite values that would overflow to infinity are refused
  unless ``cast=True``. Float or complex -> integer or bool, and complex -> real, need
  ``cast=True``; even then NaN, infinity and values outside the integer range are refused
  (NumPy's result for them is undefined).
- **Any strides.** Negative-stride, zero-stride (``np.broadcast_to``) and unaligned arrays are
  copied to a plain C-contiguous array, so adapters receive only positive strides.

>>> conform(np.arange(12).reshape(3, 4)[::-1], name="w", shape=(3, 4), dtype=np.dtype("int8")).strides
(4, 1)
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .errors import DtypeMismatchError, ShapeMismatchError

Shape = Sequence[int | None]

#: dtype kinds that hold numbers (bool, signed, unsigned, float, complex).
_NUMERIC = "biufc"


def show_shape(shape: Shape) -> str:
    """``(256, None)`` -> ``"(256, ?)"`` (the format every error message uses)."""
    inner = ", ".join("?" if d is None else str(d) for d in shape)
    return f"({inner},)" if len(shape) == 1 else f"({inner})"


# --- dtypes -----------------------------------------------------------------------------------------
def _ml_finfo(dtype: np.dtype) -> Any:
    """``ml_dtypes.finfo`` for bfloat16/float8 dtypes (NumPy reports them as kind ``'V'``), else None.

    ``ml_dtypes`` is imported only when one of its dtypes is in use, so it is already loaded."""
    if dtype.kind != "V" or not str(getattr(dtype.type, "__module__", "")).startswith("ml_dtypes"):
        return None
    try:
        import ml_dtypes

        return ml_dtypes.finfo(dtype)
    except (ImportError, ValueError, TypeError):
        return None


def _kind(dtype: np.dtype) -> str:
    """NumPy's kind letter, with ``ml_dtypes`` floats reported as ``'f'``."""
    return "f" if _ml_finfo(dtype) is not None else dtype.kind


def _float_max(dtype: np.dtype) -> float:
    info = _ml_finfo(dtype)
    return float(info.max if info is not None else np.finfo(dtype).max)


def _finite_extremes(array: np.ndarray) -> tuple[float, float] | None:
    """``(min, max)`` of the finite values of a real array, or None when it has none.

    Two reductions and no temporary in the common case (no NaN or infinity)."""
    if array.size == 0:
        return None
    values = array.astype(np.float64) if array.dtype.kind == "V" else array  # ml_dtypes floats
    low, high = float(values.min()), float(values.max())
    if np.isfinite(low) and np.isfinite(high):
        return low, high
    finite = values[np.isfinite(values)]
    return (float(finite.min()), float(finite.max())) if finite.size else None


def _int_range_problem(array: np.ndarray, target: np.dtype) -> str | None:
    """Why the values of a bool/integer ``array`` do not fit ``target`` (an integer or bool dtype)."""
    if array.size == 0:
        return None
    low, high = int(array.min()), int(array.max())  # exact for every integer dtype (Python ints)
    if target.kind == "b":
        return None if low >= 0 and high <= 1 else f"values in [{low}, {high}] are not all 0 or 1"
    info = np.iinfo(target)
    if low < info.min or high > info.max:
        return f"values in [{low}, {high}] do not fit {target}'s range [{info.min}, {info.max}]"
    return None


def _float_to_int_problem(array: np.ndarray, target: np.dtype) -> str | None:
    """Why a float array cannot be cast to an integer or bool dtype even with ``cast=True``."""
    if array.size == 0 or target.kind == "b":
        return None
    values = array.astype(np.float64) if array.dtype.kind == "V" else array  # ml_dtypes floats
    low, high = float(values.min()), float(values.max())  # NaN propagates
    if not (np.isfinite(low) and np.isfinite(high)):
        return "it holds NaN or infinity, which no integer can represent"
    info = np.iinfo(target)
    if np.trunc(low) < info.min or np.trunc(high) > info.max:
        return f"values in [{low:g}, {high:g}] are outside {target}'s range [{info.min}, {info.max}]"
    return None


def dtype_problem(array: np.ndarray, target: np.dtype, *, cast: bool) -> str | None:
    """Why ``array`` cannot be written into a parameter of dtype ``target``, or None if it can.

    See the module docstring for the rules; the check reads the values only when the dtypes
    differ in a way that can lose information.
    """
    source = array.dtype
    if source == target:
        return None
    src_kind, dst_kind = _kind(source), _kind(target)
    if src_kind not in _NUMERIC:
        return f"a {source} value is not numeric"
    if dst_kind not in _NUMERIC:
        return f"the parameter's dtype {target} is not numeric"
    if dst_kind not in "biu" and np.can_cast(source, target, "safe"):
        return None
    if dst_kind in "biu" and src_kind in "biu":
        if np.can_cast(source, target, "safe"):
            return None
        problem = _int_range_problem(array, target)
        if problem is None or cast:
            return None
        return f"{problem}; pass cast=True to wrap them around as NumPy does"
    if dst_kind in "fc" and src_kind in "biuf" or (dst_kind == "c" and src_kind == "c"):
        limit = _float_max(target) if dst_kind == "f" else float(np.finfo(target).max)
        extremes = _finite_extremes(array if src_kind != "c" else np.abs(array))
        peak = 0.0 if extremes is None else max(abs(extremes[0]), abs(extremes[1]))
        if peak > limit and not cast:
            return (
                f"finite values up to {peak:g} would overflow {target} (largest {limit:g}) to infinity; "
                f"scale them, or pass cast=True to store them as infinity"
            )
        return None
    # float/complex -> integer or bool, complex -> float: lossy by kind
    if not cast:
        return f"a {source} -> {target} cast can lose information; convert it first, or pass cast=True to cast anyway"
    if dst_kind in "biu" and src_kind == "f":
        return _float_to_int_problem(array, target)
    if dst_kind in "biu" and src_kind == "c":
        return _float_to_int_problem(np.real(array), target)
    return None


# --- arrays and shapes ------------------------------------------------------------------------------
def to_array(value: Any, name: str) -> np.ndarray:
    """``value`` as a NumPy array, or a :class:`ShapeMismatchError` / :class:`DtypeMismatchError`
    that says why it is not one (a ragged list, ``None``, strings, an unconvertible object)."""
    if isinstance(value, np.ndarray):
        array = value
    else:
        try:
            array = np.asarray(value)
        except ValueError as exc:  # NumPy >= 1.24: ragged nested sequences
            raise ShapeMismatchError(
                f"parameter {name!r} received a value NumPy cannot make into one array ({exc}); a "
                f"nested list must be rectangular (every row the same length). Pass a NumPy array of "
                f"the parameter's canonical shape."
            ) from None
        except Exception as exc:  # a framework tensor that refuses __array__, an exotic object
            raise DtypeMismatchError(
                f"parameter {name!r} received a {type(value).__name__} that could not be converted to a "
                f"NumPy array ({type(exc).__name__}: {exc}). Pass a NumPy array (e.g. tensor.detach().cpu().numpy())."
            ) from None
    if _kind(array.dtype) not in _NUMERIC:
        what = (
            "values NumPy can hold only as Python objects (None, an integer beyond 64 bits, mixed types)"
            if array.dtype.kind == "O"
            else f"{array.dtype} values"
        )
        raise DtypeMismatchError(
            f"parameter {name!r} holds numbers but received {what} ({type(value).__name__}, dtype "
            f"{array.dtype}); pass a numeric NumPy array of the parameter's canonical shape."
        )
    return array


def shape_matches(expected: Shape, got: Sequence[int]) -> bool:
    """Exact agreement, dimension by dimension; ``None`` (not known yet) matches anything."""
    return len(expected) == len(got) and all(e is None or e == g for e, g in zip(expected, got))


def shape_problem(name: str, expected: Shape, got: Sequence[int]) -> str | None:
    """The message for a value of shape ``got`` given to parameter ``name``, or None if it fits."""
    if shape_matches(expected, got):
        return None
    hint = ""
    if len(got) == 0 and len(expected) > 0:
        hint = " Values are never broadcast: to fill it with one number write np.full(shape, value)."
    return (
        f"parameter {name!r} has canonical shape {show_shape(expected)} but received a value of shape "
        f"{tuple(got)}.{hint} Values are in the canonical (PyTorch) layout; see the README's layout table."
    )


def shape_problems(expected: Mapping[str, Shape], state: Mapping[str, Any]) -> list[str]:
    """One message per entry of ``state`` whose shape differs from ``expected[name]`` (names that
    ``expected`` lacks are skipped): for readers that check a whole file before loading it."""
    problems = []
    for name, value in state.items():
        if name in expected:
            problem = shape_problem(name, expected[name], np.shape(value))
            if problem is not None:
                problems.append(problem)
    return problems


def positive_strides(array: np.ndarray) -> np.ndarray:
    """``array`` itself when every stride is positive and it is aligned, else a C-contiguous copy.

    Transposed views (positive strides in another order) are kept: adapters copy those with their
    framework's own, faster ops. Negative strides (``a[::-1]``), zero strides (``np.broadcast_to``)
    and unaligned buffers are what framework converters refuse or misread.
    """
    if array.ndim == 0 or array.flags.c_contiguous and array.flags.aligned:
        return array
    if array.flags.aligned and all(s > 0 for s, n in zip(array.strides, array.shape) if n > 1):
        return array
    return np.ascontiguousarray(array)


def conform(value: Any, *, name: str, shape: Shape, dtype: np.dtype, cast: bool = False) -> np.ndarray:
    """``value`` checked against every rule for parameter ``name`` (canonical ``shape``, ``dtype``)
    and returned as an array of exactly that dtype and shape, with positive strides.

    Raises :class:`ShapeMismatchError` or :class:`DtypeMismatchError` naming the parameter, what
    it expects, what it received and how to fix it; reads the values only for value-dependent
    casts (integer narrowing, float overflow).
    """
    array = to_array(value, name)
    problem = shape_problem(name, shape, array.shape)
    if problem is not None:
        raise ShapeMismatchError(problem)
    target = np.dtype(dtype)
    why = dtype_problem(array, target, cast=cast)
    if why is not None:
        raise DtypeMismatchError(f"parameter {name!r} holds {target} but received a {array.dtype} value: {why}.")
    if array.dtype != target:
        with warnings.catch_warnings(), np.errstate(over="ignore", invalid="ignore"):
            # under cast=True the loss was asked for: complex -> real, overflow to infinity
            warnings.simplefilter("ignore", getattr(getattr(np, "exceptions", np), "ComplexWarning", Warning))
            array = array.astype(target)
    return positive_strides(array)


def assign(current: np.ndarray, index: Any, value: Any, name: str) -> None:
    """``current[index] = value`` under the same dtype rules as a whole write (NumPy would wrap
    an int64 300 into an int8 element, or raise a raw ``OverflowError``); a bad index or a value
    that does not fit the indexed part raises :class:`ShapeMismatchError` naming the parameter.
    Indexing itself follows NumPy (a scalar fills the indexed part: that is what ``p[0, :] = 1``
    asks for)."""
    array = to_array(value, name)
    why = dtype_problem(array, current.dtype, cast=False)
    if why is not None:
        raise DtypeMismatchError(f"parameter {name!r} holds {current.dtype} but received a {array.dtype} value: {why}.")
    try:
        current[index] = array
    except (IndexError, ValueError, TypeError) as exc:
        raise ShapeMismatchError(
            f"parameter {name!r} (canonical shape {show_shape(current.shape)}) cannot take a value of shape "
            f"{tuple(array.shape)} at index {index!r}: {exc}. Index in the canonical layout."
        ) from None


def state_problems(state: Any) -> list[str]:
    """Why ``state`` is not a mapping of canonical names (str) to values: one message per problem."""
    if not isinstance(state, Mapping):
        return [
            f"a state must be a mapping of canonical names to values (like ParamSet.numpy() returns); "
            f"received a {type(state).__name__}"
        ]
    bad = [key for key in state if not isinstance(key, str)]
    if not bad:
        return []
    shown = ", ".join(f"{k!r} ({type(k).__name__})" for k in bad[:5])
    more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
    return [f"keys must be canonical names (str); received {shown}{more}. Use str keys such as '0.weight'."]


__all__ = [
    "assign",
    "conform",
    "dtype_problem",
    "positive_strides",
    "shape_matches",
    "shape_problem",
    "shape_problems",
    "show_shape",
    "state_problems",
    "to_array",
]
