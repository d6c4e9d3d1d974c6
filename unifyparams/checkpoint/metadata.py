"""What unifyparams records in a checkpoint's ``__metadata__`` (all values are strings).

- ``unifyparams.format_version``: ``"1"``; a file from a newer major version is refused.
- ``unifyparams.backend``: the backend the model was saved from (``"torch"``, ``"keras"``, ...).
- ``unifyparams.layout``: ``"canonical"``: canonical names, canonical (PyTorch) layouts.
- ``unifyparams.ties``: JSON list of tie groups; the first name of a group is the one stored.
- ``unifyparams.layers``: JSON ``{layer path: family}`` (``"conv2d"``, ``"dense"``...), so a file can be
  matched to a model with other names by layer order (``up.load(model, file, match="order")``).
- ``unifyparams.checkpoint_id``: in sharded checkpoints, one id shared by the index and its shards,
  so shards left over from another save are recognised.
- ``format``: ``"pt"``, because canonical layouts are PyTorch's; tools that expect a PyTorch
  safetensors file (Hugging Face transformers) read the file.

Files without these keys (written by ``safetensors.torch`` or others) load as canonical, untied.

>>> meta = CheckpointMeta(backend="torch", ties=[("2.weight", "4.weight")])
>>> CheckpointMeta.decode(meta.encode(), "f").ties
[('2.weight', '4.weight')]
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..errors import CheckpointError
from .format import check_metadata

PREFIX = "unifyparams."
FORMAT_VERSION = "1"
LAYOUT = "canonical"
VERSION_KEY = PREFIX + "format_version"
BACKEND_KEY = PREFIX + "backend"
LAYOUT_KEY = PREFIX + "layout"
TIES_KEY = PREFIX + "ties"
ID_KEY = PREFIX + "checkpoint_id"
LAYERS_KEY = PREFIX + "layers"


@dataclass
class CheckpointMeta:
    """The parsed metadata of a checkpoint; ``user`` holds the keys that are not ours."""

    backend: str | None = None
    ties: list[tuple[str, ...]] = field(default_factory=list)
    format_version: str | None = FORMAT_VERSION
    checkpoint_id: str | None = None
    user: dict[str, str] = field(default_factory=dict)
    #: ``{layer path: family}`` of the model saved (empty for files other tools wrote).
    layers: dict[str, str] = field(default_factory=dict)

    def encode(self) -> dict[str, str]:
        """The ``{str: str}`` dict to store in ``__metadata__``."""
        check_metadata(self.user)
        reserved = sorted(k for k in self.user if k.startswith(PREFIX))
        if reserved:
            raise CheckpointError(
                f"metadata keys starting with {PREFIX!r} are reserved; received {reserved}. Rename them."
            )
        out = {"format": "pt", VERSION_KEY: FORMAT_VERSION, LAYOUT_KEY: LAYOUT}
        if self.backend:
            out[BACKEND_KEY] = self.backend
        if self.ties:
            out[TIES_KEY] = json.dumps([list(group) for group in self.ties], separators=(",", ":"))
        if self.checkpoint_id:
            out[ID_KEY] = self.checkpoint_id
        if self.layers:
            out[LAYERS_KEY] = json.dumps(self.layers, separators=(",", ":"))
        out.update(self.user)
        return out

    @classmethod
    def decode(cls, raw: Mapping[str, object], source: str) -> CheckpointMeta:
        """Parse and check ``__metadata__``; :class:`CheckpointError` for anything we cannot honour."""
        wrong = sorted(
            k
            for k in (VERSION_KEY, BACKEND_KEY, LAYOUT_KEY, TIES_KEY, ID_KEY, LAYERS_KEY)
            if not isinstance(raw.get(k, ""), str)
        )
        if wrong:
            raise CheckpointError(f"{source}: metadata {wrong} must be strings; the file is corrupt")
        version = _text(raw, VERSION_KEY)
        if version is not None and version.split(".")[0] != FORMAT_VERSION:
            raise CheckpointError(
                f"{source}: written in unifyparams checkpoint format {version!r}; this version reads "
                f"format {FORMAT_VERSION!r}. Upgrade unifyparams to load it."
            )
        layout = _text(raw, LAYOUT_KEY)
        if layout is not None and layout != LAYOUT:
            raise CheckpointError(
                f"{source}: tensors are stored in layout {layout!r}; expected {LAYOUT!r}. The file was "
                f"written by another tool or a newer unifyparams."
            )
        user = {
            k: v for k, v in raw.items() if isinstance(v, str) and not k.startswith(PREFIX) and k != "format"
        }
        return cls(
            backend=_text(raw, BACKEND_KEY),
            ties=_decode_ties(_text(raw, TIES_KEY), source),
            format_version=version,
            checkpoint_id=_text(raw, ID_KEY),
            user=user,
            layers=_decode_layers(_text(raw, LAYERS_KEY), source),
        )


def _text(raw: Mapping[str, object], key: str) -> str | None:
    value = raw.get(key)
    return value if isinstance(value, str) else None


def _decode_layers(text: str | None, source: str) -> dict[str, str]:
    if text is None:
        return {}
    problem = f"{source}: metadata {LAYERS_KEY!r} must be a JSON object of layer paths to family names"
    try:
        layers = json.loads(text)
    except (ValueError, RecursionError):
        raise CheckpointError(f"{problem}; received text that is not JSON: {text[:120]!r}") from None
    if not isinstance(layers, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in layers.items()):
        raise CheckpointError(f"{problem}; received {text[:120]!r}")
    return layers


def _decode_ties(text: str | None, source: str) -> list[tuple[str, ...]]:
    if text is None:
        return []
    problem = f"{source}: metadata {TIES_KEY!r} must be a JSON list of groups of two or more distinct names"
    try:
        groups = json.loads(text)
    except (ValueError, RecursionError):
        raise CheckpointError(f"{problem}; received text that is not JSON: {text[:120]!r}") from None
    if not isinstance(groups, list):
        raise CheckpointError(f"{problem}; received {text[:120]!r}")
    seen: set[str] = set()
    result: list[tuple[str, ...]] = []
    for group in groups:
        if (
            not isinstance(group, list)
            or len(group) < 2
            or not all(isinstance(n, str) for n in group)
            or len(set(group)) != len(group)
        ):
            raise CheckpointError(f"{problem}; received the group {str(group)[:120]}")
        again = seen.intersection(group)
        if again:
            raise CheckpointError(f"{problem}, each name in one group; {sorted(again)} appear in two groups")
        seen.update(group)
        result.append(tuple(group))
    return result
