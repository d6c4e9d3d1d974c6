"""unifyparams adapter for numpynn, registered under the ``unifyparams.adapters`` entry point."""

from .adapter import NumpyNNAdapter

__all__ = ["NumpyNNAdapter"]
