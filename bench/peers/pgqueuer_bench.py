"""pgqueuer (https://github.com/janbjorge/pgqueuer) as a benchmark peer.

``throughput`` installs pgqueuer's schema into the given empty database, enqueues no-op
jobs for one entrypoint with its batch enqueue (untimed), then starts ``workers``
processes (``bench.peers.pgqueuer_worker``), each running one ``QueueManager`` on an
asyncpg connection, and times them until every job is done. A worker imports and
connects, writes its ready file and waits for a line on stdin before ``QueueManager.run``;
the headline figure is timed from that "go" line, so that interpreter start and imports
(about two seconds for four workers on a busy two-core machine, as long as the whole run
of 5,000 batched jobs) are excluded. ``extra`` also has the figure timed from spawning the
processes and the one from first pick to last success on the database's clock.
``enqueue_rate`` times the batch enqueue.

pgqueuer and asyncpg are imported lazily, so that the harness can list this peer, and
run the others, where pgqueuer is not installed.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import psycopg.conninfo

from bench.common import ReadyWorkers, Result, analyze

if TYPE_CHECKING:
    from pgqueuer.queries import Queries

ENTRYPOINT = "noop"
# Jobs per Queries.enqueue() call: one INSERT ... SELECT FROM UNNEST(arrays) statement each.
ENQUEUE_CHUNK = 1000
# How often the parent looks for completion (one query on one open connection).
POLL_INTERVAL = 0.01
STARTUP_TIMEOUT = 60.0

REPO_ROOT = Path(__file__).resolve().parents[2]

# The conninfo keys asyncpg.connect() understands, by the name it takes them under.
_ASYNCPG_KEYS = {
    "host": "host",
    "port": "port",
    "user": "user",
    "password": "password",
    "dbname": "database",
    "sslmode": "ssl",
}


def _version(dist: str) -> str:
    return importlib.metadata.version(dist)


def pgqueuer_version() -> str:
    return _version("pgqueuer")


def asyncpg_connect_kwargs(dsn: str) -> dict[str, Any]:
    """``asyncpg.connect()`` keyword arguments for a libpq conninfo string or URL.

    asyncpg does not parse key=value conninfo; a unix-socket server (host is a
    directory) works through ``host=/path``.
    """
    params = psycopg.conninfo.conninfo_to_dict(dsn)
    unknown = sorted(set(params) - set(_ASYNCPG_KEYS))
    if unknown:
        raise ValueError(f"conninfo keys this adapter cannot pass to asyncpg: {unknown}")
    kwargs: dict[str, Any] = {_ASYNCPG_KEYS[k]: v for k, v in params.items() if v is not None}
    if "port" in kwargs:
        kwargs["port"] = int(kwargs["port"])
    return kwargs


async def _enqueue(queries: Queries, jobs: int, chunk: int) -> None:
    for start in range(0, jobs, chunk):
        n = min(chunk, jobs - start)
        await queries.enqueue([ENTRYPOINT] * n, [None] * n, [0] * n)


async def _prepare(dsn: str, *, jobs: int, chunk: int = ENQUEUE_CHUNK) -> float:
    """Install pgqueuer's schema, enqueue ``jobs`` no-op jobs; seconds the enqueue took."""
    import asyncpg
    from pgqueuer.queries import Queries

    connection = await asyncpg.connect(**asyncpg_connect_kwargs(dsn))
    try:
        queries = Queries.from_asyncpg_connection(connection)
        await queries.install()
        started = time.perf_counter()
        await _enqueue(queries, jobs, chunk)
        return time.perf_counter() - started
    finally:
        await connection.close()


def _worker_command(dsn: str, *, batch_size: int, ready_file: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "bench.peers.pgqueuer_worker",
        "--dsn",
        dsn,
        "--entrypoint",
        ENTRYPOINT,
        "--batch-size",
        str(batch_size),
        "--ready-file",
        str(ready_file),
    ]


