"""Bad input at schedule_job and schedule_jobs: every row is tried at both doors, and
each must raise its error before anything is written."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Any

import pytest
from django.test import override_settings
from django.utils import timezone

from django_future import schedule_job, schedule_jobs
from django_future.scheduler import ARGS_MAX_DEPTH, MAX_RETRIES, InvalidCallableError
from tests.badinput import nested, refused
from tests.support import fresh

pytestmark = pytest.mark.django_db

OK = "tests.handlers.record"
UTC = dt.UTC

# (label, schedule_job's arguments, error, message)
ROWS: list[tuple[str, dict[str, Any], type[Exception], str]] = [
    # strings too long
    (
        "callable too long",
        {"callable_name": "tests.handlers." + "x" * 300},
        InvalidCallableError,
        "cannot import",
    ),
    ("queue too long", {"queue": "q" * 101}, ValueError, "at most 100"),
    ("unique_key too long", {"unique_key": "k" * 256}, ValueError, "at most 255"),
    ("lock too long", {"lock": "l" * 101}, ValueError, "at most 100"),
    ("date string too long", {"date": "1" * 5000 + "s"}, ValueError, "too long a duration"),
    ("date string garbage", {"date": "5 days"}, ValueError, "not a duration"),
    # NUL characters
    (
        "callable NUL",
        {"callable_name": "tests.handlers.rec\x00ord"},
        InvalidCallableError,
        "cannot import",
    ),
    ("queue NUL", {"queue": "q\x00"}, ValueError, "NUL"),
    ("unique_key NUL", {"unique_key": "k\x00"}, ValueError, "NUL"),
    ("lock NUL", {"lock": "l\x00"}, ValueError, "NUL"),
    ("date NUL", {"date": "5d\x00"}, ValueError, "not a duration"),
    ("args NUL", {"args": ["a\x00b"]}, TypeError, r"args\[0\] .* NUL"),
    ("kwargs key NUL", {"kwargs": {"k\x00": 1}}, TypeError, "NUL"),
    (
        "nested NUL",
        {"kwargs": {"a": [{"b": "\x00"}]}},
        TypeError,
        r"kwargs\['a'\]\[0\]\['b'\] .* NUL",
    ),
    # invalid UTF-8: lone surrogates, as undecodable bytes become in argv and file names
    (
        "callable surrogate",
        {"callable_name": "tests.handlers.\ud800"},
        InvalidCallableError,
        "cannot import",
    ),
    ("queue surrogate", {"queue": "q\udcff"}, ValueError, "not valid Unicode"),
    ("unique_key surrogate", {"unique_key": "\ud800"}, ValueError, "not valid Unicode"),
    ("lock surrogate", {"lock": "\udcff"}, ValueError, "not valid Unicode"),
    ("args surrogate", {"args": ["\ud800"]}, TypeError, "not valid Unicode"),
    ("kwargs key surrogate", {"kwargs": {"\ud800": 1}}, TypeError, "not valid Unicode"),
    # huge and deeply nested JSON
    (
        "args too deep",
        {"args": [nested(ARGS_MAX_DEPTH)]},
        ValueError,
        f"at most {ARGS_MAX_DEPTH} levels",
    ),
    ("args far too deep", {"args": [nested(50_000)]}, ValueError, "levels"),
    ("kwargs too deep", {"kwargs": {"a": nested(ARGS_MAX_DEPTH)}}, ValueError, "levels"),
    (
        "args too large",
        {"args": ["x" * (1024 * 1024)]},
        ValueError,
        "DJANGO_FUTURE_MAX_ARGS_BYTES allows 1048576",
    ),
    ("args NaN", {"args": [float("nan")]}, TypeError, "finite floats"),
    ("args infinity", {"kwargs": {"x": float("-inf")}}, TypeError, "finite floats"),
    ("args a set", {"args": [{1, 2}]}, TypeError, "set"),
    ("args a string", {"args": "abc"}, TypeError, "list or tuple"),
    # negative and overflowing numbers
    ("priority too high", {"priority": 101}, ValueError, "from -100 to 100"),
    ("priority overflowing", {"priority": 2**64}, ValueError, "from -100 to 100"),
    ("priority negative overflowing", {"priority": -(2**64)}, ValueError, "from -100 to 100"),
    ("priority float", {"priority": 1.5}, ValueError, "whole number"),
    ("retries negative", {"retries": -1}, ValueError, "0 or more"),
    ("retries over int32", {"retries": MAX_RETRIES + 1}, ValueError, f"at most {MAX_RETRIES}"),
    ("retries overflowing", {"retries": 10**30}, ValueError, "at most"),
    ("date '99999999999d'", {"date": "99999999999d"}, ValueError, "too long a duration"),
    ("date '9999999d'", {"date": "9999999d"}, ValueError, "at most 1000 years"),
    (
        "date huge timedelta",
        {"date": dt.timedelta(days=999_999_999)},
        ValueError,
        "at most 1000 years",
    ),
    (
        "date huge negative timedelta",
        {"date": dt.timedelta(days=-999_999_999)},
        ValueError,
        "at most 1000 years",
    ),
    ("expires '9999999d'", {"expires": "9999999d"}, ValueError, "at most 1000 years"),
    ("expires negative", {"expires": dt.timedelta(seconds=-1)}, ValueError, "negative"),
    (
        "retry_delay too long",
        {"retries": 1, "retry_delay": "99999w"},
        ValueError,
        "at most 1000 years",
    ),
    (
        "retry_delay negative",
        {"retries": 1, "retry_delay": dt.timedelta(-1)},
        ValueError,
        "not a duration",
    ),
    ("date bool", {"date": True}, ValueError, "not a time"),
    ("date int", {"date": 10**30}, ValueError, "not a time"),
    # times at the ends of the calendar, aware and naive
    (
        "date year 9999 + 7d expiry",
        {"date": dt.datetime.max.replace(tzinfo=UTC)},
        ValueError,
        "out of range",
    ),
    (
        "date year 9999 west of UTC",
        {
            "date": dt.datetime(9999, 12, 31, 23, tzinfo=zoneinfo.ZoneInfo("America/New_York")),
            "expires": None,
        },
        ValueError,
        "out of range",
    ),
    (
        "expires year 9999 + 1d",
        {"date": dt.datetime(9999, 12, 31, tzinfo=UTC), "expires": "1d"},
        ValueError,
        "out of range",
    ),
]


def call(door: str, options: dict[str, Any]) -> object:
    spec = {"date": "1h", "callable_name": OK, **options}
    if door == "schedule_job":
        return schedule_job(**spec)
    return schedule_jobs([{"date": "1h", "callable_name": OK}, spec])


@pytest.mark.parametrize("door", ["schedule_job", "schedule_jobs"])
@pytest.mark.parametrize(("label", "options", "error", "match"), ROWS, ids=[r[0] for r in ROWS])
def test_bad_input_is_refused_and_nothing_is_written(
    door: str, label: str, options: dict[str, Any], error: type[Exception], match: str
) -> None:
    # schedule_jobs names the item (the second) in its message; the first was fine and
    # must not be written either.
    with refused(error, match):
        call(door, options)


@pytest.mark.parametrize("door", ["schedule_job", "schedule_jobs"])
def test_bulk_messages_name_the_item(door: str) -> None:
    expected = r"jobs\[1\]: " if door == "schedule_jobs" else r"^args"
    with refused(ValueError, expected):
        call(door, {"args": [nested(ARGS_MAX_DEPTH + 5)]})


@pytest.mark.parametrize(
    ("label", "options"),
    [
        ("args at the depth limit", {"args": nested(ARGS_MAX_DEPTH - 1)}),
        ("args just under the size limit", {"args": ["x" * (1024 * 1024 - 200)]}),
        ("non-ASCII text", {"args": ["Zoë, 数字, 🙂"], "kwargs": {"ключ": "värde"}}),
        ("a huge integer", {"args": [10**300]}),
        ("1000 years ahead", {"date": "52142w", "expires": None}),
        ("a naive datetime in Django's zone", {"date": dt.datetime(2030, 1, 1, 12)}),
        ("year 1, naive, in UTC", {"date": dt.datetime.min}),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_the_edges_that_are_allowed_round_trip(label: str, options: dict[str, Any]) -> None:
    """Just inside each limit the job is written and reads back as it was given."""
    job = schedule_job(**{"date": "1h", "callable_name": OK, **options})
    row = fresh(job)
    assert row.args == list(options.get("args", []))
    assert row.kwargs == options.get("kwargs", {})


def test_a_naive_datetime_is_read_in_the_current_time_zone() -> None:
    """Time-zone-less datetimes are accepted, as documented: read in TIME_ZONE."""
    with timezone.override(zoneinfo.ZoneInfo("Asia/Tokyo")):
        job = schedule_job(dt.datetime(2030, 1, 1, 9), OK, expires=None)
    assert fresh(job).time_slot_start == dt.datetime(2030, 1, 1, 0, tzinfo=UTC)


def test_a_naive_datetime_outside_the_calendar_once_in_utc_is_refused() -> None:
    """Year 1 at midnight, naive, in a zone east of UTC is year 0 in UTC."""
    with timezone.override(zoneinfo.ZoneInfo("Asia/Tokyo")), refused(ValueError, "out of range"):
        schedule_job(dt.datetime.min, OK)


@override_settings(DJANGO_FUTURE_MAX_ARGS_BYTES=4096)
@pytest.mark.parametrize("door", ["schedule_job", "schedule_jobs"])
def test_the_size_limit_is_a_setting(door: str) -> None:
    call(door, {"args": ["x" * 3000]})
    with refused(ValueError, "allows 4096"):
        call(door, {"args": ["x" * 5000]})
    # json.dumps escapes what is not ASCII: the limit counts the bytes sent.
    with refused(ValueError, "allows 4096"):
        call(door, {"args": ["é" * 1000]})


@pytest.mark.parametrize("value", [0, 1023, -1, "1MB", True, None])
def test_a_bad_size_limit_setting_is_named(value: object) -> None:
    from django.core.exceptions import ImproperlyConfigured

    with (
        override_settings(DJANGO_FUTURE_MAX_ARGS_BYTES=value),
        refused(ImproperlyConfigured, "DJANGO_FUTURE_MAX_ARGS_BYTES"),
    ):
        schedule_job("1h", OK)
