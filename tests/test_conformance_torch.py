"""The conformance suite on PyTorch."""

import pytest

from unifyparams.testing import ConformanceTests


class TestTorchConformance(ConformanceTests):
    @pytest.fixture
    def adapter_name(self) -> str:
        return "torch"
