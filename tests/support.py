"""Helpers that tests import by name: the database clock, a job's event kinds, runner
processes started as cron starts them, polling. Fixtures live in tests/conftest.py."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import psycopg.conninfo
from django.db import connection

from django_future.models import JobEvent, ScheduledJob

ROOT = Path(__file__).resolve().parents[1]


def db_now() -> dt.datetime:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement_timestamp()")
        return cursor.fetchone()[0]


def later(seconds: float = 3600) -> dt.datetime:
    """The database's now plus ``seconds``: a ``now=`` at which retries are due."""
    return db_now() + dt.timedelta(seconds=seconds)


def fresh(job: ScheduledJob) -> ScheduledJob:
    """The job's row as it is now."""
    return ScheduledJob.objects.get(pk=job.pk)


def event(job: ScheduledJob, kind: str, nth: int = 0) -> JobEvent:
    """The ``nth`` event of ``kind`` in the job's ledger."""
    return list(JobEvent.objects.filter(job_id=job.pk, kind=kind).order_by("seq"))[nth]


def kinds(job: ScheduledJob | int) -> list[str]:
    job_id = job if isinstance(job, int) else job.pk
    return list(
        JobEvent.objects.filter(job_id=job_id).order_by("seq").values_list("kind", flat=True)
    )


def counts() -> tuple[int, int]:
    """(jobs, events): what a rejected call must leave unchanged."""
    return ScheduledJob.objects.count(), JobEvent.objects.count()


def subprocess_env() -> dict[str, str]:
    """Environment for a runner process that talks to the test database."""
    s = connection.settings_dict
    conninfo = psycopg.conninfo.make_conninfo(
        dbname=s["NAME"],
        user=s["USER"] or None,
        password=s["PASSWORD"] or None,
        host=s["HOST"] or None,
        port=str(s["PORT"]) if s["PORT"] else None,
    )
    env = dict(os.environ)
    env.update(
        DATABASE_URL=conninfo,
        DJANGO_SETTINGS_MODULE="tests.settings",
        PYTHONPATH=str(ROOT),
    )
    return env


_runners: list[subprocess.Popen[str]] = []


def kill_leftover_runners() -> None:
    """A failed test may leave runners behind; they would hold the test database open."""
    while _runners:
        proc = _runners.pop()
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def start_runner(*args: str, lease: float | None = None, **env: str) -> subprocess.Popen[str]:
    """``manage.py runscheduledjobs`` as cron would start it, in its own process."""
    environ = subprocess_env()
    if lease is not None:
        environ["DJANGO_FUTURE_LEASE"] = str(lease)
    environ.update(env)
    proc = subprocess.Popen(
        [sys.executable, "-m", "django", "runscheduledjobs", *args],
        cwd=ROOT,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _runners.append(proc)
    return proc


def wait_until(predicate: Callable[[], object], timeout: float = 30, what: str = "") -> None:
    """Poll ``predicate`` until it is true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(0.05)


@contextlib.contextmanager
def audit_role() -> Iterator[tuple[str, psycopg.Connection[Any]]]:
    """A new LOGIN role with a password, given ``scheduledjobs grant-audit``, and an
    autocommit connection to the test database as that role; both gone afterwards."""
    from django.core.management import call_command

    name = f"auditor_{uuid.uuid4().hex[:8]}"
    password = uuid.uuid4().hex
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE ROLE {name} LOGIN PASSWORD '{password}'")
    try:
        call_command("scheduledjobs", "grant-audit", name, stdout=io.StringIO())
        url = psycopg.conninfo.make_conninfo(
            subprocess_env()["DATABASE_URL"], user=name, password=password
        )
        with psycopg.connect(url, autocommit=True) as conn:
            assert conn.execute("SELECT current_user").fetchone() == (name,)
            yield name, conn
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP OWNED BY {name}; DROP ROLE {name}")
