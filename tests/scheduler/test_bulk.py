"""schedule_jobs: many jobs streamed in chunks, each checked as schedule_job checks it."""

from __future__ import annotations

import datetime as dt

import psycopg
import pytest
from django.db import OperationalError, connection, transaction

from django_future import ledger, run_jobs, schedule_job, schedule_jobs
from django_future.models import JobEvent, ScheduledJob
from django_future.scheduler import BULK_CHUNK
from tests.support import counts, db_now, kinds
from tests.testapp.models import Order

pytestmark = pytest.mark.django_db


def test_bulk_jobs_equal_jobs_scheduled_one_by_one() -> None:
    order = Order.objects.create(number="B-1")
    when = dt.datetime(2031, 1, 1, tzinfo=dt.UTC)
    spec = {
        "date": when,
        "callable_name": "remind",
        "content_object": order,
        "args": (1, [2]),
        "kwargs": {"a": None},
        "expires": "2h",
        "retries": 2,
        "retry_delay": "1m",
        "atomic": True,
    }
    one = schedule_job(**spec)  # type: ignore[arg-type]
    (bulk_id,) = schedule_jobs([spec])
    bulk = ScheduledJob.objects.get(pk=bulk_id)
    for f in ScheduledJob._meta.concrete_fields:
        if f.attname not in ("id", "created_at", "last_hash"):
            assert getattr(bulk, f.attname) == getattr(one, f.attname), f.attname


def test_relative_times_share_one_reading_of_the_database_clock() -> None:
    before = db_now()
    ids = schedule_jobs(
        [{"date": "0s", "callable_name": "tests.handlers.record"}] * 3
        + [{"date": "1h", "callable_name": "tests.handlers.record", "expires": None}]
    )
    jobs = [ScheduledJob.objects.get(pk=i) for i in ids]
    assert len({j.time_slot_start for j in jobs[:3]}) == 1
    assert jobs[0].time_slot_start >= before
    assert jobs[3].time_slot_start - jobs[0].time_slot_start == dt.timedelta(hours=1)
    assert jobs[3].time_slot_end is None
    assert run_jobs().completed == ids[:3]


@pytest.mark.parametrize(
    ("specs", "error", "message"),
    [
        (
            [
                {"date": "0s", "callable_name": "tests.handlers.record"},
                {"date": "soon", "callable_name": "tests.handlers.record"},
            ],
            ValueError,
            r"jobs\[1\]: date: 'soon' is not a duration",
        ),
        ([{"callable_name": "tests.handlers.record"}], TypeError, r"jobs\[0\]: missing 'date'"),
        (
            [{"date": "0s", "callable_name": "tests.handlers.nope"}],
            ValueError,
            r"jobs\[0\]: cannot import",
        ),
        (
            [{"date": "0s", "callable_name": "tests.handlers.record", "args": [{1, 2}]}],
            TypeError,
            r"jobs\[0\]: args\[0\]",
        ),
        (
            [{"date": "0s", "callable_name": "tests.handlers.record", "colour": "red"}],
            TypeError,
            r"jobs\[0\]: unknown arguments \['colour'\]",
        ),
        (
            [
                {
                    "date": "1d",
                    "callable_name": "tests.handlers.record",
                    "expires": dt.datetime(2000, 1, 1, tzinfo=dt.UTC),
                }
            ],
            ValueError,
            r"jobs\[0\]: expires falls before",
        ),
    ],
)
def test_one_bad_job_writes_nothing(
    specs: list[dict[str, object]], error: type[Exception], message: str
) -> None:
    before = counts()
    with pytest.raises(error, match=message):
        schedule_jobs(specs)
    assert counts() == before


def test_bulk_scheduling_rolls_back_with_the_transaction() -> None:
    before = counts()
    with pytest.raises(RuntimeError), transaction.atomic():
        schedule_jobs([{"date": "0s", "callable_name": "tests.handlers.record"}] * 10)
        raise RuntimeError
    assert counts() == before
    assert schedule_jobs([]) == []
    assert schedule_jobs(iter(())) == []
    assert JobEvent.objects.count() == before[1]
    with pytest.raises(TypeError, match=r"jobs\[0\]"):
        schedule_jobs([None])  # type: ignore[list-item]


def test_bulk_jobs_fold_as_their_events_say() -> None:
    """schedule_jobs folds its own events (bulk.sql): the rows it makes are what a
    replay of the ledger makes, and each event's hash chains."""
    ids = schedule_jobs(
        [{"date": "0s", "callable_name": "tests.handlers.record", "args": [i]} for i in range(20)]
    )
    assert ledger.verify() == []
    run_jobs()
    assert ScheduledJob.objects.filter(pk__in=ids, status="complete").count() == 20
    assert ledger.verify() == []


