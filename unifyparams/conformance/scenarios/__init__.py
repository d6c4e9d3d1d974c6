"""Built-in scenarios; importing this package registers them."""

from . import access, init, lazy, tie  # noqa: F401
