"""Appending to the job ledger, and proving the projection agrees with it.

Every change of a job is one ``INSERT`` into ``django_future_jobevent``. The
fold trigger (``sql/fold_trigger.sql``, applying ``django_future_fold``
from ``sql/fold.sql``) moves the job's row in the same statement, so this
module never writes ``django_future_scheduledjob`` itself.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
from collections.abc import Collection
from dataclasses import dataclass
from functools import cache
from typing import Any

import pgtrigger
from django.db import DatabaseError, IntegrityError, OperationalError, connection, transaction
from django.db.models.query import RawQuerySet
from django.utils import timezone

from django_future import config
from django_future.models import PROJECTION_GUARD, EventKind, ScheduledJob
from django_future.sql import query

__all__ = [
    "BrokenChain",
    "ConcurrentAppendError",
    "Difference",
    "JobGoneError",
    "JobStateError",
    "append",
    "cancel",
    "jobs_as_of",
    "rebuild",
    "runner_identity",
    "verify",
]


class JobGoneError(LookupError):
    """The job has no live row to append to: it was never scheduled, or was deleted."""


class JobStateError(RuntimeError):
    """The job is not in a status that allows this event."""


class ConcurrentAppendError(RuntimeError):
    """Another writer appended this job's next event first; re-read the job and decide again."""


@cache
def runner_identity() -> str:
    """``host:pid`` of this process, as recorded on the events a runner writes."""
    return f"{socket.gethostname()}:{os.getpid()}"


def append(
    job_id: int,
    kind: EventKind | str,
    data: dict[str, Any] | None = None,
    *,
    runner: str | None = None,
    only_if: Collection[str] | None = None,
    only_at_seq: int | None = None,
) -> int:
    """Append the next event of a live job and return its ``seq``.

    The fold trigger checks that the event follows from the job's status
    (a job that is not running cannot complete, for example) and raises
    otherwise, in which case nothing is written. With ``only_if`` (statuses)
    or ``only_at_seq`` (the job's last seq as the caller saw it), a job that
    is otherwise raises JobStateError before anything is tried, which leaves a
    surrounding transaction usable.
    """
    params: dict[str, Any] = {
        "job_id": job_id,
        "kind": str(kind),
        "runner": runner,
        "data": json.dumps(data or {}),
        "statuses": list(only_if) if only_if is not None else None,
        "seq": only_at_seq,
    }
    try:
        with connection.cursor() as cursor:
            cursor.execute(query("append"), params)
            row = cursor.fetchone()
    except (IntegrityError, OperationalError) as exc:
        if _is_sequence_conflict(exc):
            raise ConcurrentAppendError(
                f"job {job_id}: another writer appended its next event first ({exc})"
            ) from exc
        raise
    if row is None or row[0] is None:
        state = ScheduledJob.objects.filter(pk=job_id).values_list("status", "last_seq").first()
        if state is None:
            raise JobGoneError(f"job {job_id} has no live row (never scheduled, or deleted)")
        status, seq = state
        if only_at_seq is not None and seq != only_at_seq:
            raise JobStateError(
                f"job {job_id} moved on: it is at event {seq} ({status}), not {only_at_seq}"
            )
        raise JobStateError(f"job {job_id} is {status}; {kind} needs {' or '.join(only_if or ())}")
    return int(row[0])


def cancel(job_id: int, *, by: str | None = None, reason: str = "") -> int:
    """Append ``cancelled`` to a scheduled job, recording who and why; return its seq.

    Raises JobStateError if the job is not scheduled (claimed and running jobs
    belong to their runner; finished ones are finished).
    """
    config.require_postgresql()
    who = by or f"python:{runner_identity()}"
    with config.tables_needed():
        return append(
            job_id,
            EventKind.CANCELLED,
            {"by": who, "reason": reason},
            only_if=[ScheduledJob.STATUS_SCHEDULED],
        )


def _is_sequence_conflict(exc: DatabaseError) -> bool:
    sqlstate = getattr(exc.__cause__, "sqlstate", None)
    # 23505: (job_id, seq) unique violation; 40001: the fold saw a stale seq.
    return sqlstate in {"23505", "40001"}


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
