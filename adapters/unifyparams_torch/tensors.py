"""Moving values between PyTorch tensors and NumPy arrays, zero-copy where PyTorch allows.

NumPy has no ``bfloat16`` or ``float8`` dtypes; when ``ml_dtypes`` is importable those tensors are
exposed as ``ml_dtypes`` arrays that share the tensor's memory (a bit-level view), otherwise
reading them raises a clear error instead of PyTorch's ``TypeError: Got unsupported ScalarType``.

>>> import numpy as np, torch
>>> t = torch.arange(3, dtype=torch.float32)
>>> a = tensor_to_numpy(t); a[0] = 5.0; float(t[0])      # shares memory
5.0
>>> numpy_dtype(torch.int64)
dtype('int64')
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Sequence
from functools import cache
from typing import Any

import numpy as np
import torch

from unifyparams.common import EXTENDED_FLOATS, extended_dtype
from unifyparams.errors import NotMaterializedError, UnifyParamsError

#: torch dtypes NumPy knows natively.
_PLAIN: dict[torch.dtype, Any] = {
    torch.float16: np.float16,
    torch.float32: np.float32,
    torch.float64: np.float64,
    torch.complex64: np.complex64,
    torch.complex128: np.complex128,
    torch.int8: np.int8,
    torch.int16: np.int16,
    torch.int32: np.int32,
    torch.int64: np.int64,
    torch.uint8: np.uint8,
    torch.bool: np.bool_,
}
for _name, _np in (("uint16", np.uint16), ("uint32", np.uint32), ("uint64", np.uint64)):
    if hasattr(torch, _name):
        _PLAIN[getattr(torch, _name)] = _np

#: torch dtypes that ``ml_dtypes`` represents: ``{torch dtype name: (ml_dtypes name, same-size torch int)}``.
#: The names are the core's one table (:data:`unifyparams.common.EXTENDED_FLOATS`).
_ML_DTYPES: dict[str, tuple[str, torch.dtype]] = {
    name: (name, {2: torch.int16, 1: torch.uint8}[size]) for name, size in EXTENDED_FLOATS.items()
}


@cache
def _ml_dtype(torch_dtype: torch.dtype) -> tuple[np.dtype, torch.dtype] | None:
    """``(numpy dtype, torch bit-view dtype)`` for a dtype only ``ml_dtypes`` can express."""
    entry = _ML_DTYPES.get(str(torch_dtype).removeprefix("torch."))
    np_type = None if entry is None else extended_dtype(entry[0])
    return None if entry is None or np_type is None else (np_type, entry[1])


def numpy_dtype(torch_dtype: torch.dtype) -> np.dtype:
    """The NumPy dtype of a torch dtype; ``bfloat16``/``float8`` map to ``ml_dtypes`` types.

    Raises :class:`UnifyParamsError` for a dtype NumPy cannot hold (``complex32``, quantized types,
    or ``bfloat16`` without ``ml_dtypes``).
    """
    plain = _PLAIN.get(torch_dtype)
    if plain is not None:
        return np.dtype(plain)
    special = _ml_dtype(torch_dtype)
    if special is not None:
        return special[0]
    hint = (
        " Install ml_dtypes (pip install ml_dtypes) to handle it as a NumPy dtype, or convert the model "
        "with model.float()."
        if str(torch_dtype).removeprefix("torch.") in _ML_DTYPES
        else " Convert the model to a supported dtype first (e.g. model.float())."
    )
    raise UnifyParamsError(f"PyTorch dtype {torch_dtype} has no NumPy equivalent.{hint}")


def tensor_to_numpy(tensor: torch.Tensor) -> np.ndarray:
    """The tensor's values as NumPy; shares memory for CPU tensors (copies from other devices)."""
    t = tensor.detach()
    try:  # the common case first: a CPU tensor NumPy can view (one call; the checks cost more)
        return t.numpy()
    except (TypeError, RuntimeError):  # meta, other devices, bfloat16, conjugate/negative views
        pass
    if t.device.type == "meta":
        raise NotMaterializedError(
            f"a tensor of shape {tuple(t.shape)} lives on the 'meta' device: it has a shape but no values. "
            f"Allocate it with model.to_empty(device='cpu') and initialize it first."
        )
    if t.device.type != "cpu":
        t = t.cpu()
    if t.is_conj():
        t = t.resolve_conj()
    if t.is_neg():
        t = t.resolve_neg()
    if t.dtype in _PLAIN:
        return t.numpy()
    np_dtype = numpy_dtype(t.dtype)  # raises for unsupported dtypes
    special = _ml_dtype(t.dtype)
    assert special is not None
    return t.view(special[1]).numpy().view(np_dtype)


