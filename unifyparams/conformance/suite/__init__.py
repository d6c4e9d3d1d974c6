"""The conformance suite as plain pytest: abstract test classes plus the fixtures an adapter overrides.

Hook an adapter in with one class (fsspec's ``tests/abstract`` pattern)::

    import pytest
    from unifyparams.testing import ConformanceTests

    class TestMyLibConformance(ConformanceTests):
        @pytest.fixture
        def adapter_name(self) -> str:
            return "mylib"

Each mixin holds one group of scenarios (``AccessTests`` the ``access.*`` ones, ...); a test class
may mix in only some of them with :class:`ConformanceFixtures`. A scenario's id is its test name:
``test_access__layer_kinds`` is ``access.layer_kinds`` (cases ``access.layer_kinds[conv2d]``).
"""

from __future__ import annotations

from .access import AccessTests
from .dataflow import DataflowTests
from .faults import FaultTests
from .fixtures import ConformanceFixtures, SkipUnsupported
from .ids import scenario_cases, scenario_id, scenario_test_name, scenario_tests, scenario_title
from .init import InitTests
from .lazy import LazyTests
from .port import CheckpointTests, PortTests
from .tie import TieTests


class ConformanceTests(
    AccessTests, InitTests, TieTests, LazyTests, PortTests, CheckpointTests, DataflowTests, FaultTests,
    ConformanceFixtures,
):
    """Every scenario of the suite; subclass it and override the ``adapter_name`` fixture."""


__all__ = [
    "AccessTests", "CheckpointTests", "ConformanceFixtures", "ConformanceTests", "DataflowTests", "FaultTests",
    "InitTests", "LazyTests", "PortTests", "SkipUnsupported", "TieTests", "scenario_cases", "scenario_id",
    "scenario_test_name", "scenario_tests", "scenario_title",
]
