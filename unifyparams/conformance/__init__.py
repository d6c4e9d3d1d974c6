"""The conformance suite: scenarios written once as plain pytest tests, run against every adapter.

Run it with ``python -m unifyparams.conformance`` (or ``unifyparams conformance``), which runs
pytest once per backend row and prints the matrix; or hook an adapter into your own pytest run
with :class:`unifyparams.testing.ConformanceTests`. Importing this package imports no framework
and not pytest.

>>> from unifyparams.conformance import LAYER_KINDS
>>> LAYER_KINDS["dense"]
('in_features', 'out_features')
"""

from __future__ import annotations

from .builders import LAYER_KINDS, ModelBuilders
from .checks import ConformanceFailure, Unsupported, check, skip
from .discovery import BUILDERS_GROUP, BuildersNotFoundError, builders_class, load_builders, register_builders
from .report import Outcome

_LEGACY = ("Scenario", "all_scenarios", "run_scenario", "scenario")


def __getattr__(name: str) -> object:
    """The deprecated names of the old scenario runner (see :mod:`unifyparams.conformance.legacy`)."""
    if name in _LEGACY:
        from . import legacy

        return getattr(legacy, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "BUILDERS_GROUP",
    "LAYER_KINDS",
    "BuildersNotFoundError",
    "ConformanceFailure",
    "ModelBuilders",
    "Outcome",
    "Unsupported",
    "builders_class",
    "check",
    "load_builders",
    "register_builders",
    "skip",
]
