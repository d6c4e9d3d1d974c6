"""Importing MXNet 1.9.1 on a modern NumPy.

MXNet 1.9.1 uses the ``numpy.bool`` alias that NumPy 1.24 removed (apache/mxnet#21165); defining it
back before the import is all it needs. MXNet also needs NumPy < 2.

>>> mx = import_mxnet()      # doctest: +SKIP
"""

from __future__ import annotations

from types import ModuleType

import numpy as np

from unifyparams.errors import AdapterUnavailableError

INSTALL_HINT = "pip install 'unifyparams[gluon]'  (MXNet 1.9.1 needs numpy<2)"


def import_mxnet() -> ModuleType:
    """Import and return ``mxnet``, defining ``numpy.bool`` first when NumPy lacks it.

    Raises :class:`~unifyparams.AdapterUnavailableError` saying what to install when MXNet is
    missing or cannot load (for instance under NumPy 2).
    """
    if int(np.__version__.split(".")[0]) >= 2:
        raise AdapterUnavailableError(
            f"MXNet 1.9.1 cannot run with NumPy {np.__version__}: it needs numpy<2. Install: {INSTALL_HINT}"
        )
    if "bool" not in np.__dict__:
        np.bool = bool  # type: ignore[attr-defined]  # the alias MXNet 1.9.1 still uses
    try:
        import mxnet
    except Exception as exc:  # ImportError, or a broken native library
        raise AdapterUnavailableError(f"MXNet could not be imported ({exc!r}). Install: {INSTALL_HINT}") from exc
    return mxnet
