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

A worker sets Django up and connects, writes READY_FILE, waits for a line on stdin, then
calls ``db_worker``. The headline figure is timed from spawning the processes, as a cold
``manage.py db_worker`` start would be; ``extra`` also has the figure timed from the "go"
line, process start, Django setup and connecting excluded.
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO

import psycopg
from psycopg import sql

from bench.common import Result, stop_all, wait_for

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


def _tail(path: Path, limit: int = 4000) -> str:
    text = path.read_text(errors="replace") if path.exists() else ""
    return text[-limit:].strip() or "(no output)"


def _check_alive(procs: list[subprocess.Popen[bytes]], logs: list[Path], when: str) -> None:
    for i, (proc, log) in enumerate(zip(procs, logs, strict=True)):
        if proc.poll() is not None:
            raise RuntimeError(
                f"django-tasks-db worker {i} exited with code {proc.returncode} {when}; "
                f"its output:\n{_tail(log)}"
            )


def throughput(dsn: str, *, jobs: int, workers: int) -> Result:
    """No-op tasks/s of ``workers`` django-tasks-db ``db_worker`` processes."""
    if jobs < 1 or workers < 1:
        raise ValueError("jobs and workers must be positive")
    found = versions()
    version = found["django-tasks-db"]
    table = _prepare(dsn, jobs=jobs)

    env = _env(dsn)
    procs: list[subprocess.Popen[bytes]] = []
    logs: list[Path] = []
    log_files: list[IO[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="django_tasks_bench_") as tmp:
        ready = [Path(tmp, f"ready{i}") for i in range(workers)]
        try:
            spawned = time.perf_counter()
            for i in range(workers):
                logs.append(Path(tmp, f"worker{i}.log"))
                log_files.append(logs[-1].open("wb"))
                procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", MODULE, "worker", str(ready[i])],
                        cwd=REPO_ROOT,
                        env=env,
                        stdin=subprocess.PIPE,
                        stdout=log_files[-1],
                        stderr=subprocess.STDOUT,
                    )
                )

            def all_ready() -> bool:
                _check_alive(procs, logs, "while starting")
                return all(path.exists() for path in ready)

            wait_for(all_ready, timeout=STARTUP_TIMEOUT, what="django-tasks-db workers to start")
            seconds_warm, seconds = _run_to_completion(dsn, table, procs, logs, jobs, spawned)
        finally:
            stop_all(procs)
            for f in log_files:
                f.close()
        exit_codes = [p.returncode for p in procs]
        unclean_exits = {
            i: _tail(log, 800)
            for i, (code, log) in enumerate(zip(exit_codes, logs, strict=True))
            if code
        }

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


def _run_to_completion(
    dsn: str,
    table: str,
    procs: list[subprocess.Popen[bytes]],
    logs: list[Path],
    jobs: int,
    spawned: float,
) -> tuple[float, float]:
    """Let the ready workers go; (seconds from go, seconds from spawning) until all done."""
    timeout = max(120.0, jobs / 20)
    with psycopg.connect(dsn, autocommit=True) as conn:
        started = time.perf_counter()
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write(b"go\n")
            proc.stdin.close()
        deadline = started + timeout
        tasks = sql.Identifier(table)
        pending = sql.SQL(
            "SELECT EXISTS (SELECT FROM {} WHERE status IN ('READY', 'RUNNING'))"
        ).format(tasks)
        while conn.execute(pending).fetchone() != (False,):
            _check_alive(procs, logs, "before all jobs were done")
            if time.perf_counter() > deadline:
                raise TimeoutError(
                    f"django-tasks-db workers did not finish {jobs} tasks in {timeout}s"
                )
            time.sleep(POLL_INTERVAL)
        finished = time.perf_counter()
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
            "worker output:\n" + "\n".join(_tail(log, 1500) for log in logs)
        )
    return finished - started, finished - spawned


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
        case _:
            raise SystemExit(f"usage: python -m {MODULE} prepare JOBS | worker READY_FILE")


if __name__ == "__main__":
    # Run on the task of the importable module, not on this __main__ copy, whose task
    # would be stored as "__main__.noop".
    from bench.peers.django_tasks_bench import main as _main

    _main(sys.argv[1:])
