"""Every recipe family between Hugging Face ``transformers`` and keras-hub: ``up.port`` with no
hints, both ways, checked against the models' outputs and against keras-hub's own converter
(``from_preset`` of a ``save_pretrained`` folder) and exporter (``export_backbone``).

Hidden states agree within an absolute 1e-4 over the unpadded positions (the second row of the
inputs is right-padded). Each family's pair is built once per module.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import unifyparams as up

from . import families as F

pytestmark = [pytest.mark.keras, pytest.mark.torch]

keras_hub = F.keras_hub
ATOL = 1e-4
NAMES = list(F.FAMILIES)


def _hidden_diff(family: str, hf: Any, kh: Any) -> float:
    ids, mask = F.inputs(family)
    return F.max_diff(F.hf_hidden(hf, ids, mask), F.kh_hidden(kh, ids, mask), mask)


@pytest.fixture(scope="module", params=NAMES)
def hf_to_kh(request: pytest.FixtureRequest) -> tuple[str, Any, Any, Any]:
    """A family's transformers model (its task model where it has an output head) ported into a
    fresh keras-hub backbone."""
    family = F.FAMILIES[request.param]
    hf, kh = family.hf_task(), family.kh()
    report = up.port(hf, kh)
    return request.param, hf, kh, report


@pytest.fixture(scope="module", params=NAMES)
def kh_to_hf(request: pytest.FixtureRequest) -> tuple[str, Any, Any, Any]:
    """A keras-hub backbone with fresh distinct values ported into a fresh transformers model."""
    family = F.FAMILIES[request.param]
    kh = family.kh()
    F.perturb(kh)
    hf = family.hf_task()
    report = up.port(kh, hf)
    return request.param, hf, kh, report


def _lm_head_check(hf: Any, kh: Any) -> None:
    """An untied output embedding lands in keras-hub's reverse embeddings (not seen by hidden states)."""
    state = F.hf_state(hf)
    weights = F.keras_by_native(kh)
    if "lm_head.weight" in state and "token_embedding/reverse_embeddings" in weights:
        np.testing.assert_array_equal(weights["token_embedding/reverse_embeddings"].T, state["lm_head.weight"])


def test_hf_to_keras_hub(hf_to_kh: tuple[str, Any, Any, Any]) -> None:
    family, hf, kh, report = hf_to_kh
    assert report.match.startswith("recipe:"), report.match
    assert report.applied and not report.problems, report.problems
    assert _hidden_diff(family, hf, kh) < ATOL
    _lm_head_check(hf, kh)


def test_keras_hub_to_hf(kh_to_hf: tuple[str, Any, Any, Any]) -> None:
    family, hf, kh, report = kh_to_hf
    assert report.match.startswith("recipe:"), report.match
    assert report.applied and not report.problems, report.problems
    assert _hidden_diff(family, hf, kh) < ATOL
    _lm_head_check(hf, kh)


@pytest.mark.parametrize("family, tied", [("llama", True), ("qwen2", False)])
@pytest.mark.parametrize("direction", ["hf_to_kh", "kh_to_hf"])
def test_other_tie_setting(family: str, tied: bool, direction: str) -> None:
    """The tie setting the default pair does not use: tied Llama, untied Qwen2."""
    spec = F.FAMILIES[family]
    hf, kh = spec.hf_task(tie_word_embeddings=tied), spec.kh(tie_word_embeddings=tied)
    if direction == "hf_to_kh":
        report = up.port(hf, kh)
    else:
        F.perturb(kh)
        report = up.port(kh, hf)
    assert report.match.startswith("recipe:") and not report.problems, report.problems
    state = F.hf_state(hf)
    tied_now = np.array_equal(state["lm_head.weight"], state["model.embed_tokens.weight"])
    assert tied_now == tied
    assert _hidden_diff(family, hf, kh) < ATOL
    _lm_head_check(hf, kh)


# --- keras-hub's own converter and exporter -------------------------------------------------------
#: the Mistral importer casts every tensor to float16
_FLOAT16 = {"mistral"}


def test_same_values_as_keras_hub_importer(hf_to_kh: tuple[str, Any, Any, Any], tmp_path: Any) -> None:
    family, hf, ours, _ = hf_to_kh
    hf.save_pretrained(str(tmp_path))
    # keras-hub's Qwen importer passes `use_sliding_window` where the backbone takes
    # `use_sliding_window_attention`: a sliding-window Qwen2 loads without its window (not tested here)
    theirs = type(ours).from_preset(str(tmp_path))
    mine, converted = F.keras_by_native(ours), F.keras_by_native(theirs)
    assert set(converted) == set(mine)
    for name, value in converted.items():
        if family in _FLOAT16:
            np.testing.assert_array_equal(value.astype("float16"), mine[name].astype("float16"), err_msg=name)
        else:
            np.testing.assert_array_equal(value, mine[name], err_msg=name)


@pytest.mark.parametrize("family", F.EXPORTED)
def test_same_values_as_keras_hub_exporter(family: str, tmp_path: Any) -> None:
    from keras_hub.src.utils.transformers.export.hf_exporter import export_backbone
    from safetensors.numpy import load_file

    spec = F.FAMILIES[family]
    assert spec.kh_export is not None
    kh = spec.kh_export()
    F.perturb(kh)
    export_backbone(kh, str(tmp_path), include_lm_head=True)
    exported = load_file(str(tmp_path / "model.safetensors"))
    hf = spec.hf_task()
    report = up.port(kh, hf)
    assert report.match.startswith("recipe:") and not report.problems, report.problems
    state = F.hf_state(hf)
    prefix = "transformer." if family == "gpt2" else ""
    for name, value in exported.items():
        key = prefix + name if prefix + name in state else name
        assert key in state, name
        # GPT-2's Conv1D weights are (in, out) in files and in its state dict alike
        np.testing.assert_array_equal(value.astype("float32"), state[key], err_msg=name)


