"""BERT in ``transformers``."""

from __future__ import annotations

from unifyparams.recipes import HFFiles, Recipe

from .common import _identity, hf_config

_BERT_LAYER = [
    f"{part}.{leaf}"
    for part in ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
                 "attention.output.LayerNorm", "intermediate.dense", "output.dense", "output.LayerNorm")
    for leaf in ("weight", "bias")
]
BERT = Recipe(
    family="bert", library="transformers",
    models=("BertModel", "BertForMaskedLM", "BertForPreTraining", "BertForSequenceClassification"),
    tensors=_identity([
        "embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight",
        "embeddings.token_type_embeddings.weight", "embeddings.LayerNorm.weight", "embeddings.LayerNorm.bias",
        *(f"encoder.layer.{{i}}.{n}" for n in _BERT_LAYER), "pooler.dense.weight", "pooler.dense.bias",
    ]),
    config=_identity(["vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                      "max_position_embeddings", "type_vocab_size", "hidden_act", "layer_norm_eps"]),
    prefixes=("bert.",), read_config=hf_config,
    hf=HFFiles(model_type="bert", architecture="BertModel"),
)


