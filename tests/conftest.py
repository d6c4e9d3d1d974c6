"""Shared fixtures. Every backend must import: a missing framework is a failed install, not a skip."""

from __future__ import annotations

import numpy as np
import pytest

import unifyparams as up

from .numpy_framework import NumpyAdapter

up.register_adapter(NumpyAdapter)


@pytest.fixture
def numpy_adapter() -> NumpyAdapter:
    adapter = up.get_adapter("numpy-test")
    assert isinstance(adapter, NumpyAdapter)
    adapter.fail_writes_after = None
    yield adapter
    adapter.fail_writes_after = None


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
