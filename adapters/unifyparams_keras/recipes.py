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

from unifyparams.recipes import Fixed, Recipe, Rows, Split, Zeros


def keras_config(model: Any) -> Mapping[str, Any] | None:
    """A Keras model's ``get_config()``, or None when it has none."""
    get_config = getattr(model, "get_config", None)
    if not callable(get_config):
        return None
    try:
        return dict(get_config())
    except (NotImplementedError, TypeError):
        return None


def keras_config_with(*attributes: str) -> Any:
    """:func:`keras_config`, plus attributes the model's ``get_config()`` leaves out (keras-hub's
    ``LlamaBackbone`` keeps ``tie_word_embeddings`` but does not serialize it)."""
    def read(model: Any) -> Mapping[str, Any] | None:
        config = keras_config(model)
        if config is None:
            return None
        for name in attributes:
            if name not in config and hasattr(model, name):
                config[name] = getattr(model, name)
        return config
    return read


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
    export_config={"resid_pdrop": "dropout", "embd_pdrop": "dropout", "attn_pdrop": "dropout"},
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


def _rope_type(scaling_key: str) -> Any:
    """The reference ``rope_type`` of a keras-hub decoder: ``"default"`` unless it scales positions
    (``"linear"``) or adjusts frequencies (Llama 3's ``"llama3"``)."""
    def rope_type(c: Mapping[str, Any]) -> str:
        if c.get("rope_frequency_adjustment_factor") is not None:
            return "llama3"
        return "default" if float(c.get(scaling_key) or 1.0) == 1.0 else "linear"
    return rope_type


def _rope_factor(scaling_key: str) -> Any:
    def factor(c: Mapping[str, Any]) -> Any:
        if c.get("rope_frequency_adjustment_factor") is not None:
            return c["rope_frequency_adjustment_factor"]
        value = float(c.get(scaling_key) or 1.0)
        return None if value == 1.0 else value
    return factor


def _decoder_config(scaling_key: str = "rope_scaling_factor") -> dict[str, Any]:
    return {
        "vocab_size": "vocabulary_size", "hidden_size": "hidden_dim", "num_hidden_layers": "num_layers",
        "num_attention_heads": "num_query_heads", "num_key_value_heads": "num_key_value_heads",
        "intermediate_size": "intermediate_dim", "rms_norm_eps": "layer_norm_epsilon",
        "rope_theta": "rope_max_wavelength", "hidden_act": Fixed("silu"),
        "head_dim": lambda c: c.get("head_dim") or c["hidden_dim"] // c["num_query_heads"],
        "rope_type": _rope_type(scaling_key), "factor": _rope_factor(scaling_key),
        "attention_bias": Fixed(False), "mlp_bias": Fixed(False),
    }


LLAMA = Recipe(
    family="llama", library="keras_hub", models=("LlamaBackbone",), names="native",
    tensors=_decoder_tensors(False),
    config={**_decoder_config("rope_position_scaling_factor"),
            "tie_word_embeddings": lambda c: bool(c.get("tie_word_embeddings", False))},
    read_config=keras_config_with("tie_word_embeddings"),
)

# keras-hub's Mistral keeps an untied output embedding and slides its attention window always
MISTRAL = Recipe(
    family="mistral", library="keras_hub", models=("MistralBackbone",), names="native",
    tensors=_decoder_tensors(False),
    config={**_decoder_config(), "tie_word_embeddings": Fixed(False), "sliding_window": "sliding_window"},
    read_config=keras_config,
)


def _qwen_window(c: Mapping[str, Any]) -> Any:
    return c["sliding_window_size"] if c.get("use_sliding_window_attention") else None


# keras-hub's Qwen slides the window in every layer (transformers: from layer max_window_layers on)
QWEN2 = Recipe(
    family="qwen2", library="keras_hub", models=("QwenBackbone",), names="native",
    tensors=_decoder_tensors(True),
    config={**_decoder_config(), "attention_bias": Fixed(True),
            "tie_word_embeddings": lambda c: bool(c.get("tie_word_embeddings", True)),
            "use_sliding_window": lambda c: bool(c.get("use_sliding_window_attention", False)),
            "sliding_window": _qwen_window,
            "max_window_layers": lambda c: 0 if c.get("use_sliding_window_attention") else None},
    read_config=keras_config,
)


