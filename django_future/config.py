"""Settings, each read through one small function with its default here; and what
the package needs of its database, said in one sentence when it is missing.

This module imports nothing else of the package, so that every other one (the
scheduler, the ledger, the runner, the commands, the system checks) can use it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import DEFAULT_DB_ALIAS, connection, connections


def _seconds(name: str, default: float) -> dt.timedelta:
    value = getattr(settings, name, default)
    if isinstance(value, dt.timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ImproperlyConfigured(f"{name} must be a positive number of seconds, not {value!r}")
    return dt.timedelta(seconds=value)


def lease() -> dt.timedelta:
    """How long a runner's claim on its jobs lasts without a heartbeat (DJANGO_FUTURE_LEASE).

    A runner renews its lease every third of this; a runner silent for longer
    is taken for dead and its jobs are recovered. Default 30 seconds.
    """
    return _seconds("DJANGO_FUTURE_LEASE", 30)


def retry_delay() -> dt.timedelta:
    """Delay before the first retry when schedule_job(retries=...) gives none. Default 30 s."""
    return _seconds("DJANGO_FUTURE_RETRY_DELAY", 30)


def retry_max_delay() -> dt.timedelta:
    """Upper bound of the exponential backoff between retries. Default one hour."""
    return _seconds("DJANGO_FUTURE_RETRY_MAX_DELAY", 3600)


def poll_interval() -> dt.timedelta:
    """Longest a worker sleeps without looking at the queue (DJANGO_FUTURE_POLL_INTERVAL).

    Workers wake at once on NOTIFY when a job is scheduled; this bounds the
    sleep in case a notification is missed (PgBouncer in transaction mode
    drops LISTEN). Default 10 seconds.
    """
    return _seconds("DJANGO_FUTURE_POLL_INTERVAL", 10)


def prepared_statements() -> bool:
    """Whether runners prepare the two statements they send per job
    (DJANGO_FUTURE_PREPARED_STATEMENTS). Default True.

    Prepared once per connection, the claim and the completion are not parsed and
    planned again for every job. A runner behind a pooler that does not keep
    prepared statements (PgBouncer in transaction mode before 1.21, or with
    ``max_prepared_statements = 0``) notices on its first claim, says so in a
    warning and goes on without; set this to False to skip the attempt.
    """
    value = getattr(settings, "DJANGO_FUTURE_PREPARED_STATEMENTS", True)
    if not isinstance(value, bool):
        raise ImproperlyConfigured(
            f"DJANGO_FUTURE_PREPARED_STATEMENTS must be True or False, not {value!r}"
        )
    return value


# The oldest PostgreSQL the package supports (as the README says), which is also
# Django 5.2's own minimum; Django 6.1 needs 15.
POSTGRESQL_MINIMUM = 14
POSTGRESQL_REQUIRED = (
    f"django_future requires PostgreSQL {POSTGRESQL_MINIMUM} or later "
    "(Django 6.1 and later need 15 or later)"
)

MIGRATE_FIRST = (
    "The django_future tables are missing or out of date: run `python manage.py migrate` first."
)


def postgresql_required(alias: str = DEFAULT_DB_ALIAS) -> str:
    """The sentence saying that django_future needs PostgreSQL, naming ``alias``'s ENGINE."""
    engine = connections[alias].settings_dict.get("ENGINE")
    return f"{POSTGRESQL_REQUIRED}, but DATABASES[{alias!r}] uses ENGINE {engine!r}."


def require_postgresql() -> None:
    """Raise ImproperlyConfigured unless the database the package uses is PostgreSQL.

    The package uses only the default database. One attribute check: no query.
    """
    if connection.vendor != "postgresql":
        raise ImproperlyConfigured(postgresql_required())


def _missing_from_database(exc: BaseException) -> bool:
    """Whether ``exc`` says that one of the package's tables or functions does not exist."""
    # Django's ProgrammingError carries psycopg's error as its cause; psycopg's own
    # errors (from raw connections, pipeline mode) carry the SQLSTATE themselves.
    error = exc if hasattr(exc, "sqlstate") else exc.__cause__
    # 42P01: undefined table; 42883: undefined function (a migration not yet applied).
    return getattr(error, "sqlstate", None) in {"42P01", "42883"} and "django_future" in str(exc)


@contextmanager
def tables_needed() -> Iterator[None]:
    """Around statements on the package's tables: if they are missing, say to migrate.

    A query that finds no django_future table or function raises
    ImproperlyConfigured(MIGRATE_FIRST) instead, the database's error as its
    cause. Nothing is queried beforehand, so the check costs nothing on success.
    """
    try:
        yield
    except Exception as exc:
        if _missing_from_database(exc):
            raise ImproperlyConfigured(MIGRATE_FIRST) from exc
        raise


def require_migrated() -> None:
    """For management commands: raise CommandError(MIGRATE_FIRST), exit status 2, if
    any of django_future's migrations is unapplied on the default database.

    One look at ``django_migrations`` (and at whether it exists), against the
    migrations on disk.
    """
    from django.core.management.base import CommandError
    from django.db.migrations.loader import MigrationLoader

    if connection.vendor != "postgresql":
        raise CommandError(postgresql_required(), returncode=2)
    loader = MigrationLoader(connection)
    applied = loader.applied_migrations
    if any(key[0] == "django_future" and key not in applied for key in loader.graph.nodes):
        raise CommandError(MIGRATE_FIRST, returncode=2)
