"""Periodic schedules: a job for each tick of a cron expression, exactly one, made by
whichever runner gets there first.

- ``schedules.py``: what is declared (``DJANGO_FUTURE_PERIODIC``, ``@periodic``),
  checked (``problems``, behind the system check ``django_future.E004``), and the
  ticks each schedule makes, by its time zone and its ``catch_up``;
- ``ticker.py``: ``Ticker``, which every runner holds and calls before each claim, and
  ``overview`` for ``scheduledjobs periodic``.

The layer: above the ledger, through which the ticks' jobs are written
(``ledger.ticks``), and below the runner, which calls the ticker, and the scheduler,
which it does not need (a tick's job is made by the database, not by ``schedule_job``,
so that the tick and its job commit together). docs/periodic.md is the user's guide.
"""

from __future__ import annotations

from django_future.periodic.schedules import (
    ALL_LIMIT,
    CATCH_UP,
    DEFAULT_MAX_DELAY,
    ON_TIME,
    Schedule,
    declared,
    load,
    periodic,
    problems,
)
from django_future.periodic.ticker import Overview, Ticker, overview

__all__ = [
    "ALL_LIMIT",
    "CATCH_UP",
    "DEFAULT_MAX_DELAY",
    "ON_TIME",
    "Overview",
    "Schedule",
    "Ticker",
    "declared",
    "load",
    "overview",
    "periodic",
    "problems",
]
