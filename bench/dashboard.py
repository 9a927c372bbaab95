"""What the admin's jobs dashboard costs on a long ledger (issue 25).

One figure: the time to render the dashboard page (the default window, the last 15
minutes) through Django's test client, median of several renders after one warm-up,
with 1,000,000 events in the ledger. Most of them are a month old (``ours.add_history``);
``WINDOW_JOBS`` jobs of 8 runner processes fall inside the window, about 3% of the
events, with outcomes mixed as a busy day's (completed, failed, abandoned, running),
and some jobs wait due in two queues.

    python3 dev.py bench --only dashboard
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from typing import Any

import psycopg

from bench import ours
from bench.common import Result

SETTINGS = "bench.dashboard_settings"
EVENTS = 1_000_000
WINDOW_JOBS = 10_000  # three events each (two while running)
WAITING = 500  # due and not started: one event each
RUNNERS = 8
RENDERS = 7


def add_window(dsn: str, jobs: int, waiting: int) -> int:
    """Jobs run in the last 15 minutes and jobs waiting, written as add_history writes
    (set-based, triggers off; bench set-up only). Returns the events written."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute(
            """
            WITH spec AS (
                SELECT nextval(pg_get_serial_sequence('django_future_scheduledjob', 'id')) AS id,
                       i, now() - interval '15 minutes' + interval '15 minutes' * i / %(n)s AS t,
                       CASE WHEN i %% 100 < 90 THEN 'completed' WHEN i %% 100 < 97 THEN 'failed'
                            WHEN i %% 100 < 99 THEN 'abandoned' ELSE 'running' END AS outcome,
                       'bench-host:' || (1000 + i %% %(runners)s) AS runner,
                       CASE WHEN i %% 3 = 0 THEN 'emails' ELSE 'default' END AS queue,
                       'bench.handlers.task_' || (i %% 7) AS callable
                FROM generate_series(1, %(n)s) i
            ), jobs AS (
                INSERT INTO django_future_scheduledjob
                    (id, callable_name, args, kwargs, time_slot_start, status, execution_start,
                     execution_end, runner, error, created_at, last_seq, last_hash, atomic,
                     max_attempts, attempts, queue, priority)
                SELECT id, callable, jsonb_build_array(i, '<b>' || i || '</b>'), '{}',
                       t - interval '2 seconds',
                       CASE outcome WHEN 'completed' THEN 'complete' WHEN 'running' THEN 'running'
                                    ELSE 'failed' END,
                       t, CASE WHEN outcome <> 'running' THEN t + interval '1 second' * (i %% 5) END,
                       runner, CASE WHEN outcome IN ('failed', 'abandoned') THEN 'ValueError: ' || i END,
                       t - interval '2 seconds', CASE WHEN outcome = 'running' THEN 2 ELSE 3 END,
                       '', false, 1, 1, queue, 0
                FROM spec
                RETURNING id
            )
            INSERT INTO django_future_jobevent (job_id, seq, kind, at, runner, data, hash)
            SELECT s.id, e.seq, e.kind, e.at, s.runner, e.data, ''
            FROM spec s
            JOIN jobs USING (id)
            CROSS JOIN LATERAL (VALUES
                (1, 'scheduled', s.t - interval '2 seconds',
                 jsonb_build_object('callable_name', s.callable, 'queue', s.queue,
                                    'time_slot_start', s.t - interval '2 seconds')),
                (2, 'started', s.t, '{}'::jsonb),
                (3, s.outcome, s.t + interval '1 second' * (s.i %% 5),
                 CASE WHEN s.outcome = 'completed' THEN '{}'::jsonb
                      ELSE jsonb_build_object('error', 'ValueError: ' || s.i) END)
            ) AS e(seq, kind, at, data)
            WHERE e.seq < 3 OR s.outcome <> 'running'
            ORDER BY e.at
            """,
            {"n": jobs, "runners": RUNNERS},
        )
        conn.execute(
            """
            WITH spec AS (
                SELECT nextval(pg_get_serial_sequence('django_future_scheduledjob', 'id')) AS id,
                       now() - interval '15 minutes' * i / %(n)s AS t,
                       CASE WHEN i %% 2 = 0 THEN 'emails' ELSE 'default' END AS queue
                FROM generate_series(1, %(n)s) i
            ), jobs AS (
                INSERT INTO django_future_scheduledjob
                    (id, callable_name, args, kwargs, time_slot_start, status, created_at,
                     last_seq, last_hash, atomic, max_attempts, attempts, queue, priority)
                SELECT id, 'bench.handlers.waiting', '[]', '{}', t, 'scheduled', t, 1, '',
                       false, 1, 0, queue, 0
                FROM spec
                RETURNING id
            )
            INSERT INTO django_future_jobevent (job_id, seq, kind, at, runner, data, hash)
            SELECT id, 1, 'scheduled', t, NULL,
                   jsonb_build_object('callable_name', 'bench.handlers.waiting', 'queue', queue,
                                      'time_slot_start', t), ''
            FROM spec JOIN jobs USING (id)
            ORDER BY t
            """,
            {"n": waiting},
        )
        conn.execute("RESET session_replication_role")
        # As on a ledger in service, where autovacuum summarises each full range of the
        # BRIN index on "at" (autosummarize): unsummarised ranges are read whole.
        conn.execute("VACUUM ANALYZE django_future_jobevent")
        conn.execute("ANALYZE")
        (count,) = conn.execute("SELECT count(*) FROM django_future_jobevent").fetchone()
    return int(count)


