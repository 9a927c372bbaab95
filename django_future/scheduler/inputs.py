"""What ``schedule_job`` and ``schedule_jobs`` check before anything is written: times
and durations, the retry policy, queue and priority, arguments, callables and content
objects. Each check raises with a message that names the bad value; what passes is
what the scheduler hands to the ledger (``django_future/scheduler/__init__.py``)."""

from __future__ import annotations

import datetime as dt
import functools
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.utils import timezone

from django_future import allowlist, config, taskhook
from django_future.callables import InvalidCallableError, import_callable
from django_future.models import ScheduledJob

ACCEPTED_TIMES = (
    "an aware datetime, a naive datetime (read in the current time zone), "
    "a timedelta from now, or a duration string such as '30s', '5m', '2h', '5d', '1w' "
    "or a combination in that order such as '1h30m' or '1w2d'"
)

#: The longest duration a job's times may hold (a date from now, an expiry, a retry delay):
#: a thousand years. Far beyond any real schedule, and short enough that "now" plus a date
#: plus an expiry stays within the years Python and Django can represent (1 to 9999).
LONGEST_DURATION = dt.timedelta(days=1000 * 365)

_UNITS = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes", "s": "seconds"}
_DURATION = re.compile(
    r"^\s*(?:(?P<w>\d+)\s*w)?\s*(?:(?P<d>\d+)\s*d)?\s*(?:(?P<h>\d+)\s*h)?"
    r"\s*(?:(?P<m>\d+)\s*m)?\s*(?:(?P<s>\d+)\s*s)?\s*$"
)


def parse_duration(text: str) -> dt.timedelta:
    """Parse ``'30s'``, ``'5m'``, ``'2h'``, ``'5d'``, ``'1w'`` and combinations like ``'1h30m'``.

    ``m`` is minutes, as in django-future 0.1. Units go from largest to smallest.
    """
    if not isinstance(text, str):
        raise ValueError(f"{text!r} is not a duration; expected {ACCEPTED_TIMES}")
    return _parse_duration_text(text)


@functools.lru_cache(maxsize=256)
def _parse_duration_text(text: str) -> dt.timedelta:
    # Cached: bulk scheduling parses the same few strings ("0s", "7d") many times.
    match = _DURATION.match(text)
    if match is None or not any(match.groupdict().values()):
        raise ValueError(f"{text!r} is not a duration; expected {ACCEPTED_TIMES}")
    found = {unit: n for unit, n in match.groupdict().items() if n is not None}
    duration = None
    # More digits than any duration has: int() would refuse over 4300 of them, with a
    # message about Python's limits rather than about durations.
    if all(len(n) <= 15 for n in found.values()):
        try:
            duration = dt.timedelta(**{_UNITS[unit]: int(n) for unit, n in found.items()})
        except OverflowError:
            pass
    if duration is None or duration > LONGEST_DURATION:
        raise ValueError(
            f"{text!r} is too long a duration; at most 1000 years (use None for a job "
            "that never expires)"
        )
    return duration


@dataclass(frozen=True, slots=True)
class _When:
    """A point in time: absolute (``at``) or relative to the database's "now" (``after``)."""

    at: dt.datetime | None = None
    after: dt.timedelta | None = None


def _resolve_time(value: object, what: str) -> _When:
    # bool is an int, and neither is a time.
    if isinstance(value, dt.datetime):
        return _When(at=_in_range(value, what))
    if isinstance(value, dt.timedelta):
        if abs(value) > LONGEST_DURATION:
            raise ValueError(
                f"{what}: {value!r} is too long a duration; at most 1000 years either way"
            )
        return _When(after=value)
    if isinstance(value, str):
        try:
            return _When(after=parse_duration(value))
        except ValueError as exc:
            raise ValueError(f"{what}: {exc}") from None
    raise ValueError(f"{what}: {value!r} is not a time; expected {ACCEPTED_TIMES}")


def _in_range(value: dt.datetime, what: str) -> dt.datetime:
    """``value``, made aware (a naive one in the current time zone), if it lies within
    the years Python can represent once moved to UTC; else ValueError. A time of year
    9999 in a zone west of UTC is year 10000 in UTC, which the database stores and
    Python cannot read back."""
    try:
        if timezone.is_naive(value):
            value = timezone.make_aware(value, timezone.get_current_timezone())
        value.astimezone(dt.UTC)
    except (OverflowError, ValueError):
        raise ValueError(
            f"{what}: {value!r} is out of range; a time must fall within the years 1 to 9999 in UTC"
        ) from None
    return value


