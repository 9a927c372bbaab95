"""Leases and recovery, in one process: a runner registers and signs off; the jobs of a
runner whose lease ran out are abandoned (or released, if only claimed) and retried by
their policy; an outcome from an attempt taken away is refused. The same with killed
and signalled processes: tests/runner/test_process_failures.py."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection

from django_future import ledger, run_jobs, schedule_job
from django_future.ledger import JobStateError
from django_future.models import RunnerProcess, ScheduledJob
from django_future.runner import Runner
from tests.support import event, fresh, kinds, later

pytestmark = pytest.mark.django_db


def test_a_runner_registers_and_signs_off() -> None:
    job = schedule_job("0s", "tests.handlers.record")
    runner = Runner(lease=dt.timedelta(seconds=7))
    runner.run()
    process = RunnerProcess.objects.get(pk=runner.runner_id)
    assert process.identity == ledger.runner_identity() and process.stopped_at is not None
    assert process.lease_expires_at - process.started_at == dt.timedelta(seconds=7)
    started = event(job, "started")
    assert started.data["runner_id"] == runner.runner_id
    assert started.data["backend_pid"] == connection.cursor().connection.info.backend_pid


def _in_the_hands_of(
    job: ScheduledJob, *, lease: dt.timedelta, kind: str = "started", name: str = "ghost:1"
) -> ScheduledJob:
    """Put ``job`` in the hands of a registered runner whose lease is ``lease``, as its
    ``claimed`` or ``started`` event would; a lease of a microsecond is a dead runner
    (as after kill -9)."""
    runner = Runner(lease=lease)
    runner._register()
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO django_future_jobevent (job_id, seq, kind, runner, data) "
            "VALUES (%s, 2, %s, %s, jsonb_build_object('runner_id', %s::bigint))",
            [job.pk, kind, name, runner.runner_id],
        )
    return fresh(job)


DEAD = dt.timedelta(microseconds=1)


def _started_by_a_dead_runner(
    callable_name: str = "tests.handlers.record", **kw: object
) -> ScheduledJob:
    """A job left running by a runner whose lease ran out."""
    return _in_the_hands_of(schedule_job("0s", callable_name, **kw), lease=DEAD)  # type: ignore[arg-type]


def test_a_dead_runners_job_is_abandoned_then_failed_without_retries() -> None:
    job = _started_by_a_dead_runner()
    report = run_jobs()
    assert report.abandoned == [job.pk] and report.failed == []
    job = fresh(job)
    assert job.status == "failed"
    assert kinds(job) == ["scheduled", "started", "abandoned"]
    abandoned = event(job, "abandoned")
    assert abandoned.runner == ledger.runner_identity()
    assert abandoned.data["lost_runner"] == "ghost:1"
    assert "RunnerLost: runner ghost:1 stopped renewing its lease" in (job.error or "")


def test_a_dead_runners_job_is_retried_by_policy() -> None:
    job = _started_by_a_dead_runner(retries=1, retry_delay="1m")
    report = run_jobs()
    assert report.abandoned == [job.pk] and report.retried == [job.pk]
    assert kinds(job) == ["scheduled", "started", "abandoned", "retry"]
    run_jobs(now=later())
    assert kinds(job)[-2:] == ["started", "completed"]
    assert fresh(job).attempts == 2


def test_a_live_runners_job_is_left_alone() -> None:
    job = schedule_job("0s", "tests.handlers.record")
    _in_the_hands_of(job, lease=dt.timedelta(hours=1), name="alive:1")
    report = run_jobs()
    assert report.abandoned == [] and fresh(job).status == "running"


def test_claimed_jobs_of_a_dead_runner_are_released_not_failed() -> None:
    job = schedule_job("0s", "tests.handlers.record")
    _in_the_hands_of(job, lease=DEAD, kind="claimed", name="ghost:2")
    report = run_jobs()
    assert report.released == [job.pk]
    assert kinds(job) == ["scheduled", "claimed", "released", "started", "completed"]
    assert fresh(job).attempts == 1


def test_an_outcome_from_a_lost_attempt_is_refused() -> None:
    """A runner whose lease lapsed may still finish; its result must not land on the
    recovered job."""
    job = _started_by_a_dead_runner(retries=1, retry_delay="1h")
    stale = fresh(job)
    run_jobs()  # recovers: abandoned + retry
    with pytest.raises(JobStateError, match="moved on"):
        ledger.append(stale.pk, "completed", {}, only_at_seq=stale.last_seq)
    assert fresh(job).status == "scheduled"


@pytest.mark.parametrize("batch_size", [1, 2])
def test_a_completion_for_an_attempt_taken_meanwhile_is_refused_and_not_counted(
    batch_size: int, caplog: pytest.LogCaptureFixture
) -> None:
    """One job at a time, the refused completion travels with the next claim; in a
    batch, it is sent with its batch's. Either way the ledger keeps the recovery."""
    taken = schedule_job("0s", "tests.handlers.taken_away")
    after = schedule_job("0s", "tests.handlers.record", args=[1])
    with caplog.at_level("WARNING", logger="django_future.runner"):
        report = Runner(batch_size=batch_size).run()
    assert report.completed == [after.pk]
    assert kinds(taken) == ["scheduled", "started", "abandoned"]
    assert kinds(after) == ["scheduled", "started", "completed"]
    assert f"job {taken.pk} (tests.handlers.taken_away): the attempt was taken" in caplog.text
