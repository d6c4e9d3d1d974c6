"""unifyparams adapter for Keras 3 (TensorFlow, torch and JAX backends).

Registered under the ``unifyparams.adapters`` entry point as ``keras``. Importing this package
does not import Keras: the adapter imports it when it is first used.

>>> from unifyparams_keras import KerasAdapter
>>> KerasAdapter.name, KerasAdapter.priority
('keras', 10)
"""

from __future__ import annotations

from .adapter import KerasAdapter

__all__ = ["KerasAdapter"]
