"""Hugging Face ``transformers`` recipes: each family's reference names, as the library names them.

``transformers`` is the hub every other library's recipe is written against, so its recipes
map each name to itself and carry what its ``save_pretrained`` folders need
(:class:`~unifyparams.recipes.HFFiles`: ``model_type``, the class and key prefix written, the
tensors GPT-2's ``Conv1D`` stores transposed). Data only: importing this package imports
neither torch nor transformers. Declared in the ``unifyparams.recipes`` entry-point group.

>>> GPT2.hf.model_type, GPT2.prefixes
('gpt2', ('transformer.',))
>>> sorted(r.family for r in RECIPES)
['bert', 'gemma', 'gpt2', 'llama', 'mistral', 'qwen2', 'roberta']
"""

from __future__ import annotations

from . import roberta
from .bert import BERT
from .decoders import GEMMA, LLAMA, MISTRAL, QWEN2
from .gpt2 import GPT2

RECIPES = [GPT2, BERT, LLAMA, MISTRAL, QWEN2, GEMMA, *roberta.RECIPES]

__all__ = ["BERT", "GEMMA", "GPT2", "LLAMA", "MISTRAL", "QWEN2", "RECIPES"]
