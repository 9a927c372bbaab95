"""What the package needs of its database, said in one sentence when it is missing:
PostgreSQL (the system checks in ``checks.py`` and every writer), and its tables,
migrated (every command, and the writers when a statement finds no table).

The package uses only the default database alias. A bottom module: the scheduler, the
ledger, the runner, the checks and the commands all import it, and it imports nothing
of the package.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.core.exceptions import ImproperlyConfigured
from django.db import DEFAULT_DB_ALIAS, connection, connections

__all__ = [
    "MIGRATE_FIRST",
    "POSTGRESQL_MINIMUM",
    "POSTGRESQL_REQUIRED",
    "postgresql_required",
    "require_migrated",
    "require_postgresql",
    "tables_needed",
]

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


_postgresql_seen = False


def require_postgresql() -> None:
    """Raise ImproperlyConfigured unless the database the package uses is PostgreSQL.

    The package uses only the default database. One attribute check, no query, and
    none at all once it has passed: a process's database does not change engine (and
    reaching ``connection`` from any thread cost schedule_job several microseconds).
    """
    global _postgresql_seen
    if _postgresql_seen:
        return
    if connection.vendor != "postgresql":
        raise ImproperlyConfigured(postgresql_required())
    _postgresql_seen = True


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
