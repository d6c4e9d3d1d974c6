"""Running a Gluon model for unifyparams: NumPy mode, inputs, outputs, naming a failing block.

Gluon's NumPy mode (``npx.set_np()``) is global state, but a model keeps the array kind it was
initialized in: a model built in NumPy mode only runs while NumPy mode is on, and the other way
round. :func:`model_mode` turns on the mode the model's own arrays were made in for the duration
of a call and restores the caller's mode afterwards.

>>> with model_mode(net):                                   # doctest: +SKIP
...     out = net(*as_inputs(net, (np.zeros((2, 20), np.float32),)))
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from unifyparams import common
from unifyparams.common import input_dtype, primary_output

from . import structure

__all__ = ["BlockTracker", "as_inputs", "model_mode", "numpy_mode", "parameters", "primary_output", "short_error"]


def parameters(model: Any) -> list[Any]:
    """Every Parameter under ``model``, each once, in walk order."""
    unique: dict[int, Any] = {}
    for block in structure.blocks(model):
        for param in block._reg_params.values():
            unique.setdefault(id(param), param)
    return list(unique.values())


def is_numpy_mode_model(model: Any) -> bool | None:
    """True if ``model``'s arrays are ``mxnet.numpy`` arrays (built in NumPy mode), False if they
    are legacy NDArrays, None while no Parameter holds data yet."""
    import mxnet as mx

    for param in parameters(model):
        if param._data is not None:
            return isinstance(param._data[0], mx.np.ndarray)
    return None


@contextlib.contextmanager
def numpy_mode(active: bool) -> Iterator[None]:
    """Gluon's NumPy shape and array semantics on (or off) inside the block, restored afterwards."""
    from mxnet import util

    if util.is_np_array() == active and util.is_np_shape() == active:
        yield
        return
    # Shape semantics outside array semantics: MXNet refuses to leave shape mode while array mode is on.
    with util.np_shape(active), util.np_array(active):
        yield


def model_mode(model: Any) -> contextlib.AbstractContextManager[None]:
    """The mode ``model`` was built in (see the module docstring); the caller's mode for a model
    whose arrays do not exist yet."""
    mode = is_numpy_mode_model(model)
    return numpy_mode(mode) if mode is not None else contextlib.nullcontext()


def model_context(model: Any) -> Any:
    """The context of the model's first initialized Parameter (inputs must live there)."""
    import mxnet as mx

    for param in parameters(model):
        if param._data is not None:
            return param.list_ctx()[0]
        if param._deferred_init:
            return param._deferred_init[1][0]
    return mx.context.current_context()


def float_dtype(model: Any) -> np.dtype:
    """The dtype of the model's first floating-point Parameter (float32 if none)."""
    for param in parameters(model):
        dtype = np.dtype(param.dtype)
        if dtype.kind == "f":
            return dtype
    return np.dtype(np.float32)


def as_inputs(model: Any, inputs: Sequence[Any]) -> list[Any]:
    """NumPy inputs as MXNet arrays of the current mode's kind, on the model's context.

    Integer arrays keep their dtype (embedding indices stay exact); floating-point arrays take the
    model's dtype, as ``mx.nd.array`` turns float64 data into float32 by default.
    """
    import mxnet as mx

    numpy_kind = mx.util.is_np_array()
    make = mx.np.array if numpy_kind else mx.nd.array
    ctx = model_context(model)
    args = []
    for x in inputs:
        if isinstance(x, mx.nd.NDArray):  # already MXNet: only the array kind may need changing
            args.append(x.as_np_ndarray() if numpy_kind else x.as_nd_ndarray())
            continue
        array = np.asarray(x)
        args.append(make(array, dtype=input_dtype(array.dtype, float_dtype(model)), ctx=ctx))
    return args


def short_error(exc: BaseException, limit: int = 400) -> str:
    """An MXNet error's first meaningful lines, without the C++ stack trace."""
    text = str(exc)
    lines = []
    for line in text.splitlines():
        if line.strip().startswith(("Stack trace", "[bt]")):
            break
        if line.strip():
            lines.append(line.strip())
    short = " ".join(lines) or type(exc).__name__
    return short if len(short) <= limit else short[: limit - 3] + "..."


class BlockTracker(common.BlockTracker):
    """Forward hooks that record which block is running, to name the one a forward fails in.

    After an exception :meth:`failed` is the innermost block still running (hooks of a failing
    forward never see its end). Hybridized blocks run their children symbolically while building
    their graph; a failure after that (shape inference of the whole graph) names the hybridized block,
    or the child whose prefix the operator MXNet names carries.
    """

    def __init__(self, root: Any):
        super().__init__()
        self._record_names(root, "")
        self._blocks = list(structure.blocks(root))
        for block in self._blocks:
            self.handles.append(block.register_forward_pre_hook(self.enter))
            self.handles.append(block.register_forward_hook(self.leave))

    def _record_names(self, block: Any, path: str, depth: int = 0) -> None:
        self.names.setdefault(id(block), []).append(path)
        if depth < 64:
            for name, sub in structure.children(block):
                self._record_names(sub, f"{path}.{name}" if path else name, depth + 1)

    def culprit(self, exc: BaseException | None) -> Any:
        """The innermost running block; for a hybridized one, the child named by the failing operator."""
        block = super().culprit(exc)
        if exc is not None and (block is None or getattr(block, "_active", False)):
            block = self._by_operator(str(exc)) or block
        return block

    def detail(self, exc: BaseException) -> str:
        return short_error(exc)

    def detach(self, handle: Any) -> None:
        handle.detach()

    def _by_operator(self, message: str) -> Any:
        match = re.search(r"operator ([\w.]+)", message)
        if match is None:
            return None
        operator, best = match.group(1), None
        for block in self._blocks:
            prefix = block.prefix
            if prefix and operator.startswith(prefix) and (best is None or len(prefix) > len(best.prefix)):
                best = block
        return best
