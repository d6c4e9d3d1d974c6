"""Group a model's parameters into layers, with a framework-neutral layer family.

Porting matches layers, not single tensors: a PyTorch ``LSTM(num_layers=2)`` is two recurrent
layers (``_l0``, ``_l1``), a Keras model stacks two ``LSTM`` layers; both become two ``lstm``
layers here, with leaf names stripped of the layer index (``weight_ih``, ``bias_ih_reverse``).

Families come from the adapters (``Adapter.layer_family``, which follows the class hierarchy),
so a subclass of a known layer is understood; the core keeps only the vocabulary.

>>> unknown_family("LazyMyBlock")
'myblock'
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..param import Param
from ..paramset import ParamSet

#: The framework-neutral layer families adapters report (``Adapter.layer_family``). Ports pair
#: layers of one family only; a layer of none of them is compared by its class name.
FAMILIES = (
    "dense", "embedding", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
    "conv_transpose3d", "batchnorm", "layernorm", "groupnorm", "rmsnorm", "lstm", "gru", "rnn",
    "bidirectional", "attention",
)

_RNN_LEAF = re.compile(r"^(?P<base>weight_ih|weight_hh|bias_ih|bias_hh|bias)_l(?P<k>\d+)(?P<rev>_reverse)?$")


def unknown_family(kind: str) -> str:
    """The family of a layer no adapter classifies: its lowercase class name, without ``Lazy``."""
    key = kind.lower().replace("_", "")
    return key[4:] if key.startswith("lazy") else key


def family_of(p: Param) -> str:
    """The family of the layer that owns ``p``, as its adapter classifies it."""
    slot = p.slot
    family = p.adapter.layer_family(slot.block) if slot.block is not None else ""
    return family or unknown_family(slot.block_kind or "?")


@dataclass
class LayerParams:
    """The parameters of one layer: ``params`` maps a leaf (index-free for RNNs) to its Param.

    >>> LayerParams("features.0", "Conv2d", "conv2d").label
    'features.0 (Conv2d)'
    """

    path: str
    kind: str
    family: str
    params: dict[str, Param] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """``"path (Kind)"``, for messages."""
        return f"{self.path or '<root>'} ({self.kind})"


#: The older name of :class:`LayerParams`.
Layer = LayerParams


def group_layers(ps: ParamSet) -> list[LayerParams]:
    """Layers in model order; a multi-layer recurrent block yields one LayerParams per stacked layer."""
    layers: dict[tuple[str, str], LayerParams] = {}
    for name, p in ps.items():
        slot = p.slot
        own_path = ".".join(slot.block_path)
        if own_path and p.name.startswith(own_path + "."):
            leaf = p.name[len(own_path) + 1 :]
        else:  # a block path that is not the name's prefix: the leaf is the last part, never a cut
            leaf = p.name.rpartition(".")[2] if own_path else p.name
        # under rename rules ``name`` differs from ``p.name``: the layer path is the renamed prefix
        path = name[: -len(leaf) - 1] if name.endswith("." + leaf) else ("" if name == leaf else name.rpartition(".")[0])
        kind = slot.block_kind or "?"
        family = family_of(p)
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
            layer = layers[key] = LayerParams(path + key_suffix, kind, family)
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