# --- Gemma ----------------------------------------------------------------------------------------
def _gemma_tensors() -> dict[str, Any]:
    block = "decoder_block_{i}"
    layer = "layers.{i}"
    return {
        "embed_tokens.weight": "token_embedding/embeddings",
        f"{layer}.input_layernorm.weight": f"{block}/pre_attention_norm/scale",
        f"{layer}.self_attn.q_proj.weight": f"{block}/attention/query/kernel",
        f"{layer}.self_attn.k_proj.weight": f"{block}/attention/key/kernel",
        f"{layer}.self_attn.v_proj.weight": f"{block}/attention/value/kernel",
        f"{layer}.self_attn.o_proj.weight": f"{block}/attention/attention_output/kernel",
        # transformers' Gemma calls the norm before the feed-forward block post_attention_layernorm
        f"{layer}.post_attention_layernorm.weight": f"{block}/pre_ffw_norm/scale",
        f"{layer}.mlp.gate_proj.weight": f"{block}/ffw_gating/kernel",
        f"{layer}.mlp.up_proj.weight": f"{block}/ffw_gating_2/kernel",
        f"{layer}.mlp.down_proj.weight": f"{block}/ffw_linear/kernel",
        "norm.weight": "final_normalization/scale",
    }


# keras-hub's Gemma: tied embeddings always, tanh GELU, rotary base 10000, no soft caps in Gemma 1;
# its intermediate_dim is twice transformers' intermediate_size (gate and up halves together)
GEMMA = Recipe(
    family="gemma", library="keras_hub", models=("GemmaBackbone",), names="native",
    tensors=_gemma_tensors(),
    config={
        "vocab_size": "vocabulary_size", "hidden_size": "hidden_dim", "num_hidden_layers": "num_layers",
        "num_attention_heads": "num_query_heads", "num_key_value_heads": "num_key_value_heads",
        "intermediate_size": lambda c: c["intermediate_dim"] // 2, "head_dim": "head_dim",
        "rms_norm_eps": "layer_norm_epsilon", "rope_theta": Fixed(10000.0), "rope_type": Fixed("default"),
        "hidden_act": Fixed("gelu_pytorch_tanh", approximates=("gelu",)),
        "tie_word_embeddings": Fixed(True), "attention_bias": Fixed(False),
        "query_pre_attn_scalar": lambda c: (c["head_dim"] if c.get("query_head_dim_normalize", True)
                                            else c["hidden_dim"] // c["num_query_heads"]),
        "attn_logit_softcapping": "attention_logit_soft_cap", "final_logit_softcapping": "final_logit_soft_cap",
        "use_sliding_window": lambda c: bool(c.get("use_sliding_window_attention", False)),
        "use_post_norms": lambda c: bool(c.get("use_post_ffw_norm") or c.get("use_post_attention_norm")),
    },
    read_config=keras_config,
)

# --- RoBERTa ---------------------------------------------------------------------------------------
# keras-hub's RobertaBackbone numbers positions from 0 and has no token types; transformers' RoBERTa
# starts at ``pad_token_id + 1`` (2) and adds its one token-type row to every token (keras-hub's own
# importer drops rows 0-1 and ignores the token-type row, exact only when that row is zero; the fold
# here is exact whatever it holds). No pooler.
ROBERTA = Recipe(
    family="roberta", library="keras_hub", models=("RobertaBackbone",), names="native",
    tensors={
        "embeddings.word_embeddings.weight": "embeddings/token_embedding/embeddings",
        "embeddings.position_embeddings.weight": Rows(
            "embeddings/position_embedding/embeddings", start=2,
            fold=("embeddings.token_type_embeddings.weight", 0)),
        "embeddings.token_type_embeddings.weight": Zeros(rows=1, like="embeddings.word_embeddings.weight"),
        "embeddings.LayerNorm.weight": "embeddings_layer_norm/gamma",
        "embeddings.LayerNorm.bias": "embeddings_layer_norm/beta",
        **_bert_layer(),
    },
    config={
        "vocab_size": "vocabulary_size", "hidden_size": "hidden_dim", "num_hidden_layers": "num_layers",
        "num_attention_heads": "num_heads", "intermediate_size": "intermediate_dim",
        "max_position_embeddings": lambda c: c["max_sequence_length"] + 2, "type_vocab_size": Fixed(1),
        "hidden_act": Fixed("gelu"), "layer_norm_eps": Fixed(1e-5), "position_offset": Fixed(2),
    },
    export_config={"hidden_dropout_prob": "dropout", "attention_probs_dropout_prob": "dropout",
                   "pad_token_id": Fixed(1)},
    read_config=keras_config,
)

RECIPES = [GPT2, BERT, LLAMA, MISTRAL, QWEN2, GEMMA, ROBERTA]
