"""The two statements of periodic schedules, sent for ``django_future.periodic``.

The periodic package decides which ticks are due; it writes nothing itself. Here
the ledger records the schedules' definitions (``define``) and makes the jobs of due
ticks (``enqueue``), each in one statement of ``sql/periodic.sql``: the tick's row,
unique on ``(schedule, tick)``, and its job's ``scheduled`` event commit together.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from django.db import connection

from django_future import database
from django_future.sql import query

__all__ = ["Defined", "Made", "define", "enqueue"]


@dataclass(frozen=True, slots=True)
class Defined:
    """A schedule as the database knows it: when its current definition was first
    recorded, and its newest tick (None before its first)."""

    schedule: str
    since: dt.datetime
    last_tick: dt.datetime | None


@dataclass(frozen=True, slots=True)
class Made:
    """A tick that this call made, and its job."""

    schedule: str
    tick: dt.datetime
    job_id: int


def define(
    definitions: list[dict[str, Any]], *, runner: str
) -> tuple[list[Defined], dt.datetime | None]:
    """Record each ``{"schedule", "hash", "definition"}`` whose hash changed, and the
    removal of every schedule no longer given; return what the database knows of each
    given schedule, and its clock (None when none was given)."""
    with connection.cursor() as cursor, database.tables_needed():
        cursor.execute(
            query("periodic_define"), {"defs": json.dumps(definitions), "runner": runner}
        )
        rows = cursor.fetchall()
    if not rows:  # no schedule given: no clock read, none needed
        return [], None
    return [Defined(name, since, last) for name, since, last, _ in rows], rows[0][3]


def enqueue(
    ticks: list[dict[str, Any]], *, now: dt.datetime | None, runner: str
) -> tuple[list[Made], dt.datetime]:
    """Make the job of each given tick (``{"schedule", "tick", "hash", "expires",
    "data"}``) that no runner made yet and is due at ``now`` (None: the database's
    clock); return the ticks made, and the clock they were judged by."""
    params = {"ticks": json.dumps(ticks, default=_iso), "now": now, "runner": runner}
    with connection.cursor() as cursor:
        cursor.execute(query("periodic_enqueue"), params)
        rows = cursor.fetchall()
    made = [Made(name, tick, job_id) for name, tick, job_id, _ in rows if name is not None]
    return made, rows[-1][3]


def _iso(value: object) -> str:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    raise TypeError(f"{value!r} is not JSON")
