"""Dense layers after convolutions: what each reads, for ports and checkpoints.

A channels-first model flattens a feature map as ``(C, H, W)``, a channels-last one (Keras) as
``(H, W, C)``, so the first dense weight after a flatten orders its inputs differently. Ports and
checkpoints use PyTorch's (channels-first) order as canonical for those weights: a checkpoint
saved from a Keras CNN loads into the PyTorch one, and back. Whether a dense layer reads a
flattened map at all (VGG's ``fc1``) or pooled features (DenseNet's classifier) comes from the
model's dataflow, through :meth:`Adapter.dense_inputs <unifyparams.adapter.Adapter.dense_inputs>`,
never from parameter shapes. Where the adapter establishes nothing:

- a model without convolutions has no map to flatten: its dense inputs are in canonical order;
- a model whose convolutions are all channels-first flattens in canonical order by convention;
- otherwise the fact is not established, and a port or checkpoint that needs it refuses.

>>> facts = dense_facts(up.params(keras_vgg16), keras_vgg16)     # doctest: +SKIP
>>> facts["19"].describe()                                        # doctest: +SKIP
'a flattened 7x7x512 map (HWC order)'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..dataflow import CANONICAL, UNKNOWN, DenseInput
from ..errors import UnifyParamsError
from ..paramset import ParamSet
from .layers import LayerParams, group_layers


class DataflowError(UnifyParamsError, ValueError):
    """How a dense layer orders its inputs could not be established, and it matters."""


def _is_conv(layer: LayerParams) -> bool:
    return layer.family.startswith("conv")


def _channels_last(layer: LayerParams) -> bool:
    p = next(iter(layer.params.values()))
    return bool(p.adapter.channels_last(p.slot.block))


def _as_inputs(example_input: Any) -> tuple[np.ndarray, ...] | None:
    if example_input is None:
        return None
    items = example_input if isinstance(example_input, (tuple, list)) else (example_input,)
    return tuple(np.asarray(x) for x in items)


def dense_facts(
    ps: ParamSet,
    model: Any = None,
    example_input: Any = None,
    overrides: Mapping[str, DenseInput] | None = None,
) -> dict[str, DenseInput]:
    """``{dense layer path: what it reads}`` for every dense layer of ``ps``.

    ``model`` is asked through its adapter (``example_input``, in the model's native layout, lets
    adapters that need a forward pass run one); ``overrides`` (``{layer path: DenseInput}``) are
    the user's own facts and win.
    """
    layers = group_layers(ps)
    dense = [layer for layer in layers if layer.family == "dense" and "weight" in layer.params]
    if not dense:
        return {}
    overrides = dict(overrides or {})
    unknown_paths = set(overrides) - {layer.path for layer in dense}
    if unknown_paths:
        raise DataflowError(
            f"dense_inputs names {sorted(unknown_paths)}, which are not dense layers of this model; "
            f"its dense layers are {[layer.path for layer in dense]}"
        )
    convs = [layer for layer in layers if _is_conv(layer)]
    any_channels_last = any(_channels_last(layer) for layer in convs)
    adapter = dense[0].params["weight"].adapter
    found: Mapping[int, DenseInput] = {}
    if model is not None and convs and len(overrides) < len(dense):
        found = adapter.dense_inputs(model, _as_inputs(example_input))
    facts: dict[str, DenseInput] = {}
    for layer in dense:
        if layer.path in overrides:
            facts[layer.path] = overrides[layer.path]
            continue
        fact = found.get(id(layer.params["weight"].slot.block))
        if not convs and (fact is None or fact.kind == UNKNOWN):
            fact = DenseInput.canonical("the model has no convolution, so no feature map to flatten")
        elif fact is None and not any_channels_last:
            fact = DenseInput.canonical(f"every convolution of this {adapter.name} model is channels-first")
        elif fact is None:
            fact = DenseInput.unknown(
                f"the {adapter.name} adapter could not establish it from the model's graph"
                + ("" if example_input is not None else " (no example_input was given)")
            )
        facts[layer.path] = fact
    return facts


def advice(path: str, side: str = "") -> str:
    """What to pass when a fact is not established."""
    keyword = f"{side}dense_inputs" if side else "dense_inputs"
    return (
        f"pass example_input=... (the model's own input layout) so the model can be traced, or state it: "
        f"{keyword}={{{path!r}: up.DenseInput.flattened((C, H, W), channels_last=True)}} "
        f"(or up.DenseInput.features() for pooled features)"
    )


def weight_facts(
    ps: ParamSet, model: Any = None, example_input: Any = None, overrides: Mapping[str, DenseInput] | None = None,
) -> tuple[dict[str, DenseInput], list[str]]:
    """``{dense weight name: fact}`` for weights whose order differs from canonical, and the
    problems (facts not established) for a checkpoint of ``ps``."""
    by_name: dict[str, DenseInput] = {}
    problems: list[str] = []
    layers = {layer.path: layer for layer in group_layers(ps)}
    for path, fact in dense_facts(ps, model, example_input, overrides).items():
        name = layers[path].params["weight"].name
        if fact.kind == UNKNOWN:
            problems.append(f"dense layer {path!r} ({name}): how it orders its inputs is not established: "
                            f"{fact.reason}; {advice(path)}")
        elif fact.permutes:
            by_name[name] = fact
    return by_name, problems


__all__ = ["CANONICAL", "DataflowError", "DenseInput", "advice", "dense_facts", "weight_facts"]
