"""``scheduledjobs grant-audit`` and ``revoke-audit``, proven by connecting as the role.

That the role runs every documented query is proven beside those queries, in
tests/docs/test_documented_sql.py. Here: it writes nowhere, reads nothing else, and
loses what it had on ``revoke-audit``; bad role names are refused with a clear message.
"""

from __future__ import annotations

import io

import psycopg
import psycopg.errors
import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from django_future import schedule_job
from django_future.auditrole import AUDIT_TABLES, AUDIT_VIEWS
from tests.support import audit_role
from tests.testapp.models import Order

committed = pytest.mark.usefixtures("committed_db")
READABLE = {*AUDIT_VIEWS, *AUDIT_TABLES}


def _tables() -> list[str]:
    """Every table of the test database's schema: ours, Django's and the test app's."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind IN ('r', 'p') AND n.nspname = current_schema() ORDER BY 1"
        )
        return [name for (name,) in cursor.fetchall()]


def _refused(conn: psycopg.Connection, statement: str) -> bool:
    try:
        conn.execute(statement)
    except psycopg.errors.InsufficientPrivilege:
        return True
    return False


@committed
def test_the_audit_role_reads_the_history_and_nothing_else_and_writes_nowhere() -> None:
    job = schedule_job("0s", "tests.handlers.record", content_object=Order.objects.create())
    tables = _tables()
    # The tables the brief names are among those tried.
    assert {"auth_user", "django_future_scheduledjob", "django_future_jobevent"} <= set(tables)
    assert {"testapp_order", "django_session", "django_future_runnerprocess"} <= set(tables)
    with audit_role() as (_name, auditor):
        for name in sorted(READABLE):
            auditor.execute(f"SELECT * FROM {name} LIMIT 1")
        (seen,) = auditor.execute(
            "SELECT count(*) FROM django_future_jobevent WHERE job_id = %s", [job.pk]
        ).fetchone()
        assert seen == 1
        unreadable = [t for t in tables if t not in READABLE]
        assert len(unreadable) >= 10
        for table in unreadable:
            assert _refused(auditor, f"SELECT * FROM {table} LIMIT 1"), table
        for table in tables:
            column = auditor.execute(
                "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum = 1",
                [table],
            ).fetchone()[0]
            for statement in (
                f"INSERT INTO {table} DEFAULT VALUES",
                f'UPDATE {table} SET "{column}" = "{column}"',
                f"DELETE FROM {table}",
                f"TRUNCATE {table}",
            ):
                assert _refused(auditor, statement), statement
        # Nor through the package's functions: none runs with its owner's rights, so any
        # write one makes is refused as the plain statements above are.
        (definers,) = auditor.execute(
            "SELECT count(*) FROM pg_proc WHERE prosecdef AND proname LIKE 'django_future%'"
        ).fetchone()
        assert definers == 0
    # Nothing the role tried changed the ledger (committed_db verifies it afterwards too).
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM django_future_jobevent WHERE job_id = %s", [job.pk])
        assert cursor.fetchone() == (1,)


@committed
def test_grant_twice_then_revoke_takes_everything_back() -> None:
    with audit_role() as (name, auditor):
        out = io.StringIO()
        call_command("scheduledjobs", "grant-audit", name, stdout=out)  # a second time
        assert f"role {name} may now read" in out.getvalue()
        for view in AUDIT_VIEWS:
            auditor.execute(f"SELECT count(*) FROM {view}")
        call_command("scheduledjobs", "revoke-audit", name, stdout=out)
        call_command("scheduledjobs", "revoke-audit", name, stdout=out)  # and again
        assert f"role {name} may no longer read" in out.getvalue()
        for relation in sorted(READABLE):
            assert _refused(auditor, f"SELECT 1 FROM {relation} LIMIT 1"), relation


@committed
@pytest.mark.parametrize(
    ("role", "message"),
    [
        ("no_such_role_here", "there is no role 'no_such_role_here'"),
        ('x" TO PUBLIC; --', "is not a role name this command accepts"),
        ("auditor; DROP TABLE auth_user", "is not a role name this command accepts"),
        ("", "is not a role name this command accepts"),
        ("a" * 64, "is not a role name this command accepts"),
        ("nul\x00byte", "is not a role name this command accepts"),
    ],
)
@pytest.mark.parametrize("action", ["grant-audit", "revoke-audit"])
def test_a_bad_role_is_refused_and_nothing_is_granted(action: str, role: str, message: str) -> None:
    with pytest.raises(CommandError, match=message) as caught:
        call_command("scheduledjobs", action, role, stdout=io.StringIO())
    assert caught.value.returncode == 2
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM information_schema.role_table_grants "
            "WHERE table_name = 'django_future_jobevent' AND grantee = 'PUBLIC'"
        )
        assert cursor.fetchone() == (0,)


@committed
def test_the_owner_of_the_tables_and_a_superuser_are_refused() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user")
        me, superuser = cursor.fetchone()
    expected = "is a superuser" if superuser else "owns the ledger's tables"
    with pytest.raises(CommandError, match=expected):
        call_command("scheduledjobs", "revoke-audit", me, stdout=io.StringIO())
    # The owner kept its rights.
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM django_future_jobevent")


@pytest.mark.django_db
def test_a_role_that_owns_the_tables_is_refused() -> None:
    """Revoking from the owner would take its own rights away. The ownership changes inside
    this test's transaction, rolled back afterwards."""
    with connection.cursor() as cursor:
        cursor.execute("CREATE ROLE ledger_owner_for_test NOLOGIN")
        cursor.execute("ALTER TABLE django_future_jobevent OWNER TO ledger_owner_for_test")
    for action in ("grant-audit", "revoke-audit"):
        with pytest.raises(CommandError, match="owns the ledger's tables; an audit role"):
            call_command("scheduledjobs", action, "ledger_owner_for_test", stdout=io.StringIO())
