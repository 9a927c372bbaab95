"""Reading the ledger back: ``verify`` (the rows agree with the fold of their events,
and the hash chains hold) and ``jobs_as_of`` (every job as it stood at an instant).

Nothing here writes.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.db.models.query import RawQuerySet
from django.utils import timezone

from django_future.models import ScheduledJob
from django_future.sql import query

__all__ = ["BrokenChain", "Difference", "jobs_as_of", "verify"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Difference:
    """A job whose projection row is not what its events fold to."""

    job_id: int
    projection: dict[str, Any] | None  # the live row, None if missing
    folded: dict[str, Any] | None  # what the events say, None if the job was deleted
    error: str | None = None  # why the events could not be folded at all

    @property
    def fields(self) -> list[str]:
        """Names of the columns that differ (all of them if one side is missing)."""
        a, b = self.projection or {}, self.folded or {}
        return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))

    def __str__(self) -> str:
        if self.error is not None:
            return f"job {self.job_id}: its events cannot be folded: {self.error}"
        if self.projection is None:
            return f"job {self.job_id}: row missing, events say it exists"
        if self.folded is None:
            return f"job {self.job_id}: row present, events say it was deleted or never existed"
        diffs = ", ".join(
            f"{f}: row={self.projection.get(f)!r} events={self.folded.get(f)!r}"
            for f in self.fields
        )
        return f"job {self.job_id}: {diffs}"


@dataclass(frozen=True, slots=True, kw_only=True)
class BrokenChain:
    """An event that is not what the hash chain says it was, or a gap before it."""

    job_id: int
    seq: int
    kind: str
    problem: str

    def __str__(self) -> str:
        return f"job {self.job_id}: event {self.seq} ({self.kind}): {self.problem}"


def verify() -> list[Difference | BrokenChain]:
    """Check the whole ledger; an empty list means all is well.

    Two checks: every job row equals the fold of its events (``Difference``),
    and every event's hash follows from its contents and its job's previous
    event, with no gaps (``BrokenChain``). The second catches history edited
    by someone who disabled the triggers (a superuser can); it cannot catch a
    rewrite that also recomputes every later hash, which is why the README
    suggests exporting chain heads (``last_hash``) if that matters to you.
    """
    with connection.cursor() as cursor:
        cursor.execute(query("verify"))
        rows = cursor.fetchall()
        cursor.execute(query("verify_chain"))
        broken = cursor.fetchall()
    problems: list[Difference | BrokenChain] = [
        Difference(job_id=job_id, projection=_as_dict(row), folded=_as_dict(folded), error=error)
        for job_id, row, folded, error in rows
    ]
    problems += [BrokenChain(job_id=j, seq=q, kind=k, problem=p) for j, q, k, p in broken]
    return problems


def _as_dict(value: Any) -> dict[str, Any] | None:
    if value is None or isinstance(value, dict):
        return value
    return dict(json.loads(value))


def jobs_as_of(instant: dt.datetime) -> RawQuerySet[ScheduledJob]:
    """Every job as it stood at ``instant``, folded from the events up to then.

    Jobs scheduled later are absent, and so are jobs deleted by then. The rows
    are ``ScheduledJob`` instances (read-only, like all of them).
    """
    if timezone.is_naive(instant):
        instant = timezone.make_aware(instant, timezone.get_current_timezone())
    return ScheduledJob.objects.raw(
        "SELECT * FROM django_future_jobs_as_of(%s) ORDER BY time_slot_start, id", [instant]
    )
