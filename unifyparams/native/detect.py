"""Deprecated: this module is :mod:`unifyparams.formats.detect` now."""

from __future__ import annotations

from ..formats.detect import format_for, read

__all__ = ["format_for", "read"]
