"""Fixtures of the model-file tests."""

from __future__ import annotations

import pytest

from graceful_core.models.loader import clear_model_cache


@pytest.fixture
def fresh_model_cache():
    """An empty model cache before and after the test: each load reads its file again."""
    clear_model_cache()
    yield
    clear_model_cache()
