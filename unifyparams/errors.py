"""Every error unifyparams raises derives from :class:`UnifyParamsError`.

Messages follow one pattern: what was expected, what was received, and how to fix it.
Catch the base class to handle any of them::

    try:
        ps.load(state)
    except up.UnifyParamsError as err:
        print(err)
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UnifyParamsError(Exception):
    """Base class of all unifyparams errors."""


class AdapterUnavailableError(UnifyParamsError, ImportError):
    """An adapter could not load its framework (missing or broken install)."""


class UnsupportedModelError(UnifyParamsError, TypeError):
    """No registered adapter recognises the object passed as a model."""


class ParameterNotFoundError(UnifyParamsError, KeyError):
    """A canonical parameter name (or pattern) matched nothing."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class ShapeMismatchError(UnifyParamsError, ValueError):
    """A value's shape does not match the parameter's canonical shape."""


class DtypeMismatchError(UnifyParamsError, TypeError):
    """A value cannot be cast safely to the parameter's dtype."""


class LoadError(UnifyParamsError, ValueError):
    """A state could not be loaded; nothing was changed."""


class NotMaterializedError(UnifyParamsError, RuntimeError):
    """A parameter's shape is not known yet, so it has no values."""


class InitializerError(UnifyParamsError, ValueError):
    """An initializer is unknown, misconfigured, or produced an unusable value."""


class TieError(UnifyParamsError, ValueError):
    """Parameters cannot be tied (or untied) as asked."""


class CheckpointError(UnifyParamsError, ValueError):
    """A checkpoint file is malformed or does not fit the model."""


class WriteError(UnifyParamsError, RuntimeError):
    """The framework refused to write a parameter (or a value could not be produced) after checks passed.

    Raised by :func:`unifyparams.transaction.write_all`, the one place that writes many parameters.
    The message names the parameter and gives the framework's reason; the attributes say what is
    verified about the model afterwards:

    - ``parameter``: the canonical name whose write failed (``None`` when refused before any write);
    - ``changed``: False when every parameter is verified to hold its previous value (refused before
      the first write, or every parameter written was restored and read back); True otherwise;
    - ``not_restored``: names that could not be restored (their state is unknown or new).
    """

    def __init__(
        self, message: str, *, parameter: str | None = None, changed: bool = False, not_restored: tuple[str, ...] = ()
    ):
        super().__init__(message)
        self.parameter = parameter
        self.changed = changed
        self.not_restored = tuple(not_restored)


class CollectiveFailure(UnifyParamsError, RuntimeError):
    """An operation on a model sharded over processes failed on some rank: raised on every rank
    with one message, naming the rank and its reason (see :mod:`unifyparams.distributed`)."""


def closest_names(name: str, candidates: Iterable[str], limit: int = 5) -> list[str]:
    """Return up to ``limit`` names from ``candidates`` that look most like ``name``.

    >>> closest_names("0.wieght", ["0.weight", "0.bias", "1.weight"])
    ['0.weight', '1.weight']
    """
    pool = list(candidates)
    close = difflib.get_close_matches(name, pool, n=limit, cutoff=0.5)
    if close:
        return close
    prefix = name.split(".")[0]
    return [c for c in pool if c.startswith(prefix)][:limit] or pool[:limit]


def describe_names(names: Iterable[str], limit: int = 8) -> str:
    """Format a list of names for an error message, truncated after ``limit``."""
    items = list(names)
    shown = ", ".join(repr(n) for n in items[:limit])
    if len(items) > limit:
        shown += f", ... ({len(items) - limit} more)"
    return shown or "(none)"
