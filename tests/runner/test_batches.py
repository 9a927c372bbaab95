"""Batches (--batch-size): started together, their completions recorded together and in
time, each job's run time its own, and what a stop leaves unstarted handed back."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection

from django_future import schedule_job
from django_future.runner import Runner
from tests import handlers
from tests.support import event, fresh, kinds

pytestmark = pytest.mark.django_db


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