def _window(date: object, expires: object) -> tuple[_When, _When | None]:
    start = _resolve_time(date, "date")
    if expires is None:
        return start, None
    end = _resolve_time(expires, "expires")
    if end.after is not None and end.after < dt.timedelta(0):
        raise ValueError(f"expires: {expires!r} is negative; a job would expire before it is due")
    if start.at is not None and end.at is not None and end.at < start.at:
        raise ValueError(f"expires: {end.at} is before the scheduled time {start.at}")
    if start.at is not None and end.after is not None:
        try:
            (start.at + end.after).astimezone(dt.UTC)
        except OverflowError:
            raise ValueError(
                f"expires: {expires!r} after {start.at} is out of range; a time must fall "
                "within the years 1 to 9999 (use None for a job that never expires)"
            ) from None
    return start, end


#: The most retries a job may have: its attempts are counted in a 32-bit integer column.
MAX_RETRIES = 2**31 - 2


def _retry_policy(retries: object, retry_delay: object, retry_max_delay: object) -> dict[str, Any]:
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ValueError(f"retries must be a whole number of retries (0 or more), not {retries!r}")
    if retries > MAX_RETRIES:
        raise ValueError(f"retries must be at most {MAX_RETRIES}, not {retries}")
    if retries == 0:
        if retry_delay is not None or retry_max_delay is not None:
            raise ValueError("retry_delay and retry_max_delay need retries=1 or more")
        return {"retries": 0, "retry_delay": None, "retry_max_delay": None}
    delay = _delay(retry_delay, "retry_delay", config.retry_delay())
    cap = _delay(retry_max_delay, "retry_max_delay", max(config.retry_max_delay(), delay))
    if cap < delay:
        raise ValueError(f"retry_max_delay ({cap}) is shorter than retry_delay ({delay})")
    return {
        "retries": retries,
        "retry_delay": delay.total_seconds(),
        "retry_max_delay": cap.total_seconds(),
    }


def _delay(value: object, what: str, default: dt.timedelta) -> dt.timedelta:
    if value is None:
        return default
    when = _resolve_time(value, what)
    if when.after is None or when.after < dt.timedelta(0):
        raise ValueError(
            f"{what}: {value!r} is not a duration; use a timedelta or a string such as '30s'"
        )
    return when.after


# --- queue and priority -------------------------------------------------------

QUEUE_MAX_LENGTH = 100
PRIORITY_RANGE = range(-100, 101)
_QUEUE_REFUSED = re.compile(r"[\s\x00]")


def _check_queue(queue: object) -> str:
    if not isinstance(queue, str) or not queue:
        raise ValueError(f"queue must be a non-empty string, not {queue!r}")
    if len(queue) > QUEUE_MAX_LENGTH:
        raise ValueError(
            f"queue {queue[:20]!r}... is {len(queue)} characters long; "
            f"a queue name has at most {QUEUE_MAX_LENGTH}"
        )
    if _QUEUE_REFUSED.search(queue):
        raise ValueError(
            f"queue {queue!r} contains whitespace or a NUL character, which a queue name "
            "cannot hold (runscheduledjobs --queue takes it as one word)"
        )
    if not _encodable(queue):
        raise ValueError(f"queue {queue!r} is not valid Unicode (it holds a lone surrogate)")
    return queue


