"""keras-hub recipes: how keras-hub's backbones hold each family's tensors and configuration.

Names are Keras variable paths (``transformer_layer_0/self_attention/query/kernel``): keras-hub
names every layer it builds, so these are stable, and they are the names its own converters
reach through attributes. Values are canonical already (the Keras adapter turns ``EinsumDense``
and attention kernels into ``(out, in)``), so a recipe states names, fused tensors and the
configuration keys keras-hub fixes. Data only: importing this module imports neither Keras nor
keras-hub. Declared in the ``unifyparams.recipes`` entry-point group.

>>> GPT2.library, GPT2.models, GPT2.names
('keras_hub', ('GPT2Backbone',), 'native')
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from unifyparams.recipes import Fixed, Recipe, Split


def keras_config(model: Any) -> Mapping[str, Any] | None:
    """A Keras model's ``get_config()``, or None when it has none."""
    get_config = getattr(model, "get_config", None)
    if not callable(get_config):
        return None
    try:
        return dict(get_config())
    except (NotImplementedError, TypeError):
        return None


# --- GPT-2 ---------------------------------------------------------------------------------------
def _gpt2_layer() -> dict[str, Any]:
    attn, block = "transformer_layer_{i}/self_attention", "transformer_layer_{i}"
    return {
        "h.{i}.ln_1.weight": f"{block}/self_attention_layer_norm/gamma",
        "h.{i}.ln_1.bias": f"{block}/self_attention_layer_norm/beta",
        "h.{i}.attn.c_attn.weight": Split(0, [f"{attn}/{p}/kernel" for p in ("query", "key", "value")]),
        "h.{i}.attn.c_attn.bias": Split(0, [f"{attn}/{p}/bias" for p in ("query", "key", "value")]),
        "h.{i}.attn.c_proj.weight": f"{attn}/attention_output/kernel",
        "h.{i}.attn.c_proj.bias": f"{attn}/attention_output/bias",
        "h.{i}.ln_2.weight": f"{block}/feedforward_layer_norm/gamma",
        "h.{i}.ln_2.bias": f"{block}/feedforward_layer_norm/beta",
        "h.{i}.mlp.c_fc.weight": f"{block}/feedforward_intermediate_dense/kernel",
        "h.{i}.mlp.c_fc.bias": f"{block}/feedforward_intermediate_dense/bias",
        "h.{i}.mlp.c_proj.weight": f"{block}/feedforward_output_dense/kernel",
        "h.{i}.mlp.c_proj.bias": f"{block}/feedforward_output_dense/bias",
    }


GPT2 = Recipe(
    family="gpt2", library="keras_hub", models=("GPT2Backbone",), names="native",
    tensors={
        "wte.weight": "token_embedding/embeddings",
        "wpe.weight": "position_embedding/embeddings",
        **_gpt2_layer(),
        "ln_f.weight": "layer_norm/gamma",
        "ln_f.bias": "layer_norm/beta",
    },
    config={
        "vocab_size": "vocabulary_size", "n_positions": "max_sequence_length", "n_embd": "hidden_dim",
        "n_layer": "num_layers", "n_head": "num_heads", "n_inner": "intermediate_dim",
        "activation_function": Fixed("gelu_new", approximates=("gelu_pytorch_tanh",)),
        "layer_norm_epsilon": Fixed(1e-5), "scale_attn_by_inverse_layer_idx": Fixed(False),
        "tie_word_embeddings": Fixed(True),
    },
    read_config=keras_config,
)

# --- BERT ----------------------------------------------------------------------------------------
def _bert_layer() -> dict[str, Any]:
    block = "transformer_layer_{i}"
    attn = f"{block}/self_attention_layer"
    layer = "encoder.layer.{i}"
    table: dict[str, Any] = {}
    for hf, kh in (("attention.self.query", "query"), ("attention.self.key", "key"),
                   ("attention.self.value", "value"), ("attention.output.dense", "attention_output")):
        table[f"{layer}.{hf}.weight"] = f"{attn}/{kh}/kernel"
        table[f"{layer}.{hf}.bias"] = f"{attn}/{kh}/bias"
    for hf, kh, w, b in (("attention.output.LayerNorm", "self_attention_layer_norm", "gamma", "beta"),
                         ("intermediate.dense", "feedforward_intermediate_dense", "kernel", "bias"),
                         ("output.dense", "feedforward_output_dense", "kernel", "bias"),
                         ("output.LayerNorm", "feedforward_layer_norm", "gamma", "beta")):
        table[f"{layer}.{hf}.weight"] = f"{block}/{kh}/{w}"
        table[f"{layer}.{hf}.bias"] = f"{block}/{kh}/{b}"
    return table


