"""gluonnlp 0.10's BERT and RoBERTa against ``transformers``' by their family recipes, no hints.

Tiny models (64 units, 2 layers, 4 heads), eval mode, a padded batch: gluonnlp's
``valid_length`` against ``transformers``' ``attention_mask``; padded positions are not compared.
RoBERTa's position tables differ by a row offset with the token-type row folded in
(adapters/unifyparams_gluon/recipes.py: ``Rows`` and ``Zeros``): ported exactly both ways; a
transformers RoBERTa with another ``pad_token_id`` is refused.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import unifyparams as up
from unifyparams_gluon import import_mxnet

pytestmark = [pytest.mark.gluon, pytest.mark.torch]

mx = import_mxnet()
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
gnlp = pytest.importorskip("gluonnlp")

UNITS, HIDDEN, LAYERS, HEADS, VOCAB, MAX_LEN = 64, 128, 2, 4, 100, 32
ATOL = 1e-4


@pytest.fixture(scope="module")
def batch() -> dict[str, np.ndarray]:
    rs = np.random.RandomState(0)
    ids = rs.randint(3, VOCAB, (2, 12))  # no RoBERTa padding id (1) inside the sequences
    valid = np.array([12, 8])
    mask = (np.arange(12)[None, :] < valid[:, None]).astype(np.int64)
    return {"ids": ids, "types": rs.randint(0, 2, (2, 12)), "valid": valid, "mask": mask}


def _encoder(layers: int = LAYERS, eps: float = 1e-12) -> Any:
    return gnlp.model.BERTEncoder(num_layers=layers, units=UNITS, hidden_size=HIDDEN, max_length=MAX_LEN,
                                  num_heads=HEADS, dropout=0.0, layer_norm_eps=eps)


def gluon_bert(*, layers: int = LAYERS, eps: float = 1e-12, forward: bool = True) -> Any:
    model = gnlp.model.BERTModel(_encoder(layers, eps), vocab_size=VOCAB, token_type_vocab_size=2, units=UNITS,
                                 embed_size=UNITS, use_pooler=True, use_decoder=False, use_classifier=False)
    model.initialize(mx.init.Normal(0.02))
    if forward:
        model(mx.nd.zeros((1, 4)), mx.nd.zeros((1, 4)), mx.nd.array([4]))
    return model


def gluon_roberta(*, forward: bool = True) -> Any:
    model = gnlp.model.RoBERTaModel(_encoder(eps=1e-5), vocab_size=VOCAB, units=UNITS, embed_size=UNITS,
                                    use_decoder=False)
    model.initialize(mx.init.Normal(0.02))
    if forward:
        model(mx.nd.zeros((1, 4)), mx.nd.array([4]))
    return model


def hf_bert(seed: int = 0, **overrides: Any) -> Any:
    torch.manual_seed(seed)
    config = transformers.BertConfig(
        vocab_size=VOCAB, hidden_size=UNITS, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
        intermediate_size=HIDDEN, max_position_embeddings=MAX_LEN, type_vocab_size=2, **overrides)
    return transformers.BertModel(config).eval()


def hf_roberta(seed: int = 0, *, pooler: bool = False) -> Any:
    torch.manual_seed(seed)
    config = transformers.RobertaConfig(
        vocab_size=VOCAB, hidden_size=UNITS, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
        intermediate_size=HIDDEN, max_position_embeddings=MAX_LEN + 2, type_vocab_size=1, pad_token_id=1,
        layer_norm_eps=1e-5)
    model = transformers.RobertaModel(config, add_pooling_layer=pooler).eval()
    with torch.no_grad():  # a trained-looking token-type row, so that folding it matters
        model.embeddings.token_type_embeddings.weight.normal_(0.0, 0.05)
    return model


def randomize(model: Any, seed: int) -> None:
    """Every Gluon parameter gets its own random values."""
    rs = np.random.RandomState(seed)
    for p in model.collect_params().values():
        value = p.data().asnumpy()
        p.set_data(mx.nd.array(value + rs.normal(0.0, 0.05, value.shape).astype(np.float32)))


def snapshot(model: Any) -> dict[str, np.ndarray]:
    return {k: p.numpy().copy() for k, p in up.params(model).items()}


def same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def run_hf(model: Any, batch: dict[str, np.ndarray], *, types: bool = True) -> Any:
    kwargs = {"input_ids": torch.tensor(batch["ids"]), "attention_mask": torch.tensor(batch["mask"])}
    if types:
        kwargs["token_type_ids"] = torch.tensor(batch["types"])
    with torch.no_grad():
        return model(**kwargs)


def run_bert(model: Any, batch: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    seq, pooled = model(mx.nd.array(batch["ids"]), mx.nd.array(batch["types"]), mx.nd.array(batch["valid"]))
    return seq.asnumpy(), pooled.asnumpy()


def run_roberta(model: Any, batch: dict[str, np.ndarray]) -> np.ndarray:
    return model(mx.nd.array(batch["ids"]), mx.nd.array(batch["valid"])).asnumpy()


def masked_diff(a: np.ndarray, b: np.ndarray, batch: dict[str, np.ndarray]) -> float:
    keep = batch["mask"].astype(bool)
    return float(np.abs(a[keep] - b[keep]).max())


# --------------------------------------------------------------------------------------------- BERT


def test_bert_hf_to_gluonnlp(batch: dict[str, np.ndarray]) -> None:
    hf, g = hf_bert(), gluon_bert()
    report = up.port(hf, g)
    assert report.match.startswith("recipe:bert"), report.match
    assert report.applied and not report.problems and not report.warnings, (report.problems, report.warnings)
    out = run_hf(hf, batch)
    seq, pooled = run_bert(g, batch)
    assert masked_diff(out.last_hidden_state.numpy(), seq, batch) < ATOL
    assert np.abs(out.pooler_output.numpy() - pooled).max() < ATOL


def test_bert_gluonnlp_to_hf(batch: dict[str, np.ndarray]) -> None:
    g = gluon_bert()
    randomize(g, seed=1)
    hf = hf_bert(seed=5)
    report = up.port(g, hf)
    assert report.match.startswith("recipe:bert"), report.match
    assert report.applied and not report.problems, report.problems
    out = run_hf(hf, batch)
    seq, pooled = run_bert(g, batch)
    assert masked_diff(out.last_hidden_state.numpy(), seq, batch) < ATOL
    assert np.abs(out.pooler_output.numpy() - pooled).max() < ATOL


def test_bert_into_deferred_gluonnlp(batch: dict[str, np.ndarray]) -> None:
    """A freshly initialized gluonnlp model (Dense input sizes still unknown): the port fills it."""
    hf, g = hf_bert(), gluon_bert(forward=False)
    report = up.port(hf, g)
    assert report.match.startswith("recipe:bert") and report.applied and not report.problems, report.problems
    out = run_hf(hf, batch)
    seq, pooled = run_bert(g, batch)
    assert masked_diff(out.last_hidden_state.numpy(), seq, batch) < ATOL
    assert np.abs(out.pooler_output.numpy() - pooled).max() < ATOL


@pytest.mark.parametrize(("gluon", "key"), [({"layers": 3}, "num_hidden_layers"), ({"eps": 1e-5}, "layer_norm_eps")])
def test_bert_config_mismatch_refused(gluon: dict[str, Any], key: str) -> None:
    hf, g = hf_bert(), gluon_bert(**gluon)
    before, hf_before = snapshot(g), snapshot(hf)
    with pytest.raises(up.PortError, match=key):
        up.port(hf, g)
    with pytest.raises(up.PortError, match=key):
        up.port(g, hf)
    assert same(before, snapshot(g)) and same(hf_before, snapshot(hf))


def test_bert_gelu_variant_refused() -> None:
    """gluonnlp's 'gelu' is the exact (erf) GELU: a tanh-GELU transformers BERT is another function."""
    hf, g = hf_bert(hidden_act="gelu_new"), gluon_bert()
    before = snapshot(g)
    with pytest.raises(up.PortError, match="hidden_act"):
        up.port(hf, g)
    assert same(before, snapshot(g))