def render(dsn: str) -> Result:
    ours.migrate(dsn, settings=SETTINGS)
    in_window = WINDOW_JOBS * 3 - WINDOW_JOBS // 100 + WAITING
    ours.add_history(dsn, EVENTS - in_window)
    total = add_window(dsn, WINDOW_JOBS, WAITING)
    out = subprocess.run(
        [sys.executable, "-m", "bench.dashboard", str(RENDERS)],
        cwd=ours.ROOT,
        env=ours._env(dsn, settings=SETTINGS),
        capture_output=True,
        text=True,
        check=True,
    )
    data: dict[str, Any] = json.loads(out.stdout.splitlines()[-1])
    return Result(
        f"dashboard page render, {total:,} events, last 15 minutes",
        data["median_ms"],
        "ms",
        notes=(
            f"{data['bars']} bars of {RUNNERS} runners drawn, {data['queries']} queries "
            f"({data['sql_ms']:.0f} ms in SQL); {in_window:,} events in the window; "
            f"renders {data['all_ms']} ms"
        ),
        extra={**data, "events": total},
    )


def _measure(renders: int) -> dict[str, Any]:
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse

    user = User.objects.create_superuser("bench", "bench@example.com", "bench")
    client = Client()
    client.force_login(user)
    url = reverse("admin:django_future_dashboard")
    page = client.get(url)  # warm-up: templates compiled, plans cached
    assert page.status_code == 200, page.status_code
    timings = []
    for _ in range(renders):
        started = time.perf_counter()
        page = client.get(url)
        timings.append((time.perf_counter() - started) * 1000)
    with CaptureQueriesContext(connection) as captured:
        client.get(url)
    body = page.content.decode()
    return {
        "median_ms": statistics.median(timings),
        "all_ms": [round(t) for t in sorted(timings)],
        "bars": body.count('<rect class="bar"'),
        "queries": len(captured.captured_queries),
        "sql_ms": sum(float(q["time"]) for q in captured.captured_queries) * 1000,
        "bytes": len(body),
        "per_query_ms": sorted(
            (
                (round(float(q["time"]) * 1000), " ".join(q["sql"].split())[:70])
                for q in captured.captured_queries
            ),
            reverse=True,
        )[:6],
    }


if __name__ == "__main__":
    print(json.dumps(_measure(int(sys.argv[1]))))
