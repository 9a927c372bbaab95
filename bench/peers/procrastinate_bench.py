"""procrastinate (https://github.com/procrastinate-org/procrastinate) as a benchmark peer.

``throughput`` applies procrastinate's schema to the given empty database and defers
no-op jobs with ``Task.batch_defer`` (untimed), then starts ``workers`` processes, each
running one procrastinate worker with concurrency 1 and procrastinate's other defaults
(psycopg 3 ``PsycopgConnector``), and times them until every job is out of ``todo`` and
``doing`` in ``procrastinate_jobs``; every job is then checked to be ``succeeded``.

A worker process is ``python -m bench.peers.procrastinate_bench worker READY_FILE``: it
imports this module, opens the app's connection pool, writes READY_FILE, waits for a line
on stdin, then calls ``App.run_worker_async`` (what ``procrastinate worker`` calls). The
headline figure is timed from the "go" line, so process start, imports and connecting
are excluded, as for every system in the benchmark; ``extra`` also has the figure timed
from spawning the processes.

The workers find the database in ``$PROCRASTINATE_BENCH_DSN`` (libpq conninfo).
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import os
import sys
from pathlib import Path

import procrastinate
import psycopg

from bench.common import ReadyWorkers, Result, analyze

MODULE = "bench.peers.procrastinate_bench"
DSN_ENV = "PROCRASTINATE_BENCH_DSN"
QUEUE = "default"
# How often the parent looks for completion (one query on one open connection).
POLL_INTERVAL = 0.01
STARTUP_TIMEOUT = 60.0

REPO_ROOT = Path(__file__).resolve().parents[2]

# The app the workers run. Creating it opens no connection: the pool is opened by the
# worker (``App.open_async``) or, in the benchmark process, replaced (``_prepare``).
app = procrastinate.App(
    connector=procrastinate.PsycopgConnector(conninfo=os.environ.get(DSN_ENV, ""))
)


@app.task(queue=QUEUE)
def noop() -> None:
    """The benchmark job: does nothing."""


def procrastinate_version() -> str:
    return importlib.metadata.version("procrastinate")


def _prepare(dsn: str, *, jobs: int) -> None:
    """Apply procrastinate's schema to the empty database, then defer ``jobs`` no-op jobs."""
    with app.replace_connector(procrastinate.PsycopgConnector(conninfo=dsn)), app.open():
        app.schema_manager.apply_schema()
        # One query for the whole batch (procrastinate_defer_jobs_v1 over an array of jobs).
        noop.batch_defer(*({} for _ in range(jobs)))


def throughput(dsn: str, *, jobs: int, workers: int) -> Result:
    """No-op jobs/s of ``workers`` procrastinate worker processes (concurrency 1 each)."""
    if jobs < 1 or workers < 1:
        raise ValueError("jobs and workers must be positive")
    version = procrastinate_version()
    _prepare(dsn, jobs=jobs)
    analyze(dsn)

    pythonpath = [str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, DSN_ENV: dsn, "PYTHONPATH": os.pathsep.join(filter(None, pythonpath))}
    pending = "SELECT EXISTS (SELECT FROM procrastinate_jobs WHERE status IN ('todo', 'doing'))"
    with (
        ReadyWorkers(
            "procrastinate",
            lambda ready: [sys.executable, "-m", MODULE, "worker", str(ready)],
            workers,
            env=env,
            cwd=REPO_ROOT,
            startup_timeout=STARTUP_TIMEOUT,
        ) as pool,
        psycopg.connect(dsn, autocommit=True) as conn,
    ):
        seconds_warm, seconds = pool.drain(conn, pending, jobs=jobs, poll=POLL_INTERVAL)
        row = conn.execute(
            "SELECT count(*) FILTER (WHERE status = 'succeeded'),"
            " count(*) FILTER (WHERE status <> 'succeeded')"
            " FROM procrastinate_jobs"
        ).fetchone()
        succeeded, other = row if row else (0, 0)
        if succeeded != jobs or other:
            raise RuntimeError(
                f"procrastinate recorded {succeeded} succeeded and {other} other jobs "
                f"for {jobs} deferred; worker output:\n{pool.all_output()}"
            )
    exit_codes, unclean_exits = pool.exit_codes, pool.unclean_exits

    notes = (
        f"procrastinate {version}, psycopg {psycopg.__version__} (PsycopgConnector); "
        f"{workers} worker process(es), each App.run_worker_async(queues=[{QUEUE!r}], "
        "concurrency=1, wait=True) with procrastinate's other defaults (LISTEN/NOTIFY on, "
        "jobs kept); the job is a sync def, run in a thread as procrastinate does. Jobs "
        "deferred beforehand with one Task.batch_defer call. Clock starts when every worker "
        "is ready and told to go (extra has the figure with process start, for reference) and stops "
        "when no job is todo or doing; every job then verified 'succeeded'."
    )
    if any(code != 0 for code in exit_codes):
        notes += f" Workers did not exit cleanly on SIGTERM: exit codes {exit_codes}."
    return Result(
        name=f"procrastinate {version}, {workers} worker(s)",
        value=jobs / seconds_warm,
        unit="jobs/s",
        jobs=jobs,
        seconds=seconds_warm,
        notes=notes,
        extra={
            "procrastinate": version,
            "psycopg": psycopg.__version__,
            "workers": workers,
            "concurrency": 1,
            "seconds_including_process_start": seconds,
            "jobs_per_s_including_process_start": jobs / seconds,
            "worker_exit_codes": exit_codes,
            "unclean_exit_output": unclean_exits,
        },
    )


async def _worker(ready_file: Path) -> None:
    async with app.open_async():
        ready_file.write_text("ready\n")
        # Blocking read in a thread; SIGTERM before "go" keeps its default action (exit).
        if not await asyncio.to_thread(sys.stdin.readline):
            return  # stdin closed without "go": the benchmark gave up
        # Installs procrastinate's own SIGINT/SIGTERM handlers: a graceful stop.
        await app.run_worker_async(queues=[QUEUE], concurrency=1, wait=True)


def main(argv: list[str]) -> None:
    if len(argv) != 2 or argv[0] != "worker":
        raise SystemExit(f"usage: python -m {MODULE} worker READY_FILE")
    asyncio.run(_worker(Path(argv[1])))


if __name__ == "__main__":
    # Run the worker on the app and task of the importable module, not on this __main__
    # copy, whose task would be named "__main__.noop".
    from bench.peers.procrastinate_bench import main as _main

    _main(sys.argv[1:])
