"""The test module ``python -m unifyparams.conformance`` runs for one matrix row, in its own process.

The runner names the adapter and the row in the environment; everything else is the suite.

    $ UNIFYPARAMS_CONFORMANCE_ADAPTER=torch pytest -p unifyparams.conformance.plugin \\
          unifyparams/conformance/row_suite.py
"""

from __future__ import annotations

import os

import pytest

from .suite import ConformanceTests

ADAPTER_ENV = "UNIFYPARAMS_CONFORMANCE_ADAPTER"


class TestConformance(ConformanceTests):
    """Every scenario, on the adapter named by ``UNIFYPARAMS_CONFORMANCE_ADAPTER``."""

    @pytest.fixture
    def adapter_name(self) -> str:
        return os.environ[ADAPTER_ENV]
