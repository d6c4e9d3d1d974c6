"""Layout facts of transformer layers: Hugging Face's ``Conv1D`` and RMS norms (torch), and
``EinsumDense``, keras-hub embeddings and norms (Keras), all in PyTorch's canonical terms."""

from __future__ import annotations

import numpy as np

np.bool = bool  # type: ignore[attr-defined]  # keras_hub (via tensorflow_text) still says np.bool

import keras  # noqa: E402
import keras_hub  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402

import unifyparams as up  # noqa: E402
from unifyparams.layouts import Transpose  # noqa: E402
from unifyparams_keras import einsum  # noqa: E402


def _gpt2(seed: int = 0) -> transformers.GPT2Model:
    torch.manual_seed(seed)
    config = transformers.GPT2Config(vocab_size=100, n_positions=32, n_embd=64, n_layer=2, n_head=4)
    return transformers.GPT2Model(config).eval()


def _llama() -> transformers.LlamaForCausalLM:
    config = transformers.LlamaConfig(vocab_size=100, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                      num_key_value_heads=2, intermediate_size=128)
    return transformers.LlamaForCausalLM(config).eval()


# --- torch: Hugging Face Conv1D ---------------------------------------------------------------
@pytest.mark.torch
def test_hf_conv1d_is_a_transposed_dense():
    model = _gpt2()
    ps = up.params(model)
    for name, (out, inp) in {"h.0.attn.c_attn": (192, 64), "h.0.attn.c_proj": (64, 64),
                             "h.0.mlp.c_fc": (256, 64), "h.0.mlp.c_proj": (64, 256)}.items():
        w, b = ps[name + ".weight"], ps[name + ".bias"]
        assert w.shape == (out, inp) and w.layout.tag == "transpose(1,0)" and w.role == up.Role.WEIGHT
        assert b.shape == (out,) and b.layout.is_identity and b.role == up.Role.BIAS
        assert w.adapter.layer_family(w.slot.block) == "dense"
        np.testing.assert_array_equal(w.numpy(), w.slot.block.weight.detach().numpy().T)
    assert ps["wte.weight"].layout.is_identity and ps["h.0.ln_1.weight"].layout.is_identity


@pytest.mark.torch
def test_hf_conv1d_write_lands_transposed():
    model = _gpt2()
    p = up.params(model)["h.0.mlp.c_fc.weight"]
    value = np.random.default_rng(0).standard_normal((256, 64)).astype(np.float32)
    p.set(value)
    np.testing.assert_array_equal(model.h[0].mlp.c_fc.weight.detach().numpy(), value.T)
    ps = up.params(model)
    ps.load({"h.0.mlp.c_fc.weight": value * 2}, strict=False)
    np.testing.assert_array_equal(model.h[0].mlp.c_fc.weight.detach().numpy(), 2 * value.T)
    assert ps["h.0.mlp.c_fc.weight"].storage_key == ps["h.0.mlp.c_fc.weight"].storage_key


@pytest.mark.torch
def test_hf_conv1d_init_sees_canonical_fan_in():
    model = _gpt2()
    up.initialize(model, up.init.XavierUniform(), select="h.0.mlp.c_proj.weight", seed=0)
    w = up.params(model)["h.0.mlp.c_proj.weight"].numpy()
    assert w.shape == (64, 256)
    assert np.abs(w).max() <= np.sqrt(6.0 / (64 + 256)) + 1e-6


@pytest.mark.torch
def test_hf_conv1d_recognized_by_name_not_import():
    class Conv1D(torch.nn.Module):  # a stand-in with Hugging Face's layout
        def __init__(self, nf: int, nx: int):
            super().__init__()
            self.nf = nf
            self.weight = torch.nn.Parameter(torch.randn(nx, nf))
            self.bias = torch.nn.Parameter(torch.zeros(nf))

    class Mine(Conv1D):
        pass

    net = torch.nn.Sequential(Mine(3, 5), torch.nn.Conv1d(2, 3, 1))
    ps = up.params(net)
    assert ps["0.weight"].shape == (3, 5) and ps["0.weight"].layout.tag == "transpose(1,0)"
    assert ps["1.weight"].layout.is_identity and ps["1.weight"].adapter.layer_family(net[1]) == "conv1d"
    odd = Conv1D(3, 5)
    odd.nf = 4  # does not describe the weight: not a transposed linear
    assert up.params(odd)["weight"].layout.is_identity


