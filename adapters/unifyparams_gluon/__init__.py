"""unifyparams adapter for MXNet Gluon 1.9.1 (registered under the ``gluon`` entry point).

Importing this package imports no MXNet. MXNet 1.9.1 (the last release) fails to import with
NumPy >= 1.24 unless ``numpy.bool`` is defined; :func:`import_mxnet` does that and returns the
module, for your own code too::

    from unifyparams_gluon import import_mxnet
    mx = import_mxnet()
"""

from .adapter import GluonAdapter
from .compat import import_mxnet

__all__ = ["GluonAdapter", "import_mxnet"]
