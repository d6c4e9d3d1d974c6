"""Deprecated: this module is :mod:`unifyparams.formats.registry` now."""

from __future__ import annotations

from ..formats.registry import format_function, native_function

__all__ = ["native_function", "format_function"]
