"""A checkpoint seen as a read-only model, so :func:`~unifyparams.port` can match it.

``up.load(model, file, match="order")`` loads a checkpoint saved from another zoo's model (other
names, same architecture): the file's tensors become a :class:`~unifyparams.ParamSet` of a tiny
adapter that reads them on demand, and the port's matcher pairs its layers with the model's. The
layer families it needs are recorded by :func:`~unifyparams.save` (metadata ``unifyparams.layers``);
a file without them (saved by another tool) can be matched by name, mapping or rename rules,
and order matching refuses (its layers have no known kind).

>>> w = np.ones((4, 3), np.float32)
>>> stored = checkpoint_params([StoredTensor("fc.weight", (4, 3), w.dtype, lambda: w)], {"fc": "dense"})
>>> stored["fc.weight"].shape, stored.backend
((4, 3), 'checkpoint')
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..adapter import Adapter, Role, Slot
from ..errors import CheckpointError
from ..param import Param
from ..paramset import ParamSet

#: Roles by canonical leaf, so role-aware reports read naturally (values never depend on them).
_ROLES = {"bias": Role.BIAS, "running_mean": Role.RUNNING_MEAN, "running_var": Role.RUNNING_VAR}


@dataclass(frozen=True)
class StoredTensor:
    """One tensor of a checkpoint: its metadata now, its values on demand."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    get: Callable[[], np.ndarray]


@dataclass(frozen=True)
class StoredLayer:
    """The layer a stored tensor belongs to: its path and the family recorded at save time."""

    path: str
    family: str


class CheckpointAdapter(Adapter):
    """Serves a checkpoint's tensors; it owns no model and refuses every write."""

    name: ClassVar[str] = "checkpoint"

    def owns(self, obj: Any) -> bool:
        return False

    def walk(self, root: Any) -> Iterator[Slot]:
        raise CheckpointError("a checkpoint is walked by checkpoint_params(), not by up.params()")

    def native_shape(self, native: StoredTensor) -> tuple[int, ...]:
        return native.shape

    def dtype(self, native: StoredTensor) -> np.dtype:
        return native.dtype

    def trainable(self, native: StoredTensor) -> bool:
        return True

    def read(self, native: StoredTensor) -> np.ndarray:
        return native.get()

    def write(self, native: StoredTensor, value: np.ndarray) -> None:
        raise CheckpointError(f"checkpoint tensor {native.name!r} is read-only")

    def grad(self, native: StoredTensor) -> None:
        return None

    def backward(self, model: Any, inputs: tuple[Any, ...], loss: Any = None) -> None:
        raise CheckpointError("a checkpoint cannot run")

    def layer_family(self, block: Any) -> str:
        return block.family if isinstance(block, StoredLayer) else ""


def checkpoint_params(
    tensors: Iterable[StoredTensor], families: Mapping[str, str] | None = None, backend: str = "checkpoint",
) -> ParamSet:
    """A ParamSet over stored tensors; ``families`` maps layer paths to the families saved with them."""
    adapter = CheckpointAdapter()
    families = dict(families or {})
    built: dict[str, Param] = {}
    for tensor in tensors:
        path, _, leaf = tensor.name.rpartition(".")
        family = families.get(path, "")
        block = StoredLayer(path, family)
        slot = Slot(tensor.name, tensor.name, tensor, _ROLES.get(leaf, Role.WEIGHT),
                    block_path=tuple(path.split(".")) if path else (), block_kinds=(family or "?",), block=block,
                    root_kind=family or "?")
        built[tensor.name] = Param(slot, adapter)
    return ParamSet(built, title="checkpoint", backend=backend)


def from_arrays(state: Mapping[str, np.ndarray], families: Mapping[str, str] | None = None,
                backend: str = "checkpoint") -> ParamSet:
    """:func:`checkpoint_params` over arrays already in memory (a framework's own file)."""
    return checkpoint_params((StoredTensor(n, tuple(a.shape), a.dtype, _constant(a)) for n, a in state.items()),
                             families, backend)


def _constant(array: np.ndarray) -> Callable[[], np.ndarray]:
    return lambda: array
