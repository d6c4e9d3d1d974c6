"""TensorFlow tensors over NumPy memory without TensorFlow's defensive copies, as the input of one op,
and new tensors filled by the core's copy.

``tf.convert_to_tensor`` copies every NumPy array (a read-only one twice: ``value.copy()``, then into
its own buffer) so that a later change to the array cannot show through the tensor. A transpose reads
its input once and writes a new tensor, so its input may be a view of any memory (a checkpoint's
mapped file, the core's buffers): an ``EagerTensor`` built straight from an aligned array shares the
array's memory and keeps the array alive. Such a tensor is only ever the input of an op whose output
is new memory, and is dropped at once: never assigned to a variable, which would then alias memory
it does not own (a mapped file that is about to close).

>>> import numpy as np
>>> base = np.arange(6, dtype=np.float32).reshape(2, 3)
>>> np.asarray(transposed(base, (1, 0))).tolist()   # doctest: +SKIP
[[0.0, 3.0], [1.0, 4.0], [2.0, 5.0]]
"""

from __future__ import annotations

from typing import Any

import numpy as np


def transposed(base: np.ndarray, axes: tuple[int, ...]) -> Any:
    """``tf.transpose(base, axes)`` as a new TensorFlow tensor, reading ``base`` in place.

    An identity ``axes`` could hand back the input itself (a view of ``base``'s memory), so it is
    converted with a copy instead.
    """
    import tensorflow as tf

    if tuple(axes) == tuple(range(base.ndim)):
        return tf.identity(tf.convert_to_tensor(base))
    return tf.transpose(_view(base), axes)


def filled(value: np.ndarray) -> Any | None:
    """A new TensorFlow tensor holding ``value`` (any strides, the dtype it will have), or None where
    TensorFlow's memory cannot be reached this way (a dtype DLPack cannot hand to NumPy).

    TensorFlow allocates the tensor (``Empty``: not initialized) and the core copies ``value`` into
    its memory once, with :func:`unifyparams.copying.copy_into` (the compiled transpose for a
    transposed kernel, near a plain copy's speed, where TensorFlow's transpose runs at about half
    of it). Only the caller holds the new tensor, so writing its memory is safe; an ``assign`` of
    it hands that memory to the variable without another copy.
    """
    import ctypes

    import tensorflow as tf

    from unifyparams.copying import copy_into

    if not value.size:
        return None
    try:
        shape = np.asarray(value.shape, np.int32)  # a tuple costs 3x: TensorFlow's slow path converts it
        tensor = tf.raw_ops.Empty(shape=shape, dtype=tf.as_dtype(value.dtype), init=False)
        exported = np.from_dlpack(tensor)  # read-only, over the tensor's memory
    except (TypeError, ValueError, RuntimeError, BufferError, tf.errors.OpError):
        return None
    if exported.shape != value.shape or exported.dtype != value.dtype or not exported.flags.c_contiguous:
        return None
    address = int(exported.__array_interface__["data"][0])
    del exported  # the export holds a reference to the buffer: an assign would copy it while it lives
    memory = np.frombuffer((ctypes.c_char * value.nbytes).from_address(address), value.dtype).reshape(value.shape)
    copy_into(memory, value)
    return tensor


def _view(base: np.ndarray) -> Any:
    """An ``EagerTensor`` over ``base``'s memory (TensorFlow copies only if it is not aligned)."""
    import tensorflow as tf

    try:
        from tensorflow.python.eager import context
        from tensorflow.python.framework.ops import EagerTensor
    except ImportError:  # TensorFlow moved its internals: the public, copying conversion
        return tf.convert_to_tensor(base)
    ctx = context.context()
    ctx.ensure_initialized()
    return EagerTensor(np.ascontiguousarray(base), ctx.device_name, None)
