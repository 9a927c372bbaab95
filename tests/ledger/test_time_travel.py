"""The state of every job at any past instant, folded from the ledger."""

from __future__ import annotations

import datetime as dt

import pytest

from django_future import ledger, run_jobs, schedule_job
from django_future.models import JobEvent

pytestmark = pytest.mark.django_db


def at(job_id: int, kind: str) -> dt.datetime:
    return JobEvent.objects.get(job_id=job_id, kind=kind).at


def states(instant: dt.datetime) -> dict[int, str]:
    return {job.pk: job.status for job in ledger.jobs_as_of(instant)}


def test_jobs_as_of_any_instant() -> None:
    done = schedule_job("0s", "tests.handlers.record")
    failed = schedule_job("0s", "tests.handlers.boom")
    run_jobs(ignore_errors=True, delete_completed=True)
    later = schedule_job("1h", "tests.handlers.record")
    later.cancel(by="ops", reason="not needed")

    assert states(at(done.pk, "scheduled") - dt.timedelta(microseconds=1)) == {}
    assert states(at(failed.pk, "scheduled")) == {done.pk: "scheduled", failed.pk: "scheduled"}
    assert states(at(done.pk, "started")) == {done.pk: "running", failed.pk: "scheduled"}
    assert states(at(done.pk, "completed"))[done.pk] == "complete"
    assert states(at(failed.pk, "started")) == {failed.pk: "running"}  # done was deleted (-d)
    assert states(at(later.pk, "scheduled")) == {failed.pk: "failed", later.pk: "scheduled"}
    now = states(at(later.pk, "cancelled"))
    assert now == {failed.pk: "failed", later.pk: "cancelled"}


def test_every_field_as_of_an_instant_matches_the_row_then() -> None:
    job = schedule_job("0s", "tests.handlers.returns_number", args=[], kwargs={})
    run_jobs()
    (then,) = ledger.jobs_as_of(at(job.pk, "completed") + dt.timedelta(days=1))
    assert then.return_value == "42" and then.attempts == 1
    from django_future.models import ScheduledJob

    row = ScheduledJob.objects.get(pk=job.pk)
    fields = [f.attname for f in ScheduledJob._meta.concrete_fields]
    assert [getattr(then, f) for f in fields] == [getattr(row, f) for f in fields]


def test_naive_instants_are_read_in_the_current_time_zone() -> None:
    job = schedule_job("0s", "tests.handlers.record")
    naive = at(job.pk, "scheduled").replace(tzinfo=None)  # UTC in the test settings
    assert [j.pk for j in ledger.jobs_as_of(naive)] == [job.pk]
