"""What the dashboard shows, read from the ledger for one window of time.

Every query reads the events of the window only (``at`` in [start, end), which the
BRIN index on ``at`` serves), and finds each event's neighbours by ``(job_id, seq)``,
the ledger's unique index; the job rows add what is true now (running and waiting
jobs). So the cost follows the window's traffic, not the ledger's length. The SQL is
in ``django_future/sql/queries.sql`` under the names ``dashboard_*``.

What that bound leaves out, in a window of the past: an attempt that started before
it and ended after it, with no event inside (one still running now is shown), and in
queue depth, a wait that ended more than ``WAIT_LOOKAHEAD`` after the window's end.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlencode

from django.db import connection
from django.utils.dateparse import parse_datetime

from django_future.sql import fetch

DEFAULT_MINUTES = 15
MIN_MINUTES = 1
MAX_MINUTES = 24 * 60
# Beyond these, the page draws the first ones and says how many it left out.
MAX_BARS = 2_000
MAX_UNRUN = 500
TOP_FAILING = 10
SAMPLES = 30
# A wait that ended more than this after a past window's end is not looked for (it
# would mean reading every event since): the depth of an old window can be short by
# the jobs that then waited longer than this.
WAIT_LOOKAHEAD = dt.timedelta(days=1)


class WindowError(ValueError):
    """A query parameter the dashboard cannot use; the message says which and why."""


@dataclass(frozen=True)
class Window:
    start: dt.datetime
    end: dt.datetime
    now: dt.datetime
    notices: tuple[str, ...] = ()

    @property
    def minutes(self) -> int:
        return round((self.end - self.start).total_seconds() / 60)

    def params(self, *, end: dt.datetime | None = None, minutes: int | None = None) -> str:
        """The query string of another window: shifted to ``end``, or zoomed to ``minutes``
        around the same end."""
        end = end or self.end
        return "?" + urlencode(
            {"end": end.isoformat(timespec="seconds"), "minutes": minutes or self.minutes}
        )


def parse_window(params: Mapping[str, str], now: dt.datetime) -> Window:
    """The window the query parameters ask for: ``minutes`` (default 15, clamped to
    1 .. 1440 with a notice) ending at ``end`` (an ISO 8601 time, default now; a naive
    one is taken as UTC, one in the future becomes now). Raises :class:`WindowError`
    for a value that is not a number or not a time."""
    notices = []
    raw_minutes = (params.get("minutes") or "").strip()
    minutes = DEFAULT_MINUTES
    if raw_minutes:
        try:
            minutes = int(raw_minutes)
        except ValueError:
            raise WindowError(
                f"minutes={raw_minutes[:40]!r} is not a whole number of minutes "
                f"(use {MIN_MINUTES} to {MAX_MINUTES}, e.g. minutes=15)"
            ) from None
        if not MIN_MINUTES <= minutes <= MAX_MINUTES:
            clamped = min(max(minutes, MIN_MINUTES), MAX_MINUTES)
            notices.append(
                f"minutes={minutes} is outside {MIN_MINUTES} to {MAX_MINUTES}; "
                f"showing {clamped} minutes."
            )
            minutes = clamped
    raw_end = (params.get("end") or "").strip()
    end = now
    if raw_end:
        try:
            parsed = parse_datetime(raw_end.replace(" ", "+", 1) if " " in raw_end else raw_end)
        except ValueError:
            parsed = None
        if parsed is None:
            raise WindowError(
                f"end={raw_end[:40]!r} is not a date and time; use ISO 8601, "
                "e.g. end=2026-12-03T12:00:00+00:00 (UTC when no offset is given)"
            )
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.UTC)
        if parsed > now:
            notices.append("end is in the future; showing the window that ends now.")
            parsed = now
        end = parsed
    try:
        start = end - dt.timedelta(minutes=minutes)
        end.astimezone(dt.UTC)  # year 1 at +14:00 is no instant in UTC
    except OverflowError:
        raise WindowError(
            f"end={raw_end[:40]!r} leaves no window between years 1 and 9999; use a recent "
            "time, e.g. end=2026-12-03T12:00:00+00:00"
        ) from None
    return Window(start, end, now, tuple(notices))


def database_now() -> dt.datetime:
    """The database's clock, which stamps every event."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement_timestamp()")
        (now,) = cursor.fetchone()
    assert isinstance(now, dt.datetime)  # noqa: S101 - timestamptz
    return now


