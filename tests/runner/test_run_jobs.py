"""run_jobs and runscheduledjobs: the original's behaviour, on the ledger."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import transaction
from django.db.models.signals import post_init

from django_future import ledger, run_jobs, schedule_job
from django_future.models import JobEvent, ScheduledJob
from django_future.runner import JobFailedError
from tests import handlers
from tests.support import db_now, fresh, kinds
from tests.testapp.models import JobRun, Order

pytestmark = pytest.mark.django_db


def test_due_jobs_run_in_order_of_their_slot_and_future_ones_wait() -> None:
    now = db_now()
    late = schedule_job(now - dt.timedelta(minutes=1), "tests.handlers.record", args=["late"])
    early = schedule_job(now - dt.timedelta(minutes=5), "tests.handlers.record", args=["early"])
    future = schedule_job("1h", "tests.handlers.record", args=["future"])
    report = run_jobs()
    assert [c[0] for c in handlers.calls] == [("early",), ("late",)]
    assert report.completed == [early.pk, late.pk]
    assert fresh(future).status == "scheduled" and kinds(future) == ["scheduled"]
    assert fresh(early).status == ScheduledJob.STATUS_COMPLETE


def test_completed_job_records_start_runner_and_return_value_as_text() -> None:
    job = schedule_job("0s", "tests.handlers.returns_number")
    run_jobs()
    job = fresh(job)
    assert (job.status, job.return_value, job.error) == ("complete", "42", None)
    assert job.execution_start is not None and job.runner == ledger.runner_identity()
    started, completed = JobEvent.objects.filter(job_id=job.pk, seq__gt=1).order_by("seq")
    assert (started.kind, started.runner) == ("started", ledger.runner_identity())
    assert completed.kind == "completed"
    assert completed.data.keys() == {"return_value", "seconds", "result"}
    assert completed.data["return_value"] == "42" and 0 <= completed.data["seconds"] < 5
    assert completed.data["result"] == 42  # the value itself, as JSON


def test_none_stays_none() -> None:
    job = schedule_job("0s", "tests.handlers.returns_none")
    run_jobs()
    assert fresh(job).return_value is None and fresh(job).status == "complete"


def test_args_and_kwargs_reach_the_callable() -> None:
    schedule_job("0s", "tests.handlers.record", args=[1, [2]], kwargs={"k": {"v": None}})
    run_jobs()
    assert handlers.calls == [((1, [2]), {"k": {"v": None}})]


def test_now_decides_what_is_due_and_what_expired() -> None:
    base = db_now()
    expiring = schedule_job(
        base + dt.timedelta(hours=1), "tests.handlers.record", args=["x"], expires="30m"
    )
    later = schedule_job(
        base + dt.timedelta(hours=2), "tests.handlers.record", args=["y"], expires=None
    )
    report = run_jobs(now=base + dt.timedelta(hours=1, minutes=45))
    assert report.expired == [expiring.pk] and report.completed == []
    assert fresh(expiring).status == "expired"
    assert kinds(expiring) == ["scheduled", "expired"]
    assert handlers.calls == []
    run_jobs(now=base + dt.timedelta(days=365))
    assert fresh(later).status == "complete"
    assert fresh(expiring).status == "expired"  # never run afterwards


def test_naive_now_is_read_in_the_current_time_zone() -> None:
    job = schedule_job(dt.datetime(2030, 1, 1, 12, 0, tzinfo=dt.UTC), "tests.handlers.record")
    run_jobs(now=dt.datetime(2030, 1, 1, 12, 0))  # UTC in the test settings
    assert fresh(job).status == "complete"


def test_slot_boundaries_are_inclusive() -> None:
    start = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    job = schedule_job(start, "tests.handlers.record", expires="1h")
    run_jobs(now=start - dt.timedelta(microseconds=1))
    assert fresh(job).status == "scheduled"
    run_jobs(now=start + dt.timedelta(hours=1))
    assert fresh(job).status == "complete"


def test_failure_stops_the_run_records_the_traceback_and_leaves_nothing_running() -> None:
    now = db_now()
    first = schedule_job(now - dt.timedelta(minutes=3), "tests.handlers.record", args=[1])
    bad = schedule_job(now - dt.timedelta(minutes=2), "tests.handlers.boom", args=["kaput"])
    after = schedule_job(now - dt.timedelta(minutes=1), "tests.handlers.record", args=[2])
    with pytest.raises(
        JobFailedError, match=rf"job {bad.pk} \(tests.handlers.boom\) failed"
    ) as info:
        run_jobs()
    assert isinstance(info.value.__cause__, ValueError)
    bad = fresh(bad)
    assert bad.status == "failed"
    assert bad.error is not None and "Traceback (most recent call last)" in bad.error
    assert "ValueError: kaput" in bad.error and 'tests/handlers.py", line' in bad.error
    assert (
        JobEvent.objects.get(job_id=bad.pk, kind="failed").data["exception"] == "ValueError: kaput"
    )
    assert fresh(first).status == "complete"
    assert fresh(after).status == "scheduled"
    assert not ScheduledJob.objects.running().exists()


def test_ignore_errors_goes_on_past_failures() -> None:
    bad = schedule_job("0s", "tests.handlers.boom")
    good = schedule_job("0s", "tests.handlers.record")
    report = run_jobs(ignore_errors=True)
    assert (report.failed, report.completed) == ([bad.pk], [good.pk])
    assert fresh(good).status == "complete" and fresh(bad).status == "failed"


def test_a_job_whose_database_work_fails_does_not_break_the_run() -> None:
    order = Order.objects.create(number="dup")
    broken = schedule_job("0s", "tests.handlers.run_once")
    # Its attempt's row is there already: the job's INSERT breaks a unique constraint.
    JobRun.objects.create(job_id=broken.pk, attempt=1, pid=0)
    ok = schedule_job("0s", "tests.handlers.touch_order", content_object=order)
    report = run_jobs(ignore_errors=True)
    assert (report.failed, report.completed) == ([broken.pk], [ok.pk])
    assert "IntegrityError" in (fresh(broken).error or "")
    assert "one_run_per_attempt" in (fresh(broken).error or "")
    assert fresh(ok).return_value == "reminded dup"


def test_delete_completed_removes_rows_keeps_events_and_failures() -> None:
    good = schedule_job("0s", "tests.handlers.record")
    bad = schedule_job("0s", "tests.handlers.boom")
    report = run_jobs(delete_completed=True, ignore_errors=True)
    assert report.deleted == [good.pk]
    assert not ScheduledJob.objects.filter(pk=good.pk).exists()
    assert kinds(good) == ["scheduled", "started", "completed", "deleted"]
    assert fresh(bad).status == "failed"


def test_unimportable_callable_fails_that_job_clearly() -> None:
    # The code moved after the job was scheduled (a deploy): write the event as it was.
    job = _schedule_raw("tests.handlers.renamed_since")
    with pytest.raises(JobFailedError):
        run_jobs()
    failed = fresh(job)
    assert failed.status == "failed"
    assert "InvalidCallableError: cannot import 'tests.handlers.renamed_since'" in (
        failed.error or ""
    )


def _schedule_raw(callable_name: str) -> ScheduledJob:
    """Append a scheduled event directly, as if the callable had existed at scheduling time."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO django_future_jobevent (job_id, seq, kind, data) VALUES ("
            "nextval(pg_get_serial_sequence('django_future_scheduledjob', 'id')), 1, 'scheduled',"
            " jsonb_build_object('callable_name', %s::text, 'time_slot_start', now())) RETURNING job_id",
            [callable_name],
        )
        return ScheduledJob.objects.get(pk=cursor.fetchone()[0])


