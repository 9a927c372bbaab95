"""django-tasks-db (https://github.com/RealOrangeOne/django-tasks-db) as a benchmark peer.

django-tasks-db is the ORM backend of Django's task framework (``django.tasks`` in Django
6, the ``django-tasks`` backport on Django 5.2). ``throughput`` runs ``migrate`` for its app
on the given empty database and enqueues no-op tasks with ``Task.enqueue()`` in one
transaction (untimed; the backend has no bulk enqueue), then starts ``workers`` processes,
each running the ``db_worker`` management command (one task at a time, as it always does),
and times them until no task is READY or RUNNING; every task is then checked SUCCESSFUL.

Everything Django runs in subprocesses configured by ``bench.peers.django_tasks_settings``
(database from ``$DJANGO_TASKS_BENCH_DSN``), so that the benchmark process needs no Django
settings of its own:

    python -m bench.peers.django_tasks_bench prepare JOBS
    python -m bench.peers.django_tasks_bench worker READY_FILE
    python -m bench.peers.django_tasks_bench enqueue_loop JOBS WARM_UP

A worker sets Django up and connects, writes READY_FILE, waits for a line on stdin, then
calls ``db_worker``. The headline figure is timed from the "go" line, so process start, Django
setup and connecting are excluded, as for every system in the benchmark; ``extra`` also
has the figure timed from spawning the processes.
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import psycopg
from psycopg import sql

from bench.common import ReadyWorkers, Result, analyze

MODULE = "bench.peers.django_tasks_bench"
SETTINGS_MODULE = "bench.peers.django_tasks_settings"
DSN_ENV = "DJANGO_TASKS_BENCH_DSN"  # read by SETTINGS_MODULE
# db_worker's defaults (queue "default", 1 s sleep when the queue is empty, logging every
# task to stdout at verbosity 1) but for its random 0-1 s sleep before the first claim,
# a guard against a thundering herd of workers that would only add noise here.
DB_WORKER_ARGS = ["--no-startup-delay"]
# How often the parent looks for completion (one query on one open connection).
POLL_INTERVAL = 0.01
STARTUP_TIMEOUT = 60.0
PREPARE_TIMEOUT = 600.0

REPO_ROOT = Path(__file__).resolve().parents[2]

# The task needs Django configured (``@task()`` looks its backend up in settings.TASKS), so
# it exists only in the processes that run with SETTINGS_MODULE: the workers, which import
# it by its path stored with each task, and ``prepare``.
if os.environ.get("DJANGO_SETTINGS_MODULE") == SETTINGS_MODULE:
    from django_tasks import task

    @task()
    def noop() -> None:
        """The benchmark job: does nothing."""


def versions() -> dict[str, str]:
    return {
        name: importlib.metadata.version(name)
        for name in ("django-tasks-db", "django-tasks", "Django")
    }


def _env(dsn: str) -> dict[str, str]:
    pythonpath = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": SETTINGS_MODULE,
        DSN_ENV: dsn,
        "PYTHONPATH": pythonpath,
    }


def _prepare(dsn: str, *, jobs: int) -> str:
    """Migrate the empty database and enqueue ``jobs`` no-op tasks, in a subprocess.

    Returns the name of the tasks table (the app's label is "django_tasks_database").
    """
    done = subprocess.run(
        [sys.executable, "-m", MODULE, "prepare", str(jobs)],
        cwd=REPO_ROOT,
        env=_env(dsn),
        capture_output=True,
        text=True,
        timeout=PREPARE_TIMEOUT,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"django-tasks-db prepare (migrate, enqueue) exited with code {done.returncode}:\n"
            f"{(done.stdout + done.stderr)[-4000:].strip()}"
        )
    return done.stdout.strip().splitlines()[-1]


def throughput(dsn: str, *, jobs: int, workers: int) -> Result:
    """No-op tasks/s of ``workers`` django-tasks-db ``db_worker`` processes."""
    if jobs < 1 or workers < 1:
        raise ValueError("jobs and workers must be positive")
    found = versions()
    version = found["django-tasks-db"]
    table = _prepare(dsn, jobs=jobs)
    analyze(dsn)

    tasks = sql.Identifier(table)
    pending = sql.SQL("SELECT EXISTS (SELECT FROM {} WHERE status IN ('READY', 'RUNNING'))").format(
        tasks
    )
    with (
        ReadyWorkers(
            "django-tasks-db",
            lambda ready: [sys.executable, "-m", MODULE, "worker", str(ready)],
            workers,
            env=_env(dsn),
            cwd=REPO_ROOT,
            startup_timeout=STARTUP_TIMEOUT,
        ) as pool,
        psycopg.connect(dsn, autocommit=True) as conn,
    ):
        seconds_warm, seconds = pool.drain(conn, pending, jobs=jobs, poll=POLL_INTERVAL)
        row = conn.execute(
            sql.SQL(
                "SELECT count(*) FILTER (WHERE status = 'SUCCESSFUL'),"
                " count(*) FILTER (WHERE status <> 'SUCCESSFUL'),"
                " (SELECT traceback FROM {tasks} WHERE status = 'FAILED' LIMIT 1)"
                " FROM {tasks}"
            ).format(tasks=tasks)
        ).fetchone()
        successful, other, traceback = row if row else (0, 0, None)
        if successful != jobs or other:
            raise RuntimeError(
                f"django-tasks-db recorded {successful} SUCCESSFUL and {other} other tasks for "
                f"{jobs} enqueued; a failed task's traceback:\n{traceback or '(none)'}\n"
                f"worker output:\n{pool.all_output()}"
            )
    exit_codes, unclean_exits = pool.exit_codes, pool.unclean_exits

    notes = (
        f"django-tasks-db {version} with django-tasks {found['django-tasks']} on Django "
        f"{found['Django']}, psycopg {psycopg.__version__}; {workers} `db_worker "
        f"{' '.join(DB_WORKER_ARGS)}` process(es) (one task at a time each; defaults "
        "otherwise), persistent connections (CONN_MAX_AGE=None). Tasks enqueued beforehand "
        "with Task.enqueue() in one transaction (no bulk enqueue). Clock starts when every "
        "worker is ready and told to go (extra has the figure with process start) "
        "and stops when no task is READY or RUNNING; every task then verified SUCCESSFUL."
    )
    if any(code != 0 for code in exit_codes):
        notes += f" Workers did not exit cleanly on SIGTERM: exit codes {exit_codes}."
    return Result(
        name=f"django-tasks-db {version}, {workers} worker(s)",
        value=jobs / seconds_warm,
        unit="jobs/s",
        jobs=jobs,
        seconds=seconds_warm,
        notes=notes,
        extra={
            **found,
            "psycopg": psycopg.__version__,
            "workers": workers,
            "db_worker_args": DB_WORKER_ARGS,
            "seconds_including_process_start": seconds,
            "jobs_per_s_including_process_start": jobs / seconds,
            "worker_exit_codes": exit_codes,
            "unclean_exit_output": unclean_exits,
        },
    )


def enqueue_loop(dsn: str, *, jobs: int, warm_up: int) -> tuple[float, str]:
    """Seconds of a loop of ``jobs`` ``Task.enqueue()`` calls in autocommit, one task each
    (after ``warm_up`` untimed ones), in a subprocess; and a note saying what ran."""
    done = subprocess.run(
        [sys.executable, "-m", MODULE, "enqueue_loop", str(jobs), str(warm_up)],
        cwd=REPO_ROOT,
        env=_env(dsn),
        capture_output=True,
        text=True,
        timeout=PREPARE_TIMEOUT,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"django-tasks-db enqueue loop exited with code {done.returncode}:\n"
            f"{(done.stdout + done.stderr)[-4000:].strip()}"
        )
    found = versions()
    notes = (
        f"django-tasks-db {found['django-tasks-db']} with django-tasks {found['django-tasks']} "
        f"on Django {found['Django']}: a @task's enqueue() through its DatabaseBackend"
    )
    return float(done.stdout.strip().splitlines()[-1]), notes


def _enqueue_loop_here(jobs: int, warm_up: int) -> None:
    import time

    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    for _ in range(warm_up):
        noop.enqueue()
    started = time.perf_counter()
    for _ in range(jobs):
        noop.enqueue()
    print(time.perf_counter() - started)


def _prepare_here(jobs: int) -> None:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import transaction
    from django_tasks_db.models import DBTaskResult

    call_command("migrate", verbosity=0)
    with transaction.atomic():
        for _ in range(jobs):
            noop.enqueue()
    print(DBTaskResult._meta.db_table)  # the parent polls this table


def _worker_here(ready_file: Path) -> None:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    connection.ensure_connection()
    ready_file.write_text("ready\n")
    # SIGTERM before "go" keeps its default action (exit).
    if not sys.stdin.readline():
        return  # stdin closed without "go": the benchmark gave up
    # Installs db_worker's own SIGINT/SIGTERM handlers: a graceful stop.
    call_command("db_worker", *DB_WORKER_ARGS)


def main(argv: list[str]) -> None:
    if os.environ.get("DJANGO_SETTINGS_MODULE") != SETTINGS_MODULE:
        raise SystemExit(f"set DJANGO_SETTINGS_MODULE={SETTINGS_MODULE}")
    match argv:
        case ["prepare", jobs]:
            _prepare_here(int(jobs))
        case ["worker", ready_file]:
            _worker_here(Path(ready_file))
        case ["enqueue_loop", jobs, warm_up]:
            _enqueue_loop_here(int(jobs), int(warm_up))
        case _:
            raise SystemExit(
                f"usage: python -m {MODULE} prepare JOBS | worker READY_FILE"
                " | enqueue_loop JOBS WARM_UP"
            )


if __name__ == "__main__":
    # Run on the task of the importable module, not on this __main__ copy, whose task
    # would be stored as "__main__.noop".
    from bench.peers.django_tasks_bench import main as _main

    _main(sys.argv[1:])
