"""Per-layer naming and layout rules: one Keras variable -> canonical leaf name, role and layout.

Keras names a layer's variables by what they are (``kernel``, ``gamma``, ``moving_mean``) and keeps
them in its own layouts (a Dense kernel is ``(in, out)``, a Conv2D kernel ``(kh, kw, in, out)``).
The canonical names and layouts are PyTorch's, so each rule here says which PyTorch leaf a Keras
variable is and how to permute it. Rules are looked up by the *class names* along the layer's
MRO, so a user's subclass of ``Dense`` follows the Dense rule, and this module never imports
Keras. A few rules read the layer itself: ``EinsumDense`` (its ``equation`` decides the layout,
see :mod:`.einsum`) and normalization layers of no known class whose only variable is ``scale``
(keras-hub's ``LlamaLayerNorm`` and kin: RMS norms).

>>> leaf = layer_leaf(("Dense", "Layer"), "kernel", (20, 256))
>>> leaf.name, leaf.role, leaf.layout.tag
('weight', 'weight', 'transpose(1,0)')
>>> cell_leaf("GRUCell", "bias", (2, 18)).layout.tag
'gates(1, 0, 2)@axis1'

Recurrent layers keep their variables on a ``cell`` sublayer; :func:`cell_leaf` names them as the
recurrent layer's own (``weight_ih_l0``, ``weight_hh_l0``). Keras has *one* bias per recurrent
layer, reported as ``bias_l0``: for an LSTM or SimpleRNN it is ``b_ih + b_hh`` of PyTorch (shape
``(4H,)``/``(H,)``); for a GRU with ``reset_after=True`` it is ``(2, 3H)``, row 0 PyTorch's
``bias_ih_l0`` and row 1 ``bias_hh_l0``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from unifyparams import Role
from unifyparams.layouts import IDENTITY, Chain, GateOrder, Layout, Reshape, Shape, Transpose

from . import einsum


@dataclass(frozen=True)
class Leaf:
    """The canonical leaf name, role and layout of one Keras variable."""

    name: str
    role: str
    layout: Layout = IDENTITY

    def suffixed(self, suffix: str) -> Leaf:
        """The same leaf with ``suffix`` appended to its name (``_reverse``, ``_l1``)."""
        return Leaf(self.name + suffix, self.role, self.layout) if suffix else self


# --- layouts ----------------------------------------------------------------------------------
DENSE = Transpose((1, 0))


def conv_layout(ndim: int) -> Layout:
    """Keras ``(*kernel, in, out)`` -> PyTorch ``(out, in, *kernel)``.

    The same permutation turns a transposed-conv kernel ``(*kernel, out, in)`` into PyTorch's
    ``(in, out, *kernel)``: ``conv_layout(4) = Transpose((3, 2, 0, 1))``.
    """
    if ndim < 3:
        return IDENTITY
    return Transpose((ndim - 1, ndim - 2, *range(ndim - 2)))


def depthwise_layout(native_shape: Shape) -> Layout:
    """Keras depthwise kernel ``(*kernel, in, mult)`` -> PyTorch depthwise ``(in*mult, 1, *kernel)``.

    PyTorch's grouped conv (``groups=in``) numbers output channels ``c * mult + m``, as Keras does,
    so the two axes fold in that order.
    """
    nd = len(native_shape)
    if nd < 3 or any(d is None for d in native_shape):
        return conv_layout(nd)
    *kernel, channels, mult = (int(d) for d in native_shape)  # type: ignore[arg-type]
    to_channels_first = Transpose((nd - 2, nd - 1, *range(nd - 2)))
    folded = Reshape((channels, mult, *kernel), (channels * mult, 1, *kernel))
    return Chain((to_channels_first, folded))


# --- plain layers -----------------------------------------------------------------------------
Rule = Callable[[str, Shape], "Leaf | None"]


def _dense(var: str, shape: Shape) -> Leaf | None:
    return {"kernel": Leaf("weight", Role.WEIGHT, DENSE), "bias": Leaf("bias", Role.BIAS)}.get(var)


def _conv(var: str, shape: Shape) -> Leaf | None:
    if var == "kernel":
        return Leaf("weight", Role.WEIGHT, conv_layout(len(shape)))
    return Leaf("bias", Role.BIAS) if var == "bias" else None


def _depthwise(var: str, shape: Shape) -> Leaf | None:
    if var == "kernel":
        return Leaf("weight", Role.WEIGHT, depthwise_layout(shape))
    return Leaf("bias", Role.BIAS) if var == "bias" else None


def _separable(var: str, shape: Shape) -> Leaf | None:
    if var == "depthwise_kernel":
        return Leaf("depthwise_weight", Role.WEIGHT, depthwise_layout(shape))
    if var == "pointwise_kernel":
        return Leaf("pointwise_weight", Role.WEIGHT, conv_layout(len(shape)))
    return Leaf("bias", Role.BIAS) if var == "bias" else None


def _embedding(var: str, shape: Shape) -> Leaf | None:
    return Leaf("weight", Role.WEIGHT) if var == "embeddings" else None


def _batch_norm(var: str, shape: Shape) -> Leaf | None:
    return {
        "gamma": Leaf("weight", Role.SCALE),
        "beta": Leaf("bias", Role.SHIFT),
        "moving_mean": Leaf("running_mean", Role.RUNNING_MEAN),
        "moving_variance": Leaf("running_var", Role.RUNNING_VAR),
    }.get(var)


def _norm(var: str, shape: Shape) -> Leaf | None:
    return {"gamma": Leaf("weight", Role.SCALE), "beta": Leaf("bias", Role.SHIFT)}.get(var)


def _rms_norm(var: str, shape: Shape) -> Leaf | None:
    return Leaf("weight", Role.SCALE) if var == "scale" else None


def _reversible_embedding(var: str, shape: Shape) -> Leaf | None:
    """keras(-hub) ``ReversibleEmbedding``: ``embeddings`` is the embedding ``weight``; an untied
    ``reverse_embeddings`` ``(hidden, vocab)`` is the output projection, canonical ``(vocab, hidden)``
    like a PyTorch ``lm_head.weight``."""
    if var == "reverse_embeddings":
        return Leaf("reverse_embeddings", Role.WEIGHT, DENSE)
    return _embedding(var, shape)


def _position_embedding(var: str, shape: Shape) -> Leaf | None:
    """keras-hub ``PositionEmbedding``: ``position_embeddings`` (Keras name ``embeddings``), ``(seq, hidden)``."""
    return Leaf("weight", Role.WEIGHT) if var == "embeddings" else None


#: Rules by Keras class name; the first class along a layer's MRO that has one wins.
LAYER_RULES: dict[str, Rule] = {
    "Dense": _dense,
    "BaseConv": _conv,
    "BaseConvTranspose": _conv,
    "BaseDepthwiseConv": _depthwise,
    "BaseSeparableConv": _separable,
    "Embedding": _embedding,
    "BatchNormalization": _batch_norm,
    "LayerNormalization": _norm,
    "GroupNormalization": _norm,
    "RMSNormalization": _rms_norm,
    "ReversibleEmbedding": _reversible_embedding,
    "PositionEmbedding": _position_embedding,
}

#: Rules that need the layer itself (``(layer, var_name, shape)``), by class name like :data:`LAYER_RULES`.
LayerRule = Callable[[Any, str, Shape], "Leaf | None"]


def einsum_spec(layer: Any) -> einsum.EinsumSpec | None:
    """The parsed equation of a float (not quantized) ``EinsumDense`` that is a linear map, else ``None``."""
    if getattr(layer, "quantization_mode", None) is not None:
        return None
    return einsum.parse(getattr(layer, "equation", None))


def _einsum_dense(layer: Any, var: str, shape: Shape) -> Leaf | None:
    """``EinsumDense``: a linear map's kernel is ``weight`` ``(prod(out), prod(in))`` and a bias over
    exactly its output axes ``bias`` ``(prod(out),)``; anything else keeps its own name and layout."""
    spec = einsum_spec(layer)
    if spec is None:
        return None
    if var == "kernel":
        layout = einsum.kernel_layout(spec, shape)
        return None if layout is None else Leaf("weight", Role.WEIGHT, layout)
    if var == "bias":
        layout = einsum.bias_layout(spec, getattr(layer, "bias_axes", None), shape)
        return None if layout is None else Leaf("bias", Role.BIAS, layout)
    return None


LAYER_AWARE_RULES: dict[str, LayerRule] = {
    "EinsumDense": _einsum_dense,
}

#: Class names of custom normalization layers (``LlamaLayerNorm``, ``MistralLayerNormalization``).
_NORM_NAME = re.compile(r"(Norm|Normalization)$")


def _own_variable_names(layer: Any) -> list[str]:
    found: dict[int, str] = {}
    for v in list(getattr(layer, "_trainable_variables", ())) + list(getattr(layer, "_non_trainable_variables", ())):
        found.setdefault(id(v), str(getattr(v, "name", "")))
    return list(found.values())


def is_scale_only_norm(layer: Any, mro_names: Sequence[str] | None = None) -> bool:
    """A normalization layer of no known class (``*Norm``/``*Normalization``: keras-hub's
    ``LlamaLayerNorm``, ``MistralLayerNormalization``...) whose only variable is ``scale``: an RMS norm."""
    if layer is None:
        return False
    names = mro_names if mro_names is not None else [c.__name__ for c in type(layer).__mro__]
    if not any(_NORM_NAME.search(n) for n in names):
        return False
    return _own_variable_names(layer) == ["scale"]

#: Role guesses for variables no rule knows (kept under their own names).
_ROLE_HINTS = {
    "kernel": Role.WEIGHT,
    "weight": Role.WEIGHT,
    "embeddings": Role.WEIGHT,
    "bias": Role.BIAS,
    "gamma": Role.SCALE,
    "beta": Role.SHIFT,
    "moving_mean": Role.RUNNING_MEAN,
    "moving_variance": Role.RUNNING_VAR,
}


def layer_leaf(mro_names: Sequence[str], var_name: str, shape: Shape, layer: Any = None) -> Leaf | None:
    """The leaf of variable ``var_name`` of a layer whose MRO class names are ``mro_names``,
    or ``None`` when no rule knows it (see :func:`fallback_leaf`).

    With ``layer``, rules that read the layer's configuration (:data:`LAYER_AWARE_RULES`) and the
    scale-only normalization rule (:func:`is_scale_only_norm`) apply too.
    """
    for cls_name in mro_names:
        rule = LAYER_RULES.get(cls_name)
        if rule is not None:
            return rule(var_name, shape)
        aware = LAYER_AWARE_RULES.get(cls_name) if layer is not None else None
        if aware is not None:
            return aware(layer, var_name, shape)
    if var_name == "scale" and is_scale_only_norm(layer, mro_names):
        return Leaf("weight", Role.SCALE)
    return None


def fallback_leaf(name: str, var_name: str) -> Leaf:
    """A variable no rule knows: its own ``name`` (attribute or Keras name), identity layout, and
    a role guessed from its Keras name (``Role.OTHER`` when nothing fits)."""
    role = _ROLE_HINTS.get(var_name, _ROLE_HINTS.get(name, Role.OTHER))
    return Leaf(name, role)


# --- recurrent cells --------------------------------------------------------------------------
#: Cell class name -> (layer family, gate order to PyTorch or None when already PyTorch's).
RECURRENT_CELLS: dict[str, tuple[str, tuple[int, ...] | None]] = {
    "LSTMCell": ("LSTM", None),  # Keras i, f, c, o == PyTorch i, f, g, o
    "GRUCell": ("GRU", (1, 0, 2)),  # Keras z, r, h -> PyTorch r, z, n
    "SimpleRNNCell": ("SimpleRNN", None),
}


def recurrent_kind(mro_names: Sequence[str]) -> str | None:
    """The known cell class along ``mro_names`` (``"LSTMCell"``), or ``None``."""
    for cls_name in mro_names:
        if cls_name in RECURRENT_CELLS:
            return cls_name
    return None


def cell_leaf(cell_kind: str, var_name: str, shape: Shape) -> Leaf | None:
    """The PyTorch-style leaf (without the ``_l0`` layer index) of a recurrent cell's variable.

    ``kernel -> weight_ih``, ``recurrent_kernel -> weight_hh``, ``bias -> bias`` (Keras's single
    bias; see the module docstring). Callers append ``_l{k}`` and ``_reverse``.
    """
    gates = RECURRENT_CELLS[cell_kind][1]
    if var_name in ("kernel", "recurrent_kernel"):
        layout: Layout = DENSE
        if gates is not None:
            layout = Chain((DENSE, GateOrder(gates, axis=0)))
        leaf = "weight_ih" if var_name == "kernel" else "weight_hh"
        return Leaf(leaf, Role.WEIGHT, layout)
    if var_name == "bias":
        layout = IDENTITY if gates is None else GateOrder(gates, axis=len(shape) - 1)
        return Leaf("bias", Role.BIAS, layout)
    return None
