"""Built-in scenarios; importing this package registers them."""

from . import access, lazy, tie  # noqa: F401