def throughput(dsn: str, *, jobs: int, workers: int, batch_size: int = 1) -> Result:
    """No-op jobs/s of ``workers`` pgqueuer QueueManager processes on an empty database."""
    if jobs < 1 or workers < 1 or batch_size < 1:
        raise ValueError("jobs, workers and batch_size must be positive")
    version = pgqueuer_version()
    asyncio.run(_prepare(dsn, jobs=jobs))
    analyze(dsn)

    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
    }
    with (
        ReadyWorkers(
            "pgqueuer",
            lambda ready: _worker_command(dsn, batch_size=batch_size, ready_file=ready),
            workers,
            env=env,
            cwd=REPO_ROOT,
            startup_timeout=STARTUP_TIMEOUT,
        ) as pool,
        psycopg.connect(dsn, autocommit=True) as conn,
    ):
        from_go, from_spawn = pool.drain(
            conn, "SELECT EXISTS (SELECT FROM pgqueuer)", jobs=jobs, poll=POLL_INTERVAL
        )
        row = conn.execute(
            "SELECT count(*) FILTER (WHERE status = 'successful'),"
            " count(*) FILTER (WHERE status NOT IN ('queued', 'picked', 'successful')),"
            " extract(epoch FROM max(created) FILTER (WHERE status = 'successful')"
            "  - min(created) FILTER (WHERE status = 'picked'))"
            " FROM pgqueuer_log"
        ).fetchone()
        assert row is not None
        successful, other, busy = row
        if successful != jobs or other:
            raise RuntimeError(
                f"pgqueuer logged {successful} successful and {other} other outcomes "
                f"for {jobs} jobs; worker output:\n{pool.all_output()}"
            )
    timings = Timings(from_go=from_go, from_spawn=from_spawn, first_pick_to_last_done=float(busy))
    exit_codes, unclean_exits = pool.exit_codes, pool.unclean_exits

    notes = (
        f"pgqueuer {version}, asyncpg {_version('asyncpg')} driver, "
        f"{'uvloop' if _has_uvloop() else 'asyncio'} loop (as `pgq run`); {workers} worker "
        f"process(es), one QueueManager and one connection each, QueueManager.run(batch_size="
        f"{batch_size}), other settings pgqueuer's defaults; schema from Queries.install(), "
        "default durability (all tables logged). pgqueuer commits twice per dequeue batch: "
        "the claim, then the status-log flush (its buffer holds batch_size entries), so "
        "batch 1 is bound by commit latency; no polling or sleep while work is queued. "
        f"Jobs enqueued beforehand, {ENQUEUE_CHUNK} per call. Clock starts when every worker "
        "is imported, connected and told to run (extra has the figure from process spawn, "
        "and first pick to last success on the database's clock), stops when the queue "
        "table is empty; every job then verified 'successful' in pgqueuer_log."
    )
    if any(code != 0 for code in exit_codes):
        notes += f" Workers did not exit cleanly on SIGTERM: exit codes {exit_codes}."
    return Result(
        name=f"pgqueuer {version}, {workers} manager(s), batch {batch_size}",
        value=jobs / timings.from_go,
        unit="jobs/s",
        jobs=jobs,
        seconds=timings.from_go,
        notes=notes,
        extra={
            "pgqueuer": version,
            "workers": workers,
            "batch_size": batch_size,
            "seconds_including_process_start": timings.from_spawn,
            "jobs_per_s_including_process_start": jobs / timings.from_spawn,
            "seconds_first_pick_to_last_done": timings.first_pick_to_last_done,
            "jobs_per_s_first_pick_to_last_done": jobs / timings.first_pick_to_last_done,
            "worker_exit_codes": exit_codes,
            "unclean_exit_output": unclean_exits,
        },
    )


@dataclass(frozen=True)
class Timings:
    """Seconds until every job was done, from three starting points."""

    from_go: float  # workers imported, connected and told to run (the headline)
    from_spawn: float  # worker processes spawned: includes interpreter start and imports
    first_pick_to_last_done: float  # pgqueuer_log.created, the database's clock


def _has_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def enqueue_rate(dsn: str, *, jobs: int) -> Result:
    """Jobs/s of pgqueuer's batch enqueue into a freshly installed schema."""
    if jobs < 1:
        raise ValueError("jobs must be positive")
    version = pgqueuer_version()
    seconds = asyncio.run(_prepare(dsn, jobs=jobs))
    return Result(
        name="pgqueuer batch enqueue",
        value=jobs / seconds,
        unit="jobs/s",
        jobs=jobs,
        seconds=seconds,
        notes=(
            f"pgqueuer {version}, asyncpg; Queries.enqueue(entrypoints, payloads, priorities) "
            f"with {ENQUEUE_CHUNK} jobs per call (one INSERT from UNNEST arrays, plus its "
            "'queued' log row), sequentially on one connection, autocommit per call; "
            "null payload, priority 0."
        ),
        extra={"pgqueuer": version, "chunk": ENQUEUE_CHUNK},
    )
