"""Checkpoints store a dense weight after a flatten in canonical (channels-first) input order.

A channels-last model (Keras) flattens ``(H, W, C)``; its first dense weight after the flatten is
permuted into ``(C, H, W)`` order on save and back on load, so a checkpoint keeps its meaning in
every framework. What each dense layer reads comes from the model's dataflow
(:func:`unifyparams.porting.flatten.dense_facts`); where that matters and cannot be established,
saving and loading refuse rather than store a guess.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..dataflow import DenseInput
from ..errors import CheckpointError
from ..paramset import ParamSet
from ..porting.flatten import weight_facts


def facts_for(
    ps: ParamSet, model: Any = None, example_input: Any = None, dense_inputs: Mapping[str, DenseInput] | None = None,
    action: str = "save",
) -> dict[str, DenseInput]:
    """``{dense weight name: fact}`` for the weights whose order differs from canonical."""
    facts, problems = weight_facts(ps, model if model is not None else ps.model, example_input, dense_inputs)
    if problems:
        raise CheckpointError(
            f"cannot {action} this {ps.backend or 'model'} checkpoint without knowing how its dense layers order "
            f"their inputs; nothing was {'written' if action == 'save' else 'changed'}:\n  - " + "\n  - ".join(problems)
        )
    return facts


def into_model_order(facts: Mapping[str, DenseInput], state: dict[str, Any]) -> None:
    """Permute the file's canonical-order dense weights into the model's own order, in place."""
    for name, fact in facts.items():
        value = state.get(name)
        if value is not None and np.ndim(value) == 2 and np.shape(value)[1] == fact.size:
            state[name] = fact.to_model(np.asarray(value))
