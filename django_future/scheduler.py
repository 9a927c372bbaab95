"""``schedule_job`` and the parsing of times, callables and arguments.

Everything is checked before anything is written: a bad time, callable or
argument raises and leaves no row and no event behind. What passes is handed to the
ledger (``ledger.schedule``, ``ledger.schedule_chunks``), which sends it: the
scheduler builds events, and writes none itself.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import json
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.utils import timezone

from django_future import allowlist, config, database, ledger, locks, taskhook
from django_future.callables import InvalidCallableError, import_callable, job_as_parameter
from django_future.models import ScheduledJob
from django_future.retries import backoff
from django_future.unique import unique_data

# InvalidCallableError, job_as_parameter and backoff live below the scheduler and the
# runner, which share them (callables.py, retries.py); they are the scheduler's API too.
__all__ = [
    "InvalidCallableError",
    "backoff",
    "job_as_parameter",
    "parse_duration",
    "schedule_job",
    "schedule_jobs",
]

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


# --- the public calls ---------------------------------------------------------

T = TypeVar("T")


def _remembered(
    found: dict[tuple[object, ...], T], key: tuple[object, ...], check: Callable[[], T]
) -> T:
    """``check()``, or what it returned before for ``key``; only successes are kept."""
    try:
        return found[key]
    except KeyError:
        result = found[key] = check()
    except TypeError:  # an unhashable value: not a valid one, as check() will say
        result = check()
    return result


# The dotted paths that were found callable, for the whole process: a process
# schedules a few callables many times, and a module, once imported, stays. Each is
# kept with the allowed prefixes it was checked against (None: no allow-list).
_CALLABLES: set[tuple[str, tuple[str, ...] | None]] = set()


class _Checks:
    """The checks of one call of ``schedule_job`` or ``schedule_jobs``.

    A bulk call usually repeats a few callables, times and retry policies over
    thousands of jobs, so the checks that depend only on those remember what
    they found, keyed by value and type (``True == 1``, but ``retries=True`` is
    refused and ``retries=1`` is not). Callables found by their dotted path are
    remembered for the process (``_CALLABLES``); times and policies only for the
    call (a naive time depends on the current time zone, a policy on settings).
    Arguments and content objects are checked for every job.
    """

    def __init__(self) -> None:
        self._windows: dict[tuple[object, ...], tuple[_When, _When | None]] = {}
        self._policies: dict[tuple[object, ...], dict[str, Any]] = {}
        self._queues: dict[tuple[object, ...], tuple[str, int]] = {}
        self._within: tuple[str, ...] | None = None  # the allowed prefixes, once read
        self._within_read = False

    def window(self, date: object, expires: object) -> tuple[_When, _When | None]:
        key = (type(date), date, type(expires), expires)
        return _remembered(self._windows, key, lambda: _window(date, expires))

    def policy(self, retries: object, delay: object, cap: object) -> dict[str, Any]:
        key = (type(retries), retries, type(delay), delay, type(cap), cap)
        return _remembered(self._policies, key, lambda: _retry_policy(retries, delay, cap))

    def queue(self, queue: object, priority: object) -> tuple[str, int]:
        key = (type(queue), queue, type(priority), priority)
        return _remembered(
            self._queues, key, lambda: (_check_queue(queue), _check_priority(priority))
        )

    def callable(self, callable_name: object, content_object: models.Model | None) -> str:
        if not self._within_read:
            # Read once per call, when the first job needs it: a broken setting
            # refuses every job (CallableRefusedError, a ValueError).
            self._within = allowlist.prefixes()
            self._within_read = True
        within = self._within
        if (
            content_object is None
            and isinstance(callable_name, str)
            and (callable_name, within) in _CALLABLES
        ):
            return callable_name
        name = _check_callable(callable_name, content_object, within)
        if content_object is None:
            _CALLABLES.add((name, within))
        return name

    def prepare(
        self,
        date: object,
        callable_name: object,
        *,
        content_object: models.Model | None,
        expires: object,
        args: Any,
        kwargs: Any,
        retries: object,
        retry_delay: object,
        retry_max_delay: object,
        atomic: object,
        queue: object = "default",
        priority: object = 0,
        unique_key: object = None,
        unique_while: object = "pending",
        lock: object = None,
        origin: dict[str, Any] | None,
    ) -> tuple[_When, _When | None, dict[str, Any]]:
        """Check everything about one job; return its window and its scheduled event's data."""
        start, end = self.window(date, expires)
        policy = self.policy(retries, retry_delay, retry_max_delay)
        queue_name, rank = self.queue(queue, priority)
        lock_name = locks.check_lock(lock)
        if not isinstance(atomic, bool):
            raise ValueError(f"atomic must be True or False, not {atomic!r}")
        name = self.callable(callable_name, content_object)
        checked_args, checked_kwargs = _check_arguments(args, {} if kwargs is None else kwargs)
        data: dict[str, Any] = {
            "callable_name": name,
            "args": checked_args,
            "kwargs": checked_kwargs,
        }
        # Left out at their defaults, which the fold supplies: no content object, not
        # atomic, no retries, the queue "default", priority 0. A smaller event is cheaper
        # to parse, hash and keep, and ledgers written before queues replay as they were.
        if content_object is not None:
            data.update(_content_reference(content_object))
        if atomic:
            data["atomic"] = True
        if policy["retries"]:
            data.update(policy)
        if queue_name != "default":
            data["queue"] = queue_name
        if rank != 0:
            data["priority"] = rank
        data.update(unique_data(unique_key, unique_while))  # unique.py; none without a key
        if lock_name is not None:
            data["lock"] = lock_name
        data.update(origin or {})
        return start, end, data