# --- problems and reports -------------------------------------------------------------------------
@pytest.mark.parametrize("family, hf_config, key", [
    ("llama", {"rms_norm_eps": 1e-5}, "rms_norm_eps"),
    ("mistral", {"sliding_window": 4096}, "sliding_window"),
    ("qwen2", {"use_sliding_window": True}, "use_sliding_window"),
    ("gemma", {"hidden_act": "silu"}, "hidden_act"),
])
def test_config_mismatch_is_a_problem(family: str, hf_config: dict[str, Any], key: str) -> None:
    spec = F.FAMILIES[family]
    hf, kh = spec.hf_task(**hf_config), spec.kh()
    before = F.keras_by_native(kh)
    with pytest.raises(up.PortError, match=key):
        up.port(hf, kh)
    after = F.keras_by_native(kh)
    for name, value in before.items():
        np.testing.assert_array_equal(after[name], value, err_msg=name)
    report = up.port(hf, kh, dry_run=True, strict=False)
    assert any(key in p for p in report.problems), report.problems
    assert not report.applied


def test_exact_gelu_is_a_warning_not_a_problem() -> None:
    hf, kh = F.bert_hf(hidden_act="gelu"), F.bert_kh()
    report = up.port(hf, kh, dry_run=True, strict=False)
    assert not report.problems, report.problems
    assert any("hidden_act" in w for w in report.warnings), report.warnings


def test_dry_run_shows_the_split_of_gpt2_c_attn() -> None:
    hf, kh = F.gpt2_hf(), F.gpt2_kh()
    report = up.port(hf, kh, dry_run=True)
    assert not report.applied
    rows = [r for r in report.rows if "h.0.attn.c_attn.weight" in r.source]
    assert [r.conversion for r in rows] == [f"part {k} of 3 along axis 0" for k in (1, 2, 3)], rows


# --- RoBERTa: positions from row 2, the token-type row folded in ------------------------------------
def _roberta_pair(type_row: float = 0.05) -> tuple[Any, Any]:
    import torch

    config = F.transformers.RobertaConfig(
        vocab_size=F.VOCAB, hidden_size=F.HIDDEN, num_hidden_layers=F.LAYERS, num_attention_heads=F.HEADS,
        intermediate_size=F.FFN, max_position_embeddings=F.SEQ + 2, type_vocab_size=1, pad_token_id=1,
        layer_norm_eps=1e-5, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    torch.manual_seed(0)
    hf = F.transformers.RobertaModel(config, add_pooling_layer=False).eval()
    with torch.no_grad():  # a non-zero token-type row, so that folding it matters
        hf.embeddings.token_type_embeddings.weight.normal_(0.0, type_row) if type_row else \
            hf.embeddings.token_type_embeddings.weight.zero_()
    kh = keras_hub.models.RobertaBackbone(vocabulary_size=F.VOCAB, num_layers=F.LAYERS, num_heads=F.HEADS,
                                          hidden_dim=F.HIDDEN, intermediate_dim=F.FFN, max_sequence_length=F.SEQ,
                                          dropout=0.0)
    return hf, kh


def _roberta_inputs() -> tuple[np.ndarray, np.ndarray]:
    ids, mask = F.inputs("roberta")
    ids = np.where(ids == 1, 2, ids)  # 1 is RoBERTa's padding id: only at padded positions
    ids[mask == 0] = 1
    return ids, mask


@pytest.mark.parametrize("direction", ["hf_to_kh", "kh_to_hf"])
def test_roberta_both_ways(direction: str) -> None:
    hf, kh = _roberta_pair()
    if direction == "hf_to_kh":
        report = up.port(hf, kh)
    else:
        F.perturb(kh)
        report = up.port(kh, hf)
    assert report.match.startswith("recipe:roberta")
    ids, mask = _roberta_inputs()
    assert F.max_diff(F.hf_hidden(hf, ids, mask), F.kh_hidden(kh, ids, mask), mask) < ATOL


def test_roberta_same_values_as_keras_hub_importer(tmp_path: Any) -> None:
    """keras-hub's importer drops position rows 0-1 and ignores the token-type row: on a checkpoint
    whose token-type row is zero (as released RoBERTa checkpoints' is) both write the same values."""
    import torch
    import transformers

    hf, kh = _roberta_pair()
    task = transformers.RobertaForMaskedLM(hf.config)  # the importer wants the task model's key prefix
    with torch.no_grad():
        task.roberta.embeddings.token_type_embeddings.weight.zero_()
    task.save_pretrained(tmp_path / "hf")
    hf = transformers.RobertaModel.from_pretrained(tmp_path / "hf", add_pooling_layer=False).eval()
    up.port(hf, kh)
    theirs = F.keras_by_native(keras_hub.models.RobertaBackbone.from_preset(str(tmp_path / "hf")))
    ours = F.keras_by_native(kh)
    assert ours.keys() == theirs.keys()
    for name in ours:
        np.testing.assert_array_equal(ours[name], theirs[name], err_msg=name)
