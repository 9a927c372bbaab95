"""DJANGO_FUTURE_ALLOWED_CALLABLES in a real runner process: a job row written past
``schedule_job``, as an attacker with rights on the tables would write it, names a
module outside the list. The runner records a failure naming the setting, does not
retry, and never imports the module; the ledger still verifies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection

from django_future.models import JobEvent, ScheduledJob
from tests.support import kinds, start_runner

ALLOWED = json.dumps(["tests.handlers", "tests.allowed_jobs"])


def insert_as_an_attacker(callable_name: str, **data: object) -> int:
    """One job straight through the ledger's own SQL function (sql/schedule.sql), as a
    role that may call it would: no Python of ours checks anything."""
    payload = json.dumps({"callable_name": callable_name, "args": [], "kwargs": {}, **data})
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id FROM django_future_schedule_one(%s::jsonb, NULL, '0 s'::interval, "
            "NULL, '1 day'::interval)",
            [payload],
        )
        return int(cursor.fetchone()[0])


@pytest.mark.usefixtures("committed_db")
def test_a_runner_refuses_a_row_outside_the_list_without_importing_it(tmp_path: Path) -> None:
    mark = tmp_path / "imported"
    intruder = insert_as_an_attacker(
        "tests.intruder.run", retries=3, retry_delay=1.0, retry_max_delay=1.0
    )
    allowed = insert_as_an_attacker("tests.handlers.record")
    proc = start_runner(
        "--ignore-errors",
        DJANGO_FUTURE_TEST_ALLOWED=ALLOWED,
        DJANGO_FUTURE_TEST_IMPORT_MARK=str(mark),
    )
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err

    assert not mark.exists(), "the runner imported the module the list leaves out"
    assert kinds(intruder) == ["scheduled", "started", "failed"]  # no retry
    failed = JobEvent.objects.get(job_id=intruder, kind="failed").data
    assert "DJANGO_FUTURE_ALLOWED_CALLABLES" in failed["exception"]
    assert failed["exception_class"] == "django_future.allowlist.CallableRefusedError"
    assert ScheduledJob.objects.get(pk=intruder).status == ScheduledJob.STATUS_FAILED
    assert "DJANGO_FUTURE_ALLOWED_CALLABLES" in err  # the runner says it too
    assert kinds(allowed) == ["scheduled", "started", "completed"]  # the list lets it run

    # Without the list the same module is imported: the mark above can appear.
    control = insert_as_an_attacker("tests.intruder.run")
    proc = start_runner("--ignore-errors", DJANGO_FUTURE_TEST_IMPORT_MARK=str(mark))
    proc.communicate(timeout=60)
    assert mark.exists()
    assert kinds(control) == ["scheduled", "started", "completed"]
    call_command("scheduledjobs", "verify")  # raises CommandError on any difference


@pytest.mark.usefixtures("committed_db")
def test_a_runner_with_a_broken_list_refuses_every_job(tmp_path: Path) -> None:
    mark = tmp_path / "imported"
    job = insert_as_an_attacker("tests.intruder.run")
    proc = start_runner(
        "--ignore-errors",
        DJANGO_FUTURE_TEST_ALLOWED=json.dumps("tests"),  # a string, not a list
        DJANGO_FUTURE_TEST_IMPORT_MARK=str(mark),
    )
    _out, err = proc.communicate(timeout=60)
    assert not mark.exists()
    assert "django_future.E020" in err  # the system check stops the runner first
    assert proc.returncode != 0
    assert kinds(job) == ["scheduled"]
