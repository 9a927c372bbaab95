"""Fixtures shared by unit and integration tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests import handlers


@pytest.fixture(scope="session")
def django_db_setup(django_test_environment: None, django_db_blocker: Any) -> Iterator[None]:
    """Always create the test database.

    pytest-django creates it only when some collected test carries the django_db
    mark or the db fixtures; a run of only ``committed_db`` tests (which must not
    run inside a transaction) would otherwise talk to the real database.
    """
    from django.test.utils import setup_databases, teardown_databases

    with django_db_blocker.unblock():
        config = setup_databases(verbosity=0, interactive=False, aliases={"default"})
    yield
    with django_db_blocker.unblock():
        teardown_databases(config, verbosity=0)


@pytest.fixture(autouse=True)
def _fresh_calls() -> Iterator[None]:
    handlers.calls.clear()
    yield
    handlers.calls.clear()