def test_deleted_content_object_fails_that_job_clearly() -> None:
    order = Order.objects.create(number="gone")
    job = schedule_job("0s", "remind", content_object=order)
    pk = order.pk
    order.delete()
    run_jobs(ignore_errors=True)
    failed = fresh(job)
    assert failed.status == "failed"
    assert (
        f"LookupError: the job's content object (testapp.order with pk '{pk}') no longer exists"
        in (failed.error or "")
    )


def test_content_object_method_and_dotted_path_receive_the_object() -> None:
    order = Order.objects.create(number="B-7")
    method = schedule_job("0s", "remind", content_object=order, kwargs={"times": 2})
    dotted = schedule_job("0s", "tests.handlers.touch_order", content_object=order, args=[3])
    run_jobs()
    order.refresh_from_db()
    assert order.reminded == 5
    assert fresh(method).return_value == fresh(dotted).return_value == "reminded B-7"


def test_job_as_parameter_gets_the_job_first_then_the_object() -> None:
    order = Order.objects.create(number="C-1")
    plain = schedule_job("0s", "tests.handlers.with_job", args=["a"])
    bound = schedule_job("0s", "tests.handlers.with_job_and_order", content_object=order)
    run_jobs()
    (job1, arg), (job2, obj) = handlers.calls
    assert (job1.pk, arg, job1.status) == (plain.pk, "a", "running")
    assert (job2.pk, obj) == (bound.pk, order)


