"""Locks and queue limits in the claim (sql/locks.sql, claim.sql, complete.sql), through
the runner's own SQL on real connections: blocked jobs are stepped over in order and
without an event; the names are freed with the event that ends a run; and two claims
racing for one name never both win, whatever their snapshots saw.

Each connection here is a runner's: ``step`` sends what the runner sends per job.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from django.test import override_settings

from django_future import ledger, schedule_job
from django_future.models import ScheduledJob
from django_future.runner import run_jobs
from django_future.sql import query
from tests.support import event, fresh, kinds, subprocess_env

pytestmark = pytest.mark.usefixtures("committed_db")

STEP = (
    "SELECT id, last_seq FROM django_future_complete_and_claim("
    "%s::jsonb, NULL, 'test', %s, %s, NULL, NULL, NULL)"
)


@pytest.fixture
def connect() -> Iterator[Any]:
    """Open connections to the test database, as runners have (not autocommit: a
    test decides when each claim commits); closed afterwards."""
    opened: list[psycopg.Connection[Any]] = []

    def open_one() -> psycopg.Connection[Any]:
        conn = psycopg.connect(subprocess_env()["DATABASE_URL"])
        opened.append(conn)
        return conn

    yield open_one
    for conn in opened:
        conn.close()


def step(
    conn: psycopg.Connection[Any],
    runner: int,
    done: list[tuple[int, int]] = (),  # type: ignore[assignment]
    how_many: int = 1,
) -> list[tuple[int, int]]:
    """The runner's step: complete ``done`` ((id, seq) pairs), claim up to ``how_many``;
    the (id, seq) of the jobs it now holds. The transaction is left open."""
    completions = json.dumps([[job_id, seq, "ok", 0.0] for job_id, seq in done])
    return [tuple(row) for row in conn.execute(STEP, [completions, runner, how_many])]  # type: ignore[misc]


def names() -> dict[str, int]:
    """What is held, by which job: the lock ("lock:<name>") and the queue slot
    ("queue:<queue>#<slot>") of each claimed or running job."""
    held: dict[str, int] = {}
    running = ScheduledJob.objects.filter(status__in=["claimed", "running"])
    for pk, lock, queue, slot in running.values_list("pk", "lock", "queue", "slot"):
        if lock is not None:
            held[f"lock:{lock}"] = pk
        if slot is not None:
            held[f"queue:{queue}#{slot}"] = pk
    return held


def limit(queue: str, n: int) -> None:
    with psycopg.connect(subprocess_env()["DATABASE_URL"], autocommit=True) as conn:
        conn.execute("INSERT INTO django_future_queuelimit VALUES (%s, %s)", [queue, n])


def test_a_job_whose_lock_is_held_is_stepped_over_and_waits_in_order(connect: Any) -> None:
    first = schedule_job("0s", "tests.handlers.record", lock="user-42")
    second = schedule_job("0s", "tests.handlers.record", lock="user-42", priority=5)
    other = schedule_job("0s", "tests.handlers.record")
    one, two = connect(), connect()
    # The highest priority first: second takes the lock.
    assert step(one, 1) == [(second.pk, 2)]
    one.commit()
    assert names() == {"lock:user-42": second.pk}
    # first is due and older than other, but blocked: another runner steps over it.
    assert step(two, 2) == [(other.pk, 2)]
    two.commit()
    assert step(two, 2, [(other.pk, 2)]) == []
    two.commit()
    # The blocked job waited without a trace: no event, no attempt.
    assert kinds(first) == ["scheduled"] and fresh(first).attempts == 0
    # second's completion frees the lock in its transaction, whose claim then sees it
    # free: the same step starts the next job of the lock.
    assert step(one, 1, [(second.pk, 2)]) == [(first.pk, 2)]
    one.commit()
    assert names() == {"lock:user-42": first.pk}
    assert step(one, 1, [(first.pk, 2)]) == []
    one.commit()
    assert names() == {}
    assert ledger.verify() == []


def test_the_completing_runner_hands_its_lock_to_the_next_job_in_one_step(connect: Any) -> None:
    jobs = [schedule_job("0s", "tests.handlers.record", lock="L") for _ in range(3)]
    conn = connect()
    held = step(conn, 1)
    for job in jobs[1:]:
        conn.commit()
        held = step(conn, 1, held)
        assert held == [(job.pk, 2)]
    conn.commit()
    assert names() == {"lock:L": jobs[2].pk}


def test_a_batch_starts_one_job_per_lock(connect: Any) -> None:
    a = [schedule_job("0s", "tests.handlers.record", lock="a") for _ in range(3)]
    b = schedule_job("0s", "tests.handlers.record", lock="b")
    free = schedule_job("0s", "tests.handlers.record")
    conn = connect()
    held = {job_id for job_id, _ in step(conn, 1, how_many=10)}
    conn.commit()
    assert held == {a[0].pk, b.pk, free.pk}
    assert [fresh(job).status for job in a[1:]] == ["scheduled", "scheduled"]
    assert names() == {"lock:a": a[0].pk, "lock:b": b.pk}


def test_a_batch_takes_as_many_slots_as_the_limit_leaves(connect: Any) -> None:
    """One claim of ten in a queue limited to two starts two jobs, in two different
    slots: each call of the arbiter sees the rows the same UPDATE has already written."""
    limit("reports", 2)
    reports = [schedule_job("0s", "tests.handlers.record", queue="reports") for _ in range(3)]
    conn = connect()
    held = step(conn, 1, how_many=10)
    conn.commit()
    assert held == [(reports[0].pk, 2), (reports[1].pk, 2)]
    assert names() == {"queue:reports#0": reports[0].pk, "queue:reports#1": reports[1].pk}
    assert sorted(event(job, "started").data["slot"] for job in reports[:2]) == [0, 1]
    assert ledger.verify() == []


def test_failure_abandon_and_release_free_the_lock(connect: Any) -> None:
    jobs = [schedule_job("0s", "tests.handlers.record", lock="L") for _ in range(4)]
    conn = connect()
    for job, kind in zip(jobs, ["failed", "abandoned", "released"], strict=False):
        assert step(conn, 1) == [(job.pk, 2)]
        conn.commit()
        assert names() == {"lock:L": job.pk}
        ledger.append(job.pk, kind, {"error": "test"})
        assert names() == {}
    assert step(conn, 1) == [(jobs[2].pk, 4)]  # the released job, in its place again
    conn.commit()


def test_the_database_refuses_a_second_running_job_of_a_lock(connect: Any) -> None:
    """The lock is the running job's: a writer that goes around the claim's arbiter
    (here an event appended through the ledger, folded by the trigger) still cannot
    make a second job of the lock run. It gets an error that says so, and the ledger
    is as it was."""
    from django.db import transaction

    from django_future.ledger import JobStateError

    first = schedule_job("0s", "tests.handlers.record", lock="L")
    second = schedule_job("0s", "tests.handlers.record", lock="L")
    conn = connect()
    assert step(conn, 1) == [(first.pk, 2)]
    conn.commit()
    with pytest.raises(JobStateError, match="another job holds its lock"), transaction.atomic():
        ledger.append(second.pk, "started", {"runner_id": None}, runner="elsewhere")
    assert kinds(second) == ["scheduled"] and fresh(second).status == "scheduled"
    assert names() == {"lock:L": first.pk}
    # Once first's run has ended, the same write is accepted.
    assert step(conn, 1, [(first.pk, 2)]) == [(second.pk, 2)]
    conn.commit()
    assert ledger.verify() == []


def test_two_claims_racing_for_one_lock_never_both_start(connect: Any) -> None:
    """The design's race: the first claim has not committed, so the second's snapshot
    sees the lock free, and (the first's row being locked) finds another job of the same
    lock first. The arbiter's insert sees the uncommitted holder: the second claim
    starts nothing and raises nothing."""
    first = schedule_job("0s", "tests.handlers.record", lock="L")
    second = schedule_job("0s", "tests.handlers.record", lock="L")
    one, two = connect(), connect()
    assert step(one, 1) == [(first.pk, 2)]  # not committed
    assert step(two, 2) == []
    two.commit()
    one.commit()
    assert names() == {"lock:L": first.pk}
    assert kinds(second) == ["scheduled"]
    # Committed, the holder is seen by the snapshot: stepped over without a race.
    assert step(two, 2) == []
    two.commit()
    assert step(one, 1, [(first.pk, 2)]) == [(second.pk, 2)]
    one.commit()


def test_a_lost_race_moves_on_to_a_job_that_is_free(connect: Any) -> None:
    """A runner that lost a lock must not take "nothing claimed" for "nothing to do": it
    claims again, and the other runner's committed lock is then stepped over."""
    first = schedule_job("0s", "tests.handlers.record", lock="L")
    second = schedule_job("0s", "tests.handlers.record", lock="L")
    free = schedule_job("0s", "tests.handlers.record")
    one, two = connect(), connect()
    assert step(one, 1) == [(first.pk, 2)]
    one.commit()
    # two's snapshot... is taken after the commit: the simple case, stepped over.
    assert step(two, 2) == [(free.pk, 2)]
    two.commit()
    assert kinds(second) == ["scheduled"]


def test_a_queue_limit_holds_across_runners(connect: Any) -> None:
    limit("reports", 2)
    reports = [schedule_job("0s", "tests.handlers.record", queue="reports") for _ in range(4)]
    other = schedule_job("0s", "tests.handlers.record", queue="emails")
    one, two, three = connect(), connect(), connect()
    assert step(one, 1) == [(reports[0].pk, 2)]  # uncommitted
    assert step(two, 2) == [(reports[1].pk, 2)]  # uncommitted: a slot of its own
    # Both slots are taken but not committed: the third claim loses the race for them
    # and takes the job of another queue.
    assert step(three, 3) == [(other.pk, 2)]
    for conn in (one, two, three):
        conn.commit()
    assert sorted(names()) == ["queue:reports#0", "queue:reports#1"]
    assert step(three, 3, [(other.pk, 2)]) == []  # full: stepped over
    three.commit()
    assert step(one, 1, [(reports[0].pk, 2)]) == [(reports[2].pk, 2)]
    one.commit()
    assert sorted(names()) == ["queue:reports#0", "queue:reports#1"]


def test_a_run_records_its_slot_and_the_database_refuses_a_second_holder(
    connect: Any,
) -> None:
    """The slot a run takes is on its "started" event, so the fold and a rebuild give
    the row the same slot; and a writer that goes around the arbiter cannot give one
    slot to two running jobs."""
    from django.db import transaction

    from django_future.ledger import JobStateError

    limit("reports", 1)
    first = schedule_job("0s", "tests.handlers.record", queue="reports")
    second = schedule_job("0s", "tests.handlers.record", queue="reports")
    conn = connect()
    assert step(conn, 1) == [(first.pk, 2)]
    conn.commit()
    assert event(first, "started").data["slot"] == 0 and fresh(first).slot == 0
    with pytest.raises(JobStateError, match="holds its queue slot"), transaction.atomic():
        ledger.append(second.pk, "started", {"runner_id": None, "slot": 0}, runner="elsewhere")
    assert kinds(second) == ["scheduled"]
    assert ledger.rebuild() == 0  # the fold gives the row the slot the claim wrote
    assert names() == {"queue:reports#0": first.pk}
    assert ledger.verify() == []


def test_a_job_with_a_lock_in_a_full_queue_takes_neither(connect: Any) -> None:
    """Both or neither: with no slot free, the job starts, and holds, nothing."""
    limit("reports", 1)
    holder = schedule_job("0s", "tests.handlers.record", queue="reports")
    locked = schedule_job("0s", "tests.handlers.record", queue="reports", lock="L")
    one, two = connect(), connect()
    assert step(one, 1) == [(holder.pk, 2)]  # the slot, uncommitted
    (taken,) = two.execute(
        "SELECT django_future_acquire(%s, 'L', 'reports')", [locked.pk]
    ).fetchone()
    assert taken is False
    # In two's own transaction: the job did not start, and holds nothing.
    assert two.execute(
        "SELECT status, slot FROM django_future_scheduledjob WHERE id = %s", [locked.pk]
    ).fetchone() == ("scheduled", None)
    two.rollback()
    one.commit()
    assert names() == {"queue:reports#0": holder.pk}
    assert step(two, 2) == []  # the queue is full: the locked job is stepped over
    two.commit()
    assert step(one, 1, [(holder.pk, 2)]) == [(locked.pk, 2)]
    one.commit()
    assert names() == {"lock:L": locked.pk, "queue:reports#0": locked.pk}


def test_run_jobs_writes_the_settings_limits_and_runs_everything() -> None:
    """A cron pass in this process: the limits of its settings reach the database, and a
    pass that holds the lock itself runs every job of it, one after another."""
    jobs = [schedule_job("0s", "tests.handlers.record", lock="L", queue="r") for _ in range(5)]
    with override_settings(DJANGO_FUTURE_QUEUE_LIMITS={"r": 1}):
        report = run_jobs()
    assert report.ran == 5
    assert [fresh(job).status for job in jobs] == ["complete"] * 5
    assert names() == {}
    with psycopg.connect(subprocess_env()["DATABASE_URL"]) as conn:
        assert conn.execute("SELECT * FROM django_future_queuelimit").fetchall() == [("r", 1)]
    with override_settings(DJANGO_FUTURE_QUEUE_LIMITS={}):
        run_jobs()
    assert not ScheduledJob.objects.filter(status="scheduled").exists()
    with psycopg.connect(subprocess_env()["DATABASE_URL"]) as conn:
        assert conn.execute("SELECT * FROM django_future_queuelimit").fetchall() == []


def test_a_sleeping_worker_counts_a_blocked_job_as_due_in_a_second(connect: Any) -> None:
    """next_due, which sets how long a worker sleeps: a blocked job counts as due a second
    from now (counted as due now, the worker would not sleep at all while the lock is
    held; not counted, it would sleep until the poll interval once the lock is freed)."""
    holder = schedule_job("0s", "tests.handlers.record", lock="L")
    schedule_job("0s", "tests.handlers.record", lock="L")
    later = schedule_job("1h", "tests.handlers.record")

    def next_due() -> float:
        with psycopg.connect(subprocess_env()["DATABASE_URL"]) as conn:
            (seconds,) = conn.execute(
                query("next_due"), {"queues": None, "exclude_queues": None}
            ).fetchone()
            return float(seconds)

    assert next_due() <= 0
    conn = connect()
    assert step(conn, 1) == [(holder.pk, 2)]
    conn.commit()
    assert 0.5 < next_due() <= 1.0
    listener = psycopg.connect(subprocess_env()["DATABASE_URL"], autocommit=True)
    try:
        listener.execute("LISTEN django_future")
        # A failure (the trigger's path, rare) frees the lock and wakes the workers.
        ledger.append(holder.pk, "failed", {"error": "test"})
        assert [n.channel for n in listener.notifies(timeout=2, stop_after=1)] == ["django_future"]
    finally:
        listener.close()
    assert next_due() <= 0
    assert fresh(later).status == "scheduled"
