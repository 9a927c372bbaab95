"""Making the jobs of due ticks, from inside every runner: ``Ticker``.

A runner, started by cron (a pass) or as a worker, holds one ``Ticker`` and calls
``enqueue_due`` before each claim. No extra process, no leader: every runner offers
the ticks it finds due, and the database makes one job per tick, whoever offers it
first (``ledger.ticks``, ``sql/periodic.sql``).

What it costs a claim cycle
---------------------------

Nothing, while no tick is due: the ticker keeps the time of the next tick of every
schedule in memory and compares it with the clock, without a query. When one is due,
one statement offers every due tick of every schedule, whatever the number of jobs
the runner then claims. Once per run, when it starts, one statement records the
definitions in force and reads each schedule's newest tick (``ledger.ticks.define``).

The clock is the database's, as for claims: the ticker keeps the difference between
the database's clock and its own, measured on each of its statements, and the
database itself refuses a tick that is not yet due by its own clock.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from typing import Any

from django.db import connection

from django_future import ledger
from django_future.periodic.schedules import Schedule, load
from django_future.sql import query

__all__ = ["Overview", "Ticker", "overview"]


class Ticker:
    """The due ticks of the declared schedules, offered at most once per claim cycle."""

    def __init__(self, *, runner: str, schedules: list[Schedule] | None = None) -> None:
        self.runner = runner
        self._given = schedules
        self.schedules: list[Schedule] = []
        self._base: dict[str, dt.datetime] = {}  # ticks after this are not offered yet
        self._next: dict[str, dt.datetime] = {}  # the next tick, by schedule
        self._offset = 0.0  # the database's clock minus ours, in seconds
        self._started = False
        self.statements = 0  # sent, for tests and the bench

    def start(self, now: dt.datetime | None = None) -> None:
        """Record the definitions in force and learn where each schedule stands."""
        self.schedules = load() if self._given is None else list(self._given)
        definitions = [
            {"schedule": s.name, "hash": s.hash, "definition": s.definition} for s in self.schedules
        ]
        known, db_now = ledger.ticks.define(definitions, runner=self.runner)
        self.statements += 1
        if db_now is not None:
            self._measure(db_now)
        by_name = {d.schedule: d for d in known}
        for schedule in self.schedules:
            d = by_name[schedule.name]
            # A new definition takes effect from its first tick after it was recorded.
            base = max(d.since, d.last_tick) if d.last_tick else d.since
            self._set_base(schedule, base)
        self._started = True

    def _set_base(self, schedule: Schedule, base: dt.datetime) -> None:
        self._base[schedule.name] = base
        following = schedule.next_tick(base)
        if following is None:
            self._next.pop(schedule.name, None)
        else:
            self._next[schedule.name] = following

    def _measure(self, db_now: dt.datetime) -> None:
        self._offset = db_now.timestamp() - time.time()

    def clock(self) -> dt.datetime:
        """The database's clock, as estimated here."""
        return dt.datetime.fromtimestamp(time.time() + self._offset, dt.UTC)

    def seconds_to_next(self, now: dt.datetime | None = None) -> float | None:
        """Seconds until the next tick of any schedule (None: none), for a worker's sleep."""
        if not self._started or not self._next:
            return None
        return max((min(self._next.values()) - (now or self.clock())).total_seconds(), 0.0)

    def enqueue_due(self, now: dt.datetime | None = None) -> list[ledger.ticks.Made]:
        """Offer every due tick in one statement, if any is due; the ticks made here.

        ``now`` stands in for the clock (as ``Runner(now=...)``); None: the database's.
        """
        if not self._started:
            self.start(now)
        clock = now or self.clock()
        if not self._next or min(self._next.values()) > clock:
            return []  # the common case: no query
        offered: list[dict[str, Any]] = []
        bases: dict[str, tuple[Schedule, dt.datetime, list[dt.datetime]]] = {}
        for schedule in self.schedules:
            following = self._next.get(schedule.name)
            if following is None or following > clock:
                continue
            ticks, base = schedule.due(self._base[schedule.name], clock)
            bases[schedule.name] = (schedule, base, ticks)
            offered.extend(
                {
                    "schedule": schedule.name,
                    "tick": tick,
                    "hash": schedule.hash,
                    "expires": schedule.max_delay.total_seconds(),
                    "data": schedule.job_data,
                }
                for tick in ticks
            )
        made: list[ledger.ticks.Made] = []
        judged = clock
        if offered:
            made, judged = ledger.ticks.enqueue(offered, now=now, runner=self.runner)
            self.statements += 1
            if now is None:
                self._measure(judged)
        for schedule, base, ticks in bases.values():
            # A tick the database found not yet due (our clock ran ahead) is offered again.
            early = [tick for tick in ticks if tick > judged]
            self._set_base(schedule, min(early) - dt.timedelta(microseconds=1) if early else base)
        return made


@dataclass(frozen=True, slots=True)
class Overview:
    """One schedule as ``scheduledjobs periodic`` shows it."""

    name: str
    cron: str
    timezone: str
    catch_up: str
    next_tick: dt.datetime | None
    last_tick: dt.datetime | None
    last_job: int | None
    last_outcome: str | None


def overview(now: dt.datetime | None = None) -> list[Overview]:
    """Each declared schedule: its next tick after ``now`` (the database's clock), and its
    newest tick made, with that job's outcome (from ``django_future_periodic_ticks``)."""
    schedules = load()
    with connection.cursor() as cursor:
        cursor.execute(
            query("periodic_overview"), {"now": now, "names": [s.name for s in schedules]}
        )
        rows = {row[0]: row for row in cursor.fetchall()}
        if now is None:
            cursor.execute("SELECT statement_timestamp()")
            (now,) = cursor.fetchone()
    assert now is not None  # noqa: S101 - read above
    found = []
    for s in schedules:
        _, tick, job, outcome, _clock = rows.get(s.name, (None, None, None, None, None))
        found.append(
            Overview(s.name, s.cron, s.timezone, s.catch_up, s.next_tick(now), tick, job, outcome)
        )
    return found
