"""The runner's per-job statements: its claim, and its completions sent alone or with
the next claim (``complete_and_claim``), which start and finish jobs by appending
their ``started`` and ``completed`` events.

They are the hot path: a runner sends one of them per job (per batch, with
``--batch-size``), so this module holds them apart from the rest of the ledger, on
the psycopg connection under Django's, through one cursor per connection and, unless
told not to, as prepared statements. A runner holds one ``Wire``; nothing else uses
it. The measurements behind each choice (py-spy, ``bench/compare.py``) are in the
comments where the choice is made.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from django.db import DEFAULT_DB_ALIAS, connection, models
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models.base import ModelState
from django.db.models.signals import post_init, pre_init

from django_future.models import EventKind, ScheduledJob
from django_future.sql import query

__all__ = ["Completion", "Wire"]

# The runner's logger: these lines are about the runner, whichever module says them.
logger = logging.getLogger("django_future.runner")

_IDLE = psycopg.pq.TransactionStatus.IDLE
_TIMESTAMPTZ = psycopg.adapters.types["timestamptz"].oid

#: A plain job's completion as the runner keeps it until it is sent: the job, its
#: return value as text, how many seconds its call took, and its return value as JSON
#: text (None when there is none: the callable returned None, or JSON cannot carry it).
Completion = tuple[ScheduledJob, str | None, float, str | None]


class Wire:
    """The runner's claim and completions, on ``db``'s connection (Django's connection
    object for the runner's thread, looked up once by the runner).

    ``prepare``: prepare the statements (DJANGO_FUTURE_PREPARED_STATEMENTS); turned off
    by the wire itself if the connection does not keep them (see ``execute``)."""

    def __init__(self, db: BaseDatabaseWrapper, *, prepare: bool) -> None:
        self.db = db
        self.prepare = prepare
        self._cursor: psycopg.Cursor[Any] | None = None  # see send

    def claim(self, params: dict[str, Any]) -> list[ScheduledJob]:
        """Start the first due jobs for the runner (``now``, ``due_by``, ``runner``,
        ``runner_id``, ``limit``, and ``queues`` and ``exclude_queues``, lists of queue
        names or None) and return them."""
        cursor = self.execute("claim", {**params, "kind": EventKind.STARTED})
        return jobs_from(cursor, self.db.timezone)

    def complete_and_claim(
        self, done: list[Completion], params: dict[str, Any]
    ) -> list[ScheduledJob]:
        """Record ``done``, then claim as ``claim`` does, in one statement: one round trip
        and one commit, and the completions are durable before any new job starts.
        Returns the claimed jobs, after the row of each job whose completion was refused
        (recovered elsewhere meanwhile: a completion is appended only at the seq the
        runner saw)."""
        params["done"] = _completions_json(done)
        return jobs_from(self.execute("complete_and_claim", params), self.db.timezone)

    def complete(self, done: list[Completion], *, runner: str) -> set[int]:
        """Record ``done`` on its own; the ids of the jobs whose completion was recorded."""
        params: dict[str, Any] = {
            "done_ids": [job.pk for job, *_ in done],
            "done_seqs": [job.last_seq for job, *_ in done],
            "done_values": [value for _, value, _, _ in done],
            "done_seconds": [seconds for _, _, seconds, _ in done],
            "done_results": [result for *_, result in done],
            "runner": runner,
        }
        return {row[0] for row in self.execute("complete", params).fetchall()}

    def execute(self, name: str, params: dict[str, Any]) -> psycopg.Cursor[Any]:
        """Execute the named query on Django's connection, prepared (server-side,
        unless DJANGO_FUTURE_PREPARED_STATEMENTS is False): the claim and the
        completion are then not parsed and planned again for every job. Two failures
        of a prepared statement are handled here; in both, the failed statement
        wrote nothing:

        - a pooler that does not keep prepared statements, or shares server sessions
          between clients: the runner says so once and goes on without them;
        - a statement outdated by a migration run meanwhile (a column of the job
          table dropped or changed type): the runner prepares its statements again.
        """
        try:
            return self.send(name, params)
        except (
            psycopg.errors.InvalidSqlStatementName,
            psycopg.errors.DuplicatePreparedStatement,
            psycopg.errors.FeatureNotSupported,
            psycopg.errors.DatatypeMismatch,
            psycopg.errors.UndefinedColumn,
        ) as exc:
            raw = _raw_connection(self.db)
            if not self.prepare or raw.info.transaction_status != _IDLE:
                raise  # not ours to mend, or inside the caller's transaction, now aborted
            # Missing, or made by another client: the server session is not this runner's
            # own (PgBouncer in transaction mode shares them, and psycopg names every
            # connection's statements alike).
            shared = (
                psycopg.errors.InvalidSqlStatementName,
                psycopg.errors.DuplicatePreparedStatement,
            )
            if isinstance(exc, shared):
                logger.warning(
                    "prepared statements do not last on this connection (a pooler in "
                    "transaction mode?); this runner goes on without them. Set "
                    "DJANGO_FUTURE_PREPARED_STATEMENTS = False to skip the attempt."
                )
                self.prepare = False
            else:
                logger.info("the job table changed; preparing the runner's statements again")
                raw.execute("DEALLOCATE ALL")  # psycopg forgets its own record of them too
            return self.send(name, params)

    def send(self, name: str, params: dict[str, Any]) -> psycopg.Cursor[Any]:
        """Send the named query through the runner's cursor, and return the cursor."""
        raw = _raw_connection(self.db)
        if self.prepare and raw.prepare_threshold is None:
            # Django turns psycopg's preparing off (prepare_threshold None), which also
            # refuses prepare=True. A threshold never reached lets this runner prepare
            # its own statements while nothing else is prepared automatically.
            raw.prepare_threshold = sys.maxsize
        cursor = self._cursor
        if cursor is None or cursor.connection is not raw:
            # One cursor per connection, reused for every statement (each statement's
            # result is read before the next is sent).
            cursor = self._cursor = psycopg.Cursor(raw)
            # Django loads timestamps with its own subclass of psycopg's pure-Python
            # loader; this cursor keeps psycopg's own (compiled with psycopg[binary]
            # or [c]), and jobs_from sets Django's time zone as Django's loader does.
            loader = psycopg.adapters.get_loader(_TIMESTAMPTZ, psycopg.pq.Format.TEXT)
            if loader is not None:  # else Django's stays, and jobs_from changes nothing
                cursor.adapters.register_loader(_TIMESTAMPTZ, loader)
        cursor.execute(statement(name), params, prepare=self.prepare)
        return cursor


