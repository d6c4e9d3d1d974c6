"""Loading a checkpoint whose names differ from the model's: the port's matcher, on a file.

``up.load(model, file, match="order" | "auto" | {dst: src}, rename=[...])`` reads the file as a
read-only model (:mod:`unifyparams.checkpoint.source`) and ports it into ``model``: layers paired
by the same rules as :func:`unifyparams.port` (order only when both sequences agree in kind),
values converted into the model's layouts and input orders, all or nothing. The file's tensors
are canonical, so only the model's side of each conversion applies.

>>> _ = up.save(net, "model.safetensors")
>>> report = up.load(numpy_net(seed=7), "model.safetensors", match="order")
>>> report.port.match, report.loaded[:2]
('order', ['0.weight', '0.bias'])
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ..dataflow import DenseInput
from ..errors import CheckpointError
from ..porting.port import port
from ..porting.report import PortError, PortReport
from ..progress import ProgressArg
from .shards import open_checkpoint
from .source import StoredTensor, checkpoint_params, from_arrays


def _ported(model: Any, source: Any, label: str, **options: Any) -> PortReport:
    try:
        return port(source, model, **options)
    except PortError as exc:
        raise CheckpointError(f"checkpoint {label} could not be matched to this model; nothing was changed. {exc}") \
            from exc


def load_matched(
    model: Any,
    path: str | os.PathLike[str],
    *,
    match: str | Mapping[str, str],
    rename: Sequence[tuple[str, str]],
    strict: bool,
    mmap: bool,
    atomic: bool,
    example_input: Any = None,
    dense_inputs: Mapping[str, DenseInput] | None = None,
    native_state: Mapping[str, Any] | None = None,
    progress: ProgressArg = None,
) -> tuple[PortReport, Any]:
    """Port the checkpoint at ``path`` (or a framework file's ``native_state``) into ``model``.

    Returns the port's report and the checkpoint metadata (``None`` for a framework file).
    ``progress`` as for :func:`unifyparams.load` (bytes written into the model).
    """
    options = dict(match=match, rename=rename, strict=strict, atomic=atomic, dst_example_input=example_input,
                   dst_dense_inputs=dense_inputs, progress=progress)
    if native_state is not None:
        return _ported(model, from_arrays(dict(native_state)), str(path), **options), None
    with open_checkpoint(path, mmap=mmap) as ckpt:
        def reader(name: str) -> Callable[[], np.ndarray]:
            return lambda: ckpt.tensor(name)

        tensors = [StoredTensor(n, tuple(ckpt.info(n).shape), ckpt.info(n).dtype, reader(n)) for n in ckpt.names]
        stored = set(ckpt.names)
        for group in ckpt.meta.ties:  # tie aliases are stored once: every name of a group reads it
            head = next((n for n in group if n in stored), None)
            if head is not None:
                tensors += [StoredTensor(n, tuple(ckpt.info(head).shape), ckpt.info(head).dtype, reader(head))
                            for n in group if n not in stored]
        source = checkpoint_params(tensors, ckpt.meta.layers, backend=ckpt.meta.backend or "checkpoint")
        return _ported(model, source, str(path), **options), ckpt.meta
