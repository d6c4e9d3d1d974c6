"""The conformance suite: scenarios written once, run against every registered adapter.

Run it with ``python -m unifyparams.conformance`` (or ``unifyparams conformance``).
"""

from __future__ import annotations

from .builders import LAYER_KINDS, ModelBuilders
from .scenario import (
    ConformanceFailure,
    Outcome,
    Scenario,
    Unsupported,
    all_scenarios,
    check,
    run_scenario,
    scenario,
    skip,
)

__all__ = [
    "LAYER_KINDS",
    "ConformanceFailure",
    "ModelBuilders",
    "Outcome",
    "Scenario",
    "Unsupported",
    "all_scenarios",
    "check",
    "run_scenario",
    "scenario",
    "skip",
]
