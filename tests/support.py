"""Integration fixtures: a real PostgreSQL, committed data when processes must see it,
and the check, after every test, that the job rows are exactly what the ledger says."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pgtrigger
import psycopg.conninfo
import pytest
from django.db import connection

from django_future import ledger
from django_future.models import JobEvent, ScheduledJob

ROOT = Path(__file__).resolve().parents[2]


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
            _kill_leftover_runners()
        differences = ledger.verify()
        with pgtrigger.ignore(), connection.cursor() as cursor:
            cursor.execute(
                "DELETE FROM django_future_scheduledjob; DELETE FROM django_future_jobevent; "
                "DELETE FROM django_future_runnerprocess; "
                "DELETE FROM testapp_jobrun; DELETE FROM testapp_order; DELETE FROM testapp_document;"
            )
        assert differences == [], "\n".join(map(str, differences))


def db_now() -> dt.datetime:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement_timestamp()")
        return cursor.fetchone()[0]


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


def _kill_leftover_runners() -> None:
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


@pytest.fixture
def run_command() -> Callable[..., subprocess.CompletedProcess[str]]:
    def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        proc = start_runner(*args)
        out, err = proc.communicate(timeout=timeout)
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    return run


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


def wait_until(predicate: Callable[[], object], timeout: float = 30, what: str = "") -> None:
    """Poll ``predicate`` until it is true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(0.05)
