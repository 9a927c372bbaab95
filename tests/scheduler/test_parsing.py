"""Time strings and argument checks: pure functions, no database."""

from __future__ import annotations

import datetime as dt
import decimal
import uuid

import pytest

from django_future.scheduler import _check_arguments, _window, parse_duration

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", dt.timedelta(seconds=30)),
        ("5m", dt.timedelta(minutes=5)),
        ("2h", dt.timedelta(hours=2)),
        ("5d", dt.timedelta(days=5)),
        ("1w", dt.timedelta(weeks=1)),
        ("1h30m", dt.timedelta(hours=1, minutes=30)),
        ("1w2d3h4m5s", dt.timedelta(weeks=1, days=2, hours=3, minutes=4, seconds=5)),
        (" 2d 12h ", dt.timedelta(days=2, hours=12)),
        ("0s", dt.timedelta(0)),
    ],
)
def test_durations(text: str, expected: dt.timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text", ["", " ", "5", "5x", "m5", "-5m", "1.5h", "30m1h", "5 days", "1h1h"]
)
def test_bad_durations_name_the_accepted_forms(text: str) -> None:
    with pytest.raises(ValueError, match=r"is not a duration; expected .*'30s'.*'1h30m'"):
        parse_duration(text)


def test_absurd_duration_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="too long"):
        parse_duration("99999999999w")


@pytest.mark.parametrize("value", [5, 5.0, True, None, dt.date(2030, 1, 1), b"5m", ["5m"]])
def test_other_types_are_not_times(value: object) -> None:
    with pytest.raises(ValueError, match=r"date: .* is not a time; expected an aware datetime"):
        _window(value, "7d")


def test_expires_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="negative"):
        _window("1h", dt.timedelta(minutes=-1))


def test_absolute_expiry_before_absolute_start_is_refused() -> None:
    start = dt.datetime(2030, 1, 2, tzinfo=dt.UTC)
    with pytest.raises(ValueError, match="before the scheduled time"):
        _window(start, start - dt.timedelta(seconds=1))


def test_json_arguments_round_trip_and_tuples_become_lists() -> None:
    args, kwargs = _check_arguments(
        (1, "two", 3.5, None, True, (4, 5), {"a": [1, (2,)]}), {"x": {"y": None}}
    )
    assert args == [1, "two", 3.5, None, True, [4, 5], {"a": [1, [2]]}]
    assert kwargs == {"x": {"y": None}}


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (
            [dt.datetime(2030, 1, 1)],
            {},
            r"args\[0\] = datetime\.datetime\(2030, 1, 1, 0, 0\) \(datetime\)",
        ),
        ([], {"amount": decimal.Decimal("1.10")}, r"kwargs\['amount'\] = Decimal\('1\.10'\)"),
        ([{1: "a"}], {}, r"args\[0\] has key 1 of type int"),
        ([[1, {2, 3}]], {}, r"args\[0\]\[1\] = \{2, 3\} \(set\)"),
        ([float("nan")], {}, r"args\[0\] = nan cannot be stored"),
        ([float("inf")], {}, r"args\[0\] = inf cannot be stored"),
        (["a\x00b"], {}, r"NUL character"),
        (["\ud800"], {}, r"lone surrogate"),
        ([uuid.UUID(int=1)], {}, r"\(UUID\)"),
        ([b"bytes"], {}, r"\(bytes\)"),
        ([object], {}, r"\(type\)"),
    ],
)
def test_values_json_cannot_carry_are_named(
    args: list[object], kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(TypeError, match=message):
        _check_arguments(args, kwargs)


@pytest.mark.parametrize(("args", "kwargs"), [("abc", {}), (5, {}), ([], [("a", 1)]), ({1, 2}, {})])
def test_args_and_kwargs_containers_are_checked(args: object, kwargs: object) -> None:
    with pytest.raises(TypeError, match="must be a"):
        _check_arguments(args, kwargs)
