"""Model families across libraries: declarative recipes, chosen by the models' classes.

``up.port(hf_model, keras_hub_backbone)`` needs no hints when a recipe describes each model's
class: both are bound to the family's reference names (Hugging Face ``transformers``' names),
fused tensors are split or joined, configurations are compared, and the rest is an ordinary
port (all or nothing, streamed, reported row by row). Built-in recipes (GPT-2, BERT, Llama,
Mistral, Qwen2, Gemma; keras-hub and gluonnlp) are declared through the ``unifyparams.recipes``
entry-point group, exactly as a third party's are.

>>> from unifyparams.recipes import Recipe, Split, Fixed
>>> Recipe(family="toy", library="mylib", models=("MyNet",), tensors={"w": "weight"}).key
'toy/mylib'
"""

from __future__ import annotations

from .registry import RECIPES_GROUP, all_recipes, by_family, families, for_model_type, recipe_for, with_files
from .spec import Fixed, HFFiles, Recipe, RecipeError, Rows, Split, Transposed, Zeros

__all__ = [
    "RECIPES_GROUP", "Fixed", "HFFiles", "Recipe", "RecipeError", "Rows", "Split", "Transposed", "Zeros", "all_recipes",
    "by_family", "families", "for_model_type", "recipe_for", "with_files",
]
