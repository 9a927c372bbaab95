"""Periodic schedules as declared: checks that name the schedule, ticks in a time zone
across DST, and what each catch_up policy makes of missed ticks. No database."""

from __future__ import annotations

import datetime as dt
import itertools
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from django_future import periodic
from django_future.checks import check_periodic
from django_future.periodic import schedules

pytestmark = pytest.mark.unit

PARIS = ZoneInfo("Europe/Paris")
UTC = dt.UTC


def schedule(**overrides: object) -> periodic.Schedule:
    spec: dict[str, object] = {"cron": "30 2 * * *", "callable": "tests.handlers.record"}
    spec.update(overrides)
    with override_settings(DJANGO_FUTURE_PERIODIC={"nightly": spec}):
        (found,) = periodic.load()
    return found


def local(*parts: int) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=PARIS)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"cron": "61 * * * *"}, "invalid cron expression '61 * * * *'"),
        ({"cron": "* * *"}, "invalid cron expression"),
        ({"timezone": "Mars/Olympus"}, "unknown timezone 'Mars/Olympus'"),
        ({"catch_up": "some"}, "catch_up must be one of latest, all, none"),
        ({"callable": "tests.handlers.nope"}, "tests.handlers.nope"),
        ({"priority": 101}, "priority must be a whole number from -100 to 100"),
        ({"queue": "two words"}, "queue must be a name"),
        ({"args": [dt.date(2026, 1, 1)]}, "args cannot be stored as JSON"),
        ({"max_delay": 0}, "max_delay must be a positive number"),
        ({"every": "1m"}, "unknown keys ['every']"),
    ],
)
def test_a_bad_schedule_is_a_system_check_error_naming_it(
    spec: dict[str, object], message: str
) -> None:
    given = {"cron": "30 2 * * *", "callable": "tests.handlers.record", **spec}
    good = {"cron": "* * * * *", "callable": "tests.handlers.record"}
    with override_settings(DJANGO_FUTURE_PERIODIC={"nightly": given, "fine": good}):
        errors = check_periodic()
        with pytest.raises(ImproperlyConfigured, match="periodic schedule 'nightly'"):
            periodic.load()
    assert [e.id for e in errors] == ["django_future.E004"]
    assert "periodic schedule 'nightly'" in errors[0].msg
    assert message in errors[0].msg


def test_valid_schedules_pass_the_check() -> None:
    with override_settings(
        DJANGO_FUTURE_PERIODIC={
            "nightly": {"cron": "30 2 * * *", "callable": "tests.handlers.record"},
            "seconds": {"cron": "*/5 * * * * *", "callable": "tests.handlers.record"},
        }
    ):
        assert check_periodic() == []
    with override_settings(DJANGO_FUTURE_PERIODIC=["not", "a", "dict"]):
        assert "must be a dict" in check_periodic()[0].msg


def test_the_timezone_defaults_to_time_zone_and_the_hash_follows_the_definition() -> None:
    with override_settings(TIME_ZONE="Europe/Paris"):
        assert schedule().timezone == "Europe/Paris"
    a, b = schedule(timezone="UTC"), schedule(timezone="UTC", kwargs={"x": 1})
    assert a.hash == schedule(timezone="UTC").hash
    assert a.hash != b.hash and len(a.hash) == 16


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        # Spring forward (02:00 -> 03:00): 02:30 does not exist; it runs once, at 03:00.
        ((2026, 3, 29), [local(2026, 3, 29, 3, 0)]),
        # Fall back (03:00 -> 02:00): 02:30 happens twice; it runs once, at the first.
        ((2026, 10, 25), [dt.datetime(2026, 10, 25, 0, 30, tzinfo=UTC)]),
        ((2026, 7, 1), [local(2026, 7, 1, 2, 30)]),
    ],
)
def test_a_daily_0230_ticks_once_on_dst_days(
    day: tuple[int, int, int], expected: list[dt.datetime]
) -> None:
    nightly = schedule(timezone="Europe/Paris")
    start = local(*day, 0, 0)
    # The iterator is endless: the day's ticks, and the first of the next day.
    ticks = list(
        itertools.takewhile(lambda t: t < start + dt.timedelta(days=1), nightly.ticks(start))
    )
    assert ticks == [t.astimezone(UTC) for t in expected]


def test_a_day_of_hourly_walks_through_the_fall_back_day_ticking_once() -> None:
    """Walking the clock through the fall-back day an hour at a time (as a runner does),
    with the base moving as the ticker moves it, offers 02:30 once."""
    nightly = schedule(timezone="Europe/Paris", catch_up="all")
    base = local(2026, 10, 24, 12, 0)
    offered = []
    now = base
    while now < local(2026, 10, 26, 12, 0):
        now += dt.timedelta(hours=1)
        ticks, base = nightly.due(base, now)
        offered += ticks
    assert offered == [
        dt.datetime(2026, 10, 25, 0, 30, tzinfo=UTC),  # 02:30 CEST, the first 02:30
        local(2026, 10, 26, 2, 30),
    ]


def test_catch_up_after_downtime() -> None:
    hourly = {"cron": "0 * * * *"}
    base = dt.datetime(2026, 5, 1, 0, 0, tzinfo=UTC)
    now = dt.datetime(2026, 5, 1, 5, 10, tzinfo=UTC)  # down for five ticks
    latest = schedule(**hourly, catch_up="latest", timezone="UTC")
    assert latest.due(base, now) == ([now.replace(minute=0)], now.replace(minute=0))
    every = schedule(**hourly, catch_up="all", timezone="UTC")
    assert every.due(base, now)[0] == [base.replace(hour=h) for h in range(1, 6)]
    none = schedule(**hourly, catch_up="none", timezone="UTC")
    assert none.due(base, now) == ([], now.replace(minute=0))  # ten minutes late
    on_time = now.replace(minute=0, second=30)
    assert none.due(base, on_time)[0] == [now.replace(minute=0)]
    # Older than max_delay: no job, whatever the policy.
    short = schedule(**hourly, catch_up="latest", timezone="UTC", max_delay=300)
    assert short.due(base, now)[0] == []
    # all is bounded: the newest ALL_LIMIT ticks.
    minutely = schedule(cron="* * * * *", catch_up="all", timezone="UTC")
    ticks = minutely.due(base, base + dt.timedelta(hours=5))[0]
    assert len(ticks) == schedules.ALL_LIMIT
    assert ticks[-1] == base + dt.timedelta(hours=5)


def test_the_decorator_declares_a_schedule_for_a_task() -> None:
    class FakeTask:  # what the decorator reads of a django.tasks Task
        module_path = "tests.handlers.record"
        queue_name = "emails"
        priority = 5

    periodic.periodic("*/10 * * * *", name="decorated", kwargs={"a": 1})(FakeTask())
    try:
        found = {s.name: s for s in periodic.load()}["decorated"]
        assert (found.callable, found.queue, found.priority) == (
            "tests.handlers.record",
            "emails",
            5,
        )
        assert found.job_data == {
            "callable_name": "tests.handlers.record",
            "args": [],
            "kwargs": {"a": 1},
            "queue": "emails",
            "priority": 5,
        }
        with override_settings(
            DJANGO_FUTURE_PERIODIC={"decorated": {"cron": "* * * * *", "callable": "x.y"}}
        ):
            assert any("declared both" in e.msg for e in check_periodic())
    finally:
        schedules._DECLARED.pop("decorated")
