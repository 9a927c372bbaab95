"""Periodic schedules as declared: read from ``DJANGO_FUTURE_PERIODIC`` and from the
``@periodic`` decorator, checked, and turned into ticks.

A schedule is a frozen :class:`Schedule`. Everything about it is checked when it is
read, and every problem is reported with the schedule's name: the system check
``django_future.E004`` lists them at start-up (``manage.py check``, ``migrate``,
``runscheduledjobs``), and a runner refuses to start with any.

Ticks are computed with `cronsim <https://pypi.org/project/cronsim/>`_, in the
schedule's time zone, as Debian's cron computes them (docs/periodic.md says why this
parser): on the day clocks spring forward, a daily 02:30 runs once, at 03:00; on the
day they fall back, once, at the first 02:30.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import zoneinfo
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from cronsim import CronSim, CronSimError
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from django_future import allowlist, config, taskhook
from django_future.callables import InvalidCallableError, import_callable

__all__ = [
    "ALL_LIMIT",
    "CATCH_UP",
    "DEFAULT_MAX_DELAY",
    "ON_TIME",
    "Schedule",
    "declared",
    "load",
    "periodic",
    "problems",
]

#: What a runner does with the ticks it missed (docs/periodic.md, "Catching up").
CATCH_UP = ("latest", "all", "none")
#: ``latest`` and ``all`` make no job for a tick older than this (``max_delay``
#: changes it per schedule); it is also how long a tick's job may wait to run
#: before it expires.
DEFAULT_MAX_DELAY = dt.timedelta(days=1)
#: ``none`` makes a tick's job only while it is at most this late: enough for a
#: runner started by cron each minute, or a worker finishing a job.
ON_TIME = dt.timedelta(seconds=60)
#: ``all`` makes at most this many jobs per schedule at once: the newest missed ticks.
ALL_LIMIT = 100

NAME_MAX_LENGTH = 200  # PeriodicTick.schedule
QUEUE_MAX_LENGTH = 100  # ScheduledJob.queue
KEYS = frozenset(
    {"cron", "callable", "args", "kwargs", "queue", "priority", "timezone", "catch_up", "max_delay"}
)
_NO_SPACE = re.compile(r"[\s\x00]")


@dataclass(frozen=True, slots=True, kw_only=True)
class Schedule:
    """One periodic schedule, checked. ``callable`` is a dotted path to a function or
    to a ``django.tasks`` task."""

    name: str
    cron: str
    callable: str
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    queue: str = "default"
    priority: int = 0
    timezone: str = "UTC"
    catch_up: str = "latest"
    max_delay: dt.timedelta = DEFAULT_MAX_DELAY

    @property
    def definition(self) -> dict[str, Any]:
        """What the schedule says, as JSON: what its hash is of, and what
        ``PeriodicChange`` records."""
        return {
            "cron": self.cron,
            "callable": self.callable,
            "args": self.args,
            "kwargs": self.kwargs,
            "queue": self.queue,
            "priority": self.priority,
            "timezone": self.timezone,
            "catch_up": self.catch_up,
            "max_delay": self.max_delay.total_seconds(),
        }

    @property
    def hash(self) -> str:
        """16 hex digits of sha256 over the definition: a change of any of it is a new
        definition, from its next tick."""
        text = json.dumps(self.definition, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def job_data(self) -> dict[str, Any]:
        """The ``scheduled`` event's data of each tick's job, without its window; keys at
        their defaults are left out, as ``schedule_job`` leaves them out."""
        data: dict[str, Any] = {
            "callable_name": self.callable,
            "args": self.args,
            "kwargs": self.kwargs,
        }
        if self.queue != "default":
            data["queue"] = self.queue
        if self.priority:
            data["priority"] = self.priority
        return data

    def _zone(self) -> dt.tzinfo:
        return dt.UTC if self.timezone == "UTC" else zoneinfo.ZoneInfo(self.timezone)

    def ticks(self, after: dt.datetime) -> Iterator[dt.datetime]:
        """The ticks strictly after ``after``, in UTC, in order."""
        for tick in CronSim(self.cron, after.astimezone(self._zone())):
            yield tick.astimezone(dt.UTC)

    def next_tick(self, after: dt.datetime) -> dt.datetime | None:
        """The first tick after ``after`` (None: none in the next 50 years)."""
        return next(self.ticks(after), None)

    def due(self, base: dt.datetime, now: dt.datetime) -> tuple[list[dt.datetime], dt.datetime]:
        """The ticks after ``base`` and at or before ``now`` to make jobs of, by
        ``catch_up``, oldest first; and the new base (the newest tick seen, so that the
        ones passed over are not offered again).

        Ticks older than ``max_delay`` are not looked at (nor made); ``latest`` takes the
        newest of the others, ``all`` up to ``ALL_LIMIT`` newest, ``none`` the newest if
        it is at most ``ON_TIME`` late."""
        start = max(base, now - self.max_delay)
        kept: deque[dt.datetime] = deque(maxlen=ALL_LIMIT if self.catch_up == "all" else 1)
        for tick in self.ticks(start):
            if tick > now:
                break
            kept.append(tick)
        if not kept:
            return [], start
        newest = kept[-1]
        if self.catch_up == "none" and now - newest > ON_TIME:
            return [], newest
        return list(kept), newest


# --- reading and checking ---------------------------------------------------------------

_DECLARED: dict[str, dict[str, Any]] = {}
T = TypeVar("T")


def periodic(
    cron: str,
    *,
    name: str | None = None,
    args: list[Any] | tuple[Any, ...] = (),
    kwargs: dict[str, Any] | None = None,
    timezone: str | None = None,
    catch_up: str = "latest",
    max_delay: dt.timedelta | float | None = None,
) -> Callable[[T], T]:
    """Declare a periodic schedule for a ``django.tasks`` task (or a function)::

        @periodic("0 3 * * *", timezone="Europe/Paris")
        @task(queue_name="reports")
        def nightly_report(): ...

    The task's ``queue_name`` and ``priority`` are the jobs'. The name defaults to the
    task's dotted path. Checked with the settings' schedules (``django_future.E004``);
    the module must be imported at start-up (from an ``AppConfig.ready()``, say), or
    runners never see it."""

    def declare(target: T) -> T:
        path = getattr(target, "module_path", None) or _dotted(target)
        spec: dict[str, Any] = {"cron": cron, "callable": path, "args": list(args)}
        spec["kwargs"] = dict(kwargs or {})
        spec["catch_up"] = catch_up
        if timezone is not None:
            spec["timezone"] = timezone
        if max_delay is not None:
            spec["max_delay"] = max_delay
        for attribute, key in (("queue_name", "queue"), ("priority", "priority")):
            if hasattr(target, attribute):
                spec[key] = getattr(target, attribute)
        _DECLARED[name or path] = spec
        return target

    return declare


def _dotted(target: object) -> str:
    module = getattr(target, "__module__", None)
    qualname = getattr(target, "__qualname__", None)
    if not module or not qualname:
        raise TypeError(f"@periodic needs a task or a function, not {target!r}")
    return f"{module}.{qualname}"


def declared() -> dict[str, dict[str, Any]]:
    """Every schedule's raw declaration, by name: the settings', then the decorator's."""
    found = dict(config.periodic())
    for name, spec in _DECLARED.items():
        found.setdefault(name, spec)  # a clash is reported by problems()
    return found


