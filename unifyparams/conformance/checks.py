"""What a conformance test raises: a failed check, or a skip for what a backend cannot express.

>>> from unifyparams.conformance import check
>>> check(1 + 1 == 2, "arithmetic: 1 + 1 should be 2")
"""

from __future__ import annotations

from typing import Any

from ..errors import UnifyParamsError


class ConformanceFailure(AssertionError):
    """A conformance test's expectation did not hold."""


class Unsupported(UnifyParamsError):
    """Raised by builders for a model a backend cannot express; the test that needs it is skipped."""


def check(condition: Any, message: str) -> None:
    """Assert ``condition``; ``message`` must explain the failure without reading the test.

    >>> check([] == [], "an empty list equals itself")
    """
    __tracebackhide__ = True  # a failure points at the test's line
    if not condition:
        raise ConformanceFailure(message)


def skip(reason: str) -> None:
    """Skip the running test with ``reason`` (raises :class:`Unsupported`, which the suite skips).

    >>> skip("no such model here")
    Traceback (most recent call last):
    unifyparams.conformance.checks.Unsupported: no such model here
    """
    raise Unsupported(reason)
