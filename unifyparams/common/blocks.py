"""Naming the block a forward pass failed in, and the one message for a failed ``materialize``.

A framework adapter subclasses :class:`BlockTracker` to install its forward hooks (calling
:meth:`BlockTracker.enter` and :meth:`BlockTracker.leave`); the core's
:meth:`~unifyparams.adapter.Adapter.materialize` asks it, after a failure, which block was running.

>>> tracker = BlockTracker({id(tracker_block := object()): ["encoder.0"]})
>>> tracker.enter(tracker_block); tracker.failed(RuntimeError("bad shape"))
"block 'encoder.0' (object)"
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


class BlockTracker:
    """The stack of blocks running in a forward pass; after an exception, its top is the innermost
    block still running (a failing forward never reaches its post-hook).

    ``names`` maps ``id(block)`` to the paths it is reached under. Subclasses register hooks that
    call :meth:`enter` / :meth:`leave`, keep their handles in ``self.handles``, and may override
    :meth:`culprit` (which block to blame) and :meth:`detail` (the error's text). The base class
    itself tracks nothing: its :meth:`failed` is ``None``.
    """

    def __init__(self, names: Mapping[int, Sequence[str]] | None = None) -> None:
        self.names: dict[int, list[str]] = {k: list(v) for k, v in (names or {}).items()}
        self.stack: list[Any] = []
        self.handles: list[Any] = []

    def enter(self, block: Any, *args: Any) -> None:
        """A block's forward starts (a pre-hook)."""
        self.stack.append(block)

    def leave(self, block: Any, *args: Any) -> None:
        """A block's forward ended normally (a post-hook)."""
        if self.stack and self.stack[-1] is block:
            self.stack.pop()

    def culprit(self, exc: BaseException | None) -> Any:
        """The block to blame for ``exc``: by default the innermost one still running."""
        return self.stack[-1] if self.stack else None

    def failed(self, exc: BaseException | None = None) -> str | None:
        """``"block '0.2' (Linear)"`` for the block to blame, or ``None``."""
        block = self.culprit(exc)
        if block is None:
            return None
        names = [n for n in self.names.get(id(block), []) if n] or ["<root>"]
        return f"block {' / '.join(repr(n) for n in names)} ({type(block).__name__})"

    def detail(self, exc: BaseException) -> str:
        """The error's text as the user should see it (a framework may strip its C++ stack)."""
        return str(exc)

    def detach(self, handle: Any) -> None:
        """Remove one hook; the framework's handles differ (``remove()`` by default)."""
        handle.remove()

    def close(self) -> None:
        """Remove every hook."""
        for handle in self.handles:
            self.detach(handle)
        self.handles.clear()

    def __enter__(self) -> BlockTracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def materialize_failure(
    model: Any, inputs: Sequence[Any], exc: BaseException, tracker: BlockTracker, waiting: Sequence[str]
) -> str:
    """The message for a forward pass that failed while inferring shapes: the model, the input
    shapes, the block it failed in, the blocks still waiting, the framework's reason, what to check.

    >>> materialize_failure(object(), [np.zeros((2, 7))], ValueError("7 != 20"), BlockTracker(), ["1"])
    "running object on inputs of shape [(2, 7)] to infer parameter shapes failed in model object; blocks still waiting for shapes: 1: 7 != 20. Check the input's rank and feature size against that block."
    """
    shapes = [tuple(np.shape(x)) for x in inputs]
    where = tracker.failed(exc) or f"model {type(model).__name__}"
    still = f"; blocks still waiting for shapes: {', '.join(waiting[:5])}" if waiting else ""
    return (
        f"running {type(model).__name__} on inputs of shape {shapes} to infer parameter shapes failed in "
        f"{where}{still}: {tracker.detail(exc)}. Check the input's rank and feature size against that block."
    )
