"""Unique jobs with committed transactions and real processes: 20 processes racing
``schedule_job`` on one key make one job; a runner's "failed" and "retry" written while
a newer job holds the key (the job's own writes commit, as in production)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest
from django.db import connection, connections

from django_future import ledger, run_jobs, schedule_job
from django_future.models import JobEvent, ScheduledJob
from tests import handlers
from tests.support import ROOT, fresh, kinds, later, subprocess_env

pytestmark = pytest.mark.usefixtures("committed_db")

KEY = "sync-user-42"
RACERS = 20
GATE = 4242  # the advisory lock that holds the racers back until all are ready

# Each racer waits at the gate, then schedules inside a transaction that it keeps open
# a moment: the others' ON CONFLICT must wait for it, and then find its job.
RACER = f"""
import sys, time
import django
django.setup()
from django.db import connection, transaction
from django_future import schedule_job
with connection.cursor() as cursor:
    cursor.execute("SELECT pg_advisory_lock_shared({GATE}); SELECT pg_advisory_unlock_shared({GATE})")
with transaction.atomic():
    job = schedule_job("1h", "tests.handlers.record", args=[sys.argv[1]], unique_key={KEY!r},
                       unique_while=sys.argv[2])
    time.sleep(0.2)
print(job.pk, job.created)
"""


def _waiting_at_the_gate() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = %s "
            "AND NOT granted",
            [GATE],
        )
        return cursor.fetchone()[0]


@pytest.mark.slow
@pytest.mark.parametrize("unique_while", ["pending", "active"])
def test_twenty_processes_racing_on_one_key_make_one_job(unique_while: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s)", [GATE])
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, str(i), unique_while],
            cwd=ROOT,
            env=subprocess_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(RACERS)
    ]
    try:
        deadline = time.monotonic() + 120
        while _waiting_at_the_gate() < RACERS:
            assert time.monotonic() < deadline, "the racers did not all reach the gate"
            assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
            time.sleep(0.05)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [GATE])
    answers = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        pk, created = out.split()
        answers.append((int(pk), created == "True"))

    jobs = list(ScheduledJob.objects.filter(unique_key=KEY))
    assert len(jobs) == 1
    assert {pk for pk, _ in answers} == {jobs[0].pk}  # every racer got the one job
    assert sum(created for _, created in answers) == 1  # and exactly one made it
    assert JobEvent.objects.filter(data__unique_key=KEY).count() == 1
    assert kinds(jobs[0]) == ["scheduled"]
    assert jobs[0].unique_while == unique_while
    assert ledger.verify() == []


def _holders() -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id FROM django_future_scheduledjob WHERE unique_key = %s AND ("
            "(status = 'scheduled' AND last_seq = 1) OR (unique_while = 'active' "
            "AND status IN ('scheduled', 'claimed', 'running'))) ORDER BY id",
            [KEY],
        )
        return [row[0] for row in cursor.fetchall()]


def test_a_pending_jobs_retry_after_a_newer_job_took_the_key_does_not_collide() -> None:
    """The runner's own statements: the job asks for its own key while it runs (a newer
    job is made: it has started), then fails; "failed" and "retry" are written while
    the newer job holds the key. The retried job does not take it back."""
    first = schedule_job(
        "0s",
        "tests.handlers.same_key_then_fail",
        args=[KEY],
        unique_key=KEY,
        retries=1,
        retry_delay="1h",
    )
    report = run_jobs(ignore_errors=True)
    assert report.retried == [first.pk]
    (_, newer_id, created) = handlers.calls[-1]
    assert created is True and newer_id != first.pk
    assert kinds(first) == ["scheduled", "started", "failed", "retry"]
    assert fresh(first).status == "scheduled"
    assert _holders() == [newer_id]
    assert schedule_job("1h", "tests.handlers.record", unique_key=KEY).pk == newer_id
    # The retry still runs when due: nothing asked for is lost.
    run_jobs(now=later(2 * 3600), ignore_errors=True)
    assert kinds(first)[-2:] == ["started", "failed"]


def test_an_active_job_keeps_its_key_through_failure_and_retry() -> None:
    first = schedule_job(
        "0s",
        "tests.handlers.same_key_then_fail",
        args=[KEY],
        unique_key=KEY,
        unique_while="active",
        retries=1,
        retry_delay="1h",
    )
    run_jobs(ignore_errors=True)
    assert handlers.calls[-1] == (first.pk, first.pk, False)  # it held the key running
    assert fresh(first).status == "scheduled" and _holders() == [first.pk]
    assert schedule_job("1h", "tests.handlers.record", unique_key=KEY).pk == first.pk


# Takes the key in a transaction, says so, and rolls back when told (a line on stdin).
HOLD_THEN_ROLL_BACK = f"""
import sys
import django
django.setup()
from django.db import transaction
from django_future import schedule_job

class RolledBack(Exception):
    pass

try:
    with transaction.atomic():
        job = schedule_job("1h", "tests.handlers.record", unique_key={KEY!r})
        print(job.pk, flush=True)
        sys.stdin.readline()
        raise RolledBack
except RolledBack:
    pass
"""


def _waiting_on_a_lock() -> int:
    """Backends of this database whose schedule_unique waits on another's lock."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND query LIKE '%%django_future_schedule_unique%%'"
        )
        return cursor.fetchone()[0]


def test_a_caller_waiting_on_a_holder_that_rolls_back_makes_the_job() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD_THEN_ROLL_BACK],
        cwd=ROOT,
        env=subprocess_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    held = int(proc.stdout.readline())  # the other transaction holds the key now
    got: list[ScheduledJob] = []

    def call() -> None:
        try:
            got.append(schedule_job("1h", "tests.handlers.record", unique_key=KEY))
        finally:
            connections.close_all()  # this thread's connection

    caller = threading.Thread(target=call)
    caller.start()
    deadline = time.monotonic() + 30
    while _waiting_on_a_lock() == 0:  # the call waits for the holder's transaction
        assert caller.is_alive() and time.monotonic() < deadline, "the call did not wait"
        time.sleep(0.02)
    proc.stdin.write("roll back\n")
    proc.stdin.flush()
    caller.join(timeout=30)
    proc.communicate(timeout=60)
    assert proc.returncode == 0
    (job,) = got
    assert job.created is True and job.pk != held  # the rolled-back job never existed
    assert list(ScheduledJob.objects.filter(unique_key=KEY).values_list("pk", flat=True)) == [
        job.pk
    ]
    assert not JobEvent.objects.filter(job_id=held).exists()
