"""Built-in scenarios; importing this package registers them."""

from . import access, dataflow, faults, init, lazy, port, tie  # noqa: F401
