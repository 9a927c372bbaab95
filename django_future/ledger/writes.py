"""The events the ledger appends through Django's connection: everything but the
runner's per-job step (``wire.py``) and the writes around the guards (``replay.py``).

- One event for one job: ``append``, and ``cancel`` made of it. The fold (in the
  database) checks that the event follows from the job's status and moves the job's
  row in the same statement; a refusal comes back as one of the errors below, and
  nothing is written.
- A job's first event, ``scheduled``: one job at a time, or many in pipelined chunks.
  The scheduler checks and encodes what it is given; this module only sends it.
- Jobs that leave a runner's hands other than by completing: recovery (``abandoned``,
  ``released``), ``retry``, ``expired``, and handing back (``released``), sent once per
  pass or per failure. Each function appends its events in one statement and returns
  what it wrote; the caller decides what comes next, and holds the transaction when
  two must commit together (a recovered job and its retry).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import socket
from collections.abc import Callable, Collection, Iterable
from functools import cache
from typing import Any

import psycopg
from django.db import DatabaseError, IntegrityError, OperationalError, connection, transaction

from django_future import database
from django_future.ledger.wire import jobs_from, statement
from django_future.models import EventKind, ScheduledJob
from django_future.sql import query

__all__ = [
    "ConcurrentAppendError",
    "JobGoneError",
    "JobStateError",
    "append",
    "cancel",
    "expire",
    "recover",
    "release",
    "retry",
    "runner_identity",
    "schedule",
    "schedule_chunks",
    "schedule_unique",
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
        for constraint, what in HELD_BY_ANOTHER.items():
            if constraint in str(exc):
                raise JobStateError(
                    f"job {job_id}: {kind} would make it run while another job holds {what} "
                    "(sql/locks.sql); nothing was written"
                ) from exc
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
    database.require_postgresql()
    who = by or f"python:{runner_identity()}"
    with database.tables_needed():
        return append(
            job_id,
            EventKind.CANCELLED,
            {"by": who, "reason": reason},
            only_if=[ScheduledJob.STATUS_SCHEDULED],
        )


#: The constraints that refuse a second running job of one lock, or of one queue slot
#: (sql/locks.sql), and what the error calls it.
HELD_BY_ANOTHER = {
    "django_future_lock_held": "its lock",
    "django_future_slot_held": "its queue slot",
}


def _is_sequence_conflict(exc: DatabaseError) -> bool:
    sqlstate = getattr(exc.__cause__, "sqlstate", None)
    # 23505: (job_id, seq) unique violation; 40001: the fold saw a stale seq.
    return sqlstate in {"23505", "40001"}


def schedule(
    data: str,
    *,
    start_at: dt.datetime | None,
    start_in: dt.timedelta | None,
    end_at: dt.datetime | None,
    end_in: dt.timedelta | None,
) -> ScheduledJob | None:
    """Append one job's ``scheduled`` event (``data``, its JSON) and return the new job;
    ``None``, with nothing written, if the window closes before it opens.

    A time is either absolute (``*_at``) or relative (``*_in``: the start from the
    database's clock, the end from the start). One statement: the database appends the
    event, folds it and returns the job's row (schedule.sql)."""
    params: dict[str, Any] = {
        "start_at": start_at,
        "start_in": start_in,
        "end_at": end_at,
        "end_in": end_in,
        "data": data,
    }
    with connection.cursor() as cursor, database.tables_needed():
        cursor.execute(statement("schedule"), params)
        # The row as the runner reads the jobs it claims (wire.jobs_from): no second query.
        jobs = jobs_from(cursor.cursor, connection.timezone)
    return jobs[0] if jobs else None


def schedule_unique(
    data: str,
    *,
    start_at: dt.datetime | None,
    start_in: dt.timedelta | None,
    end_at: dt.datetime | None,
    end_in: dt.timedelta | None,
) -> ScheduledJob | None:
    """As ``schedule``, for a job whose ``data`` holds a ``unique_key``: the new job,
    or, if a job holds the key, that job with ``created`` False and nothing written
    (unique.sql). Read with ``raw()``, which sets ``created`` from its column."""
    params: dict[str, Any] = {
        "start_at": start_at,
        "start_in": start_in,
        "end_at": end_at,
        "end_in": end_in,
        "data": data,
    }
    with database.tables_needed():
        jobs = list(ScheduledJob.objects.raw(query("schedule_unique"), params))
    return jobs[0] if jobs else None


def schedule_chunks(chunks: Callable[[dt.datetime], Iterable[list[str]]]) -> list[int]:
    """Append the ``scheduled`` events of many jobs in one transaction; their ids, in order.

    ``chunks(now)`` yields lists of lines, each the JSON of one job's event, with times
    made absolute from ``now``, one reading of the database's clock. Each chunk is sent
    in pipeline mode as soon as it is yielded, so the database appends and folds it
    while the caller checks and encodes the next. (With a libpq older than 14, which has
    no pipeline mode, the chunks go one after another.) An exception from ``chunks``
    rolls everything back."""
    sent: list[psycopg.Cursor[Any]] = []
    with database.tables_needed(), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT statement_timestamp()")
            (now,) = cursor.fetchone()
        raw = connection.connection
        sql = query("schedule_lines")
        keyed_sql = query("schedule_unique_lines")
        # Pipeline mode needs libpq 14 or later (psycopg's binary wheels bring their
        # own). With an older one the chunks go one after another, without overlap.
        stream = raw.pipeline() if psycopg.Pipeline.is_supported() else contextlib.nullcontext()
        # Django's exception classes for errors from these statements, as through its cursors.
        with connection.wrap_database_errors, stream:
            for lines in chunks(now):
                # A chunk with a keyed job goes through unique.sql. The test may match
                # a line without a key (its arguments hold the words), which that path
                # schedules as any other: never the reverse.
                keyed = any('"unique_key"' in line for line in lines)
                sent.append(_send_lines(raw, keyed_sql if keyed else sql, lines))
        ids: list[int] = []
        for chunk in sent:  # the pipeline has ended: every chunk's result is in
            with chunk:
                row = chunk.fetchone()
            assert row is not None  # noqa: S101 - the function returns one row
            ids.extend(row[0])
    return ids


def _send_lines(raw: psycopg.Connection[Any], sql: str, lines: list[str]) -> psycopg.Cursor[Any]:
    # A cursor per chunk: in pipeline mode each keeps its own result until read.
    cursor = psycopg.Cursor(raw)
    cursor.execute(sql, ["\n".join(lines)])
    return cursor


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
