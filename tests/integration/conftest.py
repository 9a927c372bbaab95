"""Integration fixtures: a real PostgreSQL, committed data when processes must see it,
and the check, after every test, that the job rows are exactly what the ledger says."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
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
        yield
        differences = ledger.verify()
        with pgtrigger.ignore(), connection.cursor() as cursor:
            cursor.execute(
                "DELETE FROM django_future_scheduledjob; DELETE FROM django_future_jobevent; "
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


def start_runner(*args: str) -> subprocess.Popen[str]:
    """``manage.py runscheduledjobs`` as cron would start it, in its own process."""
    return subprocess.Popen(
        [sys.executable, "-m", "django", "runscheduledjobs", *args],
        cwd=ROOT,
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def run_command() -> Callable[..., subprocess.CompletedProcess[str]]:
    def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        proc = start_runner(*args)
        out, err = proc.communicate(timeout=timeout)
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    return run