def _encodable(text: str) -> bool:
    """Whether ``text`` can be written as UTF-8: a lone surrogate (``"\\ud800"``, or
    ``"\\udcff"`` from undecodable bytes) cannot, and PostgreSQL refuses its JSON escape."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_priority(priority: object) -> int:
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise ValueError(f"priority must be a whole number from -100 to 100, not {priority!r}")
    if priority not in PRIORITY_RANGE:
        raise ValueError(f"priority must be from -100 to 100 (larger runs first), not {priority}")
    return priority


# --- arguments --------------------------------------------------------------

_JSON_HINT = (
    "job arguments are stored as JSON: use None, bool, int, float, str, "
    "and lists or dicts (with str keys) of those"
)


ARGS_MAX_DEPTH = config.ARGS_MAX_DEPTH  # the checks below refuse deeper arguments


# The most digits Python turns an int into text with (sys.get_int_max_str_digits()'s
# default); json.dumps of a longer one fails with a message about Python, not the job.
_DIGITS = 4300
_HUGE = 10**_DIGITS


def _check_json(value: object, path: str, depth: int = 1) -> object:
    """Return ``value`` as it will come back from the database, or raise TypeError.

    Tuples become lists (as a JSON round trip makes them); anything else that
    would not come back equal is refused, naming where it was found. Nesting deeper
    than ``ARGS_MAX_DEPTH`` is a ValueError.
    """
    if depth > ARGS_MAX_DEPTH:
        raise ValueError(
            f"{path} is nested more than {ARGS_MAX_DEPTH} levels deep; job arguments may "
            f"nest lists and dicts at most {ARGS_MAX_DEPTH} levels"
        )
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if -_HUGE < value < _HUGE:
            return value
        raise ValueError(
            f"{path} is an integer of more than {_DIGITS} digits, more than Python writes "
            "as JSON; pass it as a string"
        )
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TypeError(f"{path} = {value!r} cannot be stored: {_JSON_HINT} (finite floats)")
        return value
    if isinstance(value, str):
        _check_text(value, path)
        return value
    if isinstance(value, list | tuple):
        return [_check_json(item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value)]
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(
                    f"{path} has key {key!r} of type {type(key).__name__}, "
                    f"which JSON would turn into a string; {_JSON_HINT}"
                )
            _check_text(key, f"{path} key")
            out[key] = _check_json(item, f"{path}[{key!r}]", depth + 1)
        return out
    raise TypeError(f"{path} = {value!r} ({type(value).__name__}) cannot be stored: {_JSON_HINT}")


def _check_text(text: str, path: str) -> None:
    if "\x00" in text:
        raise TypeError(
            f"{path} = {text!r} contains a NUL character, which PostgreSQL cannot store"
        )
    if not _encodable(text):
        raise TypeError(f"{path} = {text!r} is not valid Unicode (lone surrogate)")


def _encoded(data: dict[str, Any], limit: int) -> str:
    """The scheduled event's data as JSON text, or ValueError when it is longer than
    ``limit`` (DJANGO_FUTURE_MAX_ARGS_BYTES). json.dumps escapes every character
    outside ASCII, so the text's length is its size in bytes."""
    line = json.dumps(data)
    if len(line) > limit:
        raise ValueError(
            f"the job's arguments are too large: its scheduled event is {len(line)} bytes of "
            f"JSON, and DJANGO_FUTURE_MAX_ARGS_BYTES allows {limit}. Pass a reference (a "
            "primary key, a file name) instead of the data"
        )
    return line


def _check_arguments(args: object, kwargs: object) -> tuple[list[Any], dict[str, Any]]:
    if isinstance(args, str | bytes) or not isinstance(args, Sequence):
        raise TypeError(f"args must be a list or tuple, not {type(args).__name__}")
    if not isinstance(kwargs, Mapping):
        raise TypeError(f"kwargs must be a dict, not {type(kwargs).__name__}")
    checked_args = _check_json(list(args), "args")
    checked_kwargs = _check_json(dict(kwargs), "kwargs")
    assert isinstance(checked_args, list) and isinstance(checked_kwargs, dict)  # noqa: S101
    return checked_args, checked_kwargs


# --- callables ----------------------------------------------------------------


def _check_callable(
    callable_name: object,
    content_object: models.Model | None,
    within: tuple[str, ...] | None = None,
) -> str:
    """``within``: the allowed prefixes (allowlist.py), None for no allow-list."""
    if not isinstance(callable_name, str) or not callable_name:
        raise InvalidCallableError(
            f"callable_name must be a dotted path or a method name, not {callable_name!r}"
        )
    if content_object is not None and "." not in callable_name:
        if within is not None:
            allowlist.check_method(type(content_object), callable_name, within)
        method = getattr(content_object, callable_name, None)
        if not callable(method):
            raise InvalidCallableError(
                f"{type(content_object).__name__} has no method {callable_name!r} to schedule"
            )
        return callable_name
    if "." not in callable_name:
        raise InvalidCallableError(
            f"{callable_name!r} is not a dotted path such as 'myapp.handlers.remind' "
            "(a bare method name needs a content_object)"
        )
    if within is not None:
        allowlist.check_path(callable_name, within)  # before anything is imported
    target = import_callable(callable_name)
    if within is not None:
        allowlist.check_imported(callable_name, target, within)
    # A Django task (django_future.backends) is no callable, but the runner runs it.
    if not callable(target) and not taskhook.accepts(target, callable_name):
        raise InvalidCallableError(
            f"{callable_name!r} is a {type(target).__name__}, not a callable"
        )
    return callable_name


def _content_reference(content_object: object) -> dict[str, Any]:
    if not isinstance(content_object, models.Model):
        raise TypeError(
            f"content_object must be a saved model instance, not {type(content_object).__name__}"
        )
    if content_object.pk is None:
        raise ValueError(f"content_object {content_object!r} is not saved (it has no primary key)")
    object_id = str(content_object.pk)
    limit = ScheduledJob._meta.get_field("object_id").max_length
    if limit is not None and len(object_id) > limit:
        raise ValueError(
            f"content_object {type(content_object).__name__} has a primary key of "
            f"{len(object_id)} characters; a job can point at keys of up to {limit}"
        )
    ct = ContentType.objects.get_for_model(content_object, for_concrete_model=False)
    return {
        "content_type_id": ct.pk,
        "content_type": f"{ct.app_label}.{ct.model}",
        "object_id": object_id,
    }
