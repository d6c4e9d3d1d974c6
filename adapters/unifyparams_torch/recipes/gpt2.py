"""GPT-2 in ``transformers`` (``Conv1D`` weights are stored ``(in, out)`` in its files)."""

from __future__ import annotations

from unifyparams.recipes import HFFiles, Recipe

from .common import _identity, hf_config

_GPT2_LAYER = [
    "ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias", "attn.c_proj.weight", "attn.c_proj.bias",
    "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias",
]
GPT2 = Recipe(
    family="gpt2", library="transformers", models=("GPT2Model", "GPT2LMHeadModel"),
    tensors=_identity(["wte.weight", "wpe.weight", *(f"h.{{i}}.{n}" for n in _GPT2_LAYER), "ln_f.weight", "ln_f.bias"]),
    config={
        **_identity(["vocab_size", "n_positions", "n_embd", "n_layer", "n_head", "activation_function",
                     "layer_norm_epsilon", "scale_attn_by_inverse_layer_idx", "tie_word_embeddings"]),
        "n_inner": lambda c: c.get("n_inner") or 4 * c["n_embd"],
    },
    prefixes=("transformer.",), read_config=hf_config,
    hf=HFFiles(
        model_type="gpt2", architecture="GPT2LMHeadModel",
        stored_transposed=tuple(f"h.{{i}}.{n}" for n in ("attn.c_attn.weight", "attn.c_proj.weight",
                                                          "mlp.c_fc.weight", "mlp.c_proj.weight")),
        defaults={"n_ctx": None},
    ),
)

