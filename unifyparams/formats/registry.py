"""File formats: safetensors is the core's own; every framework format is declared by its adapter.

The core imports no framework and names none of their formats. An adapter class lists the formats
it handles in ``native_files`` as plain strings, so that finding a format never imports a
framework (and the reader is imported only when a file of that format is used)::

    native_files = {"torch": {
        "description": "PyTorch state dict (.pt/.pth/.bin/.ckpt), read with torch.load(weights_only=True)",
        "suffixes": ".pt .pth .bin .ckpt",           # lower-case, space-separated
        "magic": "504b0304 80",                      # hex prefixes of the first bytes, space-separated
        "read": "unifyparams_torch.native_files:read_torch",
        "write": "unifyparams_torch.native_files:write_state_dict",   # optional
        "not_loadable": "",                          # optional: why up.load() refuses it, and what to do
    }}

>>> fmt = FileFormat.declared("demo", {"suffixes": ".demo .dm", "magic": "cafe", "read": "m:f"}, "mine")
>>> fmt.suffixes, fmt.magic, fmt.matches_head(b"\\xca\\xfe..."), fmt.adapter
(('.demo', '.dm'), (b'\\xca\\xfe',), True, 'mine')
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import CheckpointError
from ..registry import available_adapters

#: The format the core reads and writes itself (ours, or any tool's safetensors).
SAFETENSORS = "safetensors"


@dataclass(frozen=True)
class FileFormat:
    """One file format: how to recognise it and where its reader (and writer) live."""

    name: str
    description: str = ""
    suffixes: tuple[str, ...] = ()
    magic: tuple[bytes, ...] = ()
    read: str = ""
    write: str = ""
    not_loadable: str = ""
    adapter: str = ""

    @classmethod
    def declared(cls, name: str, spec: Mapping[str, str], adapter: str) -> FileFormat:
        """The format an adapter declares in ``native_files[name]`` (see the module docstring)."""
        try:
            magic = tuple(bytes.fromhex(h) for h in spec.get("magic", "").split())
        except ValueError:
            raise CheckpointError(
                f"the {adapter!r} adapter declares format {name!r} with magic {spec.get('magic')!r}; "
                f"expected space-separated hex prefixes such as '504b0304 80'. Fix the adapter's native_files."
            ) from None
        return cls(
            name=name,
            description=spec.get("description", ""),
            suffixes=tuple(s.lower() for s in spec.get("suffixes", "").split()),
            magic=magic,
            read=spec.get("read", ""),
            write=spec.get("write", ""),
            not_loadable=spec.get("not_loadable", ""),
            adapter=adapter,
        )

    def matches_head(self, head: bytes) -> bool:
        """True when a file's first bytes start with one of this format's magic prefixes."""
        return any(head.startswith(m) for m in self.magic)


_SAFETENSORS = FileFormat(
    SAFETENSORS, "safetensors file, index or folder (ours, or any tool's)", (".safetensors", ".json")
)


def file_formats() -> dict[str, FileFormat]:
    """Every known format by name: safetensors, then those of the registered adapters (by name).

    Only adapter classes are loaded (cheap: adapter packages import no framework).
    """
    found = {SAFETENSORS: _SAFETENSORS}
    for adapter, cls in sorted(available_adapters().items()):
        for name, spec in dict(getattr(cls, "native_files", {}) or {}).items():
            found.setdefault(name, FileFormat.declared(name, spec, adapter))
    return found


def format_function(kind: str, action: str) -> Callable[..., Any]:
    """The function an adapter registered for ``action`` (``"read"``/``"write"``) on format ``kind``."""
    fmt = file_formats().get(kind)
    target = getattr(fmt, action, "") if fmt is not None and action in ("read", "write") else ""
    if not target:
        raise CheckpointError(
            f"no installed adapter can {action} {kind!r} files; install the adapter for that framework "
            f"(pip install 'unifyparams[{kind}]')"
        )
    module_name, _, attr = target.partition(":")
    function: Callable[..., Any] = getattr(importlib.import_module(module_name), attr)
    return function


#: The older name of :func:`format_function`.
native_function = format_function
