"""Locks and queue limits with real runner processes: no two jobs of one lock overlap, a
limited queue never runs more than its limit, and a lock held by a runner killed with
-9 is freed when its lease ends.

Overlap is read from the ledger alone, as docs/audit.md does it: a run lasts from its
``started`` event to the event that ends it, in the order of the events' ids, which
is the order in which they were written. (Not by their times: an event's time is
its statement's start, and the runner's step completes a job and starts the next in
one statement, whose start may come before another runner's completion that it then
sees committed. The ids carry no such offset; see docs/audit.md.)
"""

from __future__ import annotations

import collections
import json
import signal
import subprocess

import pytest
from django.db import connection
from django.db.models import Q

from django_future import schedule_job, schedule_jobs
from django_future.models import JobEvent, RunnerProcess, ScheduledJob
from tests.support import event, fresh, kinds, start_runner, wait_until
from tests.testapp.models import JobRun

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("committed_db")]

# Each run of a job, from its start to its end, in the ledger's order of writing.
RUNS = """
SELECT st.job_id, st.id AS began, en.id AS ended, s.data->>'lock' AS lock,
       COALESCE(s.data->>'queue', 'default') AS queue
FROM django_future_jobevent st
JOIN django_future_jobevent s ON s.job_id = st.job_id AND s.seq = 1
CROSS JOIN LATERAL (
    SELECT min(e.id) AS id FROM django_future_jobevent e
    WHERE e.job_id = st.job_id AND e.seq > st.seq
      AND e.kind IN ('completed', 'failed', 'abandoned', 'released')
) en
WHERE st.kind = 'started'
"""

# Pairs of runs of one lock that overlap (docs/audit.md).
OVERLAPS = f"""
WITH runs AS ({RUNS})
SELECT a.lock, a.job_id, b.job_id
FROM runs a
JOIN runs b ON b.lock = a.lock AND (a.began, a.job_id) < (b.began, b.job_id)
WHERE b.began < COALESCE(a.ended, 'Infinity'::numeric)
"""

# The most runs of a queue under way at once (docs/audit.md).
MOST_AT_ONCE = f"""
WITH runs AS ({RUNS}), edges AS (
    SELECT began AS id, 1 AS change FROM runs WHERE queue = %s
    UNION ALL
    SELECT ended, -1 FROM runs WHERE queue = %s AND ended IS NOT NULL
)
SELECT max(running) FROM (SELECT sum(change) OVER (ORDER BY id) AS running FROM edges) s
"""


def query(sql: str, params: list[object] | None = None) -> list[tuple[object, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def finish(proc: subprocess.Popen[str], timeout: float = 300) -> str:
    _out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return err


def holds_anything() -> bool:
    """Whether any job still holds a lock or a queue slot: it is claimed or running
    with one (sql/locks.sql)."""
    running = ScheduledJob.objects.filter(status__in=["claimed", "running"])
    return running.filter(Q(lock__isnull=False) | Q(slot__isnull=False)).exists()


def test_four_runners_thousand_jobs_ten_locks_no_two_of_a_lock_overlap() -> None:
    ids = schedule_jobs(
        {
            "date": "0s",
            "callable_name": "tests.handlers.slow",
            "kwargs": {"seconds": 0.002},
            "lock": f"lock-{i % 10}",
        }
        for i in range(1_000)
    )
    procs = [start_runner("--ignore-errors") for _ in range(4)]
    for proc in procs:
        finish(proc)

    # Every job ran, once.
    assert ScheduledJob.objects.filter(pk__in=ids, status="complete").count() == 1_000
    assert JobRun.objects.count() == 1_000
    started = collections.Counter(
        JobEvent.objects.filter(kind="started").values_list("job_id", flat=True)
    )
    assert len(started) == 1_000 and set(started.values()) == {1}
    # The ledger shows no two runs of one lock overlapping...
    assert query(OVERLAPS) == []
    # ...while the runners did run at the same time, and shared the locks between them.
    assert query(MOST_AT_ONCE, ["default", "default"])[0][0] >= 2
    runners_per_lock = query(
        "SELECT s.data->>'lock', count(DISTINCT st.runner) FROM django_future_jobevent st"
        " JOIN django_future_jobevent s ON s.job_id = st.job_id AND s.seq = 1"
        " WHERE st.kind = 'started' GROUP BY 1"
    )
    assert len(runners_per_lock) == 10
    assert max(n for _, n in runners_per_lock) >= 2, runners_per_lock  # type: ignore[type-var]
    assert not holds_anything()  # every lock and slot freed with its job's run


def test_a_queue_limited_to_3_never_runs_more_than_3_across_4_runners() -> None:
    ids = schedule_jobs(
        {
            "date": "0s",
            "callable_name": "tests.handlers.slow",
            "kwargs": {"seconds": 0.05},
            "queue": "reports",
        }
        for _ in range(60)
    )
    limits = json.dumps({"reports": 3})
    # Workers: the one kept waiting sleeps, and is woken when a slot is freed.
    procs = [
        start_runner("--worker", "--time-limit", "60", DJANGO_FUTURE_QUEUE_LIMITS=limits)
        for _ in range(4)
    ]
    wait_until(
        lambda: ScheduledJob.objects.filter(pk__in=ids, status="complete").count() == 60,
        timeout=60,
        what="the 60 jobs to complete",
    )
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        finish(proc)

    # Never more than 3 at once, from the ledger; and 3 were reached (the limit, not
    # something else, was what held them back).
    assert query(MOST_AT_ONCE, ["reports", "reports"])[0][0] == 3
    # Waiting cost no attempt and no event: each job started once, and completed.
    assert set(ScheduledJob.objects.filter(pk__in=ids).values_list("attempts", flat=True)) == {1}
    assert not JobEvent.objects.filter(kind__in=["failed", "retry", "released"]).exists()
    assert len(set(JobEvent.objects.filter(kind="started").values_list("runner"))) >= 3
    assert not holds_anything()


def test_a_lock_held_by_a_runner_killed_with_minus_9_is_freed_when_its_lease_ends() -> None:
    held = schedule_job("0s", "tests.handlers.slow", kwargs={"seconds": 60}, lock="L")
    waiting = schedule_job("0s", "tests.handlers.record", lock="L")
    first = start_runner(lease=1)
    wait_until(lambda: JobRun.objects.filter(job_id=held.pk).exists(), what="the job to start")
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=10)
    # The dead runner's job still holds the lock: it is running, as its row says.
    assert list(
        ScheduledJob.objects.filter(lock="L", status="running").values_list("pk", flat=True)
    ) == [held.pk]

    # A worker started at once: the lock is held until the dead runner's lease ends,
    # then its upkeep records "abandoned", which frees the lock, and the next job runs.
    second = start_runner("--worker", "--time-limit", "15", lease=1)
    wait_until(lambda: fresh(waiting).status == "complete", timeout=20, what="the next job")
    second.send_signal(signal.SIGTERM)
    finish(second)

    assert kinds(held) == ["scheduled", "started", "abandoned"]
    assert kinds(waiting) == ["scheduled", "started", "completed"]
    abandoned, started = event(held, "abandoned"), event(waiting, "started")
    assert abandoned.id < started.id
    dead = RunnerProcess.objects.get(pk=event(held, "started").data["runner_id"])
    assert dead.pid == first.pid
    assert started.at >= dead.lease_expires_at  # not before the lease ended
    assert query(OVERLAPS) == []
    assert not holds_anything()
