"""Enqueueing one job at a time, and tasks through runners: ours beside django-tasks-db.

- ``loop``: a loop of one call per job, in autocommit (each call its own transaction,
  as in a web request that enqueues one job), timed in one process after a warm-up:
  our ``schedule_job('0s', 'bench.noop.noop')``; ``Task.enqueue()`` of a ``@task``
  through our backend (``django_future.backends.LedgerBackend``, ``bench.tasks``);
  django-tasks-db's ``Task.enqueue()`` (its ``DatabaseBackend``, ``bench.peers``); and a
  floor, what any of them could reach: a bare psycopg loop, no Django, inserting one row
  (an id and a JSON document) into a table with no other index, each its own transaction;
  and our own statement (``schedule`` in queries.sql) sent by the same bare loop: what our
  SQL allows before any Python of ours runs.
- ``tasks_throughput``: tasks enqueued through our backend beforehand (untimed, in one
  transaction, as the django-tasks-db peer enqueues its tasks), then drained by real
  ``runscheduledjobs`` processes, timed as ``bench.ours`` times its drains; the peer's
  side is ``bench.peers.django_tasks_bench.throughput`` (``db_worker`` processes).

Each loop runs in a subprocess of its own, with the settings of its system:

    python -m bench.enqueue loop SYSTEM JOBS      # SYSTEM: schedule_job or backend
    python -m bench.enqueue load JOBS             # tasks through our backend, one transaction

A part that needs our backend is skipped, with a line saying so, where
``django_future.backends`` cannot be imported.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psycopg

from bench import ours
from bench.common import Result, Skipped, analyze, count_wal, drain_result

ROOT = Path(__file__).resolve().parents[1]
MODULE = "bench.enqueue"
TASKS_SETTINGS = "bench.tasks_settings"
# Calls made before the clock starts, in every system's loop: the first calls of a
# process import the callable, plan the statements and fill Django's caches.
WARM_UP = 50
# Exit code of a child that found no backend to measure.
SKIP = 3
NO_BACKEND = "django_future.backends (LedgerBackend) not available"


def _child(args: list[str], dsn: str, settings: str) -> str:
    """Run ``python -m bench.enqueue ARGS`` with ``settings``; its last line of output."""
    done = subprocess.run(
        [sys.executable, "-m", MODULE, *args],
        cwd=ROOT,
        env=ours._env(dsn, settings=settings),
        capture_output=True,
        text=True,
        check=False,
    )
    output = (done.stdout + done.stderr).strip()
    if done.returncode == SKIP:
        raise Skipped(output.splitlines()[-1])
    if done.returncode != 0:
        raise RuntimeError(
            f"bench.enqueue {' '.join(args)} exited {done.returncode}:\n{output[-3000:]}"
        )
    return done.stdout.strip().splitlines()[-1]


def _backend_available() -> None:
    """Raise Skipped unless this tree has our task backend (looked for, not imported: the
    bench process has no Django settings)."""
    package = ROOT / "django_future"
    if not (package / "backends.py").exists() and not (package / "backends").is_dir():
        raise Skipped(f"{NO_BACKEND}: no django_future/backends in {ROOT}")


def loop(dsn: str, *, system: str, jobs: int) -> Result:
    """Jobs/s of a loop of ``jobs`` enqueue calls, one job each, in autocommit."""
    if system == "floor":
        seconds = _floor_loop(dsn, jobs)
        name = "bare INSERT loop (psycopg, no Django)"
        notes = "INSERT INTO t (data) VALUES (%s::jsonb) RETURNING *, a table with only its key"
    elif system == "sql":
        ours.migrate(dsn)
        seconds = _our_statement_loop(dsn, jobs)
        name = "our schedule statement by a bare psycopg loop"
        notes = "schedule_job's one statement (queries.sql: schedule), no Django, no checks"
    elif system == "tasks_db":
        from bench.peers import django_tasks_bench

        seconds, notes = django_tasks_bench.enqueue_loop(dsn, jobs=jobs, warm_up=WARM_UP)
        name = "django-tasks-db Task.enqueue() loop"
    elif system in ("schedule_job", "backend", "unique"):
        if system == "backend":
            _backend_available()
        settings = TASKS_SETTINGS if system == "backend" else ours.SETTINGS
        ours.migrate(dsn, settings=settings)
        seconds = float(_child(["loop", system, str(jobs)], dsn, settings))
        if system == "backend":
            name = "ours, Task.enqueue() loop (LedgerBackend)"
            notes = "a @task's enqueue() through django_future.backends.LedgerBackend"
        elif system == "unique":
            name = "ours, schedule_job() loop with a unique key"
            notes = "schedule_job('0s', 'bench.noop.noop', unique_key=<a new key each call>)"
        else:
            name = "ours, schedule_job() loop"
            notes = "schedule_job('0s', 'bench.noop.noop')"
    else:
        raise ValueError(f"unknown system {system!r}")
    return Result(
        name=name,
        value=jobs / seconds,
        unit="jobs/s",
        jobs=jobs,
        seconds=seconds,
        notes=f"{notes}; one call per job, autocommit, after {WARM_UP} untimed calls",
    )


def _floor_loop(dsn: str, jobs: int) -> float:
    """Seconds of ``jobs`` one-row INSERTs, each its own transaction, by one bare psycopg
    connection: what a commit per job costs on this server, whoever sends it."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE enqueue_floor (id bigserial PRIMARY KEY, data jsonb NOT NULL)")
        sql = "INSERT INTO enqueue_floor (data) VALUES (%s::jsonb) RETURNING *"
        data = '{"task": "bench.noop.noop", "args": [], "kwargs": {}}'
        for _ in range(WARM_UP):
            conn.execute(sql, [data]).fetchone()
        started = time.perf_counter()
        for _ in range(jobs):
            conn.execute(sql, [data]).fetchone()
        return time.perf_counter() - started


