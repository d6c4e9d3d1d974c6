"""Built-in scenarios; importing this package registers them."""

from . import access  # noqa: F401
