"""Framework file formats are read and written by the adapters, found by format name.

The core imports no framework: an adapter class lists the formats it handles and where its
functions live (``native_files = {"torch": {"read": "unifyparams_torch.native_files:read_torch"}}``),
and the function is imported only when a file of that format is used.

>>> native_function("torch", "read")          # doctest: +SKIP
<function read_torch ...>
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from ..errors import CheckpointError
from ..registry import available_adapters


def native_function(kind: str, action: str) -> Callable[..., Any]:
    """The function an adapter registered for ``action`` (``"read"``/``"write"``) on format ``kind``."""
    for _name, cls in sorted(available_adapters().items()):
        target = dict(getattr(cls, "native_files", {}) or {}).get(kind, {}).get(action)
        if target:
            module_name, _, attr = target.partition(":")
            function: Callable[..., Any] = getattr(importlib.import_module(module_name), attr)
            return function
    raise CheckpointError(
        f"no installed adapter can {action} {kind!r} files; install the adapter for that framework "
        f"(pip install 'unifyparams[{kind}]')"
    )
