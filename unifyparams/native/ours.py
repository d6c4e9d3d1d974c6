"""Deprecated: this module is :mod:`unifyparams.formats.safetensors` now."""

from __future__ import annotations

from ..formats.safetensors import read_safetensors

__all__ = ["read_safetensors"]
