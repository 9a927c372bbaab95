"""Atomic jobs: their writes commit with their completion, or not at all."""

from __future__ import annotations

import pytest

from django_future import run_jobs, schedule_job
from tests.support import fresh
from tests.testapp.models import Order

pytestmark = pytest.mark.django_db


def test_atomic_job_writes_commit_with_completion() -> None:
    job = schedule_job("0s", "tests.handlers.write", args=["T-1"], atomic=True)
    run_jobs()
    assert Order.objects.filter(number="T-1").exists()
    assert fresh(job).status == "complete"


def test_atomic_job_that_raises_leaves_no_partial_writes() -> None:
    # (Inside this test's transaction every job gets a savepoint; the process test in
    # test_process_failures.py shows the difference atomic=True makes in autocommit.)
    job = schedule_job("0s", "tests.handlers.write_then_fail", args=["T-2"], atomic=True)
    run_jobs(ignore_errors=True)
    assert not Order.objects.filter(number="T-2").exists()
    assert fresh(job).status == "failed"
    assert "failed after writing order T-2" in (fresh(job).error or "")
