"""Built-in scenarios; importing this package registers them."""

from . import access, init, lazy, port, tie  # noqa: F401
