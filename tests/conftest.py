"""Fixtures shared by unit and integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests import handlers


@pytest.fixture(autouse=True)
def _fresh_calls() -> Iterator[None]:
    handlers.calls.clear()
    yield
    handlers.calls.clear()