BERT = Recipe(
    family="bert", library="keras_hub", models=("BertBackbone",), names="native",
    tensors={
        "embeddings.word_embeddings.weight": "token_embedding/embeddings",
        "embeddings.position_embeddings.weight": "position_embedding/embeddings",
        "embeddings.token_type_embeddings.weight": "segment_embedding/embeddings",
        "embeddings.LayerNorm.weight": "embeddings_layer_norm/gamma",
        "embeddings.LayerNorm.bias": "embeddings_layer_norm/beta",
        **_bert_layer(),
        "pooler.dense.weight": "pooled_dense/kernel",
        "pooler.dense.bias": "pooled_dense/bias",
    },
    config={
        "vocab_size": "vocabulary_size", "hidden_size": "hidden_dim", "num_hidden_layers": "num_layers",
        "num_attention_heads": "num_heads", "intermediate_size": "intermediate_dim",
        "max_position_embeddings": "max_sequence_length", "type_vocab_size": "num_segments",
        # keras-hub's BERT uses the tanh approximation of GELU where Hugging Face's uses the exact one
        "hidden_act": Fixed("gelu_new", approximates=("gelu",)), "layer_norm_eps": Fixed(1e-12),
    },
    read_config=keras_config,
)


# --- Llama and the decoders of its shape -----------------------------------------------------------
def _decoder_tensors(attention_bias: bool, *, gate: str = "feedforward_gate_dense",
                     up: str = "feedforward_intermediate_dense", down: str = "feedforward_output_dense",
                     attention: str = "self_attention", pre_norm: str = "self_attention_layernorm",
                     post_norm: str = "feedforward_layernorm", final_norm: str = "sequence_output_layernorm",
                     kernel: str = "kernel") -> dict[str, Any]:
    block = "transformer_layer_{i}"
    table: dict[str, Any] = {"embed_tokens.weight": "token_embedding/embeddings"}
    for hf, kh in (("q", "query"), ("k", "key"), ("v", "value"), ("o", "attention_output")):
        table[f"layers.{{i}}.self_attn.{hf}_proj.weight"] = f"{block}/{attention}/{kh}/{kernel}"
        if attention_bias and hf != "o":
            table[f"layers.{{i}}.self_attn.{hf}_proj.bias"] = f"{block}/{attention}/{kh}/bias"
    table["layers.{i}.mlp.gate_proj.weight"] = f"{block}/{gate}/kernel"
    table["layers.{i}.mlp.up_proj.weight"] = f"{block}/{up}/kernel"
    table["layers.{i}.mlp.down_proj.weight"] = f"{block}/{down}/kernel"
    table["layers.{i}.input_layernorm.weight"] = f"{block}/{pre_norm}/scale"
    table["layers.{i}.post_attention_layernorm.weight"] = f"{block}/{post_norm}/scale"
    table["norm.weight"] = f"{final_norm}/scale"
    table["lm_head.weight"] = "token_embedding/reverse_embeddings"
    return table


_DECODER_CONFIG: dict[str, Any] = {
    "vocab_size": "vocabulary_size", "hidden_size": "hidden_dim", "num_hidden_layers": "num_layers",
    "num_attention_heads": "num_query_heads", "num_key_value_heads": "num_key_value_heads",
    "intermediate_size": "intermediate_dim", "rms_norm_eps": "layer_norm_epsilon",
    "rope_theta": "rope_max_wavelength", "hidden_act": Fixed("silu"),
    "head_dim": lambda c: c.get("head_dim") or c["hidden_dim"] // c["num_query_heads"],
}

LLAMA = Recipe(
    family="llama", library="keras_hub", models=("LlamaBackbone",), names="native",
    tensors=_decoder_tensors(False),
    config={**_DECODER_CONFIG, "tie_word_embeddings": lambda c: bool(c.get("tie_word_embeddings", False)),
            "attention_bias": Fixed(False), "mlp_bias": Fixed(False)},
    read_config=keras_config,
)

RECIPES = [GPT2, BERT, LLAMA]
