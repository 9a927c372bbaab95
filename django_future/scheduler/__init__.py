"""``schedule_job`` and ``schedule_jobs``.

Everything is checked before anything is written (``inputs``): a bad time, callable or
argument raises and leaves no row and no event behind. What passes is handed to the
ledger (``ledger.schedule``, ``ledger.schedule_chunks``), which sends it: the scheduler
builds events, and writes none itself.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from django.db import models

from django_future import allowlist, config, database, ledger, locks
from django_future.callables import InvalidCallableError, job_as_parameter
from django_future.models import ScheduledJob
from django_future.retries import backoff
from django_future.scheduler.inputs import (
    ACCEPTED_TIMES,
    ARGS_MAX_DEPTH,
    LONGEST_DURATION,
    MAX_RETRIES,
    PRIORITY_RANGE,
    QUEUE_MAX_LENGTH,
    _check_arguments,
    _check_callable,
    _check_priority,
    _check_queue,
    _content_reference,
    _encoded,
    _retry_policy,
    _When,
    _window,
    parse_duration,
)
from django_future.unique import unique_data

# InvalidCallableError, job_as_parameter and backoff live below the scheduler and the
# runner, which share them (callables.py, retries.py); they are the scheduler's API too,
# and so are the limits and the parser of the checks (inputs.py).
__all__ = [
    "ACCEPTED_TIMES",
    "ARGS_MAX_DEPTH",
    "BULK_CHUNK",
    "LONGEST_DURATION",
    "MAX_RETRIES",
    "PRIORITY_RANGE",
    "QUEUE_MAX_LENGTH",
    "InvalidCallableError",
    "backoff",
    "job_as_parameter",
    "parse_duration",
    "schedule_job",
    "schedule_jobs",
]


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
