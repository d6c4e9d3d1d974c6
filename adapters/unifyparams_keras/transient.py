"""TensorFlow tensors over NumPy memory without TensorFlow's defensive copies, as the input of one op.

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
