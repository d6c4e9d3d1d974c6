"""The conformance suite on MXNet Gluon."""

import pytest

from unifyparams.testing import ConformanceTests


class TestGluonConformance(ConformanceTests):
    @pytest.fixture
    def adapter_name(self) -> str:
        return "gluon"
