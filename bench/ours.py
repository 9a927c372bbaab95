"""Benchmarks of django-future-ledger itself.

Each function sets Django up against a fresh database (migrate), loads the
work, then times real ``runscheduledjobs`` processes. The runners exit when
nothing is due; throughput is timed on the database's clock, from the first
claim to the last completion, and the runners start their work together once
all are set up (see ``run_runners``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg

from bench.common import ReadyWorkers, Result, analyze, count, count_wal, drain_result

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = "bench.settings"


def _env(dsn: str, root: Path = ROOT, settings: str = SETTINGS) -> dict[str, str]:
    env = dict(os.environ)
    env.update(DATABASE_URL=dsn, DJANGO_SETTINGS_MODULE=settings, PYTHONPATH=str(root))
    return env


def migrate(dsn: str, settings: str = SETTINGS) -> None:
    subprocess.run(
        [sys.executable, "-m", "django", "migrate", "-v0"],
        cwd=ROOT,
        env=_env(dsn, settings=settings),
        check=True,
    )


def load(dsn: str, jobs: int, callable_name: str = "bench.noop.noop") -> float:
    """Schedule ``jobs`` due jobs with ``schedule_jobs``; return the seconds it took."""
    code = (
        "import django, time; django.setup()\n"
        "from django_future import schedule_jobs\n"
        f"specs = [dict(date='0s', callable_name={callable_name!r}) for _ in range({jobs})]\n"
        "t = time.perf_counter(); n = len(schedule_jobs(specs)); dt = time.perf_counter() - t\n"
        f"assert n == {jobs}, n\n"
        "print(dt)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=_env(dsn),
        check=True,
        capture_output=True,
        text=True,
    )
    analyze(dsn)  # not timed, as for every system (see bench.common.analyze)
    return float(out.stdout.strip().splitlines()[-1])


def run_runners(
    dsn: str,
    *,
    jobs: int,
    runners: int,
    batch_size: int,
    root: Path = ROOT,
    settings: str = SETTINGS,
) -> tuple[float, int]:
    """Start ``runners`` processes; return (seconds until all exited, peak RSS KiB of one).

    Each runs ``runscheduledjobs`` once Django is set up and connected in every one of
    them (``bench.ours_worker``), as the peers' workers start work only once all are
    ready: a runner started the plain way spends about half a second of CPU importing
    Django, which on two cores would slow the runners already at work. ``root`` is the
    source tree the runners import (another checkout, for ``compare``); ``settings`` their
    Django settings module (``bench.tasks_settings`` for tasks through our backend)."""
    options = ["-i", "--batch-size", str(batch_size)]
    with ReadyWorkers(
        "django-future-ledger",
        lambda ready: [sys.executable, "-m", "bench.ours_worker", str(ready), *options],
        runners,
        env=_env(dsn, root, settings),
        cwd=root,
    ) as pool:
        started = pool.go()
        pool.wait_all()
        seconds = time.perf_counter() - started
        peak = max(int(pool.tail(i).splitlines()[-1]) for i in range(runners))
    left = count(dsn, "SELECT count(*) FROM django_future_scheduledjob WHERE status <> 'complete'")
    if left:
        raise RuntimeError(f"{left} of the {jobs} jobs did not complete")
    return seconds, peak


def busy_seconds(dsn: str) -> float:
    """From the first claim to the last completion, on the database's clock: the runners'
    working time, without Python and Django start-up (the peers' figures exclude it too).
    Events of pre-loaded history (runner 'history:1') do not count."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT extract(epoch FROM max(at) FILTER (WHERE kind = 'completed')"
            " - min(at) FILTER (WHERE kind IN ('started', 'claimed')))"
            " FROM django_future_jobevent WHERE runner IS DISTINCT FROM 'history:1'"
        ).fetchone()
    assert row is not None and row[0] is not None
    return float(row[0])


def throughput(dsn: str, *, jobs: int, runners: int, batch_size: int = 1) -> Result:
    migrate(dsn)
    load(dsn, jobs)
    wal = count_wal(
        dsn, jobs, lambda: run_runners(dsn, jobs=jobs, runners=runners, batch_size=batch_size)
    )
    per = "1 job per claim" if batch_size == 1 else f"batches of {batch_size}"
    return drain_result(
        f"django-future-ledger, {runners} runner(s), {per}",
        jobs=jobs,
        seconds=busy_seconds(dsn),
        notes="every start and outcome an event; first claim to last completion",
        wal=wal,
    )


def bulk_schedule(dsn: str, *, jobs: int) -> Result:
    migrate(dsn)
    seconds = load(dsn, jobs)
    return Result(
        name="django-future-ledger schedule_jobs (bulk)",
        value=jobs / seconds,
        unit="jobs/s",
        jobs=jobs,
        seconds=seconds,
        notes=(
            "streamed in chunks of 500 in pipeline mode; one statement per chunk appends "
            "the events and creates the job rows while the next chunk is prepared"
        ),
    )


def add_history(dsn: str, events: int) -> None:
    """Add finished jobs (three events each) to the ledger, set-based.

    Written with the triggers switched off for speed (a superuser's privilege,
    which the embedded server grants), then the projection rows are inserted
    to match; `ledger.verify()` would accept the result apart from the hashes,
    which are left empty. This is bench set-up only.
    """
    n = events // 3
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute(
            """
            WITH ids AS (
                SELECT nextval(pg_get_serial_sequence('django_future_scheduledjob', 'id')) AS id
                FROM generate_series(1, %(n)s)
            ), jobs AS (
                INSERT INTO django_future_scheduledjob
                    (id, callable_name, args, kwargs, time_slot_start, status, execution_start,
                     execution_end, created_at, last_seq, last_hash, atomic, max_attempts,
                     attempts, queue, priority)
                SELECT id, 'bench.noop.noop', '[]', '{}', now() - interval '30 days',
                       'complete', now() - interval '30 days', now() - interval '30 days',
                       now() - interval '30 days', 3, '', false, 1, 1, 'default', 0
                FROM ids
                RETURNING id
            )
            INSERT INTO django_future_jobevent (job_id, seq, kind, at, runner, data, hash)
            SELECT id, s.seq, s.kind, now() - interval '30 days', 'history:1', '{}', ''
            FROM jobs
            CROSS JOIN (VALUES (1, 'scheduled'), (2, 'started'), (3, 'completed')) AS s(seq, kind)
            """,
            {"n": n},
        )
        conn.execute("RESET session_replication_role")
    # with_history then loads the due jobs, and load() analyzes the whole database.


def with_history(dsn: str, *, history: int, jobs: int, runners: int, batch_size: int) -> Result:
    migrate(dsn)
    add_history(dsn, history)
    load(dsn, jobs)
    run_runners(dsn, jobs=jobs, runners=runners, batch_size=batch_size)
    seconds = busy_seconds(dsn)
    return Result(
        name=f"claim+run with {history:,} historical events, {runners} runners",
        value=jobs / seconds,
        unit="jobs/s",
        jobs=jobs,
        seconds=seconds,
        notes=f"batch {batch_size}",
    )


def memory(dsn: str, *, jobs: int, batch_size: int = 100) -> Result:
    migrate(dsn)
    load(dsn, jobs)
    seconds, peak_kib = run_runners(dsn, jobs=jobs, runners=1, batch_size=batch_size)
    return Result(
        name=f"runner peak RSS over {jobs:,} jobs",
        value=peak_kib / 1024,
        unit="MiB",
        jobs=jobs,
        seconds=seconds,
        notes=f"one runner, batch {batch_size}",
    )
