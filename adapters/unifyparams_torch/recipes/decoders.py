"""Llama and the decoders of its shape in ``transformers``: Mistral, Qwen2, Gemma."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from unifyparams.recipes import Fixed, HFFiles, Recipe

from .common import _identity, flatten_config, hf_config, rope_to_file


def _decoder_tensors(attention_bias: bool) -> dict[str, str]:
    layer = [f"self_attn.{p}_proj.weight" for p in "qkvo"]
    layer += [f"self_attn.{p}_proj.bias" for p in "qkv"] if attention_bias else []
    layer += [f"mlp.{p}_proj.weight" for p in ("gate", "up", "down")]
    layer += ["input_layernorm.weight", "post_attention_layernorm.weight"]
    return _identity(["embed_tokens.weight", *(f"layers.{{i}}.{n}" for n in layer), "norm.weight", "lm_head.weight"])


_DECODER_CONFIG = [
    "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
    "intermediate_size", "rms_norm_eps", "rope_theta", "hidden_act", "tie_word_embeddings", "head_dim",
]


def _rope_type(c: Mapping[str, Any]) -> str:
    return c.get("rope_type") or "default"


def _rope_factor(c: Mapping[str, Any]) -> Any:
    return c.get("factor") if _rope_type(c) != "default" else None


def _decoder(family: str, stem: str, *, attention_bias: bool = False, extra_config: Sequence[str] = (),
             activation_key: str = "hidden_act", config: Mapping[str, Any] | None = None,
             tensors: Mapping[str, str] | None = None) -> Recipe:
    table: dict[str, Any] = _identity([*_DECODER_CONFIG, *extra_config])
    table["head_dim"] = lambda c: c.get("head_dim") or c["hidden_size"] // c["num_attention_heads"]
    table["num_key_value_heads"] = lambda c: c.get("num_key_value_heads") or c["num_attention_heads"]
    table["rope_type"], table["factor"] = _rope_type, _rope_factor
    table["attention_bias"] = lambda c: bool(c.get("attention_bias", attention_bias))
    table["mlp_bias"] = lambda c: bool(c.get("mlp_bias", False))
    if activation_key != "hidden_act":  # older configs name the activation differently
        table["hidden_act"] = lambda c: c.get(activation_key) or c["hidden_act"]
    table.update(config or {})
    return Recipe(
        family=family, library="transformers", models=(f"{stem}Model", f"{stem}ForCausalLM"),
        tensors=dict(tensors) if tensors is not None else _decoder_tensors(attention_bias), config=table,
        prefixes=("model.",), read_config=hf_config,
        hf=HFFiles(model_type=family, architecture=f"{stem}ForCausalLM", prefix="model.",
                   top_level=("lm_head.weight",), read_file_config=flatten_config,
                   write_file_config=rope_to_file),
    )


def _qwen_window(c: Mapping[str, Any]) -> Any:
    return c.get("sliding_window") if c.get("use_sliding_window") else None


def _qwen_window_layers(c: Mapping[str, Any]) -> Any:
    return c.get("max_window_layers") if c.get("use_sliding_window") else None


LLAMA = _decoder("llama", "Llama")
MISTRAL = _decoder("mistral", "Mistral", extra_config=("sliding_window",))
QWEN2 = _decoder("qwen2", "Qwen2", attention_bias=True, config={
    "use_sliding_window": lambda c: bool(c.get("use_sliding_window", False)),
    "sliding_window": _qwen_window, "max_window_layers": _qwen_window_layers,
})
# Gemma 1: no bias, no soft caps, no sliding window, no post norms; queries scaled by 1/sqrt(head_dim)
GEMMA = _decoder("gemma", "Gemma", activation_key="hidden_activation", config={
    "query_pre_attn_scalar": lambda c: c.get("query_pre_attn_scalar") or c.get("head_dim")
    or c["hidden_size"] // c["num_attention_heads"],
    "attn_logit_softcapping": lambda c: c.get("attn_logit_softcapping"),
    "final_logit_softcapping": lambda c: c.get("final_logit_softcapping"),
    "use_sliding_window": Fixed(False), "use_post_norms": Fixed(False),
})