def problems() -> list[str]:
    """One message per invalid schedule, naming it; empty when all are valid."""
    try:
        raw = declared()
    except ImproperlyConfigured as exc:
        return [str(exc)]
    listed = set(config.periodic())
    found = []
    for name in sorted(listed & set(_DECLARED)):
        found.append(
            f"periodic schedule {name!r} is declared both in DJANGO_FUTURE_PERIODIC and by "
            "@periodic; rename one"
        )
    for name, spec in raw.items():
        try:
            _parse(name, spec)
        except (ValueError, TypeError) as exc:
            found.append(str(exc))
    return found


def load() -> list[Schedule]:
    """Every declared schedule, checked; ImproperlyConfigured listing what is wrong."""
    wrong = problems()
    if wrong:
        raise ImproperlyConfigured("; ".join(wrong))
    return [_parse(name, spec) for name, spec in sorted(declared().items())]


def _parse(name: object, spec: object) -> Schedule:
    if not isinstance(name, str) or not name or len(name) > NAME_MAX_LENGTH:
        raise ValueError(
            f"periodic schedule {name!r}: a name is a non-empty string of at most "
            f"{NAME_MAX_LENGTH} characters"
        )

    def wrong(message: str) -> ValueError:
        return ValueError(f"periodic schedule {name!r}: {message}")

    if not isinstance(spec, Mapping):
        raise wrong(f"expected a dict of {sorted(KEYS)}, not {type(spec).__name__}")
    unknown = set(spec) - KEYS
    if unknown:
        raise wrong(f"unknown keys {sorted(unknown)}; expected some of {sorted(KEYS)}")
    for required in ("cron", "callable"):
        if required not in spec:
            raise wrong(f"{required!r} is required")
    zone = spec.get("timezone", getattr(settings, "TIME_ZONE", None) or "UTC")
    schedule = Schedule(
        name=name,
        cron=_cron(spec["cron"], wrong),
        callable=_callable(spec["callable"], wrong),
        args=_json(spec.get("args", []), list, "args", wrong),
        kwargs=_json(spec.get("kwargs", {}), dict, "kwargs", wrong),
        queue=_queue(spec.get("queue", "default"), wrong),
        priority=_priority(spec.get("priority", 0), wrong),
        timezone=_timezone(zone, wrong),
        catch_up=_catch_up(spec.get("catch_up", "latest"), wrong),
        max_delay=_max_delay(spec.get("max_delay", DEFAULT_MAX_DELAY), wrong),
    )
    schedule.next_tick(dt.datetime(2000, 1, 1, tzinfo=dt.UTC))  # the zone loads
    return schedule


