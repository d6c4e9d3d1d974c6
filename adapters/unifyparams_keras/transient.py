"""TensorFlow tensors over NumPy memory without TensorFlow's defensive copies, as the input of one op,
and new tensors whose memory the core fills (:func:`empty`).

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

import math
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


def empty(shape: tuple[int, ...], dtype: np.dtype) -> tuple[Any, np.ndarray] | None:
    """A new, uninitialized TensorFlow tensor of ``shape`` and ``dtype`` and a writable NumPy view of
    its memory, or None where DLPack cannot hand that memory to NumPy (or the tensor is empty). Only
    the caller holds the tensor: it may write the view until it gives the tensor away (an ``assign``
    takes its memory over), and never after.
    """
    import ctypes

    import tensorflow as tf

    dtype = np.dtype(dtype)
    if not math.prod(shape):
        return None
    try:
        dims = np.asarray(shape, np.int32)  # a tuple costs 3x: TensorFlow's slow path converts it
        tensor = tf.raw_ops.Empty(shape=dims, dtype=tf.as_dtype(dtype), init=False)
        exported = np.from_dlpack(tensor)  # read-only, over the tensor's memory
    except (TypeError, ValueError, RuntimeError, BufferError, tf.errors.OpError):
        return None
    if exported.shape != tuple(shape) or exported.dtype != dtype or not exported.flags.c_contiguous:
        return None
    address = int(exported.__array_interface__["data"][0])
    nbytes = exported.nbytes
    del exported  # the export holds a reference to the buffer: an assign would copy it while it lives
    memory = np.frombuffer((ctypes.c_char * nbytes).from_address(address), dtype).reshape(shape)
    return tensor, memory


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
