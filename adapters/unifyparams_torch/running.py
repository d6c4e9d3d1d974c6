"""Running a model for unifyparams: inference mode that restores itself, and naming a failing block.

>>> import torch
>>> net = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Dropout())
>>> with inference(net):
...     y = net(torch.zeros(1, 2))
>>> net.training, net[1].training                  # each module's own flag comes back
(True, True)
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from .structure import module_paths, unwrap


@contextmanager
def inference(model: nn.Module) -> Iterator[None]:
    """Eval mode and ``torch.no_grad()`` for the block; every module's training flag is restored."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for module, training in modes:
            module.training = training


def primary_output(output: Any) -> Any:
    """The tensor a loss applies to: the first element of a tuple (RNNs return ``(out, h)``) or mapping."""
    while isinstance(output, (tuple, list)) and output:
        output = output[0]
    if isinstance(output, Mapping) and output:
        return primary_output(next(iter(output.values())))
    return output


class BlockTracker:
    """Forward pre-hooks that record which module is running, to name the one a forward fails in.

    A module's hook is put *first* (before a lazy module's own shape-inference hook), so a failure
    while inferring shapes is blamed on that module. The post-hook does not run when the forward
    raises, so after an exception :meth:`failed` is the innermost module that was running.
    """

    def __init__(self, root: nn.Module):
        self._names = module_paths(root)
        self._stack: list[nn.Module] = []
        self._handles: list[Any] = []
        inner, _ = unwrap(root)
        for module in {id(m): m for m in inner.modules()}.values():
            self._handles.append(module.register_forward_pre_hook(self._enter, prepend=True))
            self._handles.append(module.register_forward_hook(self._leave))

    def _enter(self, module: nn.Module, args: Any) -> None:
        self._stack.append(module)

    def _leave(self, module: nn.Module, args: Any, output: Any) -> None:
        if self._stack and self._stack[-1] is module:
            self._stack.pop()

    def failed(self) -> str | None:
        """``"'0.2' (Linear)"`` for the innermost module still running, or ``None``."""
        if not self._stack:
            return None
        module = self._stack[-1]
        names = [n for n in self._names.get(id(module), []) if n] or ["<root>"]
        shown = " / ".join(repr(n) for n in names)
        return f"block {shown} ({type(module).__name__})"

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def __enter__(self) -> BlockTracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()
