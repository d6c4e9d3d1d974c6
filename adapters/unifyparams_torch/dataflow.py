"""What each ``nn.Linear`` reads, from one traced forward pass (``TorchFunctionMode``).

PyTorch models flatten inside ``forward`` (torchvision calls ``torch.flatten(x, 1)``), not
always through an ``nn.Flatten`` module, so module hooks alone cannot tell a classifier that
reads a flattened map from one that reads pooled features. Running the model once under a
torch function mode sees every tensor operation: a ``flatten``/``view``/``reshape`` that turns
``(N, C, H, W)`` into ``(N, C*H*W)`` tags its output with the map's shape; parameter-free
element-wise operations (dropout, activations) pass the tag on; anything else that mixes a
tagged tensor loses it (not established); a permuted feature map (``permute``, ``transpose``)
is not channels-first any more, so its flatten is not established either. Each ``F.linear``
call then reports what its input was.

>>> facts = dense_inputs(torchvision.models.vgg16(), (np.zeros((1, 3, 224, 224), np.float32),))  # doctest: +SKIP
>>> facts[id(model.classifier[0])].describe()                                                     # doctest: +SKIP
'a flattened 512x7x7 map (CHW order)'
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.overrides import TorchFunctionMode

from unifyparams.dataflow import DenseInput

_FLATTENS = frozenset({"flatten", "view", "reshape", "ravel"})
_PERMUTES = frozenset({"permute", "transpose", "movedim", "moveaxis", "swapaxes", "swapdims", "t", "mT"})
_PERMUTED = "permuted"


class _Tracker(TorchFunctionMode):
    def __init__(self, linear_weights: dict[int, Any]):
        super().__init__()
        self.linear_weights = linear_weights
        self.tags: dict[int, tuple[torch.Tensor, Any]] = {}  # id -> (tensor kept alive, tag)
        self.facts: dict[int, set[DenseInput]] = {}

    def _tag(self, value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            entry = self.tags.get(id(value))
            if entry is not None and entry[0] is value:
                return entry[1]
        return None

    def _set(self, out: Any, tag: Any) -> None:
        if isinstance(out, torch.Tensor) and tag is not None:
            self.tags[id(out)] = (out, tag)

    def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = getattr(func, "__name__", "")
        if name == "linear":
            weight = args[1] if len(args) > 1 else kwargs.get("weight")
            module = self.linear_weights.get(id(weight))
            if module is not None:
                self.facts.setdefault(id(module), set()).add(self._classify(args[0] if args else kwargs.get("input")))
            return out
        flat_args = [a for a in list(args) + list(kwargs.values()) if isinstance(a, torch.Tensor)]
        if isinstance(args[0] if args else None, (list, tuple)):
            flat_args += [a for a in args[0] if isinstance(a, torch.Tensor)]
        tags = [self._tag(a) for a in flat_args]
        source = args[0] if args and isinstance(args[0], torch.Tensor) else None
        if name in _FLATTENS and source is not None and isinstance(out, torch.Tensor):
            if source.dim() >= 3 and out.dim() == 2 and out.shape[0] == source.shape[0]:
                if self._tag(source) == _PERMUTED:
                    self._set(out, DenseInput.unknown(f"{name} of a permuted feature map"))
                else:
                    self._set(out, DenseInput.flattened(tuple(int(d) for d in source.shape[1:]),
                                                        reason=f"torch {name} of a channels-first map"))
                return out
        if name in _PERMUTES and isinstance(out, torch.Tensor) and out.dim() >= 3:
            self._set(out, _PERMUTED)
            return out
        present = [t for t in tags if t is not None]
        if present and isinstance(out, torch.Tensor):
            first = present[0]
            same = all(t == first for t in present)
            shaped = any(isinstance(a, torch.Tensor) and a.shape == out.shape and self._tag(a) is not None
                         for a in flat_args)
            if same and shaped:
                self._set(out, first)  # element-wise: every feature stays where it was
            else:
                self._set(out, DenseInput.unknown(f"torch {name or func!r} mixes a flattened map"))
        return out

    def _classify(self, x: Any) -> DenseInput:
        if not isinstance(x, torch.Tensor):
            return DenseInput.unknown("F.linear received no tensor input")
        if x.dim() != 2:
            return DenseInput.features("a linear layer applied along the last axis")
        tag = self._tag(x)
        if tag is None:
            return DenseInput.features("an input no flatten produced")
        if tag == _PERMUTED:
            return DenseInput.unknown("a permuted tensor")
        return tag  # type: ignore[no-any-return]


def dense_inputs(model: torch.nn.Module, inputs: tuple[np.ndarray, ...]) -> dict[int, DenseInput]:
    """``{id(linear module): fact}`` from one forward pass in eval mode without gradients; the
    model's training flags are restored afterwards, and nothing else changes."""
    weights = {id(m.weight): m for m in model.modules() if isinstance(m, torch.nn.Linear)}
    if not weights:
        return {}
    flags = {m: m.training for m in model.modules()}
    tensors = tuple(torch.as_tensor(np.asarray(x)) for x in inputs)
    tracker = _Tracker(weights)
    try:
        model.eval()
        with torch.no_grad(), tracker:
            model(*tensors)
    finally:
        for m, flag in flags.items():
            m.training = flag
    facts: dict[int, DenseInput] = {}
    for key, found in tracker.facts.items():
        facts[key] = found.pop() if len(found) == 1 else DenseInput.unknown(
            "the layer is called on inputs laid out differently: " + "; ".join(sorted(f.describe() for f in found))
        )
    return facts