def _our_statement_loop(dsn: str, jobs: int) -> float:
    """Seconds of ``jobs`` calls of schedule_job's statement as schedule_job sends it for
    ``schedule_job('0s', 'bench.noop.noop')``, each its own transaction, by one bare
    psycopg connection (client-side binding, as Django's)."""
    import datetime as dt

    from django_future.sql import query

    params = {
        "data": '{"callable_name": "bench.noop.noop", "args": [], "kwargs": {}}',
        "start_at": None,
        "start_in": dt.timedelta(0),
        "end_at": None,
        "end_in": dt.timedelta(days=7),
    }
    sql = query("schedule")
    with psycopg.connect(dsn, autocommit=True, cursor_factory=psycopg.ClientCursor) as conn:
        for _ in range(WARM_UP):
            conn.execute(sql, params).fetchone()
        started = time.perf_counter()
        for _ in range(jobs):
            conn.execute(sql, params).fetchone()
        return time.perf_counter() - started


def tasks_throughput(dsn: str, *, jobs: int, runners: int, batch_size: int = 1) -> Result:
    """Tasks/s of ``runners`` runscheduledjobs processes (``--batch-size batch_size``)
    over ``jobs`` tasks enqueued through our backend."""
    _backend_available()
    ours.migrate(dsn, settings=TASKS_SETTINGS)
    _child(["load", str(jobs)], dsn, TASKS_SETTINGS)
    analyze(dsn)  # untimed, as for every system (bench.common.analyze)
    wal = count_wal(
        dsn,
        jobs,
        lambda: ours.run_runners(
            dsn, jobs=jobs, runners=runners, batch_size=batch_size, settings=TASKS_SETTINGS
        ),
    )
    per = "1 job per claim" if batch_size == 1 else f"batches of {batch_size}"
    return drain_result(
        f"ours, tasks through LedgerBackend, {runners} runner(s), {per}",
        jobs=jobs,
        seconds=ours.busy_seconds(dsn),
        notes=(
            "Task.enqueue() through django_future.backends.LedgerBackend beforehand, in one "
            f"transaction; runscheduledjobs, {per}; first claim to last completion"
        ),
        wal=wal,
    )


# --- in the child process -------------------------------------------------------------


def _enqueue_call(system: str) -> Callable[[], object]:
    """The call the loop makes once per job; exits SKIP where our backend is missing."""
    if system == "backend":
        try:
            import django_future.backends  # noqa: F401
        except ImportError as exc:
            print(f"{NO_BACKEND}: {exc}")
            sys.exit(SKIP)
        from bench.tasks import noop

        return noop.enqueue
    from django_future import schedule_job

    if system == "unique":  # every call a new key: the keyed path, making a job each time
        keys = (f"bench-{n}" for n in itertools.count())
        return lambda: schedule_job("0s", "bench.noop.noop", unique_key=next(keys))
    return lambda: schedule_job("0s", "bench.noop.noop")


def main(argv: list[str]) -> int:
    import django

    django.setup()
    match argv:
        case ["loop", system, jobs]:
            call = _enqueue_call(system)
            for _ in range(WARM_UP):
                call()
            started = time.perf_counter()
            for _ in range(int(jobs)):
                call()
            print(time.perf_counter() - started)
        case ["load", jobs]:
            from django.db import transaction

            call = _enqueue_call("backend")
            with transaction.atomic():
                for _ in range(int(jobs)):
                    call()
            print(jobs)
        case _:
            raise SystemExit(f"usage: python -m {MODULE} loop SYSTEM JOBS | load JOBS")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", ours.SETTINGS)
    sys.exit(main(sys.argv[1:]))
