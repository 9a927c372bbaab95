"""Queues and priorities as schedule_job and schedule_jobs take them, and as the fold keeps
them: checked before anything is written, recorded in the ``scheduled`` event only when
not the default, refused by the database too."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import DatabaseError, connection, transaction

from django_future import ledger, schedule_job, schedule_jobs
from django_future.models import JobEvent, ScheduledJob
from tests.support import counts, event, fresh

pytestmark = pytest.mark.django_db


def test_a_job_is_in_the_default_queue_at_priority_0_and_its_event_says_nothing_of_it() -> None:
    job = schedule_job("0s", "tests.handlers.record")
    assert (job.queue, job.priority) == ("default", 0)
    data = event(job, "scheduled").data
    assert "queue" not in data and "priority" not in data


def test_a_queue_and_priority_are_kept_on_the_job_and_in_its_event() -> None:
    job = schedule_job("0s", "tests.handlers.record", queue="emails", priority=-7)
    assert (fresh(job).queue, fresh(job).priority) == ("emails", -7)
    data = event(job, "scheduled").data
    assert (data["queue"], data["priority"]) == ("emails", -7)
    assert ledger.verify() == []


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"queue": ""}, "queue must be a non-empty string"),
        ({"queue": None}, "queue must be a non-empty string"),
        ({"queue": 3}, "queue must be a non-empty string"),
        ({"queue": "q" * 101}, "at most 100"),
        ({"queue": "two words"}, "whitespace or a NUL"),
        ({"queue": "tab\there"}, "whitespace or a NUL"),
        ({"queue": "nul\x00"}, "whitespace or a NUL"),
        ({"priority": 101}, "from -100 to 100"),
        ({"priority": -101}, "from -100 to 100"),
        ({"priority": True}, "whole number"),
        ({"priority": 1.0}, "whole number"),
        ({"priority": "5"}, "whole number"),
    ],
)
def test_a_bad_queue_or_priority_is_refused_before_anything_is_written(
    options: dict[str, Any], message: str
) -> None:
    before = counts()
    with pytest.raises(ValueError, match=message):
        schedule_job("0s", "tests.handlers.record", **options)
    with pytest.raises(ValueError, match=rf"jobs\[1\]: .*{message}"):
        schedule_jobs(
            [
                {"date": "0s", "callable_name": "tests.handlers.record"},
                {"date": "0s", "callable_name": "tests.handlers.record", **options},
            ]
        )
    assert counts() == before


def test_the_limits_themselves_are_accepted() -> None:
    q = "q" * 100
    low = schedule_job("0s", "tests.handlers.record", queue=q, priority=-100)
    high = schedule_job("0s", "tests.handlers.record", queue="reports.daily", priority=100)
    assert (fresh(low).queue, fresh(low).priority) == (q, -100)
    assert (fresh(high).queue, fresh(high).priority) == ("reports.daily", 100)


def test_schedule_jobs_takes_queue_and_priority_per_item() -> None:
    ids = schedule_jobs(
        [
            {"date": "0s", "callable_name": "tests.handlers.record"},
            {"date": "0s", "callable_name": "tests.handlers.record", "queue": "emails"},
            {"date": "0s", "callable_name": "tests.handlers.record", "priority": 9},
        ]
    )
    got = dict(ScheduledJob.objects.filter(pk__in=ids).values_list("pk", "queue"))
    assert [got[i] for i in ids] == ["default", "emails", "default"]
    ranks = dict(ScheduledJob.objects.filter(pk__in=ids).values_list("pk", "priority"))
    assert [ranks[i] for i in ids] == [0, 0, 9]
    data = [JobEvent.objects.get(job_id=i, seq=1).data for i in ids]
    assert [("queue" in d, "priority" in d) for d in data] == [
        (False, False),
        (True, False),
        (False, True),
    ]
    assert ledger.verify() == []


def test_reschedule_keeps_the_queue_and_priority() -> None:
    job = schedule_job("1h", "tests.handlers.record", queue="emails", priority=3)
    copy = fresh(job).reschedule("2h")
    assert (copy.queue, copy.priority) == ("emails", 3)


def _raw_scheduled(data: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO django_future_jobevent (job_id, seq, kind, data) VALUES ("
            "nextval(pg_get_serial_sequence('django_future_scheduledjob', 'id')), 1,"
            " 'scheduled', %s::jsonb || jsonb_build_object('time_slot_start', now()))",
            [data],
        )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ('{"callable_name": "x.y", "priority": 101}', "priority must be from -100 to 100"),
        ('{"callable_name": "x.y", "priority": -1000}', "priority must be from -100 to 100"),
        ('{"callable_name": "x.y", "queue": ""}', "the queue name is empty"),
        ('{"callable_name": "x.y", "queue": "' + "q" * 101 + '"}', "longer than 100"),
    ],
)
def test_the_fold_refuses_what_schedule_job_refuses(data: str, message: str) -> None:
    """Written past schedule_job (psql, another client), the event is refused by the fold."""
    with pytest.raises(DatabaseError, match=message), transaction.atomic():
        _raw_scheduled(data)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"callable_name": "x.y", "priority": 200}', "priority must be from -100 to 100"),
        ('{"callable_name": "x.y", "queue": ""}', "the queue name is empty"),
        ('{"callable_name": "x.y", "queue": "' + "q" * 101 + '"}', "longer than 100"),
    ],
)
def test_the_bulk_writer_refuses_them_too(line: str, message: str) -> None:
    stamped = line[:-1] + ', "time_slot_start": "2030-01-01T00:00:00+00:00"}'
    with pytest.raises(DatabaseError, match=message), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT django_future_schedule_lines(%s)", [stamped])


def test_events_written_before_queues_replay_to_the_defaults() -> None:
    """A ledger written before 0004 has no queue or priority in its events: the fold
    supplies the defaults, so verify and rebuild agree with the rows."""
    _raw_scheduled('{"callable_name": "tests.handlers.record"}')
    job = ScheduledJob.objects.latest("id")
    assert (job.queue, job.priority) == ("default", 0)
    _raw_scheduled('{"callable_name": "tests.handlers.record", "queue": "q", "priority": -3}')
    assert ledger.verify() == []
    ledger.rebuild()
    assert ledger.verify() == []
    assert ScheduledJob.objects.filter(queue="q", priority=-3).count() == 1
