"""unifyparams adapter for PyTorch: ``nn.Module`` parameters in the canonical (PyTorch) layout.

Importing this package does not import torch; the registry creates :class:`TorchAdapter` only
for models of an already imported torch.

>>> import torch, unifyparams as up
>>> up.params(torch.nn.Linear(3, 2))["weight"].shape
(2, 3)
"""

from __future__ import annotations

from .adapter import TorchAdapter

__all__ = ["TorchAdapter"]
