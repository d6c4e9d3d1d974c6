"""Group a model's parameters into layers, with a framework-neutral layer family.

Porting matches layers, not single tensors: a PyTorch ``LSTM(num_layers=2)`` is two recurrent
layers (``_l0``, ``_l1``), a Keras model stacks two ``LSTM`` layers; both become two ``lstm``
layers here, with leaf names stripped of the layer index (``weight_ih``, ``bias_ih_reverse``).

>>> layer_family("BatchNormalization"), layer_family("Linear"), layer_family("LazyConv2d")
('batchnorm', 'dense', 'conv2d')
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..param import Param
from ..paramset import ParamSet

_FAMILIES = {
    "linear": "dense",
    "dense": "dense",
    "embedding": "embedding",
    "conv1d": "conv1d",
    "conv2d": "conv2d",
    "conv3d": "conv3d",
    "convtranspose1d": "conv_transpose1d",
    "convtranspose2d": "conv_transpose2d",
    "convtranspose3d": "conv_transpose3d",
    "conv1dtranspose": "conv_transpose1d",
    "conv2dtranspose": "conv_transpose2d",
    "conv3dtranspose": "conv_transpose3d",
    "batchnorm": "batchnorm",
    "batchnorm1d": "batchnorm",
    "batchnorm2d": "batchnorm",
    "batchnorm3d": "batchnorm",
    "batchnormalization": "batchnorm",
    "syncbatchnorm": "batchnorm",
    "layernorm": "layernorm",
    "layernormalization": "layernorm",
    "groupnorm": "groupnorm",
    "groupnormalization": "groupnorm",
    "lstm": "lstm",
    "gru": "gru",
    "rnn": "rnn",
    "simplernn": "rnn",
    "bidirectional": "bidirectional",
    "depthwiseconv2d": "conv2d",
    "multiheadattention": "attention",
    "nondynamicallyquantizablelinear": "dense",  # PyTorch attention's out_proj
}

_RNN_LEAF = re.compile(r"^(?P<base>weight_ih|weight_hh|bias_ih|bias_hh|bias)_l(?P<k>\d+)(?P<rev>_reverse)?$")


def layer_family(kind: str) -> str:
    """Framework-neutral family of a layer class name (unknown kinds map to their lowercase name)."""
    key = kind.lower().replace("_", "")
    if key.startswith("lazy"):
        key = key[4:]
    return _FAMILIES.get(key, key)


@dataclass
class Layer:
    """The parameters of one layer: ``params`` maps a leaf (index-free for RNNs) to its Param."""

    path: str
    kind: str
    family: str
    params: dict[str, Param] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.path or '<root>'} ({self.kind})"


def group_layers(ps: ParamSet) -> list[Layer]:
    """Layers in model order; a multi-layer recurrent block yields one Layer per stacked layer."""
    layers: dict[tuple[str, str], Layer] = {}
    for name, p in ps.items():
        slot = p.slot
        path = ".".join(slot.block_path)
        leaf = name[len(path) + 1 :] if path else name
        kind = slot.block_kind or "?"
        family = layer_family(kind)
        key_suffix = ""
        m = _RNN_LEAF.match(leaf)
        if m is not None:
            key_suffix = "#l" + m.group("k")
            leaf = m.group("base") + (m.group("rev") or "")
            if family == "bidirectional":
                family = _bidirectional_family(ps, path)
        key = (path, key_suffix)
        layer = layers.get(key)
        if layer is None:
            layer = layers[key] = Layer(path + key_suffix, kind, family)
        layer.params[leaf] = p
    return list(layers.values())


def _bidirectional_family(ps: ParamSet, path: str) -> str:
    """Keras ``Bidirectional`` wraps an LSTM/GRU: its gate count tells which."""
    for name, p in ps.items():
        if name.startswith(path + ".weight_hh"):
            rows, hidden = p.shape[0], p.shape[1]
            if rows is not None and hidden:
                return {4: "lstm", 3: "gru", 1: "rnn"}.get(rows // hidden, "bidirectional")
    return "bidirectional"
