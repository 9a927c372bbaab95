"""A worker's sleep between claims: until a job is scheduled (NOTIFY django_future),
the next one falls due, the time given runs out, or the runner is asked to stop."""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg
from django.db import connection

from django_future import config
from django_future.runner.lease import new_connection
from django_future.sql import query

__all__ = ["Sleeper"]


class Sleeper:
    """Sleeps for a worker, listening on a connection of its own."""

    def __init__(self, stop: threading.Event) -> None:
        self._stop = stop
        self._listener: psycopg.Connection[Any] | None = None

    def listen(self) -> psycopg.Connection[Any]:
        """Start listening, if not yet: a job scheduled from now on wakes ``sleep``."""
        if self._listener is None or self._listener.closed:
            self._listener = new_connection()
            self._listener.execute("LISTEN django_future")
        return self._listener

    def sleep(self, longest: float) -> None:
        """Wait for NOTIFY django_future or the next due job, ``longest`` seconds at most
        (and the poll interval, in case a notification is missed)."""
        with connection.cursor() as cursor:
            cursor.execute(query("next_due"))
            (next_due,) = cursor.fetchone()
        timeout = min(config.poll_interval().total_seconds(), longest)
        if next_due is not None:
            timeout = min(timeout, max(float(next_due), 0.0))
        listener = self.listen()
        deadline = time.monotonic() + max(timeout, 0.0)
        # Short waits, so that a stop request is noticed within a second.
        while not self._stop.is_set() and (left := deadline - time.monotonic()) > 0:
            if any(True for _ in listener.notifies(timeout=min(left, 1.0), stop_after=1)):
                return

    def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
