"""Unique jobs in one process: a key held while pending (or pending and running) makes
a second call return the holder and write nothing; what a holder's retry, recovery or
hand-back does when a newer job took the key; bad keys refused before anything is
written, and by the database too. Racing processes: test_unique_processes.py."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.db import DatabaseError, connection, transaction

from django_future import ledger, run_jobs, schedule_job, schedule_jobs
from django_future.models import JobEvent, ScheduledJob
from django_future.runner import Runner
from tests.support import counts, event, fresh, kinds, later

pytestmark = pytest.mark.django_db

KEY = "sync-user-42"


def _keyed(key: str = KEY, **options: Any) -> ScheduledJob:
    return schedule_job("1h", "tests.handlers.record", unique_key=key, **options)


def _start(job: ScheduledJob) -> ScheduledJob:
    """Start ``job`` as a runner's claim would (its "started" event, folded)."""
    ledger.append(job.pk, "started", {"runner_id": None}, runner="test:1")
    return fresh(job)


def _holders(key: str = KEY) -> list[int]:
    """The jobs that hold ``key``, as the database's index sees them: the jobs a new
    call would meet."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id FROM django_future_scheduledjob WHERE unique_key = %s AND ("
            "(status = 'scheduled' AND last_seq = 1) OR (unique_while = 'active' "
            "AND status IN ('scheduled', 'claimed', 'running'))) ORDER BY id",
            [key],
        )
        return [row[0] for row in cursor.fetchall()]


def test_a_second_call_returns_the_pending_job_and_writes_nothing() -> None:
    first = _keyed(args=[1])
    assert first.created is True and first.unique_key == KEY
    assert first.unique_while == "pending"
    before = counts()
    second = _keyed(args=[2])
    assert second.created is False
    assert second.pk == first.pk and second.args == [1]  # the holder, as it was asked for
    assert counts() == before  # no job, no event
    assert kinds(first) == ["scheduled"]


def test_the_scheduled_event_records_the_key_and_while_a_job_without_one_says_nothing() -> None:
    job = _keyed(unique_while="active")
    data = event(job, "scheduled").data
    assert (data["unique_key"], data["unique_while"]) == (KEY, "active")
    plain = schedule_job("1h", "tests.handlers.record")
    assert plain.created is True and plain.unique_key is None and plain.unique_while is None
    assert "unique_key" not in event(plain, "scheduled").data


def test_keys_are_independent_and_a_job_without_a_key_is_never_deduplicated() -> None:
    a, b = _keyed("a"), _keyed("b")
    assert a.pk != b.pk and a.created and b.created
    plain = [schedule_job("1h", "tests.handlers.record").pk for _ in range(2)]
    assert len(set(plain)) == 2


def test_pending_lets_go_of_the_key_when_the_job_starts() -> None:
    first = _start(_keyed())
    assert _holders() == []
    second = _keyed()
    assert second.created is True and second.pk != first.pk
    assert _holders() == [second.pk]


def test_active_holds_the_key_while_running_and_lets_go_when_the_job_ends() -> None:
    first = _start(_keyed(unique_while="active"))
    again = _keyed(unique_while="active")
    assert again.created is False and again.pk == first.pk and again.status == "running"
    ledger.append(first.pk, "completed", {"return_value": "done"}, runner="test:1")
    after = _keyed(unique_while="active")
    assert after.created is True and after.pk != first.pk


def test_the_holders_choice_decides_when_the_two_calls_differ() -> None:
    pending = _keyed()
    assert _keyed(unique_while="active").pk == pending.pk  # still pending: held
    _start(pending)
    active = _keyed(unique_while="active")
    assert active.created and active.pk != pending.pk
    _start(active)
    assert _keyed().pk == active.pk  # an active job holds it for pending callers too


@pytest.mark.parametrize("end", ["cancelled", "expired", "complete"])
def test_a_job_that_ended_no_longer_holds_its_key(end: str) -> None:
    first = _keyed()
    if end == "cancelled":
        first.cancel(reason="test")
    elif end == "expired":
        ledger.append(first.pk, "expired", {}, runner="test:1")
    else:
        _start(first)
        ledger.append(first.pk, "completed", {}, runner="test:1")
    assert _keyed().pk != first.pk


def test_a_job_scheduled_in_the_same_transaction_holds_the_key() -> None:
    with transaction.atomic():
        first = _keyed()
        assert _keyed().pk == first.pk
    assert ScheduledJob.objects.filter(unique_key=KEY).count() == 1


def test_a_window_that_closes_before_it_opens_is_refused_with_a_key_too() -> None:
    before = counts()
    with pytest.raises(ValueError, match="falls before"):
        schedule_job(
            "1h",
            "tests.handlers.record",
            expires=dt.datetime(2000, 1, 1, tzinfo=dt.UTC),
            unique_key=KEY,
        )
    assert counts() == before


# --- when a job goes back to "scheduled" -------------------------------------------


def test_a_recovered_pending_job_retried_while_a_newer_job_holds_the_key() -> None:
    first = _keyed(retries=1, retry_delay="1m")
    runner = Runner(lease=dt.timedelta(microseconds=1))  # a runner that is already dead
    runner._register()
    ledger.append(first.pk, "started", {"runner_id": runner.runner_id}, runner="ghost:1")
    newer = _keyed()
    assert newer.created
    report = run_jobs(now=later(-1800))  # recovery; nothing due yet
    assert report.abandoned == [first.pk] and report.retried == [first.pk]
    assert kinds(first) == ["scheduled", "started", "abandoned", "retry"]
    assert _holders() == [newer.pk]


def test_a_released_pending_job_does_not_take_the_key_back() -> None:
    first = _start(_keyed())
    newer = _keyed()
    ledger.append(first.pk, "released", {"reason": "stopping"}, runner="test:1")
    assert fresh(first).status == "scheduled"
    assert _holders() == [newer.pk]


# --- schedule_jobs ------------------------------------------------------------------


def test_bulk_items_with_a_key_meet_earlier_items_and_earlier_jobs() -> None:
    held = _keyed("held")
    before = counts()
    ids = schedule_jobs(
        [
            {"date": "1h", "callable_name": "tests.handlers.record", "unique_key": "new"},
            {"date": "1h", "callable_name": "tests.handlers.record", "args": ["plain"]},
            {"date": "1h", "callable_name": "tests.handlers.record", "unique_key": "new"},
            {"date": "1h", "callable_name": "tests.handlers.record", "unique_key": "held"},
            {
                "date": "1h",
                "callable_name": "tests.handlers.record",
                "unique_key": "active",
                "unique_while": "active",
            },
        ]
    )
    assert ids[0] == ids[2] and ids[3] == held.pk
    assert len(set(ids)) == 4
    assert counts() == (before[0] + 3, before[1] + 3)
    assert ScheduledJob.objects.get(pk=ids[4]).unique_while == "active"
    assert ScheduledJob.objects.get(pk=ids[1]).unique_key is None


def test_a_bulk_item_whose_arguments_name_unique_key_is_scheduled_as_any_other() -> None:
    ids = schedule_jobs(
        [{"date": "1h", "callable_name": "tests.handlers.record", "kwargs": {"unique_key": 1}}] * 2
    )
    assert len(set(ids)) == 2


# --- bad input ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"unique_key": ""}, "unique_key is empty"),
        ({"unique_key": "k" * 256}, "at most 255"),
        ({"unique_key": 42}, "must be a non-empty string"),
        ({"unique_key": b"bytes"}, "must be a non-empty string"),
        ({"unique_key": "nul\x00"}, "NUL"),
        ({"unique_key": "lone\ud800"}, "not valid Unicode"),
        ({"unique_key": KEY, "unique_while": "always"}, "'pending'.*or 'active'"),
        ({"unique_key": KEY, "unique_while": None}, "'pending'.*or 'active'"),
        ({"unique_key": KEY, "unique_while": True}, "'pending'.*or 'active'"),
        ({"unique_key": KEY, "unique_while": ["active"]}, "'pending'.*or 'active'"),
        ({"unique_while": "active"}, "needs a unique_key"),
    ],
)
def test_a_bad_key_or_while_is_refused_before_anything_is_written(
    options: dict[str, Any], message: str
) -> None:
    held = _keyed()
    before = counts()
    with pytest.raises(ValueError, match=message):
        schedule_job("0s", "tests.handlers.record", **options)
    with pytest.raises(ValueError, match=rf"jobs\[1\]: .*{message}"):
        schedule_jobs(
            [
                {"date": "0s", "callable_name": "tests.handlers.record", "unique_key": "x"},
                {"date": "0s", "callable_name": "tests.handlers.record", **options},
            ]
        )
    assert counts() == before
    assert _holders() == [held.pk]


def test_a_key_of_255_characters_is_kept_whole() -> None:
    job = _keyed("k" * 255)
    assert fresh(job).unique_key == "k" * 255


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"unique_key": ""}, "unique key must be a non-empty text"),
        ({"unique_key": "k", "unique_while": "always"}, "unique key must be a non-empty text"),
        ({"unique_key": "k" * 256}, "longer than 255 characters"),
    ],
)
def test_the_database_refuses_a_bad_key_written_past_the_scheduler(
    data: dict[str, Any], message: str
) -> None:
    before = counts()
    with pytest.raises(DatabaseError, match=message), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO django_future_jobevent (job_id, seq, kind, data) VALUES "
                "(nextval(pg_get_serial_sequence('django_future_scheduledjob', 'id')), 1, "
                "'scheduled', jsonb_build_object('callable_name', 'tests.handlers.record', "
                "'time_slot_start', now()) || %s::jsonb)",
                [__import__("json").dumps(data)],
            )
    assert counts() == before


def test_the_database_refuses_a_second_holder_written_past_the_scheduler() -> None:
    """The index, not the scheduler, is what keeps one holder per key: an event
    appended by hand (the fold trigger's path) for a held key is refused."""
    _keyed()
    before = counts()
    with pytest.raises(DatabaseError, match="django_future_unique_key"), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO django_future_jobevent (job_id, seq, kind, data) VALUES "
                "(nextval(pg_get_serial_sequence('django_future_scheduledjob', 'id')), 1, "
                "'scheduled', jsonb_build_object('callable_name', 'tests.handlers.record', "
                "'time_slot_start', now(), 'unique_key', %s))",
                [KEY],
            )
    assert counts() == before
    assert JobEvent.objects.filter(data__unique_key=KEY).count() == 1
