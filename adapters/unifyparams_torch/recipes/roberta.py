"""RoBERTa in ``transformers``."""

from __future__ import annotations

from unifyparams.recipes import Recipe

RECIPES: list[Recipe] = []
