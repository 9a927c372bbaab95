"""Retries, cancellation, atomic jobs, batches, limits and recovery, in one process.

The same behaviours with real, killed and signalled processes are in test_processes.py.
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection, transaction

from django_future import ledger, run_jobs, schedule_job
from django_future.ledger import JobStateError
from django_future.models import JobEvent, RunnerProcess, ScheduledJob
from django_future.runner import JobFailedError, Runner
from django_future.runner import report as runner_report
from django_future.scheduler import backoff
from tests import handlers
from tests.integration.conftest import counts, db_now, kinds
from tests.testapp.models import Order

pytestmark = pytest.mark.django_db


def fresh(job: ScheduledJob) -> ScheduledJob:
    return ScheduledJob.objects.get(pk=job.pk)


def later(seconds: float = 3600) -> dt.datetime:
    return db_now() + dt.timedelta(seconds=seconds)


def event(job: ScheduledJob, kind: str, nth: int = 0) -> JobEvent:
    return list(JobEvent.objects.filter(job_id=job.pk, kind=kind).order_by("seq"))[nth]


# --- retries ------------------------------------------------------------------------


def test_backoff_doubles_up_to_the_cap() -> None:
    delays = [backoff(n, dt.timedelta(seconds=30), dt.timedelta(minutes=5)) for n in range(1, 7)]
    assert [d.total_seconds() for d in delays] == [30, 60, 120, 240, 300, 300]
    assert backoff(10_000, dt.timedelta(seconds=1), dt.timedelta(hours=1)) == dt.timedelta(hours=1)


def test_default_is_no_retry() -> None:
    job = schedule_job("0s", "tests.handlers.boom")
    assert (job.max_attempts, job.retry_delay) == (1, None)
    run_jobs(ignore_errors=True)
    assert kinds(job) == ["scheduled", "started", "failed"]


def test_retries_reach_success_with_each_step_in_the_ledger() -> None:
    job = schedule_job("0s", "tests.handlers.fails_until", args=[3], retries=3, retry_delay="10s")
    first = run_jobs()  # a failure with a retry left does not stop the run
    assert first.retried == [job.pk] and first.failed == []
    job = fresh(job)
    assert (job.status, job.attempts) == ("scheduled", 1)
    assert "attempt 1 fails on purpose" in (job.error or "")
    retry = event(job, "retry")
    assert retry.data["attempt"] == 2 and retry.data["of"] == 4 and retry.data["delay"] == 10
    assert retry.data["reason"] == "RuntimeError: attempt 1 fails on purpose"
    assert job.time_slot_start == dt.datetime.fromisoformat(retry.data["due"])
    assert job.time_slot_start - retry.at == dt.timedelta(seconds=10)

    run_jobs()  # not due yet
    assert fresh(job).attempts == 1
    run_jobs(now=later())
    assert event(job, "retry", 1).data["delay"] == 20  # doubled
    run_jobs(now=later())
    job = fresh(job)
    assert (job.status, job.attempts, job.return_value, job.error) == (
        "complete",
        3,
        "succeeded on attempt 3",
        None,
    )
    assert kinds(job) == ["scheduled"] + ["started", "failed", "retry"] * 2 + [
        "started",
        "completed",
    ]


def test_retries_reach_exhaustion_and_then_stop_the_run() -> None:
    job = schedule_job("0s", "tests.handlers.boom", retries=2, retry_delay="1s")
    assert run_jobs().retried == [job.pk]
    with pytest.raises(JobFailedError):
        run_jobs(now=later())  # attempts 2 and 3: both due an hour from now
    job = fresh(job)
    assert (job.status, job.attempts) == ("failed", 3)
    assert kinds(job).count("retry") == 2 and kinds(job)[-1] == "failed"


def test_no_retry_after_the_job_expires() -> None:
    job = schedule_job("0s", "tests.handlers.boom", retries=5, retry_delay="1h", expires="30m")
    report = run_jobs(ignore_errors=True)
    assert report.failed == [job.pk] and report.retried == []
    assert fresh(job).status == "failed"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"retries": -1}, "retries must be a whole number"),
        ({"retries": True}, "retries must be a whole number"),
        ({"retries": 1.5}, "retries must be a whole number"),
        ({"retry_delay": "5s"}, "need retries=1 or more"),
        ({"retries": 1, "retry_delay": "soon"}, "retry_delay"),
        ({"retries": 1, "retry_delay": dt.datetime(2030, 1, 1, tzinfo=dt.UTC)}, "not a duration"),
        ({"retries": 1, "retry_delay": "1h", "retry_max_delay": "1m"}, "shorter than"),
        ({"atomic": "yes"}, "atomic must be True or False"),
    ],
)
def test_bad_policies_are_refused_and_write_nothing(
    kwargs: dict[str, object], message: str
) -> None:
    before = counts()
    with pytest.raises(ValueError, match=message):
        schedule_job("0s", "tests.handlers.record", **kwargs)  # type: ignore[arg-type]
    assert counts() == before


def test_reschedule_copies_the_policy() -> None:
    job = schedule_job("1d", "tests.handlers.record", retries=2, retry_delay="5m", atomic=True)
    copy = job.reschedule("2d")
    assert (copy.max_attempts, copy.retry_delay, copy.atomic) == (
        3,
        dt.timedelta(minutes=5),
        True,
    )


# --- cancellation ---------------------------------------------------------------------


def test_cancel_records_who_and_why_and_the_job_never_runs() -> None:
    job = schedule_job("0s", "tests.handlers.record")
    cancelled = job.cancel(by="alice", reason="customer asked")
    assert cancelled.status == ScheduledJob.STATUS_CANCELLED
    assert event(job, "cancelled").data == {"by": "alice", "reason": "customer asked"}
    run_jobs()
    assert kinds(job) == ["scheduled", "cancelled"]


def test_cancel_defaults_to_this_process_as_who() -> None:
    job = schedule_job("1d", "tests.handlers.record")
    ledger.cancel(job.pk)
    assert event(job, "cancelled").data["by"] == f"python:{ledger.runner_identity()}"


def test_only_scheduled_jobs_can_be_cancelled_and_the_transaction_survives() -> None:
    job = schedule_job("0s", "tests.handlers.record")
    run_jobs()
    with transaction.atomic():
        with pytest.raises(JobStateError, match="is complete; cancelled needs scheduled"):
            fresh(job).cancel(by="bob")
        assert ScheduledJob.objects.filter(pk=job.pk).exists()  # still usable
    assert kinds(job)[-1] == "completed"


# --- atomic jobs ------------------------------------------------------------------------


def test_atomic_job_writes_commit_with_completion() -> None:
    job = schedule_job("0s", "tests.handlers.write", args=["T-1"], atomic=True)
    run_jobs()
    assert Order.objects.filter(number="T-1").exists()
    assert fresh(job).status == "complete"


def test_atomic_job_that_raises_leaves_no_partial_writes() -> None:
    # (Inside this test's transaction every job gets a savepoint; the process test in
    # test_processes.py shows the difference atomic=True makes in autocommit.)
    job = schedule_job("0s", "tests.handlers.write_then_fail", args=["T-2"], atomic=True)
    run_jobs(ignore_errors=True)
    assert not Order.objects.filter(number="T-2").exists()
    assert fresh(job).status == "failed"
    assert "failed after writing order T-2" in (fresh(job).error or "")


# --- batches and limits -------------------------------------------------------------


def test_a_batch_starts_together_and_its_completions_are_recorded_together() -> None:
    jobs = [schedule_job("0s", "tests.handlers.record", args=[i]) for i in range(5)]
    report = Runner(batch_size=3).run()
    assert report.completed == [j.pk for j in jobs]
    assert kinds(jobs[0]) == ["scheduled", "started", "completed"]
    # One statement per step: the first batch's three starts, then their three
    # completions (sent with the claim of the next batch).
    first = jobs[:3]
    assert len({event(j, "started").at for j in first}) == 1
    assert len({event(j, "completed").at for j in first}) == 1
    # (test_processes shows they share the next claim's transaction)
    assert max(event(j, "completed").pk for j in first) < event(jobs[3], "started").pk
    assert [fresh(j).attempts for j in jobs] == [1] * 5


def test_a_completion_is_recorded_before_the_next_job_starts() -> None:
    """The completion of one job travels with the claim of the next, ahead of it
    (test_processes shows they share a transaction)."""
    jobs = [schedule_job("0s", "tests.handlers.record", args=[i]) for i in range(2)]
    assert Runner().run().completed == [j.pk for j in jobs]
    assert event(jobs[0], "completed").pk < event(jobs[1], "started").pk
    assert fresh(jobs[1]).status == "complete"  # the last one, sent on its own


def test_a_slow_batch_does_not_keep_finished_work_unrecorded() -> None:
    quick = schedule_job("0s", "tests.handlers.record", args=[1])
    slow = schedule_job("0s", "tests.handlers.slow", args=[1.1])
    last = schedule_job("0s", "tests.handlers.record", args=[2])
    assert Runner(batch_size=3).run().completed == [quick.pk, slow.pk, last.pk]
    # More than a second after the first completion, the two are sent before the third job.
    assert event(quick, "completed").at == event(slow, "completed").at
    assert event(last, "completed").at > event(slow, "completed").at


def test_a_batched_job_s_run_time_is_its_own_not_its_batch_s() -> None:
    slow = schedule_job("0s", "tests.handlers.slow", args=[1.0])
    quick = schedule_job("0s", "tests.handlers.record", args=[1])
    Runner(batch_size=2).run()
    # Both started with the batch; the quick one's completion was written after the slow
    # one ran, so the events' times say it ran for a second. The runner measured it.
    assert event(quick, "completed").at - event(quick, "started").at >= dt.timedelta(seconds=1)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT job_id, extract(epoch FROM run_time) FROM django_future_attempts"
            " WHERE job_id IN (%s, %s)",
            [slow.pk, quick.pk],
        )
        run_times = dict(cursor.fetchall())
    assert run_times[slow.pk] >= 1.0
    assert run_times[quick.pk] < 0.5


def test_max_jobs_never_claims_more_than_it_may_run() -> None:
    jobs = [schedule_job("0s", "tests.handlers.record", args=[i]) for i in range(5)]
    report = Runner(batch_size=4, max_jobs=2).run()
    assert report.completed == [jobs[0].pk, jobs[1].pk]
    assert kinds(jobs[2]) == ["scheduled"]


def test_max_jobs_counts_every_job_when_the_report_keeps_only_the_last_ids(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A long run keeps the ids of its last REPORT_IDS jobs only; its budget and its
    # summary still count them all.
    monkeypatch.setattr(runner_report, "REPORT_IDS", 2)
    jobs = [schedule_job("0s", "tests.handlers.record", args=[i]) for i in range(6)]
    report = Runner(max_jobs=5).run()
    assert report.completed == [jobs[3].pk, jobs[4].pk]
    assert report.completed.total == report.ran == 5
    assert str(report).startswith("5 completed")
    assert kinds(jobs[5]) == ["scheduled"]


def test_a_stop_mid_batch_hands_back_what_was_not_started() -> None:
    first = schedule_job("0s", "tests.handlers.stop_the_runner")
    rest = [schedule_job("0s", "tests.handlers.record", args=[i]) for i in range(3)]
    runner = Runner(batch_size=4)
    handlers.current_runner = runner
    report = runner.run()
    assert report.completed == [first.pk]
    assert kinds(rest[0]) == ["scheduled", "started", "released"]
    assert event(rest[0], "released").data == {"reason": "runner stopped before calling it"}
    assert [fresh(j).status for j in rest] == ["scheduled"] * 3
    assert [fresh(j).attempts for j in rest] == [0] * 3  # never called: no attempt
    assert Runner(batch_size=4).run().completed == [j.pk for j in rest]


def test_time_limit_stops_claiming() -> None:
    schedule_job("0s", "tests.handlers.record")
    assert Runner(time_limit=1e-9).run().ran == 0
    assert ScheduledJob.objects.scheduled().count() == 1


def test_a_stop_request_finishes_nothing_new() -> None:
    schedule_job("0s", "tests.handlers.record")
    runner = Runner()
    runner.request_stop()
    assert runner.run().ran == 0


# --- runners and recovery ---------------------------------------------------------------


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


@pytest.mark.parametrize("batch_size", [1, 3])
def test_the_job_a_handler_gets_is_the_row_as_it_stands(batch_size: int) -> None:
    """Runners read claimed rows without the ORM's query path; they must be exact."""
    order = Order.objects.create(number="R-1")
    schedule_job("0s", "tests.handlers.with_job", args=[{"k": [1]}], retries=2, retry_delay="5s")
    schedule_job("0s", "tests.handlers.with_job_and_order", content_object=order)
    Runner(batch_size=batch_size).run()
    fields = [f.attname for f in ScheduledJob._meta.concrete_fields]
    for given, *_ in handlers.calls:
        expected = ScheduledJob.objects.get(pk=given.pk)
        # As it was while running: the same row before its completion was appended.
        assert given.status == "running" and given.last_seq == expected.last_seq - 1
        for name in fields:
            if name not in ("status", "last_seq", "last_hash", "execution_end", "return_value"):
                assert getattr(given, name) == getattr(expected, name), name
    assert handlers.calls[0][1] == {"k": [1]}
    assert handlers.calls[1][1] == order


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


def test_a_return_value_travels_exactly_with_the_next_claim() -> None:
    """The completion rides with the next claim as JSON: quotes, backslashes, braces,
    newlines and non-ASCII text arrive as they left, and None stays NULL."""
    tricky = ['q"uo\\te {a,b}', "ünï\ncode\t", "NULL", ""]
    first = schedule_job("0s", "tests.handlers.record", args=tricky)
    second = schedule_job("0s", "tests.handlers.returns_none")
    third = schedule_job("0s", "tests.handlers.record", args=[3])
    assert Runner().run().completed == [first.pk, second.pk, third.pk]
    assert fresh(first).return_value == f"recorded {tricky} {{}}"
    assert fresh(second).return_value is None
    assert event(first, "completed").data["return_value"] == f"recorded {tricky} {{}}"
