"""A runner's lease: it registers, a heartbeat thread renews its lease on a connection
of its own (``Heartbeat``), and it signs off (``Registration``).

While a runner's lease is renewed no other runner touches its jobs, however long they
run; once it lapses, or the runner signs off without finishing them, the next runner's
upkeep recovers them (``Upkeep``: recovery of lapsed runners' jobs, and expiry, once
per lease period, through the ledger). The runner's own statements here write
``django_future_runnerprocess`` (who registered, and their leases), never the ledger.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import time
from typing import Any

import psycopg
from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction

from django_future import database, ledger, locks
from django_future.models import EventKind, ScheduledJob
from django_future.runner.executor import Executor
from django_future.runner.report import RunReport, logger, say
from django_future.sql import query

__all__ = ["Heartbeat", "Registration", "Upkeep", "new_connection"]


class Registration:
    """One runner's row in ``django_future_runnerprocess``: registered when it starts,
    kept alive by a heartbeat from its first claim of jobs on, signed off when it ends."""

    def __init__(self, identity: str, lease: dt.timedelta) -> None:
        self.identity = identity
        self.lease = lease
        self.runner_id: int | None = None
        self.backend_pid: int | None = None  # recorded on "started", for pg_stat_activity
        self._heartbeat: Heartbeat | None = None

    def register(self) -> dt.datetime:
        """Announce the runner with a fresh lease; return the database's clock."""
        params: dict[str, Any] = {
            "hostname": socket.gethostname(),
            "pid": os.getpid(),
            "identity": self.identity,
            "lease": self.lease,
        }
        # The runner's first statement: before migrate, it says to migrate.
        with database.tables_needed(), connection.cursor() as cursor:
            cursor.execute(query("register_runner"), params)
            self.runner_id, self.backend_pid, registered_at = cursor.fetchone()
            # The queue limits of this runner's settings become every runner's
            # (django_future/locks.py).
            limits = locks.queue_limits()
            cursor.execute(
                query("queue_limits"), {"queues": list(limits), "limits": list(limits.values())}
            )
        return registered_at

    def keep_alive(self) -> None:
        """Start the heartbeat, if it is not running yet."""
        if self._heartbeat is None and self.runner_id is not None:
            self._heartbeat = Heartbeat(self.runner_id, self.lease)
            self._heartbeat.start()

    def sign_off(self) -> None:
        """Say that the runner has stopped, through Django's connection: whatever it
        still holds is recoverable at once."""
        if self.runner_id is not None:
            with connection.cursor() as cursor:
                cursor.execute(query("stop_runner"), {"runner_id": self.runner_id})

    def end(self, *, lost: bool) -> None:
        """Stop the heartbeat. With ``lost`` (Django's connection is gone, so
        ``sign_off`` could not be sent), sign off through a connection of its own."""
        if self._heartbeat is not None:
            self._heartbeat.stop(mark_stopped=lost)
            self._heartbeat = None
        elif lost and self.runner_id is not None:
            Heartbeat(self.runner_id, self.lease).stop(mark_stopped=True)


def new_connection(alias: str = DEFAULT_DB_ALIAS) -> psycopg.Connection[Any]:
    """A fresh autocommit connection to a database of Django's (the default one unless
    told), outside Django's pool."""
    db = connections[alias]
    conn = db.get_new_connection(db.get_connection_params())
    conn.autocommit = True
    return conn


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
            self._conn = new_connection()
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


class Upkeep:
    """Recovery and expiry for one runner; retries by the jobs' policy through its
    ``executor``, whose identity and echo it uses."""

    def __init__(self, executor: Executor, *, now: dt.datetime | None, every: float) -> None:
        self._executor = executor
        self._now = now
        self._every = every  # seconds: the runner's lease
        self._last = -float("inf")

    def when_due(self, report: RunReport) -> None:
        """Recover and expire, if a lease period has passed since the last time."""
        if time.monotonic() - self._last < self._every:
            return
        self._last = time.monotonic()
        self.recover(report)
        report.expired += self.expire()

    def recover(self, report: RunReport) -> None:
        """Append ``abandoned``/``released`` to jobs whose runner is gone; retry by policy."""
        executor = self._executor
        with transaction.atomic():  # a recovered job and its retry commit together
            for job_id, kind in ledger.recover(executor.identity):
                if kind == EventKind.RELEASED:
                    report.released.append(job_id)
                    continue
                report.abandoned.append(job_id)
                job = ScheduledJob.objects.get(pk=job_id)
                message = "job %s (%s): %s"
                say(executor.echo, logging.WARNING, message, job_id, job.callable_name, job.error)
                if executor.retry(job, job.error or "abandoned"):
                    report.retried.append(job_id)

    def expire(self) -> list[int]:
        """Append ``expired`` to scheduled jobs whose window closed before now."""
        expired = ledger.expire(now=self._now, runner=self._executor.identity)
        for job_id in expired:
            say(self._executor.echo, logging.INFO, "job %s expired before it could run", job_id)
        return expired
