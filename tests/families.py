"""Tiny models of every recipe family, in Hugging Face ``transformers`` and keras-hub, and their
forward passes (shared by the family tests; a plain module, not a test file).

Every builder makes one matching pair: the same configuration on both sides, so that
``up.port(hf, kh)`` needs no hints. Sizes: vocabulary 100, hidden 64, 4 query heads (2 key/value
heads; Gemma 1 with head_dim 16), 2 layers. Models are in evaluation mode, dropout 0.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

np.bool = bool  # type: ignore[attr-defined]  # keras_hub (via tensorflow_text) still says np.bool

import keras  # noqa: E402
import keras_hub  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402

VOCAB, HIDDEN, HEADS, KV_HEADS, LAYERS, FFN, SEQ = 100, 64, 4, 2, 2, 128, 32

#: families keras-hub exports to transformers (``export_backbone``)
EXPORTED = ("gpt2", "llama", "mistral", "qwen2", "gemma")
#: families whose transformers model is a causal decoder (right padding)
CAUSAL = ("gpt2", "llama", "mistral", "qwen2", "gemma")


@dataclass
class Family:
    """How to build one family's tiny pair, and which transformers class its files hold."""

    name: str
    hf: Callable[..., Any]  # (**config overrides) -> transformers model
    kh: Callable[..., Any]  # (**config overrides) -> keras-hub backbone
    #: the class whose ``save_pretrained`` folder keras-hub's importer reads
    hf_task: Callable[..., Any]
    #: builds the keras-hub backbone class its exporter knows (None: not exported; Llama: Llama3Backbone)
    kh_export: Callable[..., Any] | None = None


def _eval(model: Any) -> Any:
    return model.eval()


