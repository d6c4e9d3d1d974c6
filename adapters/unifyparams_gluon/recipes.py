"""gluonnlp recipes: how gluonnlp 0.10's BERT and RoBERTa hold each family's tensors."""

from __future__ import annotations

from unifyparams.recipes import Recipe

RECIPES: list[Recipe] = []
