"""Deprecated: the file-format package is :mod:`unifyparams.formats` now.

``from unifyparams.native import read`` keeps working (with a DeprecationWarning); "native" also
means a framework's own object, layout and name, so the package got a name that says what it holds.
"""

from __future__ import annotations

import warnings
from typing import Any

from .. import formats as _formats

warnings.warn(
    "unifyparams.native is deprecated; import unifyparams.formats instead", DeprecationWarning, stacklevel=2
)

__all__ = list(_formats.__all__)


def __getattr__(name: str) -> Any:
    if name == "KERAS_NATIVE":  # a Keras fact now kept by the Keras adapter; the label is unchanged
        return "keras-native"
    return getattr(_formats, name)