def numpy_to_tensor(array: np.ndarray) -> torch.Tensor:
    """A CPU tensor over ``array``'s memory (``ml_dtypes`` arrays become bfloat16/float8 tensors).

    Read-only arrays are wrapped too (PyTorch only warns); callers must not write through the result.
    """
    target: torch.dtype | None = None
    for name, (np_name, bits) in _ML_DTYPES.items():
        if array.dtype.name == np_name and hasattr(torch, name):
            target = getattr(torch, name)
            array = array.view(_PLAIN[bits])
            break
    if not array.flags.writeable:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            tensor = torch.from_numpy(array)
    else:
        tensor = torch.from_numpy(array)
    return tensor.view(target) if target is not None else tensor


def reference_tensor(module: torch.nn.Module) -> tuple[torch.dtype, torch.device]:
    """Floating dtype and device of ``module``'s first floating parameter or buffer (for inputs)."""
    for tensor in (*module.parameters(), *module.buffers()):
        if tensor.is_floating_point():
            return tensor.dtype, tensor.device
    return torch.get_default_dtype(), torch.device("cpu")


def to_tensors(inputs: Sequence[Any], module: torch.nn.Module) -> tuple[Any, ...]:
    """Convert NumPy inputs to tensors on ``module``'s device.

    Floating arrays take the module's floating dtype (so float64 data runs through a float32 model);
    integer and boolean arrays keep their dtype (token ids for embeddings). Tensors and other
    values pass through unchanged.
    """
    dtype, device = reference_tensor(module)
    converted: list[Any] = []
    for value in inputs:
        if isinstance(value, (np.ndarray, np.generic)):
            array = np.ascontiguousarray(value)
            if not array.flags.writeable:
                array = array.copy()
            tensor = torch.from_numpy(array)
            if tensor.is_floating_point():
                tensor = tensor.to(dtype)
            converted.append(tensor.to(device))
        else:
            converted.append(value)
    return tuple(converted)


# --- which tensors share memory -----------------------------------------------------------------
_UNINITIALIZED = torch.nn.parameter.UninitializedTensorMixin
_STRIDED = torch.strided

def _is_dtensor(tensor: Any) -> bool:
    """A ``torch.distributed.tensor.DTensor`` (none exists until that module is imported)."""
    module = sys.modules.get("torch.distributed.tensor")
    cls = getattr(module, "DTensor", None) if module is not None else None
    return cls is not None and isinstance(tensor, cls)


def _has_own_memory(tensor: torch.Tensor) -> bool:
    """A strided tensor with elements in real memory: not a lazy module's uninitialized tensor
    (touching its storage raises), not on the meta device (every pointer is 0), not empty."""
    if isinstance(tensor, _UNINITIALIZED):
        return False
    return not tensor.is_meta and tensor.layout == _STRIDED and tensor.numel() > 0


#: Tensor classes by exact type: True for those neither lazy nor DTensor (``isinstance`` on torch's
#: Parameter metaclass is slow, and :func:`storage_key` runs for every parameter).
_PLAIN_TYPES: dict[type, bool] = {}


def storage_key(tensor: torch.Tensor) -> Any:
    """Equal for tensors that are the same view of one storage: the same Parameter object, but
    also ``Parameter(a.detach())`` or two modules holding one view, which PyTorch writes through
    as one (as :func:`unifyparams_torch.native_files` groups a state dict's tensors). Tensors
    without memory of their own (lazy, meta, empty, sparse) are keyed by identity."""
    cls = type(tensor)
    plain = _PLAIN_TYPES.get(cls)
    if plain is None:
        # a DTensor subclass exists only once torch.distributed.tensor is imported: the answer is final
        plain = _PLAIN_TYPES[cls] = not isinstance(tensor, _UNINITIALIZED) and not _is_dtensor(tensor)
    if not plain:
        if isinstance(tensor, _UNINITIALIZED):
            return id(tensor)
        if _is_dtensor(tensor):  # the local shard's memory, and the tensor itself (its global identity)
            return "dtensor", id(tensor), storage_key(tensor.to_local())  # type: ignore[attr-defined]
    try:
        address = tensor.data_ptr()  # 0 on the meta device and for empty tensors
    except RuntimeError:  # sparse and other layouts without one strided memory
        return id(tensor)
    if not address or tensor.layout != _STRIDED:
        return id(tensor)
    # the address of the first element with shape, strides and dtype: exactly the same elements
    # (this runs once per parameter of models with thousands: the fewest torch calls that decide it).
    # Plain tuples only (not torch.Size): the garbage collector stops tracking them, so thousands of
    # keys add nothing to the heap it traces.
    return tensor.device, address, tuple(tensor.shape), tensor.stride(), tensor.dtype


def storage_span(tensor: torch.Tensor) -> tuple[Any, int, int] | None:
    """``(device, first byte, end byte)``: the addresses ``tensor``'s elements span on their device
    (PyTorch strides are never negative), or None when it has no memory of its own. Overlapping
    addresses on one device are overlapping memory, whichever storage objects hold them."""
    if not _has_own_memory(tensor):
        return None
    size = tensor.element_size()
    start = tensor.data_ptr()
    extent = sum((n - 1) * s for n, s in zip(tensor.shape, tensor.stride())) + 1
    return tensor.device, start, start + extent * size
