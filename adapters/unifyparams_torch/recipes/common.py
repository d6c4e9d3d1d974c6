"""What every ``transformers`` recipe shares: configuration reading, identity tables.

``transformers`` is the hub every other library's recipe is written against, so its recipes
map each name to itself and carry what its ``save_pretrained`` folders need
(:class:`~unifyparams.recipes.HFFiles`: ``model_type``, the class and key prefix written, the
tensors GPT-2's ``Conv1D`` stores transposed). Data only: importing this module imports
neither torch nor transformers. Declared in the ``unifyparams.recipes`` entry-point group.

"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def hf_config(model: Any) -> Mapping[str, Any] | None:
    """A ``transformers`` model's configuration as a dict (``model.config.to_dict()``), flattened
    so that ``rope_parameters.rope_theta`` is also ``rope_theta``."""
    config = getattr(model, "config", None)
    to_dict = getattr(config, "to_dict", None)
    if not callable(to_dict):
        return None
    return flatten_config(to_dict())


def flatten_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config.json`` with the rotary parameters (``rope_parameters`` in transformers 5,
    ``rope_theta`` before) at the top level, whichever version wrote it."""
    flat = dict(config)
    rope = config.get("rope_parameters")
    if isinstance(rope, Mapping):
        for key, value in rope.items():
            flat.setdefault(key, value)
    return flat


def _identity(names: Sequence[str]) -> dict[str, str]:
    return {name: name for name in names}




def rope_to_file(config: Mapping[str, Any]) -> dict[str, Any]:
    """The reference configuration as transformers 5 writes it: the rotary parameters (base,
    type, scaling factor) inside ``rope_parameters``."""
    out = dict(config)
    rope = {key: out.pop(key) for key in ("rope_theta", "rope_type", "factor") if key in out}
    if rope:
        rope.setdefault("rope_type", "default")
        out["rope_parameters"] = {k: v for k, v in rope.items() if v is not None}
    return out
