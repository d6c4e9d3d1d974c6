"""Deprecated: :class:`NativeCheckpoint` lives in :mod:`unifyparams.formats.checkpoint` now."""

from __future__ import annotations

from ..formats.checkpoint import CANONICAL, NativeCheckpoint, require_file

__all__ = ["CANONICAL", "NativeCheckpoint", "require_file"]