# --- GPT-2 ---------------------------------------------------------------------------------------
def _gpt2_config(**kw: Any) -> transformers.GPT2Config:
    base = dict(vocab_size=VOCAB, n_positions=SEQ, n_embd=HIDDEN, n_layer=LAYERS, n_head=HEADS,
                resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    return transformers.GPT2Config(**{**base, **kw})


def gpt2_hf(task: bool = False, **kw: Any) -> Any:
    cls = transformers.GPT2LMHeadModel if task else transformers.GPT2Model
    return _eval(cls(_gpt2_config(**kw)))


def gpt2_kh(**kw: Any) -> Any:
    base = dict(vocabulary_size=VOCAB, num_layers=LAYERS, num_heads=HEADS, hidden_dim=HIDDEN,
                intermediate_dim=4 * HIDDEN, max_sequence_length=SEQ, dropout=0.0)
    return keras_hub.models.GPT2Backbone(**{**base, **kw})


# --- BERT ----------------------------------------------------------------------------------------
def bert_hf(task: bool = False, **kw: Any) -> Any:
    base = dict(vocab_size=VOCAB, hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                intermediate_size=FFN, max_position_embeddings=SEQ, type_vocab_size=2, hidden_act="gelu_new",
                hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    return _eval(transformers.BertModel(transformers.BertConfig(**{**base, **kw})))


def bert_kh(**kw: Any) -> Any:
    base = dict(vocabulary_size=VOCAB, num_layers=LAYERS, num_heads=HEADS, hidden_dim=HIDDEN,
                intermediate_dim=FFN, max_sequence_length=SEQ, num_segments=2, dropout=0.0)
    return keras_hub.models.BertBackbone(**{**base, **kw})


# --- Llama, Mistral, Qwen2 -----------------------------------------------------------------------
_DECODER_HF = dict(vocab_size=VOCAB, hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                   num_key_value_heads=KV_HEADS, intermediate_size=FFN, max_position_embeddings=SEQ,
                   rms_norm_eps=1e-6, attention_dropout=0.0)
_DECODER_KH = dict(vocabulary_size=VOCAB, num_layers=LAYERS, num_query_heads=HEADS, num_key_value_heads=KV_HEADS,
                   hidden_dim=HIDDEN, intermediate_dim=FFN, layer_norm_epsilon=1e-6, dropout=0.0)


def llama_hf(task: bool = True, **kw: Any) -> Any:
    config = transformers.LlamaConfig(**{**_DECODER_HF, "tie_word_embeddings": False, **kw})
    cls = transformers.LlamaForCausalLM if task else transformers.LlamaModel
    return _eval(cls(config))


def llama_kh(**kw: Any) -> Any:
    return keras_hub.models.LlamaBackbone(**{**_DECODER_KH, **kw})


def llama3_kh(**kw: Any) -> Any:
    return keras_hub.models.Llama3Backbone(**{**_DECODER_KH, **kw})


def mistral_hf(task: bool = True, **kw: Any) -> Any:
    config = transformers.MistralConfig(**{**_DECODER_HF, "tie_word_embeddings": False, "sliding_window": 512,
                                           "head_dim": HIDDEN // HEADS, **kw})
    cls = transformers.MistralForCausalLM if task else transformers.MistralModel
    return _eval(cls(config))


def mistral_kh(**kw: Any) -> Any:
    return keras_hub.models.MistralBackbone(**{**_DECODER_KH, "sliding_window": 512, **kw})


def qwen2_hf(task: bool = True, **kw: Any) -> Any:
    config = transformers.Qwen2Config(**{**_DECODER_HF, "tie_word_embeddings": True, "use_sliding_window": False,
                                         **kw})
    cls = transformers.Qwen2ForCausalLM if task else transformers.Qwen2Model
    return _eval(cls(config))


def qwen2_kh(**kw: Any) -> Any:
    return keras_hub.models.QwenBackbone(**{**_DECODER_KH, **kw})


# --- Gemma ---------------------------------------------------------------------------------------
GEMMA_HEAD_DIM, GEMMA_KV_HEADS = 16, 1


def gemma_hf(task: bool = True, **kw: Any) -> Any:
    config = transformers.GemmaConfig(**{**_DECODER_HF, "num_key_value_heads": GEMMA_KV_HEADS,
                                         "head_dim": GEMMA_HEAD_DIM, "hidden_act": "gelu_pytorch_tanh",
                                         "tie_word_embeddings": True, **kw})
    cls = transformers.GemmaForCausalLM if task else transformers.GemmaModel
    return _eval(cls(config))


def gemma_kh(**kw: Any) -> Any:
    base = {**_DECODER_KH, "num_key_value_heads": GEMMA_KV_HEADS, "head_dim": GEMMA_HEAD_DIM,
            "intermediate_dim": 2 * FFN}
    return keras_hub.models.GemmaBackbone(**{**base, **kw})


FAMILIES: dict[str, Family] = {
    "gpt2": Family("gpt2", gpt2_hf, gpt2_kh, lambda **kw: gpt2_hf(task=True, **kw), gpt2_kh),
    "bert": Family("bert", bert_hf, bert_kh, bert_hf),
    "llama": Family("llama", llama_hf, llama_kh, llama_hf, llama3_kh),
    "mistral": Family("mistral", mistral_hf, mistral_kh, mistral_hf, mistral_kh),
    "qwen2": Family("qwen2", qwen2_hf, qwen2_kh, qwen2_hf, qwen2_kh),
    "gemma": Family("gemma", gemma_hf, gemma_kh, gemma_hf, gemma_kh),
}


# --- inputs and forward passes -------------------------------------------------------------------
def inputs(family: str, batch: int = 2, length: int = 10, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Token ids and a padding mask; the second row is padded on the right (last 3 positions)."""
    ids = np.random.RandomState(seed).randint(1, VOCAB, (batch, length)).astype("int32")
    mask = np.ones_like(ids)
    mask[1, length - 3:] = 0
    return ids, mask


def hf_hidden(model: Any, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The last hidden state of a transformers model (the base model of a task model)."""
    base = getattr(model, "base_model", model)
    kwargs: dict[str, Any] = {"input_ids": torch.tensor(ids, dtype=torch.long),
                              "attention_mask": torch.tensor(mask, dtype=torch.long)}
    if isinstance(base, transformers.BertModel):
        kwargs["token_type_ids"] = torch.zeros_like(kwargs["input_ids"])
    with torch.no_grad():
        return base(**kwargs).last_hidden_state.float().numpy()


def kh_hidden(backbone: Any, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The sequence output of a keras-hub backbone."""
    feed = {"token_ids": ids, "padding_mask": mask}
    if "segment_ids" in [i.name for i in backbone.inputs] or isinstance(backbone, keras_hub.models.BertBackbone):
        feed["segment_ids"] = np.zeros_like(ids)
    out = backbone(feed, training=False)
    if isinstance(out, dict):
        out = out["sequence_output"]
    return np.asarray(keras.ops.convert_to_numpy(out), dtype="float32")


def max_diff(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """The largest absolute difference over the positions the mask keeps."""
    keep = mask.astype(bool)
    return float(np.abs(a[keep] - b[keep]).max())


def perturb(backbone: Any, seed: int = 1, scale: float = 0.05) -> None:
    """Give every keras weight fresh distinct values (fresh keras-hub decoders draw their key and
    value kernels from one seeded initializer, so a key/value swap would go unseen)."""
    rng = np.random.RandomState(seed)
    for v in backbone.weights:
        value = np.asarray(keras.ops.convert_to_numpy(v.value), dtype="float32")
        v.assign((value + rng.normal(size=value.shape) * scale).astype(v.dtype))


def keras_by_native(backbone: Any) -> dict[str, np.ndarray]:
    """Every variable of a keras model, by its path."""
    return {v.path: np.asarray(keras.ops.convert_to_numpy(v.value)) for v in backbone.weights}


def hf_state(model: Any) -> dict[str, np.ndarray]:
    return {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
