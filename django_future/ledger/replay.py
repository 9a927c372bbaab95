"""Reading the ledger back, and the two writes that step around its guards.

- ``verify`` (the rows agree with the fold of their events, and the hash chains hold)
  and ``jobs_as_of`` (every job as it stood at an instant) only read.
- ``rebuild`` rewrites every job row as the fold of its events; ``remove_jobs`` takes
  finished jobs' events and rows out of the ledger for ``scheduledjobs prune``
  (``audit.prune``, which records what it removed in the same transaction). Both go
  through ``pgtrigger.ignore``, which turns the named triggers off for the statements
  of its block, on this connection only. No other Python code does: see the package's
  docstring for why the SQL writers' ``django_future.folded`` setting is a different
  thing, and why the two are not merged.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

import pgtrigger
from django.db import connection, transaction
from django.db.models.query import RawQuerySet
from django.utils import timezone

from django_future.models import PROJECTION_GUARD, ScheduledJob
from django_future.sql import query

__all__ = [
    "LEDGER_GUARDS",
    "BrokenChain",
    "Difference",
    "jobs_as_of",
    "rebuild",
    "remove_jobs",
    "verify",
]


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


#: The triggers that ``remove_jobs`` steps around: the events' append-only guard,
#: and the job table's (only the fold writes it).
LEDGER_GUARDS = (
    "django_future.JobEvent:append_only",
    PROJECTION_GUARD,
)


def rebuild() -> int:
    """Recompute the whole projection from the ledger; return how many rows changed.

    Runs in one transaction that locks the projection against concurrent
    runners. This is the only code that writes job rows outside the fold
    trigger, and it writes exactly what the fold says.
    """
    with transaction.atomic(), pgtrigger.ignore(PROJECTION_GUARD), connection.cursor() as cursor:
        cursor.execute("LOCK TABLE django_future_scheduledjob IN EXCLUSIVE MODE")
        changed = sum(isinstance(p, Difference) for p in verify())
        cursor.execute("DELETE FROM django_future_scheduledjob")
        cursor.execute(query("rebuild"))
    return changed


def remove_jobs(job_ids: list[int]) -> None:
    """Delete the rows and every event of ``job_ids``: the one removal of history.

    Only for ``audit.prune``, which chooses finished jobs and records what went, in
    the caller's transaction (this must run inside one: ``transaction.atomic()``).
    """
    with pgtrigger.ignore(*LEDGER_GUARDS), connection.cursor() as cursor:
        cursor.execute("DELETE FROM django_future_scheduledjob WHERE id = ANY(%s)", [job_ids])
        cursor.execute("DELETE FROM django_future_jobevent WHERE job_id = ANY(%s)", [job_ids])
