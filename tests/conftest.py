"""Fixtures for every test folder: a real PostgreSQL, committed data when processes must
see it, and the check, after every test, that the job rows are exactly what the ledger
says. Helpers that tests import by name are in tests/support.py.

Tests marked ``unit`` need no database (``pytest -m unit`` runs them alone, with any
DATABASE_URL, no server needed). pytest-django refuses database access to a test without
the ``django_db`` mark, and ``pytest_collection_modifyitems`` below refuses a ``unit``
test that carries that mark or asks for a fixture that reaches the database.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pgtrigger
import psycopg
import psycopg.conninfo
import pytest
from django.db import connection

from django_future import ledger
from tests import handlers, pgbouncer
from tests.support import kill_leftover_runners, subprocess_env

# Fixtures that reach the database, which a test marked ``unit`` must not use.
DATABASE_FIXTURES = frozenset(
    {
        "db",
        "transactional_db",
        "django_db_setup",
        "admin_client",
        "admin_user",
        "committed_db",
        "fresh_database",
    }
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    no_pgbouncer = pgbouncer.why_not()
    for item in items:
        if no_pgbouncer and item.get_closest_marker("pgbouncer") is not None:
            item.add_marker(pytest.mark.skip(reason=no_pgbouncer))
        if item.get_closest_marker("unit") is None:
            continue
        reached = DATABASE_FIXTURES & set(getattr(item, "fixturenames", ()))
        if item.get_closest_marker("django_db") is not None or reached:
            uses = ", ".join(sorted(reached)) or "the django_db mark"
            raise pytest.UsageError(f"{item.nodeid} is marked unit but uses the database: {uses}")


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


@pytest.fixture(autouse=True)
def _projection_agrees_with_ledger(request: pytest.FixtureRequest) -> Iterator[None]:
    """After every scenario, fold(events) must equal the projection, row for row."""
    yield
    # committed_db checks for itself, before it empties the tables.
    uses_db = request.node.get_closest_marker("django_db") is not None or bool(
        {"db", "transactional_db"} & set(request.fixturenames)
    )
    if uses_db:
        differences = ledger.verify()
        assert differences == [], "\n".join(map(str, differences))


@pytest.fixture
def committed_db(django_db_setup: None, django_db_blocker: Any) -> Iterator[None]:
    """Database access without a wrapping transaction, so other processes see our writes.

    Afterwards every table is emptied. The ledger refuses DELETE and TRUNCATE, so the
    clean-up goes through ``pgtrigger.ignore``, the sanctioned bypass.
    """
    with django_db_blocker.unblock():
        name = connection.settings_dict["NAME"]
        assert name.startswith("test_"), f"refusing to run committed tests on {name!r}"
        try:
            yield
        finally:
            kill_leftover_runners()
        differences = ledger.verify()
        with pgtrigger.ignore(), connection.cursor() as cursor:
            cursor.execute(
                "DELETE FROM django_future_scheduledjob; DELETE FROM django_future_jobevent; "
                "DELETE FROM django_future_runnerprocess; "
                "DELETE FROM django_future_periodictick; DELETE FROM django_future_periodicchange; "
                "DELETE FROM django_future_queuelimit; DELETE FROM django_future_prunerecord; "
                "DELETE FROM testapp_jobrun; DELETE FROM testapp_order; DELETE FROM testapp_document;"
            )
        assert differences == [], "\n".join(map(str, differences))


@pytest.fixture
def fresh_database() -> Iterator[str]:
    """A new, empty database on the test server (dropped afterwards); its conninfo."""
    name = f"test_fresh_{uuid.uuid4().hex[:8]}"
    admin = subprocess_env()["DATABASE_URL"]
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield psycopg.conninfo.make_conninfo(admin, dbname=name)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pgbouncer_url(django_db_setup: None) -> Iterator[str]:
    """The test database through a real PgBouncer in transaction pooling mode (its conninfo);
    skipped, and said in the summary, where the binary is missing."""
    if (reason := pgbouncer.why_not()) is not None:
        pytest.skip(reason)
    with pgbouncer.start(connection.settings_dict) as url:
        yield url


@pytest.fixture(
    params=["postgres", pytest.param("pgbouncer", marks=pytest.mark.pgbouncer)],
)
def route(request: pytest.FixtureRequest) -> dict[str, str]:
    """How a runner process reaches the database: directly, or through PgBouncer in
    transaction mode, set up as docs/operations.md says (LISTEN on a direct connection,
    no prepared statements).
    The environment to pass to ``start_runner``."""
    if request.param == "postgres":
        return {}
    return {
        "DATABASE_URL": request.getfixturevalue("pgbouncer_url"),
        "LISTEN_DATABASE_URL": subprocess_env()["DATABASE_URL"],
        "DJANGO_FUTURE_PREPARED_STATEMENTS": "0",
    }


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say plainly when the PgBouncer tests did not run, and why."""
    skipped = [
        r for r in terminalreporter.stats.get("skipped", []) if pgbouncer.REASON in str(r.longrepr)
    ]
    if skipped:
        terminalreporter.write_line(
            f"{len(skipped)} test(s) not run. {pgbouncer.why_not()}", yellow=True, bold=True
        )
