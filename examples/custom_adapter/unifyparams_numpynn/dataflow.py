"""What each numpynn ``Dense`` reads, from one observed forward pass.

numpynn has no graph: a model's ``forward`` is Python, and a custom model may flatten, pool or
concatenate anywhere. But every layer call goes through ``Module.__call__``, which
:func:`numpynn.observe` reports (the module, its inputs and its output). So the model is run once,
and each array is tagged by the layer that made it:

- ``Conv``, ``MaxPool2d``: a channels-last feature map (numpynn has no other kind);
- ``Flatten`` of such a map ``(N, *spatial, C)``: a flattened map in ``(*spatial, C)`` order,
  ``DenseInput.flattened((C, *spatial), channels_last=True)``;
- ``GlobalAvgPool2d``, ``Dense``, ``Embedding``, ``LSTM``, ``GRU`` giving a 2-D array, or a 2-D model
  input: plain features;
- ``ReLU``, ``BatchNorm``, ``LayerNorm``: every value stays where it is, the tag passes on;
- ``Concatenate``: maps joined on channels stay a map, feature vectors stay features.

Each ``Dense`` call then reports the tag of its input. An array computed by NumPy code in a
custom ``forward`` (a slice, ``np.concatenate``, a mean) carries no tag: a Dense reading it is
reported as not established, never guessed from shapes. A Dense layer called on differently laid
out inputs, or not called at all, is not established either.

The pass runs on the ``inputs`` given (native, channels-last layout) or, without them, on zeros
of the ``input_shape`` the model itself knows (a ``Conv`` given ``input_size``, a ``Sequential``
given ``input_shape``, a custom model that sets ``self.input_shape``). It never runs a model
whose lazy layers still wait for their sizes (the pass would build them): nothing changes.

>>> facts = dense_inputs(lenet, None)                 # doctest: +SKIP
>>> facts[id(lenet[7])].describe()                    # doctest: +SKIP
'a flattened 5x5x16 map (HWC order)'
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpynn as nn

from unifyparams import DenseInput

_MAP = "channels-last map"
_ELEMENTWISE = (nn.ReLU, nn.BatchNorm, nn.LayerNorm)
_MAPS = (nn.Conv, nn.MaxPool2d)
_FEATURES = (nn.GlobalAvgPool2d, nn.Embedding, nn.LSTM, nn.GRU)


def _paths(model: nn.Module) -> dict[int, str]:
    """``{id(module): its path under model}`` (the first, for a module used twice)."""
    found: dict[int, str] = {}
    stack: list[tuple[str, nn.Module]] = [("", model)]
    while stack:
        path, module = stack.pop()
        if id(module) in found:
            continue
        found[id(module)] = path
        children = list(module.children())
        stack.extend((f"{path}.{name}" if path else name, child) for name, child in reversed(children))
    return found


class _Tracer:
    def __init__(self, model: nn.Module, inputs: tuple[Any, ...]):
        self.paths = _paths(model)
        self.tags: dict[int, tuple[np.ndarray, Any]] = {}  # id -> (array kept alive, tag)
        self.facts: dict[int, set[DenseInput]] = {}
        for x in inputs:
            if isinstance(x, np.ndarray) and x.ndim == 2:
                self._set(x, DenseInput.features("a model input vector"))

    def _tag(self, value: Any) -> Any:
        entry = self.tags.get(id(value))
        return entry[1] if entry is not None and entry[0] is value else None

    def _set(self, out: Any, tag: Any) -> None:
        if isinstance(out, np.ndarray) and tag is not None:
            self.tags[id(out)] = (out, tag)

    def _label(self, module: nn.Module) -> str:
        return f"{type(module).__name__} {self.paths.get(id(module), '?')!r}"

    def __call__(self, module: nn.Module, inputs: tuple[Any, ...], out: Any) -> None:
        if not isinstance(out, np.ndarray):
            return
        x = inputs[0] if inputs else None
        if isinstance(module, nn.Dense):
            self.facts.setdefault(id(module), set()).add(self._reads(module, x))
            if out.ndim == 2:
                self._set(out, DenseInput.features(f"the output of {self._label(module)}"))
            elif self._tag(x) == _MAP:
                self._set(out, _MAP)  # applied at every position of a map: still a map
        elif isinstance(module, _MAPS):
            self._set(out, _MAP)
        elif isinstance(module, _FEATURES):
            if out.ndim == 2:
                self._set(out, DenseInput.features(f"the output of {self._label(module)}"))
        elif isinstance(module, _ELEMENTWISE):
            if isinstance(x, np.ndarray) and x.shape == out.shape:
                self._set(out, self._tag(x))
        elif isinstance(module, nn.Flatten):
            self._set(out, self._flatten(module, x, out))
        elif isinstance(module, nn.Concatenate):
            self._set(out, self._concatenate(module, inputs, out))
        # containers and custom models: their output is an array some layer tagged, or not

    def _reads(self, module: nn.Module, x: Any) -> DenseInput:
        if not isinstance(x, np.ndarray):
            return DenseInput.unknown(f"{self._label(module)} received no NumPy array")
        if x.ndim != 2:
            return DenseInput.features("a Dense layer applied along the last axis")
        tag = self._tag(x)
        if isinstance(tag, DenseInput):
            return tag
        return DenseInput.unknown(
            f"{self._label(module)} reads an array computed outside numpynn's layers (NumPy code in a "
            f"custom forward), which the numpynn adapter does not follow"
        )

    def _flatten(self, module: nn.Module, x: Any, out: np.ndarray) -> Any:
        if not isinstance(x, np.ndarray):
            return None
        tag = self._tag(x)
        if x.ndim <= 2:
            return tag  # nothing to flatten
        if tag == _MAP:
            spatial, channels = x.shape[1:-1], x.shape[-1]
            return DenseInput.flattened((channels, *spatial), channels_last=True,
                                        reason=f"{self._label(module)} of a channels-last map")
        return DenseInput.unknown(
            f"{self._label(module)} flattens a {tuple(x.shape[1:])} array that no convolution or pooling "
            f"layer produced, so its channel axis is not known"
        )

    def _concatenate(self, module: nn.Concatenate, inputs: tuple[Any, ...], out: np.ndarray) -> Any:
        tags = [self._tag(x) for x in inputs]
        on_last = module.axis in (-1, out.ndim - 1)
        if out.ndim >= 3 and on_last and all(t == _MAP for t in tags):
            return _MAP
        if out.ndim == 2 and on_last and all(isinstance(t, DenseInput) and t.kind == "features" for t in tags):
            return DenseInput.features(f"{self._label(module)} of feature vectors")
        if any(t is not None for t in tags):
            return DenseInput.unknown(f"{self._label(module)} joins inputs that are not all maps or all features")
        return None


def _all(model: nn.Module, fact: DenseInput) -> dict[int, DenseInput]:
    return {id(m): fact for m in model.modules() if isinstance(m, nn.Dense)}


def dense_inputs(model: nn.Module, inputs: tuple[Any, ...] | None) -> dict[int, DenseInput]:
    """``{id(Dense): fact}`` for every Dense layer of ``model`` (see the module docstring)."""
    if not any(isinstance(m, nn.Dense) for m in model.modules()):
        return {}
    if not all(m.built for m in model.modules()):
        return _all(model, DenseInput.unknown(
            "lazy numpynn layers still wait for their input sizes, and a forward pass would build them"))
    if inputs is None:
        shape = model.input_shape
        if shape is None:
            return _all(model, DenseInput.unknown(
                f"this {type(model).__name__} does not know its input shape, so the numpynn adapter cannot run "
                f"it (give its first Conv input_size=..., a Sequential input_shape=..., or pass example_input)"))
        inputs = (np.zeros((1, *shape), np.float32),)
    arrays = tuple(np.asarray(x) for x in inputs)
    tracer = _Tracer(model, arrays)
    try:
        with nn.observe(tracer):
            model(*arrays)
    except Exception as exc:
        shapes = [tuple(x.shape) for x in arrays]
        return _all(model, DenseInput.unknown(
            f"running {type(model).__name__} on inputs of shape {shapes} failed: {type(exc).__name__}: {exc}"))
    facts = _all(model, DenseInput.unknown("the layer was not called in a forward pass of the model"))
    for key, found in tracer.facts.items():
        facts[key] = found.pop() if len(found) == 1 else DenseInput.unknown(
            "the layer is called on inputs laid out differently: " + "; ".join(sorted(f.describe() for f in found))
        )
    return facts
