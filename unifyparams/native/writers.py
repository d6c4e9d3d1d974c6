"""Deprecated: this module is :mod:`unifyparams.formats.writers` now."""

from __future__ import annotations

from ..formats.writers import SOURCE_FORMAT_KEY, conversion_metadata, write_safetensors, write_torch

__all__ = ["write_safetensors", "write_torch", "conversion_metadata", "SOURCE_FORMAT_KEY"]