@dataclass(frozen=True)
class Attempt:
    """One attempt of a job: from its "started" event to the event that ended it
    (``ended`` None while it runs); ``outcome`` is that event's kind, or "running"."""

    job_id: int
    runner: str
    started: dt.datetime
    ended: dt.datetime | None
    outcome: str
    retried: bool
    callable_name: str
    args: str


@dataclass(frozen=True)
class Unrun:
    """A job that expired or was cancelled in the window, never having run then."""

    job_id: int
    kind: str
    at: dt.datetime
    callable_name: str


@dataclass(frozen=True)
class Failing:
    callable_name: str
    failures: int
    last_at: dt.datetime
    last_job: int
    last_error: str


@dataclass
class QueueSeries:
    """Depth (jobs due and waiting) and lag (seconds the oldest had waited) of one
    queue at each sample instant of the window."""

    queue: str
    instants: list[dt.datetime]
    depth: list[int] = field(default_factory=list)
    lag: list[float] = field(default_factory=list)


@dataclass
class Snapshot:
    window: Window
    attempts: list[Attempt]
    attempts_cut: bool
    unrun: list[Unrun]
    unrun_cut: bool
    throughput: list[tuple[dt.datetime, int, int]]
    throughput_step: int  # minutes per bucket
    failing: list[Failing]
    queues: list[QueueSeries]


def sample_instants(window: Window, samples: int = SAMPLES) -> list[dt.datetime]:
    """The instants at which queue depth is sampled: the ends of ``samples`` equal steps."""
    span = window.end - window.start
    return [window.start + span * i / samples for i in range(1, samples + 1)]


def queue_series(window: Window, samples: int = SAMPLES) -> list[QueueSeries]:
    """Each queue that had a due job waiting at some sample instant, with its depth and
    lag at every instant (zero where none waited)."""
    until = min(window.now, window.end + WAIT_LOOKAHEAD)
    rows = fetch(
        "dashboard_waiting",
        {"start": window.start, "end": window.end, "until": until, "samples": samples},
    )
    instants = sample_instants(window, samples)
    index = {t: i for i, t in enumerate(instants)}
    series: dict[str, QueueSeries] = {}
    for queue, t, depth, lag in rows:
        s = series.get(queue)
        if s is None:
            s = series[queue] = QueueSeries(queue, instants, [0] * samples, [0.0] * samples)
        i = index.get(t)
        if i is None:  # the database's arithmetic rounded to another microsecond
            i = min(range(samples), key=lambda k: abs((instants[k] - t).total_seconds()))
        s.depth[i] = depth
        s.lag[i] = max(float(lag), 0.0)
    return [series[q] for q in sorted(series)]


def throughput_step(window: Window) -> int:
    """Minutes per throughput bucket: one minute up to an hour's window, then coarser
    so that the chart keeps about 60 bars."""
    return max(1, -(-window.minutes // 60))


def snapshot(window: Window) -> Snapshot:
    """Everything the dashboard draws for ``window``."""
    span = {"start": window.start, "end": window.end}
    rows = fetch("dashboard_attempts", {**span, "limit": MAX_BARS + 1})
    attempts = [Attempt(*row) for row in rows[:MAX_BARS]]
    unrun_rows = fetch("dashboard_unrun", {**span, "limit": MAX_UNRUN + 1})
    step = throughput_step(window)
    throughput = [
        (bucket, int(ok), int(bad))
        for bucket, ok, bad in fetch("dashboard_throughput", {**span, "step": step})
    ]
    failing = [
        Failing(name or "?", count, at, job, error or "")
        for name, count, at, job, error in fetch(
            "dashboard_failing", {**span, "limit": TOP_FAILING}
        )
    ]
    return Snapshot(
        window=window,
        attempts=attempts,
        attempts_cut=len(rows) > MAX_BARS,
        unrun=[Unrun(*row) for row in unrun_rows[:MAX_UNRUN]],
        unrun_cut=len(unrun_rows) > MAX_UNRUN,
        throughput=throughput,
        throughput_step=step,
        failing=failing,
        queues=queue_series(window),
    )
