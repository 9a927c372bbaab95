"""A read-only role for auditors: ``scheduledjobs grant-audit ROLE`` and ``revoke-audit ROLE``.

What the role gets is what docs/audit.md reads, and no more:

- SELECT on the audit views. A view runs with its owner's rights (PostgreSQL's default,
  ``security_invoker`` off), so the views that read the job table or the runner table need
  no grant on those tables: the role reads them only as the views shape them.
- SELECT on the ledger itself and on the two other append-only records of history: what
  each ``prune`` removed, and what each periodic schedule said. ``django_future_jobs_as_of``
  runs with the caller's rights and reads only the ledger.
- USAGE on the schema that holds them.

Nothing else: no other table of the application (users, sessions, the job table itself,
the runners and their locks), and no right to write anywhere. Every function of the package
runs with the caller's rights (none is ``SECURITY DEFINER``), so calling one that writes
fails for this role as a plain INSERT would.

Granting twice, or revoking what was never granted, changes nothing. The role must exist
(creating it, with its password, is the DBA's business) and must not be the role that owns
the tables: revoking from the owner would take its own rights away.
"""

from __future__ import annotations

import re

from django.db import connection, transaction
from psycopg import sql

__all__ = ["AUDIT_TABLES", "AUDIT_VIEWS", "RoleError", "grant", "revoke"]

AUDIT_VIEWS = (
    "django_future_job_history",
    "django_future_job_state",
    "django_future_attempts",
    "django_future_failures",
    "django_future_runner_activity",
    "django_future_callable_timings",
    "django_future_periodic_ticks",
)
AUDIT_TABLES = (
    "django_future_jobevent",
    "django_future_prunerecord",
    "django_future_periodicchange",
)

# PostgreSQL truncates names at 63 bytes; a name is quoted anyway, this only keeps typos
# and pasted SQL out with a message that says why.
ROLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,62}")


class RoleError(ValueError):
    """The role cannot be given (or relieved of) audit access; the message says why."""


def _checked(role: str) -> tuple[str, str]:
    """The schema of the ledger, and the owner of its tables, once ``role`` is known to be
    a fit name of an existing role other than that owner."""
    if not ROLE_NAME.fullmatch(role):
        raise RoleError(
            f"{role!r} is not a role name this command accepts: a letter or underscore, then "
            "up to 62 letters, digits, '_', '.' or '-'"
        )
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT rolsuper FROM pg_roles WHERE rolname = %s",
            [role],
        )
        found = cursor.fetchone()
        if found is None:
            raise RoleError(
                f"there is no role {role!r} in this PostgreSQL server; create it first, e.g. "
                f"CREATE ROLE \"{role}\" LOGIN PASSWORD '...'"
            )
        cursor.execute(
            "SELECT n.nspname, pg_get_userbyid(c.relowner) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.oid = 'django_future_jobevent'::regclass"
        )
        schema, owner = cursor.fetchone()
    if found[0]:
        raise RoleError(f"{role!r} is a superuser: it reads everything whatever is granted")
    if role == owner:
        raise RoleError(f"{role!r} owns the ledger's tables; an audit role must be another role")
    return schema, owner


def _statements(verb: str, role: str, schema: str) -> list[sql.Composed]:
    to = sql.SQL("TO") if verb == "GRANT" else sql.SQL("FROM")
    names = sql.SQL(", ").join(
        sql.Identifier(schema, name) for name in (*AUDIT_VIEWS, *AUDIT_TABLES)
    )
    return [
        sql.SQL("{} USAGE ON SCHEMA {} {} {}").format(
            sql.SQL(verb), sql.Identifier(schema), to, sql.Identifier(role)
        ),
        sql.SQL("{} SELECT ON {} {} {}").format(sql.SQL(verb), names, to, sql.Identifier(role)),
    ]


def _apply(verb: str, role: str) -> list[str]:
    schema, _owner = _checked(role)
    done = []
    with transaction.atomic(), connection.cursor() as cursor:
        for statement in _statements(verb, role, schema):
            text = statement.as_string(cursor.cursor)
            cursor.execute(text)
            done.append(text)
    return done


def grant(role: str) -> list[str]:
    """Give ``role`` read access to the ledger's history and its views; the statements run."""
    return _apply("GRANT", role)


def revoke(role: str) -> list[str]:
    """Take back what ``grant`` gave; the statements run."""
    return _apply("REVOKE", role)