@pytest.mark.parametrize(
    ("use_tz", "time_zone"), [(True, "UTC"), (True, "America/New_York"), (False, "Europe/Paris")]
)
def test_the_job_a_handler_gets_is_the_row_as_the_orm_reads_it(
    settings: Any, use_tz: bool, time_zone: str
) -> None:
    """The runner reads claimed rows itself (psycopg's compiled timestamp loader, then
    Django's time zone): the instance must equal what the ORM reads, tzinfo included."""
    settings.USE_TZ, settings.TIME_ZONE = use_tz, time_zone
    job = schedule_job("0s", "tests.handlers.with_job", args=[{"a": [1, 2]}], expires="1d")
    run_jobs()
    ((received, *_),) = handlers.calls
    orm = fresh(job)
    for name in ("time_slot_start", "time_slot_end", "execution_start", "created_at"):
        ours, theirs = getattr(received, name), getattr(orm, name)
        assert (ours, ours.tzinfo) == (theirs, theirs.tzinfo), name
        assert (ours.tzinfo is None) == (not use_tz), name
    assert (received.args, received.kwargs) == (orm.args, orm.kwargs) == ([{"a": [1, 2]}], {})


def test_the_job_a_handler_gets_is_a_saved_instance_with_every_field() -> None:
    """The runner builds claimed jobs without Model.__init__ when no init signal is
    connected: the instance must still be what from_db makes."""
    job = schedule_job("0s", "tests.handlers.with_job", args=["a"], retries=2)
    run_jobs()
    ((received, *_),) = handlers.calls
    assert (received._state.adding, received._state.db) == (False, "default")
    orm = ScheduledJob.objects.get(pk=job.pk)
    orm.status, orm.last_seq, orm.last_hash = received.status, received.last_seq, received.last_hash
    orm.execution_end = orm.return_value = None  # completed after the handler returned
    for field in ScheduledJob._meta.concrete_fields:
        assert getattr(received, field.attname) == getattr(orm, field.attname), field.name
    assert received.content_object is None and received.get_status_display() == "Running"


def test_init_signals_still_see_the_jobs_the_runner_claims() -> None:
    """With a pre_init or post_init receiver on ScheduledJob, the runner builds its jobs
    through Model.__init__, so that the receivers see every one."""
    seen: list[int] = []

    def on_init(sender: Any, instance: ScheduledJob, **kwargs: Any) -> None:
        seen.append(instance.pk)

    first = schedule_job("0s", "tests.handlers.returns_none")
    second = schedule_job("0s", "tests.handlers.returns_none")
    post_init.connect(on_init, sender=ScheduledJob)
    try:
        run_jobs()
    finally:
        post_init.disconnect(on_init, sender=ScheduledJob)
    assert seen == [first.pk, second.pk]


def test_a_handler_can_reschedule_its_own_job() -> None:
    job = schedule_job("0s", "tests.handlers.with_job")
    run_jobs()
    ((running, *_),) = handlers.calls
    copy = running.reschedule("1d")
    assert copy.callable_name == job.callable_name and copy.status == "scheduled"


def test_keyboard_interrupt_is_recorded_then_raised() -> None:
    job = schedule_job("0s", "tests.handlers.interrupt")
    waiting = schedule_job("0s", "tests.handlers.record")
    with pytest.raises(KeyboardInterrupt):
        run_jobs(ignore_errors=True)
    assert fresh(job).status == "failed"
    assert "KeyboardInterrupt" in (fresh(job).error or "")
    assert fresh(waiting).status == "scheduled"


def test_command_runs_jobs_with_original_flags() -> None:
    good = schedule_job("0s", "tests.handlers.record")
    bad = schedule_job("0s", "tests.handlers.boom")
    call_command("runscheduledjobs", "-d", "-i")
    assert not ScheduledJob.objects.filter(pk=good.pk).exists()
    assert fresh(bad).status == "failed"


def test_command_without_ignore_errors_exits_non_zero() -> None:
    schedule_job("0s", "tests.handlers.boom")
    with pytest.raises(CommandError, match="Use --ignore-errors") as info, transaction.atomic():
        call_command("runscheduledjobs")
    assert info.value.returncode == 1
