"""The runner's loop: register, upkeep, claim and run, sleep, stop.

``Runner.run`` registers the runner (``lease.py``), then, until it is done, out of
budget or asked to stop:

1. once per lease period, recovers jobs whose runner is gone and expires overdue
   ones (the upkeep); and makes the jobs of due periodic ticks, when one is due
   (``periodic.Ticker``, which sends no query otherwise);
2. claims due jobs, sending the completions it holds in the same statement (the
   ledger's ``Wire``), and hands each job to its ``Executor``; jobs of a batch not
   called when it stops are handed back (``released``);
3. as a worker, sleeps until a job is scheduled (NOTIFY), falls due, or the next
   upkeep, or the next periodic tick (``Sleeper``, listening on a connection of its own).

The first SIGTERM or SIGINT asks it to stop after the job in hand; it signs off
whatever happens, so that others recover what it leaves at once.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
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
)
from django.utils import timezone

from django_future import config, ledger, periodic
from django_future.models import ScheduledJob
from django_future.runner.executor import Executor
from django_future.runner.lease import Registration, Upkeep, new_connection
from django_future.runner.report import DatabaseLostError, RunReport, logger, say
from django_future.sql import query

__all__ = ["FLUSH_AFTER", "Runner", "Sleeper", "run_jobs"]


# In a batch, completions wait for the next claim, but not longer than this many
# seconds when the batch's jobs are slow.
FLUSH_AFTER = 1.0


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
        queues: Iterable[str] | None = None,
        exclude_queues: Iterable[str] | None = None,
    ) -> None:
        if now is not None and not isinstance(now, dt.datetime):
            raise TypeError(f"now must be a datetime or None, not {type(now).__name__} {now!r}")
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
        self.identity = identity or ledger.runner_identity()
        # Called with one line for each job's start and outcome (runscheduledjobs -v 2
        # prints them), besides the log records, whatever the project's LOGGING says.
        self.echo = echo
        self.exit_on_second_signal = exit_on_second_signal
        # The queues this runner takes jobs from (None: every queue), and those it
        # leaves out (None: none); the claim and the worker's sleep filter by both.
        self.queues = _queue_names(queues, "queues")
        self.exclude_queues = _queue_names(exclude_queues, "exclude_queues")
        self._due_by: dt.datetime | None = None  # a pass: when it started; see _register
        self.runner_id: int | None = None
        self._registration = Registration(self.identity, self.lease)
        self._stop = threading.Event()
        self._sleeper = Sleeper(self._stop)  # a worker's, between claims
        # Django's connection for this thread, looked up once (and again by run(), in
        # the thread that runs): each use of the django.db.connection proxy looks it up
        # again, in a thread- and context-local store, which was a tenth of a runner's
        # CPU per job (py-spy).
        db = connections[DEFAULT_DB_ALIAS]
        self._wire = ledger.Wire(db, prepare=config.prepared_statements())
        self._executor = Executor(
            identity=self.identity,
            delete_completed=delete_completed,
            ignore_errors=ignore_errors,
            echo=echo,
            db=db,
        )
        self._upkeep = Upkeep(self._executor, now=now, every=self.lease.total_seconds())
        self._ticker = periodic.Ticker(runner=self.identity)
        self._unstarted: list[int] = []  # started with the batch, not called yet
        self._report = RunReport()
        self._started_at = 0.0

    # --- control -----------------------------------------------------------------------

    def request_stop(self) -> None:
        """Finish the job in hand, hand back the rest, and return (safe from a signal handler)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

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
        # This thread's connection, if another thread made the runner.
        self._wire.db = self._executor.db = connections[DEFAULT_DB_ALIAS]
        self._started_at = time.monotonic()
        with _drain_on_signals(self):
            return self._run(report)

    def _run(self, report: RunReport) -> RunReport:
        try:
            self._register()
            if self.worker:
                # Listen before the first claim: a job scheduled after that claim
                # then wakes the worker, however soon it commits.
                self._sleeper.listen()
            while not self._out_of_budget(report):
                self._upkeep.when_due(report)
                self._ticker.enqueue_due(self.now)
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
            raise DatabaseLostError(exc, self._executor.in_hand) from exc
        except BaseException:
            self._finish()
            raise
        self._finish()
        return report

    def _register(self) -> None:
        registered_at = self._registration.register()
        self.runner_id = self._registration.runner_id
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
                self._registration.sign_off()
            except DatabaseError:
                lost = True
        self._registration.end(lost=lost)
        self._sleeper.close()

    def recover(self, report: RunReport) -> None:
        """Append ``abandoned``/``released`` to jobs whose runner is gone; retry by policy."""
        self._upkeep.recover(report)

    def expire(self) -> list[int]:
        """Append ``expired`` to scheduled jobs whose window closed before now."""
        return self._upkeep.expire()

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
            "queues": self.queues,
            "exclude_queues": self.exclude_queues,
        }
        # Claims and returns what this runner now holds: only what it just claimed,
        # since it claims when its hands are empty.
        done = self._executor.unrecorded
        if not done:
            jobs = self._wire.claim(params)
        else:
            # The unrecorded completions go first, in the same statement: one round
            # trip and one commit, and they are durable before any new job starts.
            # If the connection is lost now, the error names a job.
            self._executor.in_hand = done[0][0]
            rows = self._wire.complete_and_claim(done, params)
            # Besides the jobs it claimed, the statement returns the row of each job
            # whose completion it refused (recovered elsewhere meanwhile).
            jobs = [job for job in rows if self._holds(job)]
            # Nearly always none: look again only if some row was not kept.
            refused = (
                {job.pk for job in rows if not self._holds(job)} if len(jobs) < len(rows) else set()
            )
            # Every event the statement appends takes its time (statement_timestamp()):
            # a job it started started when the completions were recorded, which
            # the tasks among them tell task_finished.
            at = jobs[0].execution_start if jobs else None
            self._executor.settle(done, refused, self._report, at=at)
        if not jobs:
            return []
        self._registration.keep_alive()
        return jobs

    def _holds(self, job: ScheduledJob) -> bool:
        return job.runner_process_id == self.runner_id and job.status in (
            ScheduledJob.STATUS_RUNNING,
            ScheduledJob.STATUS_CLAIMED,
        )

    def _run_batch(self, jobs: list[ScheduledJob], report: RunReport) -> None:
        """Call the jobs claimed together, in order. What is left when the runner
        stops is handed back: started with the batch, but never called."""
        executor = self._executor
        self._unstarted = [job.pk for job in jobs]
        for job in jobs:
            if self._out_of_budget(report):
                break
            self._unstarted.remove(job.pk)
            if executor.unrecorded and time.monotonic() - executor.unrecorded_since >= FLUSH_AFTER:
                self._record_completions()  # a slow batch: do not keep finished work unsaid
            executor.execute(job, report)
        self._release("runner stopped before calling it")

    def execute(self, job: ScheduledJob, report: RunReport) -> None:
        """Run a started job and append its outcome (see ``Executor.execute``)."""
        self._executor.execute(job, report)

    def _record_completions(self) -> None:
        """Send the unrecorded completions on their own."""
        done = self._executor.unrecorded
        if not done:
            return
        self._executor.in_hand = done[0][0]
        recorded = self._wire.complete(done, runner=self.identity)
        self._executor.settle(done, {job.pk for job, *_ in done} - recorded, self._report)

    def _release(self, reason: str) -> None:
        if not self._unstarted:
            return
        released = ledger.release(
            self._unstarted, reason=reason, runner=self.identity, runner_id=self.runner_id
        )
        self._unstarted = []
        if released:
            say(
                self.echo,
                logging.INFO,
                "handed back %s jobs of the batch, not called: %s",
                len(released),
                released,
            )

    def _sleep(self) -> None:
        """Wait for NOTIFY django_future, the next due job, or the next upkeep."""
        longest = self.lease.total_seconds()
        if self.time_limit is not None:
            longest = min(longest, self.time_limit - (time.monotonic() - self._started_at))
        tick = self._ticker.seconds_to_next(self.now)
        if tick is not None:
            longest = min(longest, tick)
        self._sleeper.sleep(longest, queues=self.queues, exclude_queues=self.exclude_queues)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")  # a lone surrogate cannot be sent to PostgreSQL
    except UnicodeEncodeError:
        return False
    return True


