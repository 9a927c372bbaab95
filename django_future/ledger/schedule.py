"""A job's first event, ``scheduled``: one job at a time, or many in pipelined chunks.

The scheduler checks and encodes what it is given; this module only sends it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Iterable
from typing import Any

import psycopg
from django.db import connection, transaction

from django_future import config
from django_future.sql import query

__all__ = ["schedule", "schedule_chunks"]


def schedule(
    data: str,
    *,
    start_at: dt.datetime | None,
    start_in: dt.timedelta | None,
    end_at: dt.datetime | None,
    end_in: dt.timedelta | None,
) -> int | None:
    """Append one job's ``scheduled`` event (``data``, its JSON) and return the new job's
    id; ``None``, with nothing written, if the window closes before it opens.

    A time is either absolute (``*_at``) or relative (``*_in``: the start from the
    database's clock, the end from the start)."""
    params: dict[str, Any] = {
        "start_at": start_at,
        "start_in": start_in,
        "end_at": end_at,
        "end_in": end_in,
        "data": data,
    }
    with connection.cursor() as cursor, config.tables_needed():
        cursor.execute(query("schedule"), params)
        row = cursor.fetchone()
    return None if row is None else int(row[0])


def schedule_chunks(chunks: Callable[[dt.datetime], Iterable[list[str]]]) -> list[int]:
    """Append the ``scheduled`` events of many jobs in one transaction; their ids, in order.

    ``chunks(now)`` yields lists of lines, each the JSON of one job's event, with times
    made absolute from ``now``, one reading of the database's clock. Each chunk is sent
    in pipeline mode as soon as it is yielded, so the database appends and folds it
    while the caller checks and encodes the next. (With a libpq older than 14, which has
    no pipeline mode, the chunks go one after another.) An exception from ``chunks``
    rolls everything back."""
    sent: list[psycopg.Cursor[Any]] = []
    with config.tables_needed(), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT statement_timestamp()")
            (now,) = cursor.fetchone()
        raw = connection.connection
        sql = query("schedule_lines")
        # Pipeline mode needs libpq 14 or later (psycopg's binary wheels bring their
        # own). With an older one the chunks go one after another, without overlap.
        stream = raw.pipeline() if psycopg.Pipeline.is_supported() else contextlib.nullcontext()
        # Django's exception classes for errors from these statements, as through its cursors.
        with connection.wrap_database_errors, stream:
            for lines in chunks(now):
                sent.append(_send_lines(raw, sql, lines))
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
