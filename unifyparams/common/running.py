"""Running a model: the output a loss applies to, the loss check, input dtypes, hooks after a call.

>>> primary_output({"logits": ([3.0], "h")})
3.0
>>> input_dtype(np.dtype("float64"), np.dtype("float32")), input_dtype(np.dtype("int64"), np.dtype("float32"))
(dtype('float32'), dtype('int64'))
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ..errors import UnifyParamsError


def primary_output(output: Any) -> Any:
    """The value a loss applies to: the first element of a tuple or list (RNNs return
    ``(output, state)``), or the first value of a mapping, recursively."""
    while isinstance(output, (tuple, list)) and output:
        output = output[0]
    if isinstance(output, Mapping) and output:
        return primary_output(next(iter(output.values())))
    return output


def check_loss(value: Any, tensor_type: type | tuple[type, ...], framework: str) -> None:
    """Raise unless ``value`` (what the loss returned) is a one-element tensor of the framework.

    >>> check_loss(np.float32(1.0), np.generic, "NumPy")
    >>> check_loss(np.zeros(3), np.ndarray, "NumPy")
    Traceback (most recent call last):
    unifyparams.errors.UnifyParamsError: the loss must return a one-element NumPy tensor; received (3,). ...
    """
    if isinstance(value, tensor_type) and int(np.prod(getattr(value, "shape", ()))) == 1:
        return
    got = tuple(getattr(value, "shape", ())) if isinstance(value, tensor_type) else type(value).__name__
    raise UnifyParamsError(
        f"the loss must return a one-element {framework} tensor; received {got}. "
        f"Reduce it, e.g. loss=lambda out: ((out - target) ** 2).mean()."
    )


def input_dtype(given: np.dtype, model_float: np.dtype) -> np.dtype:
    """The dtype a NumPy input takes: floating inputs take the model's floating dtype (float64 data
    runs through a float32 model); integer and boolean inputs keep theirs (token ids stay exact)."""
    return np.dtype(model_float) if np.dtype(given).kind == "f" else np.dtype(given)


def calling_after(
    original: Callable[..., Any], callback: Callable[[], None], restore: Callable[[], None]
) -> Callable[..., Any]:
    """``original`` (a bound method the framework calls once shapes are known), then ``restore()``
    (put the method back) and ``callback()``. ``functools.wraps`` keeps the signature, which some
    frameworks inspect (Keras maps input shapes to ``build``'s arguments).

    >>> seen = []
    >>> f = calling_after(lambda: seen.append("built"), lambda: seen.append("callback"), lambda: None)
    >>> f(); seen
    ['built', 'callback']
    """

    @functools.wraps(original)
    def call(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        restore()
        callback()
        return result

    return call
