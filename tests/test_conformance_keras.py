"""The conformance suite on Keras, on the backend KERAS_BACKEND selects: CI runs it on tensorflow and on torch
(in .venv), and on jax in .venv-jax (the JAX pass of .ci/test). It imports no framework besides Keras."""

import pytest

from unifyparams.testing import ConformanceTests


class TestKerasConformance(ConformanceTests):
    @pytest.fixture
    def adapter_name(self) -> str:
        return "keras"
