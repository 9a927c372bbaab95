"""Locks as schedule_job and schedule_jobs take them, and queue limits as the settings
give them: checked before anything is written, recorded in the ``scheduled`` event, and
refused by the database too."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.checks import run_checks
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, connection, transaction
from django.test import override_settings

from django_future import ledger, locks, schedule_job, schedule_jobs
from django_future.models import JobEvent, ScheduledJob
from tests.support import counts, event, fresh


@pytest.mark.django_db
def test_a_lock_is_kept_on_the_job_and_in_its_scheduled_event() -> None:
    job = schedule_job("0s", "tests.handlers.record", lock="user-42")
    assert fresh(job).lock == "user-42"
    assert event(job, "scheduled").data["lock"] == "user-42"
    plain = schedule_job("0s", "tests.handlers.record")
    assert fresh(plain).lock is None
    assert "lock" not in event(plain, "scheduled").data  # left out, as the defaults are


@pytest.mark.django_db
def test_schedule_jobs_and_reschedule_keep_the_lock() -> None:
    ids = schedule_jobs(
        [
            {"date": "0s", "callable_name": "tests.handlers.record", "lock": "a"},
            {"date": "0s", "callable_name": "tests.handlers.record"},
        ]
    )
    assert list(ScheduledJob.objects.filter(pk__in=ids).order_by("pk").values_list("lock")) == [
        ("a",),
        (None,),
    ]
    copy = ScheduledJob.objects.get(pk=ids[0]).reschedule("1h")
    assert copy.lock == "a" and event(copy, "scheduled").data["lock"] == "a"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("lock", "message"),
    [
        ("", "lock is empty"),
        ("x" * 101, "at most 100"),
        (42, "lock must be a non-empty string or None"),
        (b"user", "lock must be a non-empty string or None"),
        ("a\x00b", "NUL"),
    ],
    ids=["empty", "too-long", "number", "bytes", "nul"],
)
def test_a_bad_lock_is_refused_before_anything_is_written(lock: Any, message: str) -> None:
    before = counts()
    with pytest.raises(ValueError, match=message):
        schedule_job("0s", "tests.handlers.record", lock=lock)
    with pytest.raises(ValueError, match=rf"jobs\[1\]: .*{message}"):
        schedule_jobs(
            [
                {"date": "0s", "callable_name": "tests.handlers.record"},
                {"date": "0s", "callable_name": "tests.handlers.record", "lock": lock},
            ]
        )
    assert counts() == before
    assert ledger.verify() == []


@pytest.mark.django_db
def test_a_lock_of_100_characters_is_the_longest() -> None:
    job = schedule_job("0s", "tests.handlers.record", lock="l" * 100)
    assert fresh(job).lock == "l" * 100


@pytest.mark.django_db
@pytest.mark.parametrize("lock", ["", "x" * 101])
def test_the_database_refuses_a_bad_lock_written_behind_the_scheduler(lock: str) -> None:
    """An event inserted by hand (psql, the ORM) meets the fold, which refuses an empty
    or too long lock rather than store it or cut it."""
    before = counts()
    for sql in (
        "INSERT INTO django_future_jobevent (job_id, seq, kind, data) VALUES ("
        "nextval(pg_get_serial_sequence('django_future_scheduledjob', 'id')), 1, 'scheduled',"
        " jsonb_build_object('callable_name', 'tests.handlers.record', 'lock', %s::text,"
        " 'time_slot_start', now()))",
        "SELECT django_future_schedule_lines(jsonb_build_object("
        "'callable_name', 'tests.handlers.record', 'lock', %s::text,"
        " 'time_slot_start', now())::text)",
    ):
        with pytest.raises(DatabaseError, match="lock name"), transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(sql, [lock])
    assert counts() == before
    assert not JobEvent.objects.exists()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"reports": 0}, "at least 1"),
        ({"reports": -2}, "at least 1"),
        ({"reports": 1.5}, "whole number"),
        ({"reports": True}, "whole number"),
        ({"reports": "3"}, "whole number"),
        ({"": 3}, "is not a queue name"),
        ({"q" * 101: 3}, "is not a queue name"),
        (["reports"], "must be a dict"),
    ],
)
def test_a_bad_queue_limit_is_a_value_error_and_a_system_check_error(
    value: Any, message: str
) -> None:
    with pytest.raises(ValueError, match=message) as raised:
        locks.check_queue_limits(value)
    # Django's own error for a bad setting, too.
    assert isinstance(raised.value, ImproperlyConfigured)
    with override_settings(DJANGO_FUTURE_QUEUE_LIMITS=value):
        errors = [e for e in run_checks() if e.id == "django_future.E008"]
        assert len(errors) == 1 and message in errors[0].msg
        with pytest.raises(locks.QueueLimitError):
            locks.queue_limits()


def test_good_queue_limits_pass_the_check() -> None:
    with override_settings(DJANGO_FUTURE_QUEUE_LIMITS={"reports": 3, "emails": 1}):
        assert locks.queue_limits() == {"reports": 3, "emails": 1}
        assert not [e for e in run_checks() if e.id == "django_future.E008"]
    with override_settings(DJANGO_FUTURE_QUEUE_LIMITS=None):
        assert locks.queue_limits() == {}


@pytest.mark.django_db
def test_the_database_refuses_a_limit_below_1() -> None:
    with pytest.raises(DatabaseError, match="django_future_limit_positive"), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO django_future_queuelimit (queue, max_running) VALUES ('q', 0)"
            )
