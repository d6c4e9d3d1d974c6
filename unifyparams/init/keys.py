"""Stream keys: which random stream each parameter's initial values come from.

Values are drawn from ``(seed, stream key)``. The key is the canonical name with every numeric
path component renumbered among its siblings that own parameters: position ``k`` becomes the
number of parameter-owning siblings before it. Layers without parameters (activations,
pooling, dropout, flatten) are layers in one framework and arguments in another, so they must
not move the stream of the layers after them::

    PyTorch  Sequential(Linear, ReLU, Linear)        0.weight, 2.weight  ->  keys 0.weight, 1.weight
    Keras    Sequential([Dense(relu), Dense])         0.weight, 1.weight  ->  keys 0.weight, 1.weight
    Gluon    HybridSequential(Dense(relu), Dense)     0.weight, 1.weight  ->  keys 0.weight, 1.weight

so the same architecture gets the same values however it is written. Non-numeric components
(attribute names, dict keys) are kept, so a named layer's values never depend on the others.
Changing a layer (its size, its kind) changes no other layer's values; inserting or removing a
layer *with* parameters in a sequence renumbers the ones after it (that is the one case where a
position-free key would conflict with matching the two ways of writing a model). Keys are
unique: the mapping is one-to-one at every level of the name tree.

Keys are relative to the set of names given, which is the model (or block) being initialized:
a sub-block's parameter keys as it would in the sub-block alone, and renumbering under one
block depends only on that block's own children, so a key computed from a whole model ends
with the key the block alone gives.

>>> stream_keys(["0.weight", "0.bias", "2.weight", "2.bias"])["2.weight"]
'1.weight'
>>> stream_keys(["encoder.3.weight", "head.weight"])
{'encoder.3.weight': 'encoder.0.weight', 'head.weight': 'head.weight'}
"""

from __future__ import annotations

import re
from collections.abc import Iterable

#: A numeric path component as the adapters write positions: no sign, no leading zeros.
_POSITION = re.compile(r"0|[1-9][0-9]*")


def _is_position(part: str) -> bool:
    return _POSITION.fullmatch(part) is not None


def stream_keys(names: Iterable[str]) -> dict[str, str]:
    """``{canonical name: stream key}`` for every name (see the module docstring for the rule).

    Every name's siblings are read from ``names`` itself, so pass the full set of the model or
    block being initialized, not a selection of it.
    """
    names = list(names)
    positions: dict[str, set[int]] = {}  # block path ("" for the root) -> numeric children
    split = [name.split(".") for name in names]
    for parts in split:
        prefix = ""
        for part in parts:
            if _is_position(part):
                positions.setdefault(prefix, set()).add(int(part))
            prefix = f"{prefix}.{part}" if prefix else part
    ranks = {prefix: {p: str(i) for i, p in enumerate(sorted(found))} for prefix, found in positions.items()}
    keys: dict[str, str] = {}
    for name, parts in zip(names, split):
        prefix = ""
        renamed = []
        for part in parts:
            renamed.append(ranks[prefix][int(part)] if _is_position(part) else part)
            prefix = f"{prefix}.{part}" if prefix else part
        keys[name] = ".".join(renamed)
    return keys


def relative_key(full_key: str, full_name: str, name: str) -> str | None:
    """The key of ``name`` (relative to a block) from the key of the same parameter computed on
    an enclosing model, where it is named ``full_name`` (``prefix + "." + name``); None when
    ``full_name`` does not end with ``name``."""
    if full_name == name:
        return full_key
    if not full_name.endswith("." + name):
        return None
    depth = name.count(".") + 1
    return ".".join(full_key.split(".")[-depth:])


__all__ = ["relative_key", "stream_keys"]
