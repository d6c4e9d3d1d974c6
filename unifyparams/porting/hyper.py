"""Hyper-parameters that change outputs without being parameters (normalization eps, momentum).

They are compared for every matched pair of layers, in every match mode, with a relative
tolerance: Keras DenseNet's ``1.001e-5`` against PyTorch's ``1e-5`` is reported, with both values.

>>> differs(1e-5, 1.001e-5), differs(0.1, 1 - 0.9)
(True, False)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .layers import LayerParams
from .report import PortReport

#: Relative difference below which two hyper-parameters are the same (float rounding of ``1 - m``).
RELATIVE_TOLERANCE = 1e-6


def differs(a: float, b: float) -> bool:
    return abs(a - b) > RELATIVE_TOLERANCE * max(abs(a), abs(b))


def _config(layer: LayerParams) -> Mapping[str, float]:
    p = next(iter(layer.params.values()))
    return p.adapter.layer_config(p.slot.block)


def compare_hyperparameters(pairs: Sequence[tuple[LayerParams, LayerParams]], report: PortReport) -> None:
    """One warning per kind of difference in ``eps``/``momentum`` (PyTorch's convention) between
    matched layers, naming the layers: a DenseNet's 120 batch norms with one momentum each make one
    line, not 120."""
    found: dict[tuple[str, float, float], list[str]] = {}
    for s, d in pairs:
        src_cfg, dst_cfg = _config(s), _config(d)
        for key in ("eps", "momentum"):
            a, b = src_cfg.get(key), dst_cfg.get(key)
            if a is not None and b is not None and differs(a, b):
                found.setdefault((key, a, b), []).append(d.label)
    for (key, a, b), labels in found.items():
        where = ", ".join(labels[:3]) + (f" and {len(labels) - 3} more" if len(labels) > 3 else "")
        convention = "; momentum in PyTorch's convention" if key == "momentum" else ""
        report.warnings.append(
            f"{key} differs in {len(labels)} layer(s) (source {a!r}, destination {b!r}{convention}): {where}; "
            f"outputs can differ slightly" + ("" if key == "eps" else " (only training updates running statistics)")
        )
