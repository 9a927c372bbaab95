"""What a metrics scrape costs the database at a million events (issue 25, part B).

A scrape sends five statements (django_future/metrics/collector.py): the fold of new
events into the totals (sql/metrics.sql), the totals, the live jobs, the due jobs per
queue and the runners. Their database time is read on the server: each statement is
run under ``EXPLAIN (ANALYZE)``, which executes it, and its planning and execution
times are summed. Two figures, over a ledger of 1,000,000 historical events
(``ours.add_history``) plus live jobs:

- the steady scrape: between two scrapes, 200 jobs scheduled and run by a runner (600 new
  events to fold: scheduled, started with its wait, completed with its duration); the
  median of 10 scrapes; then, in the notes, 3 scrapes with 2,000 due jobs waiting (the
  gauges read live work);
- the catch-up, in the notes: the scrapes that first fold the whole history, a bounded
  number of events each (``FOLD_PER_SCRAPE``), as after installing the metrics on an
  existing ledger.

    python3 dev.py bench --only metrics
"""

from __future__ import annotations

import json
import statistics
from typing import Any

import psycopg

from bench import ours
from bench.common import Result, analyze
from django_future.sql import query

STATEMENTS = (
    ("metrics_fold", {"max_events": 100_000}),  # FOLD_PER_SCRAPE of the collector
    ("metrics_totals", {}),
    ("metrics_live_jobs", {}),
    ("metrics_due", {}),
    ("metrics_runners", {}),
)


def scrape_ms(conn: psycopg.Connection[Any]) -> dict[str, float]:
    """One scrape's statements under EXPLAIN ANALYZE: database ms of each, by name."""
    times = {}
    with conn.transaction():
        for name, params in STATEMENTS:
            sql = query(name)
            (plan,) = conn.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", params).fetchone()
            if isinstance(plan, str):
                plan = json.loads(plan)
            times[name] = plan[0]["Planning Time"] + plan[0]["Execution Time"]
    return times


def unfolded(conn: psycopg.Connection[Any]) -> int:
    (n,) = conn.execute(
        "SELECT COALESCE(max(id), 0) - COALESCE((SELECT upto FROM django_future_metricmark"
        " WHERE id = 1), 0) FROM django_future_jobevent"
    ).fetchone()
    return int(n)


def scrape_cost(dsn: str, *, history: int = 1_000_000, scrapes: int = 10) -> Result:
    ours.migrate(dsn)
    ours.add_history(dsn, history)
    analyze(dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        catch_up = []
        while unfolded(conn) > 0:
            catch_up.append(sum(scrape_ms(conn).values()))
        steady: list[dict[str, float]] = []
        for _ in range(scrapes):
            ours.load(dsn, 200)
            ours.run_runners(dsn, jobs=200, runners=1, batch_size=1)
            steady.append(scrape_ms(conn))
        ours.load(dsn, 2_000)  # a backlog: 2,000 due jobs that no runner takes
        backlog = [sum(scrape_ms(conn).values()) for _ in range(3)]
        (events,) = conn.execute("SELECT count(*) FROM django_future_jobevent").fetchone()
    totals = [sum(s.values()) for s in steady]
    median = statistics.median(totals)
    parts = {name: statistics.median(s[name] for s in steady) for name, _ in STATEMENTS}
    return Result(
        f"metrics: database time of one scrape at {events:,} events",
        median,
        "ms/scrape",
        notes=(
            f"median of {scrapes}, max {max(totals):.1f} ms, 600 new events each; "
            + ", ".join(f"{n.removeprefix('metrics_')} {ms:.2f}" for n, ms in parts.items())
            + f"; with 2,000 due jobs waiting: {statistics.median(backlog):.1f} ms"
            + f"; catching up with {history:,} events first took {len(catch_up)} scrapes, "
            f"{sum(catch_up) / 1000:.1f} s in all ({sum(catch_up) / history * 1000:.1f} us "
            "per event)"
        ),
        extra={
            "steady_ms": totals,
            "parts_ms": parts,
            "backlog_ms": backlog,
            "catch_up_ms": catch_up,
        },
    )
