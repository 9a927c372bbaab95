"""Retries as one runner applies them: each attempt, failure and retry in the ledger,
backoff between them, and no retry once the job has expired. The same with a worker
process: tests/runner/test_process_failures.py."""

from __future__ import annotations

import datetime as dt

import pytest

from django_future import run_jobs, schedule_job
from django_future.runner import JobFailedError
from tests.support import event, fresh, kinds, later

pytestmark = pytest.mark.django_db


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
