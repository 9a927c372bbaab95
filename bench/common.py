"""Shared pieces of the benchmark harness: scratch databases, timing, results.

Every benchmark gets a fresh database on the same server, so that each system
starts from empty tables and ratios compare like with like.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg
import psycopg.conninfo


@dataclass
class Result:
    """One measured figure."""

    name: str  # e.g. "django-future-ledger, 4 runners, 1 job per claim"
    value: float  # the figure, in `unit`
    unit: str  # "jobs/s", "tps", "MiB"
    jobs: int = 0
    seconds: float = 0.0
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@contextlib.contextmanager
def scratch_database(admin_dsn: str, prefix: str = "bench") -> Iterator[str]:
    """A new empty database on the server of ``admin_dsn``; its conninfo. Dropped after."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield psycopg.conninfo.make_conninfo(admin_dsn, dbname=name)
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def wait_for(
    predicate: Callable[[], bool], *, timeout: float, interval: float = 0.05, what: str = ""
) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"benchmark timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def count(dsn: str, sql: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(sql).fetchone()
        return int(row[0]) if row else 0


def stop_all(procs: list[subprocess.Popen[Any]], timeout: float = 15) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