def test_ids_follow_the_items_across_chunks() -> None:
    n = 2 * BULK_CHUNK + 7
    ids = schedule_jobs(
        {"date": "0s", "callable_name": "tests.handlers.record", "args": [i]} for i in range(n)
    )
    assert len(ids) == len(set(ids)) == n
    args = dict(ScheduledJob.objects.filter(pk__in=ids).values_list("pk", "args"))
    assert [args[pk] for pk in ids] == [[i] for i in range(n)]
    assert ledger.verify() == []


def test_a_bad_job_after_chunks_were_sent_writes_nothing() -> None:
    """The chunks before it were written in the call's transaction; the error rolls
    them back with it."""
    before = counts()
    good = {"date": "0s", "callable_name": "tests.handlers.record"}
    bad_at = 2 * BULK_CHUNK + 3
    specs = [good] * bad_at + [{**good, "args": [dt.date(2030, 1, 1)]}] + [good] * 5
    with pytest.raises(TypeError, match=rf"jobs\[{bad_at}\]: args\[0\] = datetime.date"):
        schedule_jobs(specs)
    assert counts() == before
    (job_id,) = schedule_jobs([good])  # the connection is usable afterwards
    assert kinds(job_id) == ["scheduled"]


@pytest.mark.parametrize(
    ("first", "then", "message"),
    [
        ({"retries": 1}, {"retries": True}, r"jobs\[1\]: retries must be a whole number"),
        ({"date": "0s"}, {"date": "0 s!"}, r"jobs\[1\]: date: '0 s!' is not a duration"),
        ({"expires": "1d"}, {"expires": [1]}, r"jobs\[1\]: expires: \[1\] is not a time"),
    ],
)
def test_remembered_checks_refuse_what_they_refuse_alone(
    first: dict[str, object], then: dict[str, object], message: str
) -> None:
    """The checks a bulk call remembers are keyed by type as well as value: True
    equals 1, but retries=True is refused after retries=1 was accepted."""
    base = {"date": "0s", "callable_name": "tests.handlers.record"}
    with pytest.raises((TypeError, ValueError), match=message):
        schedule_jobs([{**base, **first}, {**base, **then}])


def test_arguments_with_line_breaks_survive_the_chunk_format() -> None:
    """Each chunk goes to the database one job per line; JSON escapes line breaks."""
    texts = ["a\nb", "c\r\nd", "e\u2028f", "tab\there", "back\\slash", "ünï"]
    ids = schedule_jobs(
        [{"date": "0s", "callable_name": "tests.handlers.record", "args": [t]} for t in texts]
    )
    assert [ScheduledJob.objects.get(pk=pk).args for pk in ids] == [[t] for t in texts]


def test_without_pipeline_mode_the_chunks_go_one_by_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """A libpq older than 14 has no pipeline mode; schedule_jobs then sends each chunk
    and waits for it, with the same result."""
    monkeypatch.setattr(psycopg.Pipeline, "is_supported", classmethod(lambda cls: False))
    monkeypatch.setattr(psycopg.Connection, "pipeline", lambda self: pytest.fail("pipelined"))
    n = BULK_CHUNK + 3
    ids = schedule_jobs(
        {"date": "0s", "callable_name": "tests.handlers.record", "args": [i]} for i in range(n)
    )
    args = dict(ScheduledJob.objects.filter(pk__in=ids).values_list("pk", "args"))
    assert [args[pk] for pk in ids] == [[i] for i in range(n)]


def test_a_database_error_in_a_chunk_is_djangos_and_writes_nothing() -> None:
    """The chunks bypass Django's cursors; their errors still come out as Django's
    exception classes, and the whole call rolls back. Here another session holds a lock
    on the events table that lets reads through but not inserts, and the chunk's INSERT
    gives up waiting (lock_timeout)."""
    before = counts()
    blocker = connection.get_new_connection(connection.get_connection_params())
    try:
        blocker.execute("BEGIN")
        blocker.execute("LOCK TABLE django_future_jobevent IN SHARE MODE")
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '200ms'")
        try:
            spec = {"date": "0s", "callable_name": "tests.handlers.record"}
            with pytest.raises(OperationalError, match="lock timeout"):
                schedule_jobs([spec] * (BULK_CHUNK + 1))
        finally:
            with connection.cursor() as cursor:
                cursor.execute("RESET lock_timeout")
    finally:
        blocker.close()
    assert counts() == before