def _queue_names(names: Iterable[str] | None, what: str) -> list[str] | None:
    """The queue names as the claim takes them (a list, or None for no filter)."""
    if names is None:
        return None
    if isinstance(names, str):
        raise TypeError(f"{what} must be a list of queue names, not the string {names!r}")
    chosen = list(dict.fromkeys(names))
    for name in chosen:
        if not isinstance(name, str) or not name or "\x00" in name or not _encodable(name):
            raise ValueError(f"{what}: {name!r} is not a queue name")
    if not chosen:
        raise ValueError(f"{what} is empty: give None for no filter")
    return chosen


def run_jobs(
    delete_completed: bool = False,
    ignore_errors: bool = False,
    now: dt.datetime | None = None,
    *,
    queues: Iterable[str] | None = None,
    exclude_queues: Iterable[str] | None = None,
) -> RunReport:
    """Expire overdue jobs, then claim and run every job that was due when the run
    started, and return (django-future's ``run_jobs``). Jobs that fall due meanwhile,
    retries among them, are left for the next run.

    ``now`` stands in for the current time in the due and expiry checks;
    ``None`` means the database's clock (due: when the run started; expiry: at each
    claim). Without ``ignore_errors`` the first failure with no retry left is recorded
    and then raised as JobFailedError. The first SIGINT or SIGTERM (in the main thread)
    finishes the job in hand and returns.

    ``queues`` (names) takes jobs of those queues only; ``exclude_queues`` leaves those
    out; None (the default) filters nothing. Jobs are taken by priority, larger first,
    then oldest due first.
    """
    return Runner(
        delete_completed=delete_completed,
        ignore_errors=ignore_errors,
        now=now,
        queues=queues,
        exclude_queues=exclude_queues,
    ).run()


