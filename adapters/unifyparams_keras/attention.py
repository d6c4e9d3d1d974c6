"""Keras ``MultiHeadAttention`` in PyTorch's terms.

Keras keeps four ``EinsumDense`` sublayers with per-head kernels: query/key/value ``(E, H, D)``
with biases ``(H, D)``, and output ``(H, D, E)``. PyTorch's ``nn.MultiheadAttention`` names its
unpacked projections ``q_proj_weight`` / ``k_proj_weight`` / ``v_proj_weight`` ``(H*D, E)`` and
its output ``out_proj.weight`` ``(E, H*D)``. The canonical view uses those names and layouts
(biases ``q_proj_bias`` ... ``(H*D,)``); porting splits or joins PyTorch's packed
``in_proj_weight`` ``(3E, E)``.

>>> [leaf for leaf, *_ in PROJECTIONS]
['q_proj', 'k_proj', 'v_proj']
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from unifyparams import Role, Slot
from unifyparams.layouts import Reshape, Transpose

PROJECTIONS = [("q_proj", "_query_dense"), ("k_proj", "_key_dense"), ("v_proj", "_value_dense")]


def is_attention(mro: tuple[str, ...], layer: Any) -> bool:
    return "MultiHeadAttention" in mro and getattr(layer, "_query_dense", None) is not None


def attention_slots(layer: Any, path: tuple[str, ...], kinds: tuple[str, ...]) -> Iterator[Slot]:
    """Canonical slots of a built ``MultiHeadAttention``."""
    prefix = ".".join(path) + "." if path else ""
    for leaf, attr in PROJECTIONS:
        dense = getattr(layer, attr)
        kernel = dense.kernel
        e, h, d = (int(x) for x in kernel.shape)
        layout = Reshape((e, h, d), (e, h * d)).then(Transpose((1, 0)))
        # the block is the attention layer itself: porting asks it for the layer family
        yield Slot(f"{prefix}{leaf}_weight", str(kernel.path), kernel, Role.WEIGHT, layout, path, kinds, layer)
        if dense.bias is not None:
            bias = dense.bias
            yield Slot(f"{prefix}{leaf}_bias", str(bias.path), bias, Role.BIAS, Reshape((h, d), (h * d,)), path,
                       kinds, layer)
    out = layer._output_dense
    h, d, e = (int(x) for x in out.kernel.shape)
    out_path, out_kinds = path + ("out_proj",), kinds + ("Dense",)
    out_prefix = prefix + "out_proj."
    layout = Reshape((h, d, e), (h * d, e)).then(Transpose((1, 0)))
    yield Slot(out_prefix + "weight", str(out.kernel.path), out.kernel, Role.WEIGHT, layout, out_path, out_kinds, out)
    if out.bias is not None:
        yield Slot(out_prefix + "bias", str(out.bias.path), out.bias, Role.BIAS, Reshape((e,), (e,)), out_path,
                   out_kinds, out)
