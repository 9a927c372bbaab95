"""Jobs that leave a runner's hands other than by completing: recovery (``abandoned``,
``released``), ``retry``, ``expired``, and handing back (``released``). The runner's
events that are not its per-job step, sent through Django's connection once per pass
or per failure; the per-job statements are in ``wire.py``.

Each function appends its events in one statement and returns what it wrote; the
caller decides what comes next, and holds the transaction when two must commit
together (a recovered job and its retry).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import connection

from django_future.sql import query

__all__ = ["expire", "recover", "release", "retry"]


def recover(runner: str) -> list[tuple[int, str]]:
    """Append ``abandoned`` (running) or ``released`` (claimed) to each job whose runner is
    gone: its lease ran out, or it stopped without finishing. ``(job id, kind)`` pairs."""
    with connection.cursor() as cursor:
        cursor.execute(query("recover"), {"runner": runner})
        return [(job_id, kind) for job_id, kind in cursor.fetchall()]


def retry(job_id: int, *, delay: dt.timedelta, reason: str, runner: str) -> bool:
    """Append ``retry`` to a failed job, due after ``delay``; say whether it was appended
    (not when the job has no attempts left, or the retry would fall after its expiry)."""
    params: dict[str, Any] = {"job_id": job_id, "runner": runner, "delay": delay, "reason": reason}
    with connection.cursor() as cursor:
        cursor.execute(query("retry"), params)
        return cursor.fetchone() is not None


def expire(*, now: dt.datetime | None, runner: str) -> list[int]:
    """Append ``expired`` to every scheduled job whose window closed before ``now`` (the
    database's clock if None); their ids. Jobs another runner holds locked are skipped."""
    with connection.cursor() as cursor:
        cursor.execute(query("expire"), {"now": now, "runner": runner})
        return [row[0] for row in cursor.fetchall()]


def release(job_ids: list[int], *, reason: str, runner: str, runner_id: int | None) -> list[int]:
    """Append ``released`` to those of ``job_ids`` that runner ``runner_id`` started but did
    not call (the attempt is given back); their ids."""
    params: dict[str, Any] = {
        "runner": runner,
        "runner_id": runner_id,
        "job_ids": job_ids,
        "reason": reason,
    }
    with connection.cursor() as cursor:
        cursor.execute(query("release"), params)
        return [row[0] for row in cursor.fetchall()]