def jobs_from(cursor: Any, tz: dt.tzinfo | None) -> list[ScheduledJob]:
    """Model instances from the current result set of one of the statements that return
    jobs (see _statement: the job table's columns, in model field order); ``tz`` is the
    connection's time zone (``connection.timezone``)."""
    result = cursor.pgresult
    if result is None or result.nfields == 0:
        return []
    layout = _job_layout()
    if result.nfields != len(layout.attnames):
        raise RuntimeError(
            f"expected the {len(layout.attnames)} columns of the job model, got {result.nfields}"
        )
    # Model.__init__ only sets each field's attribute and sends pre_init and
    # post_init; with nobody listening, the runner sets the attributes itself
    # (a fifth of the time from_db takes: reading the claimed job is on every
    # job's path). The instance is the same either way.
    signalled = (pre_init.receivers or post_init.receivers) and (
        pre_init.has_listeners(ScheduledJob) or post_init.has_listeners(ScheduledJob)
    )
    jobs = []
    for row in cursor.fetchall():
        values = list(row)
        for i, decode in layout.decoded:
            if (value := values[i]) is not None:
                values[i] = decode(value)
        for i in layout.timestamps:
            # What Django's timestamp loader does after parsing: put the value in the
            # connection's time zone (None, naive, without USE_TZ).
            if (value := values[i]) is not None and value.tzinfo is not tz:
                values[i] = value.replace(tzinfo=tz)
        if signalled:
            jobs.append(ScheduledJob.from_db(DEFAULT_DB_ALIAS, layout.attnames, values))
            continue
        job = _new_job(ScheduledJob)
        job.__dict__.update(zip(layout.attnames, values, strict=True))
        state = job._state = ModelState()
        state.adding = False
        state.db = DEFAULT_DB_ALIAS
        jobs.append(job)
    return jobs