class Sleeper:
    """Sleeps for a worker, listening on a connection of its own."""

    def __init__(self, stop: threading.Event) -> None:
        self._stop = stop
        self._listener: psycopg.Connection[Any] | None = None
        self._polling_said = False

    def listen(self) -> psycopg.Connection[Any] | None:
        """Start listening, if not yet: a job scheduled from now on wakes ``sleep``. None
        when DJANGO_FUTURE_LISTEN_DATABASE is None: the worker polls, and says so once."""
        alias = config.listen_database()
        if alias is None:
            if not self._polling_said:
                self._polling_said = True
                logger.warning(
                    "DJANGO_FUTURE_LISTEN_DATABASE is None: this worker does not LISTEN and "
                    "looks for new jobs every %s s (DJANGO_FUTURE_POLL_INTERVAL)",
                    config.poll_interval().total_seconds(),
                )
            return None
        if self._listener is None or self._listener.closed:
            self._listener = new_connection(alias)
            self._listener.execute("LISTEN django_future")
        return self._listener

    def sleep(
        self,
        longest: float,
        *,
        queues: list[str] | None = None,
        exclude_queues: list[str] | None = None,
    ) -> None:
        """Wait for NOTIFY django_future or the next due job of the worker's queues,
        ``longest`` seconds at most (and the poll interval, in case a notification is
        missed). A job due in a queue the worker does not serve does not wake it: it
        would claim nothing, and sleep no time at all, over and over."""
        with connection.cursor() as cursor:
            cursor.execute(query("next_due"), {"queues": queues, "exclude_queues": exclude_queues})
            (next_due,) = cursor.fetchone()
        timeout = min(config.poll_interval().total_seconds(), longest)
        if next_due is not None:
            timeout = min(timeout, max(float(next_due), 0.0))
        listener = self.listen()
        deadline = time.monotonic() + max(timeout, 0.0)
        # Short waits, so that a stop request is noticed within a second.
        while not self._stop.is_set() and (left := deadline - time.monotonic()) > 0:
            if listener is None:
                self._stop.wait(min(left, 1.0))
            elif any(True for _ in listener.notifies(timeout=min(left, 1.0), stop_after=1)):
                return

    def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
