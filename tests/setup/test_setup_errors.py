"""The first wrong steps of a new project, each answered with one clear sentence.

Real processes, as a newcomer runs them: ``manage.py`` (as ``python -m django``)
with a settings module written for the case, against SQLite, a PostgreSQL
database that was never migrated, or INSTALLED_APPS without pgtrigger.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

from django_future import database
from tests.support import ROOT, subprocess_env

MIGRATE_FIRST = "run `python manage.py migrate` first"


def django(
    *args: str, settings: str = "", tmp_path: Path | None = None, database: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``manage.py ARGS`` in a new process: tests.settings, plus ``settings`` if given."""
    env = subprocess_env()
    if database is not None:
        env["DATABASE_URL"] = database
    if settings:
        assert tmp_path is not None
        (tmp_path / "case_settings.py").write_text(f"from tests.settings import *\n\n{settings}\n")
        env["PYTHONPATH"] = f"{ROOT}{os.pathsep}{tmp_path}"
        env["DJANGO_SETTINGS_MODULE"] = "case_settings"
    return subprocess.run(
        [sys.executable, "-m", "django", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def sqlite_settings(tmp_path: Path) -> str:
    return (
        "DATABASES = {'default': {'ENGINE': 'django.db.backends.sqlite3', "
        f"'NAME': {str(tmp_path / 'db.sqlite3')!r}}}}}"
    )


# Python run by `manage.py shell -c`: each public writer, and how it fails.
WRITERS = """
from django.core.exceptions import ImproperlyConfigured
from django_future import ledger, schedule_job, schedule_jobs

calls = {
    "schedule_job": lambda: schedule_job("1m", "tests.handlers.record"),
    "schedule_jobs": lambda: schedule_jobs([{"date": "1m", "callable_name": "tests.handlers.record"}]),
    "cancel": lambda: ledger.cancel(1),
}
for name, call in calls.items():
    try:
        call()
    except ImproperlyConfigured as exc:
        cause = exc.__cause__
        print(name, "|", exc, "|", getattr(getattr(cause, "__cause__", None), "sqlstate", None))
    else:
        print(name, "| no error")
"""


def writer_lines(proc: subprocess.CompletedProcess[str]) -> dict[str, list[str]]:
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    return {name: rest for name, *rest in (line.split(" | ") for line in proc.stdout.splitlines())}


# 4. Another database than PostgreSQL.

E001 = (
    "django_future.E001) django_future requires PostgreSQL 14 or later (Django 6.1 and later "
    "need 15 or later), but DATABASES['default'] uses ENGINE 'django.db.backends.sqlite3'."
)


@pytest.mark.parametrize(
    "command", [["check"], ["migrate"], ["runscheduledjobs"], ["scheduledjobs", "status"]]
)
def test_sqlite_is_refused_by_a_system_check(tmp_path: Path, command: list[str]) -> None:
    proc = django(*command, settings=sqlite_settings(tmp_path), tmp_path=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert E001 in proc.stderr
    assert "HINT: Set DATABASES['default']['ENGINE'] to 'django.db.backends.postgresql'." in (
        proc.stderr
    )
    assert "Traceback" not in proc.stderr
    assert "near" not in proc.stderr
    if command == ["migrate"]:  # stopped before the first migration
        with closing(sqlite3.connect(tmp_path / "db.sqlite3")) as db:
            tables = db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        assert tables == []


def test_sqlite_writers_say_postgresql_is_required(tmp_path: Path) -> None:
    proc = django(
        "shell",
        "--no-imports",
        "-c",
        WRITERS,
        settings=sqlite_settings(tmp_path),
        tmp_path=tmp_path,
    )
    message = E001.split(") ", 1)[1]
    assert writer_lines(proc) == {
        "schedule_job": [message, "None"],
        "schedule_jobs": [message, "None"],
        # cancel goes straight to the database; SQLite has no django_future tables
        # there, but it is not asked: the sentence is the same.
        "cancel": [message, "None"],
    }


def test_postgresql_passes_the_checks_with_database_checks() -> None:
    proc = django("check", "--database", "default")
    assert proc.returncode == 0, proc.stderr
    assert "django_future.E00" not in proc.stdout + proc.stderr
    assert "System check identified no issues" in proc.stdout


# 5. Before `migrate`.


@pytest.mark.parametrize(
    "command",
    [
        ["runscheduledjobs"],
        ["runscheduledjobs", "--worker"],
        ["scheduledjobs", "status"],
        ["scheduledjobs", "show", "1"],
        ["scheduledjobs", "verify"],
        ["scheduledjobs", "rebuild"],
        ["scheduledjobs", "prune", "--older-than", "90d"],
    ],
)
def test_commands_before_migrate_say_to_migrate(fresh_database: str, command: list[str]) -> None:
    proc = django(*command, database=fresh_database)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == f"CommandError: {database.MIGRATE_FIRST}"
    assert MIGRATE_FIRST in proc.stderr


def test_writers_before_migrate_say_to_migrate(fresh_database: str) -> None:
    proc = django("shell", "--no-imports", "-c", WRITERS, database=fresh_database)
    # The database's error stays as the cause: an undefined function (42883), since
    # every writer calls one of the package's functions (schedule_job, since 0005).
    assert writer_lines(proc) == {
        "schedule_job": [database.MIGRATE_FIRST, "42883"],
        "schedule_jobs": [database.MIGRATE_FIRST, "42883"],
        "cancel": [database.MIGRATE_FIRST, "42883"],
    }


def test_commands_after_a_partial_migrate_say_to_migrate(fresh_database: str) -> None:
    assert django("migrate", "django_future", "0001", database=fresh_database).returncode == 0
    proc = django("scheduledjobs", "status", database=fresh_database)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == f"CommandError: {database.MIGRATE_FIRST}"


# 6. pgtrigger left out of INSTALLED_APPS, or after django_future.


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            "INSTALLED_APPS = [app for app in INSTALLED_APPS if app != 'pgtrigger']",
            "?: (django_future.E003) django_future needs 'pgtrigger' in INSTALLED_APPS.\n"
            '\tHINT: Add "pgtrigger" to INSTALLED_APPS (before or after "django_future": '
            "the order does not matter).",
        ),
        (
            "PGTRIGGER_MODEL_META = False",
            "?: (django_future.E003) django_future needs pgtrigger's Meta.triggers, which "
            "PGTRIGGER_MODEL_META = False turns off.\n"
            "\tHINT: Remove PGTRIGGER_MODEL_META = False from your settings.",
        ),
    ],
    ids=["not-installed", "model-meta-off"],
)
@pytest.mark.parametrize("command", [["check"], ["migrate"], ["runscheduledjobs"]])
def test_without_pgtrigger_the_error_names_the_fix(
    tmp_path: Path, settings: str, message: str, command: list[str]
) -> None:
    proc = django(*command, settings=settings, tmp_path=tmp_path)
    assert proc.returncode == 1
    # A system check error: one message naming the fix, in place of Django's traceback
    # ending in "'class Meta' got invalid attribute(s): triggers".
    assert message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and "invalid attribute" not in proc.stderr
    assert proc.stdout == ""


def test_pgtrigger_may_come_after_django_future(tmp_path: Path, fresh_database: str) -> None:
    settings = (
        "INSTALLED_APPS = [app for app in INSTALLED_APPS if app != 'pgtrigger'] + ['pgtrigger']"
    )
    for command in (["check"], ["migrate"]):
        proc = django(*command, settings=settings, tmp_path=tmp_path, database=fresh_database)
        assert proc.returncode == 0, proc.stderr
    # The triggers are in place: the fold makes the job's row, the ledger refuses UPDATE.
    code = (
        "from django.db import connection, ProgrammingError, InternalError\n"
        "from django_future import schedule_job\n"
        "print(schedule_job('1m', 'tests.handlers.record').status)\n"
        "try:\n"
        "    with connection.cursor() as cursor:\n"
        "        cursor.execute('UPDATE django_future_jobevent SET kind = kind')\n"
        "except (ProgrammingError, InternalError) as exc:\n"
        "    print('refused:', exc.__cause__.sqlstate)\n"
    )
    proc = django(
        "shell",
        "--no-imports",
        "-c",
        code,
        settings=settings,
        tmp_path=tmp_path,
        database=fresh_database,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == "scheduled"
    assert proc.stdout.splitlines()[1].startswith("refused:")