_new_job = object.__new__


def _completions_json(done: list[Completion]) -> str:
    """The completions sent with a claim, ``[[id, seq, return value, seconds], ...]``,
    with the result (JSON text already) as a fifth element where there is one, as JSON
    written out: json.dumps sets up an encoder for every call, which was nearly a tenth
    of the runner's own time per job (py-spy). Strings are escaped by the function
    json.dumps uses: the text is json.dumps's, without the spaces."""
    items = (
        f"[{job.pk},{job.last_seq},{'null' if value is None else _json_string(value)},{seconds!r}"
        f"{'' if result is None else ',' + result}]"
        for job, value, seconds, result in done
    )
    return f"[{','.join(items)}]"


_json_string = json.encoder.encode_basestring_ascii


def _json_value(text: str) -> Any:
    """json.loads(text), with the arguments most jobs have (PostgreSQL writes an empty
    jsonb array or object just so) made without the parser, which takes 1.5 µs even
    for those."""
    if text == "[]":
        return []
    if text == "{}":
        return {}
    return json.loads(text)


@dataclass(frozen=True)
class _JobLayout:
    columns: str  # the job table's columns in model field order, as a SELECT list
    attnames: list[str]
    decoded: list[tuple[int, Callable[[Any], Any]]]  # (index, the field's from_db_value)
    timestamps: list[int]


@functools.cache
def _job_layout() -> _JobLayout:
    """How the runner reads job rows: which columns, in what order, and the conversions
    the ORM would apply to them (JSON decoding, and Django's time zone for timestamps:
    see Wire.send). Worked out once: reading a claimed job is on every job's path."""
    fields = ScheduledJob._meta.concrete_fields
    decoded: list[tuple[int, Callable[[Any], Any]]] = []
    for i, f in enumerate(fields):
        from_db_value = getattr(f, "from_db_value", None)
        if isinstance(f, models.JSONField) and f.decoder is None:
            decoded.append((i, _json_value))  # what from_db_value makes of valid JSON
        elif from_db_value is not None and not isinstance(f, models.DateTimeField):
            decoded.append(
                (i, functools.partial(from_db_value, expression=None, connection=connection))
            )
    return _JobLayout(
        columns=", ".join(f'"{f.column}"' for f in fields),
        attnames=[f.attname for f in fields],
        decoded=decoded,
        timestamps=[i for i, f in enumerate(fields) if isinstance(f, models.DateTimeField)],
    )


# The statements that return job rows (as SELECT * FROM a function): the runner's, and
# schedule_job's ("schedule", sent by writes.schedule and read by jobs_from too).
_RETURNS_JOBS = frozenset({"claim", "complete_and_claim", "schedule"})


@functools.cache
def statement(name: str) -> str:
    """The named query; where it returns jobs, with the job table's columns listed in
    the model's field order in place of ``*``, so that jobs_from reads them as they
    come, without looking each column up by name for every claim."""
    text = query(name)
    if name in _RETURNS_JOBS:
        listed = text.replace("SELECT * FROM", f"SELECT {_job_layout().columns} FROM", 1)
        if listed == text:
            raise RuntimeError(f"query {name!r} no longer starts with SELECT * FROM")
        text = listed
    return text


def _raw_connection(db: BaseDatabaseWrapper) -> psycopg.Connection[Any]:
    """The psycopg connection under Django's, for the statement the runner sends per job:
    without Django's cursor wrapper, whose bookkeeping costs about as much as building
    the job, and with server-side binding, which Django's client-side cursors lack (and
    without which nothing can be prepared). psycopg's errors are handled where this is
    used."""
    raw: psycopg.Connection[Any] | None = db.connection
    if raw is None:  # ensure_connection's own test, without its check for an event loop
        db.ensure_connection()
        raw = db.connection
    assert raw is not None  # noqa: S101 - ensure_connection connects or raises
    return raw
