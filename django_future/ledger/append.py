"""One event appended to one job: ``append``, and ``cancel`` made of it.

The fold (in the database) checks that the event follows from the job's status and
moves the job's row in the same statement; a refusal comes back as one of the
errors below, and nothing is written.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Collection
from functools import cache
from typing import Any

from django.db import DatabaseError, IntegrityError, OperationalError, connection

from django_future import config
from django_future.models import EventKind, ScheduledJob
from django_future.sql import query

__all__ = [
    "ConcurrentAppendError",
    "JobGoneError",
    "JobStateError",
    "append",
    "cancel",
    "runner_identity",
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
