"""Llama and the decoders of its shape in ``transformers``: Mistral, Qwen2, Gemma."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from unifyparams.recipes import HFFiles, Recipe

from .common import _identity, hf_config


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


def _decoder(family: str, stem: str, *, attention_bias: bool = False, extra_config: Sequence[str] = (),
             activation_key: str = "hidden_act") -> Recipe:
    config: dict[str, Any] = _identity([*_DECODER_CONFIG, *extra_config])
    config["head_dim"] = lambda c: c.get("head_dim") or c["hidden_size"] // c["num_attention_heads"]
    config["num_key_value_heads"] = lambda c: c.get("num_key_value_heads") or c["num_attention_heads"]
    if activation_key != "hidden_act":
        config["hidden_act"] = lambda c: c.get(activation_key) or c["hidden_act"]
    return Recipe(
        family=family, library="transformers", models=(f"{stem}Model", f"{stem}ForCausalLM"),
        tensors=_decoder_tensors(attention_bias), config=config, prefixes=("model.",), read_config=hf_config,
        hf=HFFiles(model_type=family, architecture=f"{stem}ForCausalLM", prefix="model.",
                   top_level=("lm_head.weight",)),
    )


LLAMA = _decoder("llama", "Llama", extra_config=("attention_bias", "mlp_bias"))
MISTRAL = _decoder("mistral", "Mistral", extra_config=("sliding_window",))
QWEN2 = _decoder("qwen2", "Qwen2", attention_bias=True, extra_config=("use_sliding_window",))
GEMMA = _decoder("gemma", "Gemma", activation_key="hidden_activation")

