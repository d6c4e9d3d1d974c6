"""gluonnlp recipes: how gluonnlp 0.10's BERT and RoBERTa hold each family's tensors.

Names are unifyparams' canonical names of the Gluon model (attribute paths, ``up.params(model)``).
Data only, apart from ``read_config``, which reads attributes of a built model (importing this
module imports neither mxnet nor gluonnlp).

What gluonnlp's ``BERTModel`` computes, against ``transformers``' ``BertModel``:

* query, key and value are separate parameters (``attention_cell.query_weight``, ...): the cell
  interleaves them per head inside its forward, which is the same function as three projections
  split into heads, so no :class:`~unifyparams.recipes.Split` is needed;
* ``proj`` + ``layer_norm`` of a cell are ``attention.output.dense`` / ``.LayerNorm``;
  ``ffn.ffn_1`` / ``ffn.ffn_2`` / ``ffn.layer_norm`` are ``intermediate.dense`` /
  ``output.dense`` / ``output.LayerNorm``; ``encoder.layer_norm`` is ``embeddings.LayerNorm``
  (gluonnlp adds the position embedding inside the encoder, then normalises);
* one ``layer_norm_eps`` for every LayerNorm (``BERTEncoder(layer_norm_eps=1e-12)``, read from
  the encoder); activation ``'gelu'`` is the exact (erf) GELU, Hugging Face's ``"gelu"``,
  ``'approx_gelu'`` the tanh form, ``"gelu_new"``;
* positions count from 0 (row ``t`` of ``encoder.position_weight`` for token ``t``), as BERT's;
* the pooler is ``Dense(units, activation='tanh')`` over the first token, as BERT's.

RoBERTa (``RoBERTaModel``) is the same encoder without token types, without a pooler, and with
positions counted from 0, where ``transformers``' RoBERTa counts them from ``pad_token_id + 1``
(2) and adds ``token_type_embeddings.weight[0]`` to every token. The exact correspondence is
``position_weight[t] = position_embeddings.weight[t + 2] + token_type_embeddings.weight[0]``, and
back ``position_embeddings.weight[2:] = position_weight`` with ``token_type_embeddings.weight =
0`` (:class:`~unifyparams.recipes.Rows` with a fold, and :class:`~unifyparams.recipes.Zeros`).
The offset is declared (``position_offset`` 2), so a ``transformers`` RoBERTa with another
``pad_token_id`` is refused instead of shifted.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from unifyparams.recipes import Fixed, Recipe, Rows, Zeros

#: reference (``transformers``) name within a layer -> gluonnlp name within ``transformer_cells.{i}``
_LAYER = {
    "attention.self.query.weight": "attention_cell.query_weight",
    "attention.self.query.bias": "attention_cell.query_bias",
    "attention.self.key.weight": "attention_cell.key_weight",
    "attention.self.key.bias": "attention_cell.key_bias",
    "attention.self.value.weight": "attention_cell.value_weight",
    "attention.self.value.bias": "attention_cell.value_bias",
    "attention.output.dense.weight": "proj.weight",
    "attention.output.dense.bias": "proj.bias",
    "attention.output.LayerNorm.weight": "layer_norm.weight",
    "attention.output.LayerNorm.bias": "layer_norm.bias",
    "intermediate.dense.weight": "ffn.ffn_1.weight",
    "intermediate.dense.bias": "ffn.ffn_1.bias",
    "output.dense.weight": "ffn.ffn_2.weight",
    "output.dense.bias": "ffn.ffn_2.bias",
    "output.LayerNorm.weight": "ffn.layer_norm.weight",
    "output.LayerNorm.bias": "ffn.layer_norm.bias",
}
_ENCODER = {
    "embeddings.word_embeddings.weight": "word_embed.0.weight",
    "embeddings.LayerNorm.weight": "encoder.layer_norm.weight",
    "embeddings.LayerNorm.bias": "encoder.layer_norm.bias",
    **{f"encoder.layer.{{i}}.{ref}": f"encoder.transformer_cells.{{i}}.{name}" for ref, name in _LAYER.items()},
}

#: gluonnlp activation block -> ``transformers``' ``hidden_act``
_GELU = {False: "gelu", True: "gelu_new"}


def _activation(block: Any) -> str | None:
    if type(block).__name__ == "GELU":
        return _GELU[bool(getattr(block, "_approximate", False))]
    act = getattr(block, "_act_type", None)  # nn.Activation('relu'), ...
    return str(act) if act is not None else None


def _rows(embed: Any) -> int | None:
    """``input_dim`` of an ``nn.Embedding`` (or of the one inside gluonnlp's HybridSequential)."""
    try:
        block = embed[0] if len(embed) else embed
    except TypeError:
        block = embed
    kwargs = getattr(block, "_kwargs", None) or {}
    return int(kwargs["input_dim"]) if "input_dim" in kwargs else None


def read_config(model: Any) -> Mapping[str, Any] | None:
    """What a built ``BERTModel`` / ``RoBERTaModel`` says of itself, in the library's own keys
    (gluonnlp keeps no configuration object; these are its constructor's names)."""
    encoder = getattr(model, "encoder", None)
    cells = getattr(encoder, "transformer_cells", None)
    if encoder is None or cells is None:
        return None
    config: dict[str, Any] = {
        "units": getattr(encoder, "_units", None),
        "num_layers": len(cells),
        "max_length": getattr(encoder, "_max_length", None),
        "layer_norm_eps": getattr(encoder, "_layer_norm_eps", None),
        "vocab_size": _rows(getattr(model, "word_embed", None)),
        # no token-type embedding (RoBERTa, or use_token_type_embed=False): no segments at all
        "token_type_vocab_size": (_rows(model.token_type_embed)
                                  if getattr(model, "_use_token_type_embed", False) else 0),
    }
    if len(cells):
        cell = cells[0]
        config["num_heads"] = getattr(cell.attention_cell, "_num_heads", None)
        config["hidden_size"] = getattr(cell.ffn.ffn_1, "_units", None)
        config["activation"] = _activation(cell.ffn.activation)
    return {k: v for k, v in config.items() if v is not None}


def _roberta_positions(config: Mapping[str, Any]) -> int:
    """``max_position_embeddings`` of the ``transformers`` RoBERTa whose positions gluonnlp's
    ``max_length`` rows are (its two padding rows on top)."""
    return int(config["max_length"]) + 2


_CONFIG = {
    "vocab_size": "vocab_size",
    "hidden_size": "units",
    "num_hidden_layers": "num_layers",
    "num_attention_heads": "num_heads",
    "intermediate_size": "hidden_size",
    "hidden_act": "activation",
    "layer_norm_eps": "layer_norm_eps",
}

BERT = Recipe(
    family="bert", library="gluonnlp",
    models=("BERTModel",),
    tensors={
        **_ENCODER,
        "embeddings.position_embeddings.weight": "encoder.position_weight",
        "embeddings.token_type_embeddings.weight": "token_type_embed.0.weight",
        "pooler.dense.weight": "pooler.weight",
        "pooler.dense.bias": "pooler.bias",
    },
    config={**_CONFIG, "max_position_embeddings": "max_length", "type_vocab_size": "token_type_vocab_size"},
    read_config=read_config,
)

ROBERTA = Recipe(
    family="roberta", library="gluonnlp",
    models=("RoBERTaModel",),
    tensors={
        **_ENCODER,
        "embeddings.position_embeddings.weight": Rows(
            "encoder.position_weight", start=2, fold=("embeddings.token_type_embeddings.weight", 0)),
        "embeddings.token_type_embeddings.weight": Zeros(rows=1, like="embeddings.word_embeddings.weight"),
    },
    config={**_CONFIG, "max_position_embeddings": _roberta_positions, "type_vocab_size": Fixed(1),
            "position_offset": Fixed(2)},
    read_config=read_config,
)

RECIPES: list[Recipe] = [BERT, ROBERTA]