def schedule_job(
    date: dt.datetime | dt.timedelta | str,
    callable_name: str,
    content_object: models.Model | None = None,
    expires: dt.datetime | dt.timedelta | str | None = "7d",
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    *,
    retries: int = 0,
    retry_delay: dt.timedelta | str | None = None,
    retry_max_delay: dt.timedelta | str | None = None,
    atomic: bool = False,
    queue: str = "default",
    priority: int = 0,
    unique_key: str | None = None,
    unique_while: str = "pending",
    lock: str | None = None,
    _origin: dict[str, Any] | None = None,
) -> ScheduledJob:
    """Schedule ``callable_name`` to run at ``date`` and return the job.

    ``date`` is an aware datetime, a naive one (current time zone), a
    timedelta from now or a duration string (``'30s'``, ``'5m'``, ``'2h'``,
    ``'5d'``, ``'1w'``, ``'1h30m'``). "Now" is the database's clock.
    ``expires`` takes the same forms, measured from ``date``; ``None`` means
    the job never expires. A job not run by then is marked expired.

    ``retries`` (default 0, as in django-future) is how many more attempts a
    job gets after a failure or after its runner died. They come after an
    exponential backoff: ``retry_delay`` (default 30 s) doubled for each
    failure, at most ``retry_max_delay`` (default 1 h). A retry due after the
    job's expiry is not made: the failure stands.

    ``atomic=True`` runs the callable inside a transaction together with the
    ``completed`` event: its database writes and its completion commit as one,
    and an exception rolls them back before ``failed`` is recorded.

    ``queue`` names the queue the job waits in (default ``"default"``): a
    non-empty string of at most 100 characters, without whitespace or NUL.
    Runners take every queue unless told otherwise (``runscheduledjobs --queue``
    and ``--exclude-queue``). ``priority``, a whole number from -100 to 100
    (default 0), orders the due jobs: larger first, then the oldest due, then by
    id. There is no aging: a steady stream of due jobs of a higher priority can
    delay lower ones indefinitely; give work that must not wait a queue and
    runners of its own (docs/scheduling.md, "Queues and priorities").

    ``unique_key`` (at most 255 characters) makes a job that holds the key while it
    is pending (``unique_while="pending"``, the default: until it starts) or pending
    and running (``"active"``). While a job holds it, this returns that job, with
    ``job.created`` False, and writes nothing (django_future/unique.py,
    docs/scheduling.md, "Unique jobs").

    ``lock`` (a name of at most 100 characters, or None): jobs that share a lock
    never run at the same time, on any runner; a job whose lock is held waits, in
    its place in the claim order, without an attempt or an event (docs/scheduling.md,
    "Locks and queue limits").

    Raises ValueError (bad time, unknown callable, bad retry policy, bad queue,
    priority or lock, bad unique key or unique_while, a time past the limits, arguments
    nested deeper than ``ARGS_MAX_DEPTH`` or larger than DJANGO_FUTURE_MAX_ARGS_BYTES) or
    TypeError (arguments that JSON cannot carry) before writing anything; docs/badinput.md
    lists the limits. Inside
    ``transaction.atomic()`` the job commits or rolls back with the block.
    Raises ImproperlyConfigured if the database is not PostgreSQL, or if the
    package's tables are missing (run ``migrate`` first).
    """
    database.require_postgresql()
    start, end, data = _Checks().prepare(
        date,
        callable_name,
        content_object=content_object,
        expires=expires,
        args=args,
        kwargs=kwargs,
        retries=retries,
        retry_delay=retry_delay,
        retry_max_delay=retry_max_delay,
        atomic=atomic,
        queue=queue,
        priority=priority,
        unique_key=unique_key,
        unique_while=unique_while,
        lock=lock,
        origin=_origin,
    )
    send = ledger.schedule_unique if "unique_key" in data else ledger.schedule
    job = send(
        _encoded(data, config.max_args_bytes()),
        start_at=start.at,
        start_in=start.after,
        end_at=end.at if end else None,
        end_in=end.after if end else None,
    )
    if job is None:
        raise ValueError(f"expires: {expires!r} falls before the scheduled time {date!r}")
    return job


