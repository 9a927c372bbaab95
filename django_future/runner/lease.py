"""A runner's lease: it registers, a heartbeat thread renews its lease on a connection
of its own (``Heartbeat``), and it signs off (``Registration``).

While a runner's lease is renewed no other runner touches its jobs, however long they
run; once it lapses, or the runner signs off without finishing them, the next runner's
upkeep recovers them. These statements write ``django_future_runnerprocess`` (who is
alive), never the ledger.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import threading
from typing import Any

import psycopg
from django.db import connection

from django_future import config
from django_future.runner.report import logger
from django_future.sql import query

__all__ = ["Heartbeat", "Registration", "new_connection"]


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
        with config.tables_needed(), connection.cursor() as cursor:
            cursor.execute(query("register_runner"), params)
            self.runner_id, self.backend_pid, registered_at = cursor.fetchone()
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


def new_connection() -> psycopg.Connection[Any]:
    """A fresh autocommit connection to Django's default database, outside Django's pool."""
    conn = connection.get_new_connection(connection.get_connection_params())
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
