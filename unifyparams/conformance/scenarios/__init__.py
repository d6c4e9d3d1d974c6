"""Built-in scenarios; importing this package registers them."""

from . import access, tie  # noqa: F401
