"""Tying and untying Keras variables by swapping the variable a layer holds.

Keras shares weights by reusing a layer object; it has no API to make one layer use another's
variable. A layer computes with its attributes (``Dense`` reads ``self._kernel`` through the
``kernel`` property, ``LSTMCell`` reads ``self.kernel``), and lists its state from its tracker's
stores (``_trainable_variables``/``_non_trainable_variables``, used by ``weights``, saving and
``trainable_variables``). Replacing the variable in both places, at the same position, makes the
layer compute with, train, save and report the new variable. On the torch backend each layer also
mirrors its variables into a ``torch.nn.ParameterDict`` (``_torch_params``), rebuilt here so that
``model.parameters()`` lists the shared parameter once.

>>> replace_variable(dense, dense.kernel, other.kernel)   # doctest: +SKIP
>>> dense.kernel is other.kernel                          # doctest: +SKIP
True

Compiled train/test/predict functions captured the old variables; they are reset so Keras
re-traces them. An optimizer already built on the model keeps its own slot variables and must be
rebuilt (``model.compile(...)`` again) after a tie.
"""

from __future__ import annotations

from typing import Any

_STORES = frozenset({"_trainable_variables", "_non_trainable_variables", "_layers"})


def holders(block: Any, variable: Any) -> list[Any]:
    """The layers under ``block`` (itself included) that track ``variable`` themselves."""
    found = []
    for layer in block._flatten_layers(include_self=True):
        stores = list(layer._trainable_variables) + list(layer._non_trainable_variables)
        if any(v is variable for v in stores):
            found.append(layer)
    return found


def _swap_in_container(container: Any, old: Any, new: Any) -> bool:
    changed = False
    if isinstance(container, list):
        for i, item in enumerate(container):
            if item is old:
                list.__setitem__(container, i, new)
                changed = True
    elif isinstance(container, dict):
        for key, item in list(container.items()):
            if item is old:
                dict.__setitem__(container, key, new)
                changed = True
    return changed


def replace_variable(layer: Any, old: Any, new: Any) -> None:
    """Make ``layer`` hold ``new`` wherever it held ``old``: tracker stores, then attributes.

    The stores are swapped first, at the same position, so that the attribute assignment after
    it finds ``new`` already tracked (Keras would otherwise append it at the end) while
    TensorFlow's checkpoint tracking still records the new dependency under the attribute name.
    """
    tracker = layer._tracker
    for store_name, store in (
        ("trainable_variables", layer._trainable_variables),
        ("non_trainable_variables", layer._non_trainable_variables),
    ):
        if _swap_in_container(store, old, new):
            ids = tracker.stored_ids[store_name]
            ids.discard(id(old))
            ids.add(id(new))
    for name, value in list(vars(layer).items()):
        if value is old:
            setattr(layer, name, new)
        elif name not in _STORES and not name.startswith("_self_") and isinstance(value, (list, dict)):
            _swap_in_container(value, old, new)


def refresh_torch_params(root: Any) -> None:
    """Rebuild the torch backend's per-layer ``ParameterDict`` mirrors under ``root``.

    Besides the tracked sublayers this reaches modules Keras keeps outside its own tracking,
    such as the functional graph a ``Sequential`` builds (``_functional``), through torch's
    ``modules()``.
    """
    from keras.src.layers import Layer

    layers = {id(layer): layer for layer in root._flatten_layers(include_self=True)}
    for module in root.modules():
        if isinstance(module, Layer):
            layers.setdefault(id(module), module)
    for layer in layers.values():
        if "_torch_params" in getattr(layer, "_modules", {}) or "_torch_params" in vars(layer):
            layer._track_variables()


def reset_compiled(root: Any) -> None:
    """Drop traced train/test/predict functions, which captured the old variables."""
    for attr in ("train_function", "test_function", "predict_function"):
        if getattr(root, attr, None) is not None:
            setattr(root, attr, None)


def tie_problem(target: Any, source: Any, target_layout: str, source_layout: str) -> str | None:
    """Why Keras cannot make ``target``'s layer use ``source``'s variable, or ``None``.

    The core already compares canonical and native shapes and dtypes; two more things matter in
    Keras. Equal native shapes in different layouts (an ``(8, 8)`` Dense kernel, stored
    ``(in, out)``, and an ``Embedding(8, 8)`` table, stored ``(num, dim)``) would compute with the
    transpose. And ``trainable`` lives on the variable, so a trainable and a frozen variable
    cannot become one.
    """
    problems = []
    if target_layout != source_layout:
        problems.append(
            f"Keras stores them in different layouts ({source_layout} vs {target_layout}), so one "
            f"variable cannot serve both layers"
        )
    if tuple(target.shape) != tuple(source.shape):
        problems.append(f"native shapes differ: {tuple(source.shape)} vs {tuple(target.shape)}")
    if str(target.dtype) != str(source.dtype):
        problems.append(f"dtypes differ: {source.dtype} vs {target.dtype}")
    if bool(target.trainable) != bool(source.trainable):
        problems.append(
            f"one is trainable and the other is not (Keras keeps the trainable flag on the variable: "
            f"source trainable={bool(source.trainable)}, target trainable={bool(target.trainable)})"
        )
    return "; ".join(problems) or None