Wrong = Callable[[str], ValueError]


def _cron(value: object, wrong: Wrong) -> str:
    if not isinstance(value, str):
        raise wrong(f"cron must be a string such as '30 2 * * *', not {value!r}")
    try:
        CronSim(value, dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
    except CronSimError as exc:
        raise wrong(f"invalid cron expression {value!r}: {exc}") from None
    return " ".join(value.split())


def _callable(value: object, wrong: Wrong) -> str:
    if not isinstance(value, str) or "." not in value:
        raise wrong(f"callable must be a dotted path such as 'shop.jobs.sweep', not {value!r}")
    try:
        allowlist.check_path(value)  # before it is imported
        target = import_callable(value)
        allowlist.check_imported(value, target)
    except InvalidCallableError as exc:
        raise wrong(str(exc)) from None
    if not callable(target) and not taskhook.accepts(target, value):
        raise wrong(f"{value!r} is a {type(target).__name__}, not a callable or a task")
    return value


def _json(value: object, kind: type, what: str, wrong: Wrong) -> Any:
    if isinstance(value, tuple) and kind is list:
        value = list(value)
    if not isinstance(value, kind):
        raise wrong(f"{what} must be a {kind.__name__}, not {type(value).__name__}")
    if _depth(value) > config.ARGS_MAX_DEPTH:
        raise wrong(f"{what} nest more than {config.ARGS_MAX_DEPTH} levels deep")
    try:
        text = json.dumps(value, allow_nan=False)
        # Written out, as PostgreSQL will read it: a lone surrogate cannot be.
        size = len(json.dumps(value, ensure_ascii=False).encode("utf-8"))
    except (TypeError, ValueError) as exc:
        raise wrong(f"{what} cannot be stored as JSON: {exc}") from None
    if size > config.max_args_bytes():
        raise wrong(
            f"{what} take {size} bytes of JSON; DJANGO_FUTURE_MAX_ARGS_BYTES allows "
            f"{config.max_args_bytes()}"
        )
    if json.loads(text) != value or "\\u0000" in text:
        raise wrong(f"{what} would not come back from JSON as given (keys must be strings)")
    return value


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")  # a lone surrogate cannot be, nor stored
    except UnicodeEncodeError:
        return False
    return True


def _depth(value: object) -> int:
    """How deeply ``value`` nests lists, tuples and dicts (a scalar is 0), without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, list | tuple | dict):
            deepest = max(deepest, level)
            if level <= config.ARGS_MAX_DEPTH:  # deeper is refused, however deep
                children = item.values() if isinstance(item, dict) else item
                stack.extend((child, level + 1) for child in children)
    return deepest


def _queue(value: object, wrong: Wrong) -> str:
    if (
        not isinstance(value, str)
        or not value
        or len(value) > QUEUE_MAX_LENGTH
        or _NO_SPACE.search(value)
        or not _encodable(value)
    ):
        raise wrong(
            f"queue must be a name of 1 to {QUEUE_MAX_LENGTH} characters without "
            f"whitespace, not {value!r}"
        )
    return value


def _priority(value: object, wrong: Wrong) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not -100 <= value <= 100:
        raise wrong(f"priority must be a whole number from -100 to 100, not {value!r}")
    return value


def _timezone(value: object, wrong: Wrong) -> str:
    if not isinstance(value, str) or not value:
        raise wrong(f"timezone must be an IANA name such as 'Europe/Paris', not {value!r}")
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise wrong(
            f"unknown timezone {value!r}; use an IANA name such as 'Europe/Paris'"
        ) from None
    return value


def _catch_up(value: object, wrong: Wrong) -> str:
    if value not in CATCH_UP:
        raise wrong(f"catch_up must be one of {', '.join(CATCH_UP)}, not {value!r}")
    return str(value)


def _max_delay(value: object, wrong: Wrong) -> dt.timedelta:
    if isinstance(value, dt.timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise wrong(f"max_delay must be a positive number of seconds or a timedelta, not {value!r}")
    try:
        return dt.timedelta(seconds=value)
    except OverflowError:  # infinity, or past timedelta's 999999999 days
        raise wrong(f"max_delay of {value!r} seconds is too long") from None