def _absolute(when: _When, base: dt.datetime) -> dt.datetime:
    if when.at is not None:
        return when.at
    assert when.after is not None  # noqa: S101 - a _When is one or the other
    return base + when.after


# Jobs per statement in schedule_jobs. Each chunk is sent in pipeline mode and
# the next one prepared while the database writes it; a few hundred jobs keep
# both busy (1,000 measured about the same, 5,000 left the database idle
# longer while the first chunk was prepared, and slower).
BULK_CHUNK = 500
_NO_JOBS: Any = object()


def schedule_jobs(jobs: Iterable[Mapping[str, Any]]) -> list[int]:
    """Schedule many jobs at once; return their ids, in order.

    Each item holds ``schedule_job``'s arguments by name (``date`` and
    ``callable_name`` required; ``queue``, ``priority`` and ``lock`` among the others), and is
    checked as ``schedule_job`` checks them. A bad item raises, naming its position,
    and nothing is written: the call is one transaction (inside
    ``transaction.atomic()``, part of yours).
    Relative times are measured from one reading of the database's clock.

    The jobs are sent ``BULK_CHUNK`` at a time in pipeline mode: while the
    database appends and folds one chunk's ``scheduled`` events, the next
    chunk is checked and encoded. (With a libpq older than 14, which has no
    pipeline mode, the chunks go one after another.)

    An item with a ``unique_key`` whose key is held (by an earlier job, or an
    earlier item of this call) makes no job: its id in the list is the holder's.
    Chunks with keyed items go one job at a time (unique.sql), slower than the rest.

    Raises as ``schedule_job`` does, naming the item for bad input.
    """
    database.require_postgresql()
    items = iter(jobs)
    first = next(items, _NO_JOBS)
    if first is _NO_JOBS:
        return []
    checks = _Checks()
    limit = config.max_args_bytes()
    times: dict[tuple[_When, _When | None], tuple[str, str | None]] = {}

    def chunks(now: dt.datetime) -> Iterator[list[str]]:
        # Each chunk is checked and encoded while the database writes the one before.
        lines: list[str] = []
        for i, spec in enumerate(itertools.chain((first,), items)):
            try:
                start, end, data = _bulk_item(checks, spec)
                window = times.get((start, end))
                if window is None:
                    window = times[start, end] = _window_text(start, end, now)
                data["time_slot_start"], data["time_slot_end"] = window
                lines.append(_encoded(data, limit))
            except KeyError as exc:
                raise TypeError(f"jobs[{i}]: missing {exc.args[0]!r}") from None
            except (TypeError, ValueError) as exc:
                raise type(exc)(f"jobs[{i}]: {exc}") from None
            if len(lines) == BULK_CHUNK:
                yield lines
                lines = []
        if lines:
            yield lines

    return ledger.schedule_chunks(chunks)


def _bulk_item(
    checks: _Checks, spec: Mapping[str, Any]
) -> tuple[_When, _When | None, dict[str, Any]]:
    options = dict(spec)
    date = options.pop("date")
    name = options.pop("callable_name")
    prepared = checks.prepare(
        date,
        name,
        content_object=options.pop("content_object", None),
        expires=options.pop("expires", "7d"),
        args=options.pop("args", ()),
        kwargs=options.pop("kwargs", None),
        retries=options.pop("retries", 0),
        retry_delay=options.pop("retry_delay", None),
        retry_max_delay=options.pop("retry_max_delay", None),
        atomic=options.pop("atomic", False),
        queue=options.pop("queue", "default"),
        priority=options.pop("priority", 0),
        unique_key=options.pop("unique_key", None),
        unique_while=options.pop("unique_while", "pending"),
        lock=options.pop("lock", None),
        origin=None,
    )
    if options:
        raise TypeError(f"unknown arguments {sorted(options)}")
    return prepared


def _window_text(start: _When, end: _When | None, now: dt.datetime) -> tuple[str, str | None]:
    """A job's window as its scheduled event records it, relative times from ``now``."""
    begin = _absolute(start, now)
    finish = None if end is None else _absolute(end, begin)
    if finish is not None and finish < begin:
        raise ValueError("expires falls before the scheduled time")
    return begin.isoformat(), None if finish is None else finish.isoformat()
