"""Every conformance scenario against every built-in adapter, in this process.

The Keras row uses whatever backend ``KERAS_BACKEND`` selects; CI runs this file a second time
with ``KERAS_BACKEND=torch``. A framework that fails to import makes its scenarios fail (as
errors), never skip: a missing install must not pass silently. Skips come only from capabilities
an adapter declares it lacks, or models a framework cannot express, with the reason.
"""

from __future__ import annotations

import functools
import os

import pytest

import unifyparams as up
from unifyparams.conformance import all_scenarios, run_scenario
from unifyparams.conformance.worker import load_builders, load_known_failures

BACKENDS = ["torch", "keras", "gluon"]
SCENARIOS = all_scenarios()


@functools.cache
def kit_for(backend: str):
    adapter_cls = up.available_adapters()[backend]
    return up.get_adapter(backend), load_builders(adapter_cls)


@pytest.mark.parametrize("scenario_id", list(SCENARIOS))
@pytest.mark.parametrize("backend", BACKENDS)
def test_scenario(backend: str, scenario_id: str) -> None:
    adapter, kit = kit_for(backend)
    outcome = run_scenario(
        SCENARIOS[scenario_id],
        kit,
        missing=dict(adapter.missing_capabilities),
        known_failures=load_known_failures(type(adapter)),
        backend=backend,
    )
    label = f"{backend}[{os.environ.get('KERAS_BACKEND', 'tensorflow')}]" if backend == "keras" else backend
    if outcome.status == "skip":
        pytest.skip(f"{label}: {outcome.reason}")
    if outcome.status == "xfail":
        pytest.xfail(f"{label}: {outcome.reason}")
    assert outcome.status == "pass", f"{label} {scenario_id}: {outcome.reason}\n{outcome.details}"
