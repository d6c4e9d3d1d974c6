"""RoBERTa in ``transformers``.

The tensors are BERT's under the ``roberta.`` prefix. Two things set RoBERTa apart from BERT and
are stated here for other libraries' recipes to compare against:

* positions start at ``pad_token_id + 1`` (2 in every released checkpoint): token ``t`` of a
  sequence without padding uses row ``t + pad_token_id + 1`` of
  ``embeddings.position_embeddings.weight``, rows ``0 .. pad_token_id`` serve padding only. The
  reference configuration key ``position_offset`` (not a ``config.json`` key: derived from
  ``pad_token_id``) says so, so that a library counting positions from 0 (gluonnlp) is a
  configuration difference, not a silent shift;
* ``embeddings.token_type_embeddings.weight`` has ``type_vocab_size`` (1) rows, row 0 added to
  every token.
"""

from __future__ import annotations

from unifyparams.recipes import HFFiles, Recipe

from .common import _identity, hf_config

_LAYER = [
    f"{part}.{leaf}"
    for part in ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
                 "attention.output.LayerNorm", "intermediate.dense", "output.dense", "output.LayerNorm")
    for leaf in ("weight", "bias")
]


def _position_offset(config: dict) -> int:
    """The position-embedding row of a sequence's first token: ``pad_token_id + 1``."""
    return int(config["pad_token_id"]) + 1


ROBERTA = Recipe(
    family="roberta", library="transformers",
    models=("RobertaModel", "RobertaForMaskedLM", "RobertaForSequenceClassification", "RobertaForTokenClassification",
            "RobertaForQuestionAnswering", "RobertaForMultipleChoice", "RobertaForCausalLM"),
    tensors=_identity([
        "embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight",
        "embeddings.token_type_embeddings.weight", "embeddings.LayerNorm.weight", "embeddings.LayerNorm.bias",
        *(f"encoder.layer.{{i}}.{n}" for n in _LAYER), "pooler.dense.weight", "pooler.dense.bias",
    ]),
    config={
        **_identity(["vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                     "max_position_embeddings", "type_vocab_size", "hidden_act", "layer_norm_eps"]),
        "position_offset": _position_offset,
    },
    prefixes=("roberta.",), read_config=hf_config,
    hf=HFFiles(model_type="roberta", architecture="RobertaModel"),
)

RECIPES: list[Recipe] = [ROBERTA]
