"""The conformance suite on numpynn: ``pytest examples/custom_adapter/tests`` once the example is installed."""

import pytest

from unifyparams.testing import ConformanceTests


class TestNumpyNNConformance(ConformanceTests):
    @pytest.fixture
    def adapter_name(self) -> str:
        return "numpynn"
