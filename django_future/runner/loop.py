"""Claiming and running due jobs.

A runner registers itself (``RunnerProcess``) with a lease that a heartbeat
thread renews on its own connection. Each pass it

1. recovers jobs whose runner is gone (``abandoned`` or ``released``), then
   retries or fails them by their policy;
2. appends ``expired`` to scheduled jobs whose window closed;
3. claims due jobs with ``FOR UPDATE SKIP LOCKED``, appending ``started`` to
   each (a batch starts together, in one statement), calls each outside any
   transaction (inside one for ``atomic`` jobs), and appends ``completed`` or
   ``failed`` (then ``retry`` if attempts are left). Plain completions go with
   the next claim, in the same round trip and transaction; jobs of a batch
   not called when the runner stops are handed back (``released``).

Any number of runners can work at once: a job's ``scheduled -> running`` step
happens in exactly one of them, and while a runner's lease is renewed no
other runner touches its jobs, however long they run.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import psycopg
from django.db import (
    DEFAULT_DB_ALIAS,
    DatabaseError,
    InterfaceError,
    OperationalError,
    connection,
    connections,
    models,
    transaction,
)
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models.base import ModelState
from django.db.models.signals import post_init, pre_init
from django.utils import timezone

from django_future import config, ledger
from django_future.callables import import_callable
from django_future.models import EventKind, ScheduledJob
from django_future.retries import backoff
from django_future.sql import query

__all__ = ["DatabaseLostError", "JobFailedError", "JobIds", "RunReport", "Runner", "run_jobs"]

logger = logging.getLogger("django_future.runner")

_IDLE = psycopg.pq.TransactionStatus.IDLE
_TIMESTAMPTZ = psycopg.adapters.types["timestamptz"].oid

# In a batch, completions wait for the next claim, but not longer than this many
# seconds when the batch's jobs are slow.
FLUSH_AFTER = 1.0


class JobFailedError(Exception):
    """A job failed for good (no retry left) and the run stopped there."""

    def __init__(self, job: ScheduledJob, error: str) -> None:
        self.job = job
        self.error = error
        super().__init__(f"job {job.pk} ({job.callable_name}) failed; the run stopped there")


class DatabaseLostError(Exception):
    """The runner lost its database connection and stopped; nothing it recorded is lost."""

    def __init__(self, cause: BaseException, job: ScheduledJob | None) -> None:
        self.job = job
        where = (
            f" while job {job.pk} ({job.callable_name}) was in hand; its outcome could not be "
            "recorded, so the next runner will find it abandoned and retry or fail it by its "
            "policy"
            if job is not None
            else ""
        )
        super().__init__(f"lost the database connection{where} ({_one_line(cause)})")


# How many ids a RunReport keeps per outcome (the most recent); it counts all of them.
REPORT_IDS = 1_000


class JobIds(list[int]):
    """The ids of the last ``REPORT_IDS`` jobs with one outcome, and how many jobs had it
    in all (``total``). A runner may work for weeks: a list of every id would grow by
    about 40 bytes per job for as long as it runs."""

    __slots__ = ("total",)

    def __init__(self, ids: Iterable[int] = ()) -> None:
        super().__init__()
        self.total = 0
        self.extend(ids)

    def append(self, job_id: int) -> None:  # once per job: kept apart from extend
        super().append(job_id)
        self.total += 1
        if len(self) > REPORT_IDS:
            del self[0]

    def extend(self, ids: Iterable[int]) -> None:
        before = len(self)
        super().extend(ids)
        self.total += len(self) - before
        if len(self) > REPORT_IDS:
            del self[:-REPORT_IDS]

    def __iadd__(self, ids: Iterable[int]) -> JobIds:  # type: ignore[override,misc]
        self.extend(ids)
        return self

    def withdraw(self, job_id: int) -> None:
        """Take back one job counted here (its id too, if it is still kept)."""
        self.total -= 1
        if job_id in self:
            self.remove(job_id)


@dataclass(slots=True)
class RunReport:
    """What one run did: for each outcome, how many jobs had it (``report.completed.total``)
    and the ids of the last ``REPORT_IDS`` of them (``report.completed``, oldest first)."""

    completed: JobIds = field(default_factory=JobIds)
    failed: JobIds = field(default_factory=JobIds)
    retried: JobIds = field(default_factory=JobIds)
    expired: JobIds = field(default_factory=JobIds)
    deleted: JobIds = field(default_factory=JobIds)
    abandoned: JobIds = field(default_factory=JobIds)  # found from dead runners
    released: JobIds = field(default_factory=JobIds)

    @property
    def ran(self) -> int:
        return self.completed.total + self.failed.total + self.retried.total

    def __str__(self) -> str:
        parts = [
            f"{self.completed.total} completed",
            f"{self.failed.total} failed",
            f"{self.expired.total} expired",
        ]
        for name in ("retried", "deleted", "abandoned", "released"):
            if total := getattr(self, name).total:
                parts.append(f"{total} {name}")
        return ", ".join(parts)


class Heartbeat(threading.Thread):
    """Renews a runner's lease every third of it, on a connection of its own."""

    def __init__(self, runner_id: int, lease: dt.timedelta) -> None:
        super().__init__(name=f"django-future-heartbeat-{runner_id}", daemon=True)
        self.runner_id = runner_id
        self.lease = lease
        self._done = threading.Event()
        self._conn: psycopg.Connection[Any] | None = None

    def _connect(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = _new_connection()
        return self._conn

    def run(self) -> None:
        while not self._done.wait(self.lease.total_seconds() / 3):
            try:
                params = {"lease": self.lease, "runner_id": self.runner_id}
                self._connect().execute(query("heartbeat"), params)
            except psycopg.Error as exc:
                # The lease runs out if this goes on; the main thread finds out
                # for itself when it next talks to the database.
                logger.warning("runner %s: heartbeat failed: %s", self.runner_id, exc)
                self._conn = None

    def stop(self, *, mark_stopped: bool = False) -> None:
        """Stop renewing; with ``mark_stopped``, also tell others this runner is gone."""
        self._done.set()
        if self.is_alive():
            self.join(timeout=5)
        if mark_stopped:
            try:
                self._connect().execute(query("stop_runner"), {"runner_id": self.runner_id})
            except psycopg.Error as exc:
                logger.warning("runner %s: could not record its stop: %s", self.runner_id, exc)
        if self._conn is not None:
            self._conn.close()


@contextlib.contextmanager
def _drain_on_signals(runner: Runner) -> Iterator[None]:
    """While a runner runs in the main thread: the first SIGTERM or SIGINT asks it to
    stop (finish the job in hand, hand back the rest, return its report). A second one
    exits at once when ``runner.exit_on_second_signal`` (runscheduledjobs), and otherwise
    gets the handler that was there before (Ctrl-C in a shell raises KeyboardInterrupt).

    Python's own SIGINT handler raises KeyboardInterrupt wherever the main thread is,
    even inside a finaliser, which swallows it ("Exception ignored in ..."): one Ctrl-C
    could then be lost. Handled here, the first one always starts the drain."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous: dict[int, Any] = {}

    def handle(signum: int, frame: FrameType | None) -> None:
        if not runner.stopping:
            os.write(
                2, b"django_future: stopping after the job in hand (signal again to exit now)\n"
            )
            runner.request_stop()
            return
        if runner.exit_on_second_signal:
            os.write(2, b"django_future: second signal, exiting at once\n")
            os._exit(128 + signum)
        before = previous.get(signum)
        if callable(before):
            before(signum, frame)
        elif before != signal.SIG_IGN:
            signal.signal(signum, signal.SIG_DFL)
            signal.raise_signal(signum)

    for caught in (signal.SIGTERM, signal.SIGINT):
        previous[caught] = signal.signal(caught, handle)
    try:
        yield
    finally:
        for signum, before in previous.items():
            signal.signal(signum, before)


def _new_connection() -> psycopg.Connection[Any]:
    """A fresh autocommit connection to Django's default database, outside Django's pool."""
    conn = connection.get_new_connection(connection.get_connection_params())
    conn.autocommit = True
    return conn


class Runner:
    """Runs due jobs: one pass (cron), or as a long-running worker. Holds no state that
    matters between runs: everything it does is in the ledger."""

    def __init__(
        self,
        *,
        delete_completed: bool = False,
        ignore_errors: bool = False,
        now: dt.datetime | None = None,
        batch_size: int = 1,
        max_jobs: int | None = None,
        time_limit: float | None = None,
        worker: bool = False,
        lease: dt.timedelta | None = None,
        identity: str | None = None,
        echo: Callable[[str], None] | None = None,
        exit_on_second_signal: bool = False,
    ) -> None:
        if now is not None and timezone.is_naive(now):
            now = timezone.make_aware(now, timezone.get_current_timezone())
        if batch_size < 1:
            raise ValueError(f"batch_size must be 1 or more, not {batch_size}")
        self.delete_completed = delete_completed
        self.ignore_errors = ignore_errors
        self.now = now
        self.batch_size = batch_size
        self.max_jobs = max_jobs
        self.time_limit = time_limit
        self.worker = worker
        self.lease = lease or config.lease()
        self._prepare = config.prepared_statements()
        self.identity = identity or ledger.runner_identity()
        # Called with one line for each job's start and outcome (runscheduledjobs -v 2
        # prints them), besides the log records, whatever the project's LOGGING says.
        self.echo = echo
        self.exit_on_second_signal = exit_on_second_signal
        self._due_by: dt.datetime | None = None  # a pass: when it started; see _register
        self.runner_id: int | None = None
        self._backend_pid: int | None = None  # recorded on "started", for pg_stat_activity
        self._stop = threading.Event()
        self._heartbeat: Heartbeat | None = None
        self._listener: psycopg.Connection[Any] | None = None
        self._cursor: psycopg.Cursor[Any] | None = None  # see _send
        # Django's connection for this thread, looked up once: each use of the
        # django.db.connection proxy looks it up again, in a thread- and
        # context-local store, which was a tenth of a runner's CPU per job (py-spy).
        self._db: BaseDatabaseWrapper = connections[DEFAULT_DB_ALIAS]
        self._unstarted: list[int] = []  # started with the batch, not called yet
        self._in_hand: ScheduledJob | None = None
        # Plain jobs' completions, sent with the runner's next claim (one round trip
        # and one commit for a whole batch); see _claim.
        self._unrecorded: list[tuple[ScheduledJob, str | None, float]] = []
        self._unrecorded_since = 0.0
        self._report = RunReport()
        self._completing = False  # the job returned; its outcome is being recorded
        self._called_at = 0.0  # when the job in hand was called (time.monotonic)
        self._started_at = 0.0
        self._last_upkeep = -float("inf")

    # --- control -----------------------------------------------------------------------

    def request_stop(self) -> None:
        """Finish the job in hand, hand back the rest, and return (safe from a signal handler)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def _say(self, level: int, message: str, *args: object) -> None:
        """Log one line about a job, and pass it to ``echo`` if the runner has one."""
        logger.log(level, message, *args)
        if self.echo is not None:
            self.echo(message % args)

    def _out_of_budget(self, report: RunReport) -> bool:
        if self._stop.is_set():
            return True
        if self.max_jobs is not None and report.ran >= self.max_jobs:
            return True
        elapsed = time.monotonic() - self._started_at
        return self.time_limit is not None and elapsed >= self.time_limit

    # --- the run -----------------------------------------------------------------------

    def run(self) -> RunReport:
        """Run what was due when the run started (or, as a worker, until stopped or out
        of budget).

        Raises JobFailedError at the first final failure unless ignoring errors,
        and DatabaseLostError if the database goes away.
        """
        report = self._report = RunReport()
        self._db = connections[DEFAULT_DB_ALIAS]  # this thread's, if another made the runner
        self._started_at = time.monotonic()
        with _drain_on_signals(self):
            return self._run(report)

    def _run(self, report: RunReport) -> RunReport:
        try:
            self._register()
            if self.worker:
                # Listen before the first claim: a job scheduled after that claim
                # then wakes the worker, however soon it commits.
                self._listen()
            while not self._out_of_budget(report):
                self._upkeep(report)
                claimed = self._claim(report)
                if claimed:
                    self._run_batch(claimed, report)
                elif self.worker:
                    self._sleep()
                else:
                    break
            if not self.worker and not self._stop.is_set():
                report.expired += self.expire()
        except DatabaseLostError:
            self._finish(lost=True)
            raise
        except (OperationalError, InterfaceError, psycopg.OperationalError) as exc:
            # Raised by the runner's own statements (a job's errors are caught in
            # execute): the connection is gone, or the server is.
            self._finish(lost=True)
            raise DatabaseLostError(exc, self._in_hand) from exc
        except BaseException:
            self._finish()
            raise
        self._finish()
        return report

    def _register(self) -> None:
        params: dict[str, Any] = {
            "hostname": socket.gethostname(),
            "pid": os.getpid(),
            "identity": self.identity,
            "lease": self.lease,
        }
        # The runner's first statement: before migrate, it says to migrate.
        with config.tables_needed(), connection.cursor() as cursor:
            cursor.execute(query("register_runner"), params)
            self.runner_id, self._backend_pid, registered_at = cursor.fetchone()
        # A pass (not a worker) takes only the jobs due when it started, as the seed's
        # run_jobs(now) did: jobs that fall due meanwhile (retries, a job that schedules
        # itself again) wait for the next pass, so that every pass ends. Expiry is still
        # checked on the clock (or at ``now``, if given).
        self._due_by = None if self.now is not None or self.worker else registered_at

    def _finish(self, *, lost: bool = False) -> None:
        """Hand back unstarted claims and sign off; on a lost database, sign off
        through the heartbeat's connection so others recover our jobs at once."""
        if not lost:
            try:
                self._record_completions()
                self._release("runner stopped before calling it")
                if self.runner_id is not None:
                    with connection.cursor() as cursor:
                        cursor.execute(query("stop_runner"), {"runner_id": self.runner_id})
            except DatabaseError:
                lost = True
        if self._heartbeat is not None:
            self._heartbeat.stop(mark_stopped=lost)
            self._heartbeat = None
        elif lost and self.runner_id is not None:
            Heartbeat(self.runner_id, self.lease).stop(mark_stopped=True)
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    def _upkeep(self, report: RunReport) -> None:
        """Recover jobs of dead runners and expire overdue ones, once per lease period."""
        if time.monotonic() - self._last_upkeep < self.lease.total_seconds():
            return
        self._last_upkeep = time.monotonic()
        self.recover(report)
        report.expired += self.expire()

    def recover(self, report: RunReport) -> None:
        """Append ``abandoned``/``released`` to jobs whose runner is gone; retry by policy."""
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(query("recover"), {"runner": self.identity})
            found = cursor.fetchall()
            for job_id, kind in found:
                if kind == EventKind.RELEASED:
                    report.released.append(job_id)
                    continue
                report.abandoned.append(job_id)
                job = ScheduledJob.objects.get(pk=job_id)
                self._say(logging.WARNING, "job %s (%s): %s", job_id, job.callable_name, job.error)
                if self._retry(job, job.error or "abandoned"):
                    report.retried.append(job_id)

    def expire(self) -> list[int]:
        """Append ``expired`` to scheduled jobs whose window closed before now."""
        with connection.cursor() as cursor:
            cursor.execute(query("expire"), {"now": self.now, "runner": self.identity})
            expired = [row[0] for row in cursor.fetchall()]
        for job_id in expired:
            self._say(logging.INFO, "job %s expired before it could run", job_id)
        return expired

    def _claim(self, report: RunReport) -> list[ScheduledJob]:
        limit = self.batch_size
        if self.max_jobs is not None:
            limit = min(limit, self.max_jobs - report.ran)
        if limit <= 0:
            return []
        params: dict[str, Any] = {
            "now": self.now,
            "due_by": self._due_by,
            "runner": self.identity,
            "runner_id": self.runner_id,
            "limit": limit,
        }
        # Claims and returns what this runner now holds: only what it just claimed,
        # since it claims when its hands are empty.
        if not self._unrecorded:
            cursor = self._execute("claim", {**params, "kind": EventKind.STARTED})
            jobs = _jobs_from(cursor, self._db.timezone)
        else:
            # The unrecorded completions go first, in the same statement: one round
            # trip and one commit, and they are durable before any new job starts.
            done = self._unrecorded
            self._in_hand = done[0][0]  # if the connection is lost now, the error names a job
            params["done"] = _completions_json(done)
            rows = _jobs_from(self._execute("complete_and_claim", params), self._db.timezone)
            # Besides the jobs it claimed, the statement returns the row of each job
            # whose completion it refused (recovered elsewhere meanwhile).
            jobs = [job for job in rows if self._holds(job)]
            # Nearly always none: look again only if some row was not kept.
            refused = (
                {job.pk for job in rows if not self._holds(job)} if len(jobs) < len(rows) else set()
            )
            self._settle(done, refused)
        if not jobs:
            return []
        if self._heartbeat is None and self.runner_id is not None:
            self._heartbeat = Heartbeat(self.runner_id, self.lease)
            self._heartbeat.start()
        return jobs

    def _holds(self, job: ScheduledJob) -> bool:
        return job.runner_process_id == self.runner_id and job.status in (
            ScheduledJob.STATUS_RUNNING,
            ScheduledJob.STATUS_CLAIMED,
        )

    def _run_batch(self, jobs: list[ScheduledJob], report: RunReport) -> None:
        """Call the jobs claimed together, in order. What is left when the runner
        stops is handed back: started with the batch, but never called."""
        self._unstarted = [job.pk for job in jobs]
        for job in jobs:
            if self._out_of_budget(report):
                break
            self._unstarted.remove(job.pk)
            if self._unrecorded and time.monotonic() - self._unrecorded_since >= FLUSH_AFTER:
                self._record_completions()  # a slow batch: do not keep finished work unsaid
            self.execute(job, report)
        self._release("runner stopped before calling it")

    def _record_completions(self) -> None:
        """Send the unrecorded completions on their own."""
        if not self._unrecorded:
            return
        done = self._unrecorded
        self._in_hand = done[0][0]
        cursor = self._execute("complete", self._completion_params(done))
        recorded = {row[0] for row in cursor.fetchall()}
        self._settle(done, {job.pk for job, _, _ in done} - recorded)

    def _execute(self, name: str, params: dict[str, Any]) -> psycopg.Cursor[Any]:
        """Execute the named query on Django's connection, prepared (server-side,
        unless DJANGO_FUTURE_PREPARED_STATEMENTS is False): the claim and the
        completion are then not parsed and planned again for every job. Two failures
        of a prepared statement are handled here; in both, the failed statement
        wrote nothing:

        - a pooler that does not keep prepared statements: the runner says so once
          and goes on without them;
        - a statement outdated by a migration run meanwhile (a column of the job
          table dropped or changed type): the runner prepares its statements again.
        """
        try:
            return self._send(name, params)
        except (
            psycopg.errors.InvalidSqlStatementName,
            psycopg.errors.FeatureNotSupported,
            psycopg.errors.DatatypeMismatch,
            psycopg.errors.UndefinedColumn,
        ) as exc:
            raw = _raw_connection(self._db)
            if not self._prepare or raw.info.transaction_status != _IDLE:
                raise  # not ours to mend, or inside the caller's transaction, now aborted
            if isinstance(exc, psycopg.errors.InvalidSqlStatementName):
                logger.warning(
                    "prepared statements do not last on this connection (a pooler in "
                    "transaction mode?); this runner goes on without them. Set "
                    "DJANGO_FUTURE_PREPARED_STATEMENTS = False to skip the attempt."
                )
                self._prepare = False
            else:
                logger.info("the job table changed; preparing the runner's statements again")
                raw.execute("DEALLOCATE ALL")  # psycopg forgets its own record of them too
            return self._send(name, params)

    def _send(self, name: str, params: dict[str, Any]) -> psycopg.Cursor[Any]:
        raw = _raw_connection(self._db)
        if self._prepare and raw.prepare_threshold is None:
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
            # or [c]), and _jobs_from sets Django's time zone as Django's loader does.
            loader = psycopg.adapters.get_loader(_TIMESTAMPTZ, psycopg.pq.Format.TEXT)
            if loader is not None:  # else Django's stays, and _jobs_from changes nothing
                cursor.adapters.register_loader(_TIMESTAMPTZ, loader)
        cursor.execute(_statement(name), params, prepare=self._prepare)
        return cursor

    def _completion_params(
        self, done: list[tuple[ScheduledJob, str | None, float]]
    ) -> dict[str, Any]:
        return {
            "done_ids": [job.pk for job, _, _ in done],
            "done_seqs": [job.last_seq for job, _, _ in done],
            "done_values": [value for _, value, _ in done],
            "done_seconds": [seconds for _, _, seconds in done],
            "runner": self.identity,
        }

    def _settle(
        self, done: list[tuple[ScheduledJob, str | None, float]], refused: set[int]
    ) -> None:
        """The completions in ``done`` are sent: all recorded but those of ``refused``."""
        self._unrecorded = []
        self._in_hand = None
        if not refused:
            return
        for job, _, _ in done:
            if job.pk not in refused:
                continue
            # The attempt was recovered elsewhere after this runner's lease lapsed
            # (a completion is appended only at the seq this runner saw).
            self._report.completed.withdraw(job.pk)  # counted when its call returned
            self._say(
                logging.WARNING,
                "job %s (%s): the attempt was taken from this runner (its lease lapsed) "
                "and recovered elsewhere; its completion is not recorded",
                job.pk,
                job.callable_name,
            )

    def _release(self, reason: str) -> None:
        if not self._unstarted:
            return
        params: dict[str, Any] = {
            "runner": self.identity,
            "runner_id": self.runner_id,
            "job_ids": self._unstarted,
            "reason": reason,
        }
        with connection.cursor() as cursor:
            cursor.execute(query("release"), params)
            released = [row[0] for row in cursor.fetchall()]
        self._unstarted = []
        if released:
            self._say(
                logging.INFO,
                "handed back %s jobs of the batch, not called: %s",
                len(released),
                released,
            )

    def _sleep(self) -> None:
        """Wait for NOTIFY django_future, the next due job, or the next upkeep."""
        with connection.cursor() as cursor:
            cursor.execute(query("next_due"))
            (next_due,) = cursor.fetchone()
        timeout = config.poll_interval().total_seconds()
        timeout = min(timeout, self.lease.total_seconds())
        if next_due is not None:
            timeout = min(timeout, max(float(next_due), 0.0))
        if self.time_limit is not None:
            timeout = min(timeout, self.time_limit - (time.monotonic() - self._started_at))
        listener = self._listen()
        deadline = time.monotonic() + max(timeout, 0.0)
        # Short waits, so that a stop request is noticed within a second.
        while not self._stop.is_set() and (left := deadline - time.monotonic()) > 0:
            if any(True for _ in listener.notifies(timeout=min(left, 1.0), stop_after=1)):
                return

    def _listen(self) -> psycopg.Connection[Any]:
        if self._listener is None or self._listener.closed:
            self._listener = _new_connection()
            self._listener.execute("LISTEN django_future")
        return self._listener

    # --- one job ---------------------------------------------------------------------

    def execute(self, job: ScheduledJob, report: RunReport) -> None:
        """Run a started job and append its outcome (and a retry, if it has attempts left).

        A plain job's completion is kept for the runner's next claim (``run`` sends
        whatever is left when it ends)."""
        self._in_hand = job
        self._say(
            logging.INFO, "job %s (%s) started, attempt %s", job.pk, job.callable_name, job.attempts
        )
        self._completing = False
        self._called_at = time.monotonic()
        try:
            value = self._call_and_complete(job)
        except _TakenError as exc:
            self._say(logging.WARNING, "job %s (%s): %s", job.pk, job.callable_name, exc)
        except (OperationalError, InterfaceError) as exc:
            if self._completing:  # recording the outcome failed: the connection is gone
                raise DatabaseLostError(exc, job) from exc
            self._record_failure(job, report)
        except BaseException:
            self._record_failure(job, report)
        else:
            report.completed.append(job.pk)
            if self.delete_completed:
                report.deleted.append(job.pk)
            self._say(logging.INFO, "job %s (%s) completed: %s", job.pk, job.callable_name, value)
        # Left set if an exception escapes, so that DatabaseLostError can name the job.
        self._in_hand = None

    def _call_and_complete(self, job: ScheduledJob) -> str | None:
        func, args = resolve(job)
        if job.atomic:
            # The job's writes and its completion commit together, or not at all.
            with transaction.atomic():
                result = func(*args, **job.kwargs)
                return self._complete(job, result)
        if self._db.in_atomic_block:
            # Called inside someone's transaction (a test, a shell): keep a job's
            # database error from poisoning it, as autocommit would.
            with transaction.atomic():
                result = func(*args, **job.kwargs)
        else:
            result = func(*args, **job.kwargs)
        if not self.delete_completed:
            # One statement, atomic by itself: it goes with the runner's next claim.
            value = None if result is None else str(result)
            if not self._unrecorded:
                self._unrecorded_since = time.monotonic()
            self._unrecorded.append((job, value, self._call_seconds()))
            return value
        with transaction.atomic():
            return self._complete(job, result)

    def _call_seconds(self) -> float:
        """How long the job in hand has run, by this runner's clock. Outcome events carry
        it: in a batch, events are written per batch, so their times cannot say it."""
        return round(time.monotonic() - self._called_at, 6)

    def _append_mine(self, job: ScheduledJob, kind: EventKind, data: dict[str, Any]) -> None:
        """Append the outcome of the attempt this runner started, and nothing else: if the
        job moved on meanwhile (its lease lapsed and another runner recovered it), the
        outcome belongs to a lost attempt and is refused."""
        try:
            ledger.append(job.pk, kind, data, runner=self.identity, only_at_seq=job.last_seq)
        except (ledger.JobStateError, ledger.JobGoneError) as exc:
            raise _TakenError(
                f"the attempt was taken from this runner (its lease lapsed) and recovered "
                f"elsewhere; its {kind} is not recorded ({exc})"
            ) from exc

    def _complete(self, job: ScheduledJob, result: object) -> str | None:
        self._completing = True
        value = None if result is None else str(result)
        data = {"return_value": value, "seconds": self._call_seconds()}
        self._append_mine(job, EventKind.COMPLETED, data)
        if self.delete_completed:
            ledger.append(
                job.pk, EventKind.DELETED, {"reason": "--delete-completed"}, runner=self.identity
            )
        return value

    def _record_failure(self, job: ScheduledJob, report: RunReport) -> None:
        """Called from an ``except`` block: record the exception being handled."""
        exc = _current_exception()
        error = traceback.format_exc()
        summary = _one_line(exc)
        try:
            with transaction.atomic():
                self._append_mine(
                    job,
                    EventKind.FAILED,
                    {
                        "error": error,
                        "exception": summary,
                        "attempt": job.attempts,
                        "seconds": self._call_seconds(),
                    },
                )
                retried = self._retry(ScheduledJob.objects.get(pk=job.pk), summary)
        except _TakenError as taken:
            self._say(
                logging.WARNING,
                "job %s (%s) failed: %s; %s",
                job.pk,
                job.callable_name,
                summary,
                taken,
            )
            return
        if retried:
            report.retried.append(job.pk)
            self._say(
                logging.WARNING,
                "job %s (%s) failed, will retry: %s",
                job.pk,
                job.callable_name,
                summary,
            )
            return
        report.failed.append(job.pk)
        stops_the_run = isinstance(exc, Exception) and not self.ignore_errors
        if not stops_the_run:
            # A failure that stops the run is reported once, by whoever catches
            # JobFailedError (runscheduledjobs prints it with its traceback).
            self._say(logging.WARNING, "job %s (%s) failed: %s", job.pk, job.callable_name, summary)
        if not isinstance(exc, Exception):
            raise exc  # KeyboardInterrupt, SystemExit: recorded, then honoured
        if stops_the_run:
            raise JobFailedError(job, error) from exc

    def _retry(self, job: ScheduledJob, reason: str) -> bool:
        """Append ``retry`` if the failed job has attempts left; say whether it did."""
        if job.attempts >= job.max_attempts or job.retry_delay is None:
            return False
        delay = backoff(job.attempts, job.retry_delay, job.retry_max_delay or job.retry_delay)
        params: dict[str, Any] = {
            "job_id": job.pk,
            "runner": self.identity,
            "delay": delay,
            "reason": reason,
        }
        with connection.cursor() as cursor:
            cursor.execute(query("retry"), params)
            return cursor.fetchone() is not None


def _jobs_from(cursor: Any, tz: dt.tzinfo | None) -> list[ScheduledJob]:
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


def _completions_json(done: list[tuple[ScheduledJob, str | None, float]]) -> str:
    """The completions sent with a claim, ``[[id, seq, return value, seconds], ...]``,
    as JSON written out: json.dumps sets up an encoder for every call, which was nearly
    a tenth of the runner's own time per job (py-spy). Strings are escaped by the
    function json.dumps uses: the text is json.dumps's, without the spaces."""
    items = (
        f"[{job.pk},{job.last_seq},{'null' if value is None else _json_string(value)},{seconds!r}]"
        for job, value, seconds in done
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
    see _send). Worked out once: reading a claimed job is on every job's path."""
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


# The runner's statements that return job rows (as SELECT * FROM a function).
_RETURNS_JOBS = frozenset({"claim", "complete_and_claim"})


@functools.cache
def _statement(name: str) -> str:
    """The named query; where it returns jobs, with the job table's columns listed in
    the model's field order in place of ``*``, so that _jobs_from reads them as they
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


class _TakenError(Exception):
    """The job is no longer this runner's to finish."""


def _current_exception() -> BaseException:
    exc = sys.exc_info()[1]
    assert exc is not None  # noqa: S101 - only called from except blocks
    return exc


def resolve(job: ScheduledJob) -> tuple[Callable[..., Any], list[Any]]:
    """The callable to run and its positional arguments, as django-future 0.2 built them.

    A dotted path gets the content object (if any) first; a bare name is a
    method of the content object. A ``@job_as_parameter`` handler gets the
    job before everything else.
    """
    args = list(job.args)
    content_object = None
    if job.content_type_id is not None:
        content_object = job.content_object
        if content_object is None:
            raise LookupError(
                f"the job's content object ({_content_label(job)} with pk {job.object_id!r}) "
                "no longer exists"
            )
    if "." in job.callable_name:
        func = import_callable(job.callable_name)
        if content_object is not None:
            args.insert(0, content_object)
    else:
        func = getattr(content_object, job.callable_name, None)
        if not callable(func):
            raise AttributeError(
                f"{type(content_object).__name__} has no method {job.callable_name!r}"
            )
    if getattr(func, "job_as_parameter", False):
        args.insert(0, job)
    return func, args


def _content_label(job: ScheduledJob) -> str:
    ct = job.content_type
    return f"{ct.app_label}.{ct.model}" if ct is not None else "?"


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def run_jobs(
    delete_completed: bool = False,
    ignore_errors: bool = False,
    now: dt.datetime | None = None,
) -> RunReport:
    """Expire overdue jobs, then claim and run every job that was due when the run
    started, and return (django-future's ``run_jobs``). Jobs that fall due meanwhile,
    retries among them, are left for the next run.

    ``now`` stands in for the current time in the due and expiry checks;
    ``None`` means the database's clock (due: when the run started; expiry: at each
    claim). Without ``ignore_errors`` the first failure with no retry left is recorded
    and then raised as JobFailedError. The first SIGINT or SIGTERM (in the main thread)
    finishes the job in hand and returns.
    """
    return Runner(delete_completed=delete_completed, ignore_errors=ignore_errors, now=now).run()
