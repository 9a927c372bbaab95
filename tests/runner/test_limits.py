"""What ends a run early: --max-jobs, --time-limit and a stop request."""

from __future__ import annotations

import pytest

from django_future import schedule_job
from django_future.models import ScheduledJob
from django_future.runner import Runner
from django_future.runner import report as runner_report
from tests.support import kinds

pytestmark = pytest.mark.django_db


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


def test_time_limit_stops_claiming() -> None:
    schedule_job("0s", "tests.handlers.record")
    assert Runner(time_limit=1e-9).run().ran == 0
    assert ScheduledJob.objects.scheduled().count() == 1


def test_a_stop_request_finishes_nothing_new() -> None:
    job = schedule_job("0s", "tests.handlers.record")
    runner = Runner()
    runner.request_stop()
    assert runner.run().ran == 0
    assert kinds(job) == ["scheduled"]  # not even claimed and handed back
