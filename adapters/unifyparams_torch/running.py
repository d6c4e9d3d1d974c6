"""Running a model for unifyparams: inference mode that restores itself, and naming a failing block.

>>> import torch
>>> net = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Dropout())
>>> with inference(net):
...     y = net(torch.zeros(1, 2))
>>> net.training, net[1].training                  # each module's own flag comes back
(True, True)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from unifyparams import common
from unifyparams.common import primary_output

from .structure import module_paths, unwrap

__all__ = ["BlockTracker", "inference", "primary_output"]


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


class BlockTracker(common.BlockTracker):
    """Forward pre-hooks that record which module is running, to name the one a forward fails in.

    A module's hook is put *first* (before a lazy module's own shape-inference hook), so a failure
    while inferring shapes is blamed on that module. The post-hook does not run when the forward
    raises, so after an exception :meth:`failed` is the innermost module that was running.
    """

    def __init__(self, root: nn.Module):
        super().__init__(module_paths(root))
        inner, _ = unwrap(root)
        for module in {id(m): m for m in inner.modules()}.values():
            self.handles.append(module.register_forward_pre_hook(self.enter, prepend=True))
            self.handles.append(module.register_forward_hook(self.leave))

    def remove(self) -> None:
        """Remove the hooks (the name the torch adapter used before :meth:`close`)."""
        self.close()
