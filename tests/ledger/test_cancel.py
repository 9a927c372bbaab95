"""Cancelling: who and why go into the ledger, and only a scheduled job can be cancelled."""

from __future__ import annotations

import pytest
from django.db import transaction

from django_future import ledger, run_jobs, schedule_job
from django_future.ledger import JobStateError
from django_future.models import ScheduledJob
from tests.support import event, fresh, kinds

pytestmark = pytest.mark.django_db


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