# ------------------------------------------------------------------------------------------ RoBERTa


def test_roberta_hf_to_gluonnlp(batch: dict[str, np.ndarray]) -> None:
    hf, g = hf_roberta(), gluon_roberta()
    report = up.port(hf, g)
    assert report.match == "recipe:roberta (transformers -> gluonnlp)", report.match
    row = next(r for r in report.rows if r.destination == "encoder.position_weight")
    assert row.conversion == f"rows 2:{MAX_LEN + 2} + embeddings.token_type_embeddings.weight[0]"
    out = run_hf(hf, batch, types=False)
    assert masked_diff(out.last_hidden_state.numpy(), run_roberta(g, batch), batch) < ATOL


def test_roberta_gluonnlp_to_hf(batch: dict[str, np.ndarray]) -> None:
    g = gluon_roberta()
    randomize(g, seed=2)
    hf = hf_roberta(seed=7)
    report = up.port(g, hf)
    assert report.applied and report.match.startswith("recipe:roberta")
    np.testing.assert_array_equal(hf.embeddings.token_type_embeddings.weight.detach().numpy(), 0.0)
    out = run_hf(hf, batch, types=False)
    assert masked_diff(out.last_hidden_state.numpy(), run_roberta(g, batch), batch) < ATOL


def test_roberta_with_another_position_offset_is_refused() -> None:
    hf, g = hf_roberta(), gluon_roberta()
    hf.config.pad_token_id = 0  # positions would start at row 1
    before = snapshot(g)
    with pytest.raises(up.PortError, match="position_offset is 1 in the source"):
        up.port(hf, g)
    assert same(before, snapshot(g))


