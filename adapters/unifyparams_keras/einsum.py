"""Keras ``EinsumDense`` as a linear layer: the canonical ``(out, in)`` weight from the equation.

An ``EinsumDense`` computes ``einsum(equation, x, kernel)``. When the equation is a linear map
(every kernel axis is either contracted with the input or appears only in the output), it is a
``nn.Linear`` over flattened axes: the kernel axes of the input but not the output are the
input features (in the order the *input* spec names them), those of the output but not the input
the output features (in the order the *output* spec names them). The canonical weight is the
kernel transposed to ``(out axes..., in axes...)`` and reshaped to ``(prod(out), prod(in))``, so
``x_flat @ weight.T`` is the layer's output, flattened.

>>> spec = parse("abc,cde->abde")
>>> spec.in_axes, spec.out_axes
('c', 'de')
>>> kernel_layout(spec, (64, 4, 16)).canonical_shape((64, 4, 16))
(64, 64)
>>> kernel_layout(parse("btnh,nhd->btd"), (4, 16, 64)).tag
'transpose(2,0,1) then reshape(64, 4, 16)->(64, 64)'
>>> parse("bquh,bkuh->buqk") is None     # a batched einsum: the kernel shares an axis with both sides
True
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from math import prod

from unifyparams.layouts import IDENTITY, Layout, Reshape, Shape, Transpose

_EQUATION = re.compile(r"^(?P<x>(?:[a-zA-Z]|\.\.\.)+),(?P<k>[a-zA-Z]+)->(?P<y>(?:[a-zA-Z]|\.\.\.)+)$")


@dataclass(frozen=True)
class EinsumSpec:
    """The axes of a linear ``EinsumDense`` equation (``...`` removed: it only ever holds batch axes)."""

    input: str
    kernel: str
    output: str
    #: Kernel axes contracted with the input, in input-spec order.
    in_axes: str
    #: Kernel axes that only the output has, in output-spec order.
    out_axes: str


def parse(equation: object) -> EinsumSpec | None:
    """The spec of ``input,kernel->output``, or ``None`` when it is not a plain linear map (a
    kernel axis on both sides, an input axis summed away, an output axis from nowhere) or does
    not parse."""
    if not isinstance(equation, str):
        return None
    match = _EQUATION.match(equation.replace(" ", ""))
    if match is None:
        return None
    x_full, kernel, y_full = match["x"], match["k"], match["y"]
    if x_full.count("...") > 1 or y_full.count("...") > 1 or ("..." in x_full) != ("..." in y_full):
        return None
    x, y = x_full.replace("...", ""), y_full.replace("...", "")
    if any(len(set(s)) != len(s) for s in (x, kernel, y)):
        return None
    if any(a in x and a in y for a in kernel):  # batched over a kernel axis: not a linear map
        return None
    if any(a not in x and a not in y for a in kernel):  # a kernel axis summed on its own
        return None
    if any(a not in kernel and a not in y for a in x) or any(a not in kernel and a not in x for a in y):
        return None  # an input axis summed away, or an output axis broadcast from nowhere
    in_axes = "".join(a for a in x if a in kernel)
    out_axes = "".join(a for a in y if a in kernel)
    if not in_axes or not out_axes:
        return None
    return EinsumSpec(x, kernel, y, in_axes, out_axes)


def _known(shape: Shape) -> tuple[int, ...] | None:
    if any(d is None for d in shape):
        return None
    return tuple(int(d) for d in shape)  # type: ignore[arg-type]


def kernel_layout(spec: EinsumSpec, shape: Shape) -> Layout | None:
    """Native kernel -> ``(prod(out axes), prod(in axes))``; ``None`` if ``shape`` does not fit."""
    known = _known(shape)
    if known is None or len(known) != len(spec.kernel):
        return None
    perm = tuple(spec.kernel.index(a) for a in spec.out_axes + spec.in_axes)
    permuted = tuple(known[a] for a in perm)
    n_out = len(spec.out_axes)
    matrix = (prod(permuted[:n_out]), prod(permuted[n_out:]))
    layout: Layout = IDENTITY if perm == tuple(range(len(perm))) else Transpose(perm)
    if permuted != matrix:
        layout = layout.then(Reshape(permuted, matrix))
    return layout


def bias_layout(spec: EinsumSpec, bias_axes: object, shape: Shape) -> Layout | None:
    """Native bias -> ``(prod(out axes),)`` when the bias covers exactly the output features,
    else ``None``. Keras lays a bias out over the output spec from its first bias axis on (size 1
    on the others), which is already output order, so a reshape is all it takes."""
    known = _known(shape)
    if known is None or not isinstance(bias_axes, str) or set(bias_axes) != set(spec.out_axes):
        return None
    if len(bias_axes) != len(spec.out_axes):
        return None
    size = prod(known)
    if len(known) == 1:
        return IDENTITY
    return Reshape(known, (size,))