@pytest.mark.torch
def test_hf_gpt2_save_load_round_trip(tmp_path):
    source, target = _gpt2(0), _gpt2(1)
    ids = torch.arange(10).reshape(1, 10)
    path = tmp_path / "gpt2.safetensors"
    up.save(source, path)
    up.load(target, path)
    with torch.no_grad():
        np.testing.assert_array_equal(source(ids).last_hidden_state.numpy(), target(ids).last_hidden_state.numpy())


@pytest.mark.torch
def test_hf_gpt2_to_linear_layers_by_canonical_values():
    """The canonical Conv1D weight is exactly an nn.Linear weight."""
    model = _gpt2()
    conv = model.h[0].mlp.c_fc
    p = up.params(model)["h.0.mlp.c_fc.weight"]
    linear = torch.nn.Linear(64, 256)
    up.params(linear)["weight"].set(p.numpy())
    up.params(linear)["bias"].set(up.params(model)["h.0.mlp.c_fc.bias"].numpy())
    x = torch.randn(3, 64)
    with torch.no_grad():
        np.testing.assert_allclose(linear(x).numpy(), conv(x).numpy(), rtol=1e-5, atol=1e-5)


# --- torch: RMS norms -------------------------------------------------------------------------
@pytest.mark.torch
def test_rms_norms_torch():
    model = _llama()
    ps = up.params(model)
    p = ps["model.layers.0.input_layernorm.weight"]
    adapter = p.adapter
    assert p.role == up.Role.SCALE and adapter.layer_family(p.slot.block) == "rmsnorm"
    assert adapter.layer_config(p.slot.block) == {"eps": pytest.approx(1e-6)}
    assert adapter.layer_family(ps["model.layers.0.self_attn.q_proj.weight"].slot.block) == "dense"
    norm = torch.nn.RMSNorm(8, eps=1e-5)
    assert up.params(norm)["weight"].role == up.Role.SCALE
    assert adapter.layer_family(norm) == "rmsnorm" and adapter.layer_config(norm) == {"eps": 1e-5}
    assert adapter.layer_config(torch.nn.RMSNorm(8)) == {}  # eps=None: from the dtype at run time

    class MyRMSNorm(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = torch.nn.Parameter(torch.ones(4))
            self.variance_epsilon = 1e-7

    assert adapter.layer_family(MyRMSNorm()) == "rmsnorm" and adapter.layer_config(MyRMSNorm()) == {"eps": 1e-7}
    assert adapter.layer_family(torch.nn.LayerNorm(4)) == "layernorm"


# --- Keras: EinsumDense -----------------------------------------------------------------------
EQUATIONS = [
    ("abc,cde->abde", (5, 7, 8), (4, 6), "de"),      # query (hidden -> heads, head_dim)
    ("abcd,cde->abe", (5, 7, 4, 6), (8,), "e"),      # attention output (heads, head_dim -> hidden)
    ("btd,ndh->btnh", (5, 7, 8), (4, 6), "nh"),      # Gemma query
    ("btnh,nhd->btd", (5, 7, 4, 6), (8,), "d"),      # Gemma output
    ("abc,cd->abd", (5, 7, 8), (6,), "d"),           # feed-forward
    ("...c,cd->...d", (5, 7, 8), (6,), "d"),         # an ellipsis
]


def _einsum_layer(equation: str, in_shape: tuple[int, ...], out_tail: tuple[int, ...], bias: str | None):
    # Keras's output_shape leaves out the first (batch) axis; "..." stands for the leading axes
    n_output = len(equation.split("->")[1].replace("...", ""))
    out_shape = out_tail if "..." in equation else (None,) * (n_output - 1 - len(out_tail)) + out_tail
    layer = keras.layers.EinsumDense(equation, output_shape=out_shape, bias_axes=bias)
    layer.build(in_shape)
    return layer


@pytest.mark.keras
@pytest.mark.parametrize("equation, in_shape, out_tail, bias_axes", EQUATIONS)
def test_einsum_dense_is_a_linear_map(equation, in_shape, out_tail, bias_axes):
    rng = np.random.default_rng(0)
    layer = _einsum_layer(equation, in_shape, out_tail, bias_axes)
    ps = up.params(layer)
    assert list(ps) == ["weight", "bias"]
    w, b = ps["weight"], ps["bias"]
    assert w.role == up.Role.WEIGHT and b.role == up.Role.BIAS
    assert w.adapter.layer_family(layer) == "dense"
    spec = einsum.parse(equation)
    n_batch = len(spec.input) - len(spec.in_axes) + (1 if "..." in equation else 0)
    n_in = int(np.prod(in_shape[n_batch:])) if "..." not in equation else in_shape[-1]
    n_out = int(np.prod(out_tail))
    assert w.shape == (n_out, n_in) and b.shape == (n_out,)
    w.set(rng.standard_normal(w.shape).astype(np.float32))
    b.set(rng.standard_normal(b.shape).astype(np.float32))
    x = rng.standard_normal(in_shape).astype(np.float32)
    y = np.asarray(keras.ops.convert_to_numpy(layer(x)))
    # move the kernel's input axes last (input order), flatten them; the output's features likewise
    x_axes = [spec.input.index(a) for a in spec.input if a not in spec.kernel]
    x_in = [spec.input.index(a) for a in spec.in_axes]
    x_flat = x.transpose(x_axes + x_in).reshape(-1, n_in) if "..." not in equation else x.reshape(-1, n_in)
    y_axes = [spec.output.index(a) for a in spec.output if a not in spec.kernel]
    y_out = [spec.output.index(a) for a in spec.out_axes]
    y_flat = y.transpose(y_axes + y_out).reshape(-1, n_out) if "..." not in equation else y.reshape(-1, n_out)
    np.testing.assert_allclose(x_flat @ w.numpy().T + b.numpy(), y_flat, rtol=1e-4, atol=1e-4)


@pytest.mark.keras
def test_einsum_dense_partial_bias_and_batched_equations_keep_their_names():
    layer = _einsum_layer("abc,cde->abde", (2, 3, 8), (4, 6), "e")  # bias over one of two out axes
    ps = up.params(layer)
    assert ps["weight"].shape == (24, 8)
    assert list(ps) == ["weight", "bias"]  # the bias keeps its own name: it is not the whole output
    assert ps["bias"].layout.is_identity and ps["bias"].shape == (6,) and ps["bias"].role == up.Role.BIAS
    assert einsum.parse("bquh,bkuh->buqk") is None and einsum.parse("ab,bc->ac,x") is None
    assert einsum.parse("abc,cd->ab") is None  # a kernel axis summed on its own
    batched = keras.layers.EinsumDense("abc,acd->abd", output_shape=(None, 5))
    batched.build((2, 3, 4))
    ps = up.params(batched)
    assert list(ps) == ["_kernel"] and ps["_kernel"].layout.is_identity
    assert ps["_kernel"].adapter.layer_family(batched) == ""


# --- Keras: keras-hub models ------------------------------------------------------------------
def _gpt2_backbone() -> keras_hub.models.GPT2Backbone:
    return keras_hub.models.GPT2Backbone(vocabulary_size=100, num_layers=2, num_heads=4, hidden_dim=64,
                                         intermediate_dim=256, max_sequence_length=32)


def _llama_backbone() -> keras_hub.models.LlamaBackbone:
    return keras_hub.models.LlamaBackbone(vocabulary_size=100, num_layers=2, num_query_heads=4,
                                          num_key_value_heads=2, hidden_dim=64, intermediate_dim=128)


@pytest.mark.keras
def test_keras_hub_gpt2_names_attention_first_and_embeddings():
    model = _gpt2_backbone()
    ps = up.params(model)
    layer = [n[2:] for n in ps if n.startswith("4.")]
    assert layer[:8] == [
        "_self_attention_layer.q_proj_weight", "_self_attention_layer.q_proj_bias",
        "_self_attention_layer.k_proj_weight", "_self_attention_layer.k_proj_bias",
        "_self_attention_layer.v_proj_weight", "_self_attention_layer.v_proj_bias",
        "_self_attention_layer.out_proj.weight", "_self_attention_layer.out_proj.bias",
    ]
    assert layer[8:10] == ["_self_attention_layer_norm.weight", "_self_attention_layer_norm.bias"]
    q = ps["4._self_attention_layer.q_proj_weight"]
    assert q.shape == (64, 64) and q.layout.tag == "reshape(64, 4, 16)->(64, 64) then transpose(1,0)"
    assert q.adapter.layer_family(q.slot.block) == "attention"
    pos = ps["1.weight"]
    assert pos.shape == (32, 64) and pos.role == up.Role.WEIGHT and pos.adapter.layer_family(pos.slot.block) == "embedding"
    emb = ps["0.weight"]
    assert emb.shape == (100, 64) and emb.adapter.layer_family(emb.slot.block) == "embedding"


@pytest.mark.keras
def test_keras_hub_llama_layouts():
    model = _llama_backbone()
    ps = up.params(model)
    rev = ps["0.reverse_embeddings"]
    assert rev.shape == (100, 64) and rev.role == up.Role.WEIGHT and rev.layout.tag == "transpose(1,0)"
    np.testing.assert_array_equal(rev.numpy(), np.asarray(keras.ops.convert_to_numpy(rev.native)).T)
    q = ps["1._self_attention_layer._query_dense.weight"]
    k = ps["1._self_attention_layer._key_dense.weight"]
    o = ps["1._self_attention_layer._output_dense.weight"]
    assert (q.shape, k.shape, o.shape) == ((64, 64), (32, 64), (64, 64))
    assert q.adapter.layer_family(q.slot.block) == "dense"
    norm = ps["1._self_attention_layernorm.weight"]
    assert norm.role == up.Role.SCALE and norm.adapter.layer_family(norm.slot.block) == "rmsnorm"
    assert norm.adapter.layer_config(norm.slot.block) == {"eps": pytest.approx(1e-6)}
    assert [n for n in ps if n.startswith("1.")][0].startswith("1._self_attention_layer.")
    # a write through the canonical view lands in the native (hidden, heads, head_dim) kernel
    value = np.arange(64 * 64, dtype=np.float32).reshape(64, 64)
    q.set(value)
    native = np.asarray(keras.ops.convert_to_numpy(q.native))
    np.testing.assert_array_equal(native, value.reshape(4, 16, 64).transpose(2, 0, 1))


@pytest.mark.keras
def test_keras_hub_llama_save_load_round_trip(tmp_path):
    source, target = _llama_backbone(), _llama_backbone()
    path = tmp_path / "llama.safetensors"
    up.save(source, path)
    up.load(target, path)
    inputs = {"token_ids": np.arange(8).reshape(1, 8), "padding_mask": np.ones((1, 8), "int32")}
    np.testing.assert_allclose(np.asarray(keras.ops.convert_to_numpy(source(inputs))),
                               np.asarray(keras.ops.convert_to_numpy(target(inputs))), rtol=1e-6, atol=1e-6)


@pytest.mark.keras
def test_keras_scale_only_norms():
    from keras_hub.src.layers.modeling.rms_normalization import RMSNormalization
    from keras_hub.src.models.mistral.mistral_layer_norm import MistralLayerNormalization

    layer = MistralLayerNormalization(epsilon=1e-5)
    layer.build((2, 8))
    p = up.params(layer)["weight"]
    assert p.role == up.Role.SCALE and p.adapter.layer_family(layer) == "rmsnorm"
    assert p.adapter.layer_config(layer) == {"eps": pytest.approx(1e-5)}
    hub_rms = RMSNormalization(8)
    assert list(up.params(hub_rms)) == ["weight"] and p.adapter.layer_family(hub_rms) == "rmsnorm"
    core = keras.layers.RMSNormalization(epsilon=1e-4)
    core.build((2, 8))
    assert p.adapter.layer_family(core) == "rmsnorm" and p.adapter.layer_config(core) == {"eps": pytest.approx(1e-4)}
    ln = keras.layers.LayerNormalization()
    ln.build((2, 8))
    assert list(up.params(ln)) == ["weight", "bias"] and p.adapter.layer_family(ln) == "layernorm"


@pytest.mark.keras
def test_keras_self_prefixed_user_attribute_is_kept():
    class Block(keras.layers.Layer):
        def __init__(self) -> None:
            super().__init__()
            self._self_attention_layer = keras.layers.Dense(3)
            self.other = keras.layers.Dense(2)

        def build(self, shape):
            self._self_attention_layer.build(shape)
            self.other.build(shape)

    block = Block()
    block.build((1, 4))
    assert list(up.params(block)) == [
        "_self_attention_layer.weight", "_self_attention_layer.bias", "other.weight", "other.bias"
    ]


@pytest.mark.keras
def test_einsum_transpose_layout_matches_dense():
    assert einsum.kernel_layout(einsum.parse("abc,cd->abd"), (8, 6)).tag == Transpose((1, 0)).tag