def test_roberta_pooler_has_no_gluonnlp_counterpart() -> None:
    """gluonnlp's RoBERTa has no pooler: porting it into a transformers RoBERTa with one says so."""
    g, hf = gluon_roberta(), hf_roberta(pooler=True)
    report = up.port(g, hf, strict=False, dry_run=True)
    assert any("pooler.dense.weight" in p for p in report.problems), report.problems


def test_roberta_into_deferred_gluonnlp() -> None:
    hf, g = hf_roberta(), gluon_roberta(forward=False)
    report = up.port(hf, g)
    assert report.applied and not report.problems, report.problems
    ps = up.params(g)
    np.testing.assert_array_equal(ps["encoder.transformer_cells.1.ffn.ffn_2.weight"].numpy(),
                                  hf.encoder.layer[1].output.dense.weight.detach().numpy())


# ---------------------------------------------------------------------------- transformers folders


def test_bert_folder_round_trip_through_gluonnlp(batch: dict[str, np.ndarray], tmp_path: Any) -> None:
    hf = hf_bert(hidden_act="gelu")
    hf.save_pretrained(tmp_path / "hf")
    g = gluon_bert()
    report = up.load(g, tmp_path / "hf")
    assert report.port.match == "recipe:bert (transformers -> gluonnlp)"
    randomize(g, seed=4)
    folder = up.save(g, tmp_path / "out", format="transformers")
    back = transformers.AutoModel.from_pretrained(folder).eval()
    seq, pooled = run_bert(g, batch)
    out = run_hf(back, batch)
    assert masked_diff(out.last_hidden_state.numpy(), seq, batch) < ATOL
    np.testing.assert_allclose(out.pooler_output.numpy(), pooled, atol=ATOL)


def test_roberta_folder_without_a_pooler_is_refused(tmp_path: Any) -> None:
    """gluonnlp's RoBERTa has no pooler; transformers' RobertaModel would fill it with random values."""
    with pytest.raises(up.CheckpointError, match="pooler.dense.weight.*random values"):
        up.save(gluon_roberta(), tmp_path / "out", format="transformers")
    assert not (tmp_path / "out" / "model.safetensors").exists()


def test_roberta_folder_from_transformers_loads_into_gluonnlp(batch: dict[str, np.ndarray], tmp_path: Any) -> None:
    hf = hf_roberta()
    hf.save_pretrained(tmp_path / "hf")
    g = gluon_roberta()
    up.load(g, tmp_path / "hf")
    out = run_hf(hf, batch, types=False)
    assert masked_diff(out.last_hidden_state.numpy(), run_roberta(g, batch), batch) < ATOL
