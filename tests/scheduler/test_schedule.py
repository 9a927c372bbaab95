"""schedule_job: times, callables, arguments, content objects and transactions."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from django_future import ledger, schedule_job
from django_future.models import JobEvent, LedgerOnlyError, ScheduledJob
from django_future.scheduler import InvalidCallableError
from tests.support import counts, db_now, kinds
from tests.testapp.models import Document, Order

pytestmark = pytest.mark.django_db


def test_relative_times_use_the_database_clock() -> None:
    before = db_now()
    job = schedule_job("1h30m", "tests.handlers.record")
    after = db_now()
    assert (
        before + dt.timedelta(minutes=90) <= job.time_slot_start <= after + dt.timedelta(minutes=90)
    )
    assert job.time_slot_end == job.time_slot_start + dt.timedelta(days=7)  # default '7d'
    assert job.status == ScheduledJob.STATUS_SCHEDULED


def test_timedelta_from_now() -> None:
    before = db_now()
    job = schedule_job(dt.timedelta(days=5), "tests.handlers.record", expires=dt.timedelta(hours=2))
    assert job.time_slot_start - before >= dt.timedelta(days=5)
    assert job.time_slot_end - job.time_slot_start == dt.timedelta(hours=2)


def test_aware_datetime_is_kept_exactly() -> None:
    when = dt.datetime(2031, 3, 4, 5, 6, 7, 891011, tzinfo=zoneinfo.ZoneInfo("Asia/Tokyo"))
    job = schedule_job(when, "tests.handlers.record", expires=None)
    assert job.time_slot_start == when
    assert job.time_slot_end is None


def test_naive_datetime_is_read_in_the_current_time_zone() -> None:
    with timezone.override(zoneinfo.ZoneInfo("Europe/Paris")):
        job = schedule_job(dt.datetime(2031, 7, 1, 12, 0), "tests.handlers.record")
    assert job.time_slot_start == dt.datetime(2031, 7, 1, 10, 0, tzinfo=dt.UTC)


def test_absolute_expiry() -> None:
    start = dt.datetime(2031, 1, 1, tzinfo=dt.UTC)
    job = schedule_job(start, "tests.handlers.record", expires=start + dt.timedelta(hours=1))
    assert job.time_slot_end == start + dt.timedelta(hours=1)


def test_scheduled_event_carries_everything_the_job_needs() -> None:
    order = Order.objects.create(number="A-1")
    job = schedule_job("5d", "remind", content_object=order, args=[2], kwargs={"x": [1]})
    (event,) = JobEvent.objects.filter(job_id=job.pk)
    assert event.seq == 1 and event.kind == "scheduled" and event.runner is None
    assert event.data == {
        "callable_name": "remind",
        "content_type_id": job.content_type_id,
        "content_type": "testapp.order",
        "object_id": str(order.pk),
        "args": [2],
        "kwargs": {"x": [1]},
        "time_slot_start": event.data["time_slot_start"],
        "time_slot_end": event.data["time_slot_end"],
    }
    assert job.content_object == order
    assert dt.datetime.fromisoformat(event.data["time_slot_start"]) == job.time_slot_start


def test_scheduled_event_leaves_out_only_defaults() -> None:
    """No content object, not atomic and no retries are left out of the event (the
    fold supplies them); anything else is recorded."""
    plain = schedule_job("1d", "tests.handlers.record", expires=None)
    data = JobEvent.objects.get(job_id=plain.pk).data
    assert data == {
        "callable_name": "tests.handlers.record",
        "args": [],
        "kwargs": {},
        "time_slot_start": data["time_slot_start"],
        "time_slot_end": None,
    }
    assert (plain.content_type_id, plain.object_id, plain.atomic) == (None, None, False)
    assert (plain.max_attempts, plain.retry_delay, plain.retry_max_delay) == (1, None, None)

    careful = schedule_job(
        "1d",
        "tests.handlers.record",
        retries=2,
        retry_delay="1m",
        retry_max_delay="1h",
        atomic=True,
    )
    data = JobEvent.objects.get(job_id=careful.pk).data
    assert {k: data[k] for k in ("atomic", "retries", "retry_delay", "retry_max_delay")} == {
        "atomic": True,
        "retries": 2,
        "retry_delay": 60.0,
        "retry_max_delay": 3600.0,
    }
    assert (careful.atomic, careful.max_attempts) == (True, 3)
    assert (careful.retry_delay, careful.retry_max_delay) == (
        dt.timedelta(minutes=1),
        dt.timedelta(hours=1),
    )
    assert ledger.verify() == []


def test_text_primary_keys_work_as_content_objects() -> None:
    doc = Document.objects.create(slug="terms")
    job = schedule_job("1d", "tests.handlers.record", content_object=doc)
    assert job.object_id == "terms"
    assert job.content_object == doc


def test_tuples_come_back_as_lists() -> None:
    job = schedule_job("1d", "tests.handlers.record", args=(1, (2, 3)), kwargs={"k": (4,)})
    job = ScheduledJob.objects.get(pk=job.pk)
    assert job.args == [1, [2, 3]]
    assert job.kwargs == {"k": [4]}


def test_repr_and_original_field_names() -> None:
    job = schedule_job("1d", "tests.handlers.record")
    assert repr(job) == "<ScheduledJob (scheduled) callable='tests.handlers.record'>"
    names = (
        "time_slot_start",
        "time_slot_end",
        "execution_start",
        "status",
        "content_type",
        "object_id",
        "content_object",
        "callable_name",
        "args",
        "kwargs",
        "error",
        "return_value",
    )
    for name in names:  # model fields, as in django-future: not just attributes
        assert ScheduledJob._meta.get_field(name).name == name
    queried = [name for name in names if name != "content_object"]  # generic: no column
    (row,) = ScheduledJob.objects.filter(pk=job.pk).values(*queried)
    assert {name: row[name] for name in ("callable_name", "status", "time_slot_start")} == {
        "callable_name": "tests.handlers.record",
        "status": "scheduled",
        "time_slot_start": job.time_slot_start,
    }


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (
            lambda: schedule_job("5 days", "tests.handlers.record"),
            ValueError,
            "expected an aware datetime",
        ),
        (lambda: schedule_job(5, "tests.handlers.record"), ValueError, "5 is not a time"),
        (
            lambda: schedule_job("1d", "tests.handlers.record", expires="soon"),
            ValueError,
            "expires: 'soon'",
        ),
        (lambda: schedule_job("1d", "tests.handlers.record", expires="-1d"), ValueError, "expires"),
        (
            lambda: schedule_job("1d", "tests.handlers.nope"),
            InvalidCallableError,
            "cannot import 'tests.handlers.nope'",
        ),
        (
            lambda: schedule_job("1d", "no_such_module.x"),
            InvalidCallableError,
            "No module named 'no_such_module'",
        ),
        (
            lambda: schedule_job("1d", "tests.handlers.not_callable"),
            InvalidCallableError,
            "is a int, not a callable",
        ),
        (lambda: schedule_job("1d", "record"), InvalidCallableError, "needs a content_object"),
        (lambda: schedule_job("1d", ""), InvalidCallableError, "must be a dotted path"),
        (
            lambda: schedule_job("1d", "tests.handlers.record", args=[dt.date(2030, 1, 1)]),
            TypeError,
            r"args\[0\] = datetime.date",
        ),
        (
            lambda: schedule_job("1d", "tests.handlers.record", kwargs={"s": {1}}),
            TypeError,
            r"kwargs\['s'\] = \{1\}",
        ),
        (
            lambda: schedule_job("1d", "tests.handlers.record", content_object=Order(number="x")),
            ValueError,
            "is not saved",
        ),
        (
            lambda: schedule_job("1d", "tests.handlers.record", content_object="order"),
            TypeError,
            "must be a saved model",
        ),
        (  # longer than the job's object_id column holds (a model's pk is not limited to it)
            lambda: schedule_job("1d", "tests.handlers.record", content_object=Document("d" * 256)),
            ValueError,
            "Document has a primary key of 256 characters; a job can point at keys of up to 255",
        ),
    ],
)
def test_bad_input_raises_and_writes_nothing(call, error, message) -> None:  # type: ignore[no-untyped-def]
    before = counts()
    with pytest.raises(error, match=message):
        call()
    assert counts() == before


def test_unknown_method_on_content_object_writes_nothing() -> None:
    order = Order.objects.create(number="A-2")
    before = counts()
    with pytest.raises(InvalidCallableError, match="Order has no method 'shout'"):
        schedule_job("1d", "shout", content_object=order)
    assert counts() == before


def test_absolute_expiry_before_relative_start_is_refused_by_the_database() -> None:
    before = counts()
    with pytest.raises(ValueError, match="falls before the scheduled time"):
        schedule_job("1d", "tests.handlers.record", expires=db_now())
    assert counts() == before


def test_rolled_back_transaction_leaves_no_job_and_no_event() -> None:
    before = counts()
    with pytest.raises(RuntimeError), transaction.atomic():
        schedule_job("0s", "tests.handlers.record")
        assert counts() == (before[0] + 1, before[1] + 1)
        raise RuntimeError("roll back")
    assert counts() == before


def test_committed_transaction_keeps_job_and_event() -> None:
    with transaction.atomic():
        job = schedule_job("0s", "tests.handlers.record")
    assert kinds(job) == ["scheduled"]
    assert ScheduledJob.objects.filter(pk=job.pk).exists()


def test_reschedule_schedules_a_copy() -> None:
    order = Order.objects.create(number="A-3")
    job = schedule_job(
        "1d", "tests.handlers.touch_order", content_object=order, args=[3], kwargs={"k": 1}
    )
    copy = job.reschedule("2d", expires=None)
    assert copy.pk != job.pk
    assert (copy.callable_name, copy.args, copy.kwargs, copy.content_object) == (
        job.callable_name,
        [3],
        {"k": 1},
        order,
    )
    assert copy.time_slot_end is None
    assert JobEvent.objects.get(job_id=copy.pk).data["rescheduled_from"] == job.pk
    other = job.reschedule("1h", callable_name="tests.handlers.record", args=[], kwargs={})
    assert (other.callable_name, other.args, other.kwargs) == ("tests.handlers.record", [], {})


def test_job_rows_cannot_be_saved_or_deleted_from_python() -> None:
    job = schedule_job("1d", "tests.handlers.record")
    with pytest.raises(LedgerOnlyError, match="projection of the event ledger"):
        job.save()
    with pytest.raises(LedgerOnlyError):
        job.delete()


def test_schedule_costs_one_query(django_assert_num_queries) -> None:  # type: ignore[no-untyped-def]
    schedule_job("1d", "tests.handlers.record")  # warm the content-type cache etc.
    with django_assert_num_queries(1):  # the event appended and folded, the row returned
        job = schedule_job("1d", "tests.handlers.record")
    # The job as returned is the job as stored, field for field.
    stored = ScheduledJob.objects.get(pk=job.pk)
    fields = [field.attname for field in ScheduledJob._meta.concrete_fields]
    assert [getattr(job, name) for name in fields] == [getattr(stored, name) for name in fields]
    assert job._state.adding is False and job._state.db == stored._state.db


def test_reschedule_refuses_when_the_content_object_is_gone() -> None:
    order = Order.objects.create(number="A-4")
    job = schedule_job("1d", "tests.handlers.touch_order", content_object=order)
    Order.objects.filter(pk=order.pk).delete()
    job = ScheduledJob.objects.get(pk=job.pk)
    before = counts()
    with pytest.raises(ValueError, match=r"its content object .* no longer exists"):
        job.reschedule("1d")
    assert counts() == before


def test_the_scheduled_event_is_stamped_as_the_trigger_stamps_it() -> None:
    """schedule_job appends and folds its event itself (schedule.sql): its time is its
    statement's, its hash chained to no previous event, and the row is its fold."""
    with transaction.atomic():
        job = schedule_job("0s", "tests.handlers.record", args=[1], kwargs={"k": "v"})
        with connection.cursor() as cursor:
            cursor.execute("SELECT statement_timestamp()")
            (later,) = cursor.fetchone()
    (event,) = JobEvent.objects.filter(job_id=job.pk)
    assert event.at == job.created_at <= later
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT django_future_event_hash(NULL, job_id, seq, kind, at, runner, data)"
            " FROM django_future_jobevent WHERE id = %s",
            [event.pk],
        )
        assert cursor.fetchone() == (event.hash,)
    assert job.last_hash == event.hash and job.last_seq == 1
    assert ledger.verify() == []


def test_schedule_job_leaves_the_guards_on_for_the_rest_of_its_transaction() -> None:
    with transaction.atomic():
        job = schedule_job("1d", "tests.handlers.record")
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_setting('django_future.folded', true)")
            assert cursor.fetchone() == ("",)
        with pytest.raises(DatabaseError, match="refused"), transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(
                    "UPDATE django_future_scheduledjob SET status = 'complete' WHERE id = %s",
                    [job.pk],
                )
    assert ScheduledJob.objects.get(pk=job.pk).status == "scheduled"
