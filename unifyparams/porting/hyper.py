"""Hyper-parameters that change outputs without being parameters (normalization eps, momentum).

They are compared for every matched pair of layers, in every match mode, with a relative
tolerance: Keras DenseNet's ``1.001e-5`` against PyTorch's ``1e-5`` is reported, with both values.

>>> differs(1e-5, 1.001e-5), differs(0.1, 1 - 0.9)
(True, False)
"""

from __future__ import annotations

from collections.abc import Mapping

from .layers import LayerParams
from .report import PortReport

#: Relative difference below which two hyper-parameters are the same (float rounding of ``1 - m``).
RELATIVE_TOLERANCE = 1e-6


def differs(a: float, b: float) -> bool:
    return abs(a - b) > RELATIVE_TOLERANCE * max(abs(a), abs(b))


def _config(layer: LayerParams) -> Mapping[str, float]:
    p = next(iter(layer.params.values()))
    return p.adapter.layer_config(p.slot.block)


def compare_hyperparameters(s: LayerParams, d: LayerParams, report: PortReport) -> None:
    """A warning for each of ``eps``/``momentum`` (PyTorch's convention) that the two layers set differently."""
    src_cfg, dst_cfg = _config(s), _config(d)
    for key in ("eps", "momentum"):
        a, b = src_cfg.get(key), dst_cfg.get(key)
        if a is not None and b is not None and differs(a, b):
            report.warnings.append(
                f"{d.label}: {key} differs ({s.label}: {a!r}, {d.label}: {b!r}; momentum in PyTorch's "
                f"convention); outputs can differ slightly"
            )
