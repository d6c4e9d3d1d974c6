"""The conformance suite in your own pytest run: subclass :class:`ConformanceTests`.

Name the adapter (as registered under the ``unifyparams.adapters`` entry point) and every
scenario runs as one test::

    import pytest
    from unifyparams.testing import ConformanceTests

    class TestMyLibConformance(ConformanceTests):
        @pytest.fixture
        def adapter_name(self) -> str:
            return "mylib"

That collects ``test_access__mlp_names_shapes``, ``test_access__layer_kinds[conv2d]``,
``test_tie__bad_ties``... (a scenario id with its first ``.`` spelled ``__``). The fixtures are
the hooks: ``builders`` (default: the ones declared under the ``unifyparams.builders`` entry
point), ``known_failures`` (default: the builders' ``known_failures``; each listed id is an
``xfail(strict=True)``), ``missing_capabilities`` (default: the adapter's; tests needing one
skip with its reason). Define a method with a scenario's test name to replace that test, or mix
in only some groups (``AccessTests``, ``TieTests``... with ``ConformanceFixtures``). This module
imports pytest and no framework.
"""

from __future__ import annotations

import pytest

from .conformance.report import Outcome
from .conformance.suite import (
    AccessTests,
    CheckpointTests,
    ConformanceFixtures,
    ConformanceTests,
    DataflowTests,
    FaultTests,
    InitTests,
    LazyTests,
    PortTests,
    TieTests,
    scenario_test_name,
)

__all__ = [
    "AccessTests", "CheckpointTests", "ConformanceFixtures", "ConformanceTests", "DataflowTests", "FaultTests",
    "InitTests", "LazyTests", "PortTests", "TieTests", "check_outcome", "scenario_test_name",
]


def check_outcome(outcome: Outcome, label: str = "") -> None:
    """Turn a recorded outcome into pytest's verdict (pass, skip, xfail or fail).

    >>> check_outcome(Outcome("access.example", "mylib", "pass"))
    """
    where = f"{label or outcome.backend} {outcome.label}"
    if outcome.status == "pass":
        return
    if outcome.status == "skip":
        pytest.skip(f"{where}: {outcome.reason}")
    if outcome.status == "xfail":
        pytest.xfail(f"{where}: known failure: {outcome.reason}")
    if outcome.status == "xpass":
        pytest.fail(f"XPASS {where}: {outcome.reason}; remove it from known_failures", pytrace=False)
    pytest.fail(f"{where}: {outcome.status}: {outcome.reason}\n{outcome.details}", pytrace=False)
