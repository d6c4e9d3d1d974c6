"""Running a Keras model for unifyparams: calling it, the default loss, gradients per backend.

Keras reads ``KERAS_BACKEND`` once, at import; gradients come from TensorFlow's ``GradientTape``,
from torch autograd, or from ``jax.grad`` over the model's ``stateless_call`` (JAX has no mutable
parameters to differentiate), and everything else goes through backend-neutral Keras APIs.

>>> import keras                                                  # doctest: +SKIP
>>> net = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])  # doctest: +SKIP
>>> backward(net, (np.ones((1, 3), np.float32),), None, is_functional=False)   # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np

from unifyparams.errors import UnifyParamsError

#: Attribute on a variable (TensorFlow and JAX backends) holding its latest gradient from :func:`backward`.
GRAD_ATTR = "_unifyparams_grad"


def call(model: Any, inputs: tuple[Any, ...], is_functional: bool, **kwargs: Any) -> Any:
    """``model(*inputs)``; a functional model takes several inputs as one list."""
    if len(inputs) > 1 and is_functional:
        return model(list(inputs), **kwargs)
    return model(*inputs, **kwargs)


def loss_value(outputs: Any, loss: Callable[[Any], Any] | None) -> Any:
    """``loss(outputs)``, or the sum of every output tensor."""
    if loss is not None:
        return loss(outputs)
    ops = keras.ops
    flat = keras.tree.flatten(outputs)
    total = ops.sum(flat[0])
    for out in flat[1:]:
        total = total + ops.sum(out)
    return total


def backward(model: Any, inputs: tuple[Any, ...], loss: Callable[[Any], Any] | None, is_functional: bool) -> None:
    """Forward and backward natively, in the model's default (inference) call mode.

    TensorFlow: a ``GradientTape`` over ``model.trainable_variables``; each gradient is kept on its
    variable (:data:`GRAD_ATTR`). Torch: autograd into each parameter's ``.grad`` (cleared first).
    JAX: ``jax.grad`` of the loss over ``model.stateless_call(trainable values, non-trainable
    values, *inputs)``, kept on each variable like TensorFlow's. A variable used by several layers
    (a shared layer, or a tie) is one entry of ``trainable_variables``, so its gradient is the
    sum over its uses on every backend.
    """
    backend = keras.backend.backend()
    variables = model.trainable_variables
    if backend == "torch":
        import torch

        for v in variables:
            v.value.grad = None
        with torch.enable_grad():
            loss_value(call(model, inputs, is_functional), loss).backward()
        return
    if backend == "jax":
        grads = _jax_gradients(model, inputs, loss, is_functional)
    elif backend == "tensorflow":
        import tensorflow as tf

        tensors = tuple(tf.convert_to_tensor(x) for x in inputs)
        with tf.GradientTape() as tape:
            value = loss_value(call(model, tensors, is_functional), loss)
        grads = tape.gradient(value, variables)
    else:
        raise UnifyParamsError(
            f"gradients on the Keras {backend!r} backend are not supported; "
            f"use KERAS_BACKEND=tensorflow, KERAS_BACKEND=jax or KERAS_BACKEND=torch"
        )
    for v in model.variables:
        setattr(v, GRAD_ATTR, None)
    for v, g in zip(variables, grads):
        setattr(v, GRAD_ATTR, None if g is None else np.array(keras.ops.convert_to_numpy(g)))


def _jax_gradients(model: Any, inputs: tuple[Any, ...], loss: Callable[[Any], Any] | None,
                   is_functional: bool) -> list[Any]:
    """``d loss / d v`` for each of ``model.trainable_variables``, through ``jax.grad``.

    The model runs statelessly on the variables' current values (non-trainable state, such as
    batch-norm statistics, is read and its updates are dropped, as the other backends' default
    inference-mode call leaves it unchanged).
    """
    import jax

    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]
    args = (list(inputs),) if len(inputs) > 1 and is_functional else tuple(inputs)

    def objective(values: list[Any]) -> Any:
        outputs, _ = model.stateless_call(values, non_trainable, *args)
        return loss_value(outputs, loss)

    return list(jax.grad(objective)(trainable))


def build_by_calling(model: Any, inputs: tuple[np.ndarray, ...], is_functional: bool) -> None:
    """Call ``model`` once with ``training=False`` (under ``torch.no_grad`` on the torch backend)."""
    if keras.backend.backend() == "torch":
        import torch

        with torch.no_grad():
            call(model, tuple(inputs), is_functional, training=False)
    else:
        call(model, tuple(inputs), is_functional, training=False)


def grad_of(native: Any) -> np.ndarray | None:
    """The latest gradient of a variable: ``.grad`` of its torch tensor, or the one :func:`backward` kept."""
    if keras.backend.backend() == "torch":
        g = getattr(native.value, "grad", None)
        return None if g is None else np.array(keras.ops.convert_to_numpy(g), copy=True)
    return getattr(native, GRAD_ATTR, None)
