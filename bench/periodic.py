"""What periodic schedules cost a runner's claim cycle (issue 24, part 7).

Two figures:

- ``cycle_cost``: in one process, ``Ticker.enqueue_due`` called as a runner calls it
  before each claim, with 20 schedules declared: the time of a cycle when no tick is due
  (and the number of queries it sent: none), and of a cycle when every schedule's tick
  is due (one statement making 20 jobs);
- ``throughput``: 4 runners draining jobs with those 20 schedules declared, measured
  right after ``ours_4`` (the same without), so that the ratio shows what the schedules
  cost the claim path.

    python3 dev.py bench --only periodic ours
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

from bench import ours
from bench.common import Result

SCHEDULES = 20
SPEC = {
    f"bench-{i}": {"cron": "* * * * *", "callable": "bench.noop.noop", "timezone": "UTC"}
    for i in range(SCHEDULES)
}


def cycle_cost(dsn: str, *, cycles: int = 20_000, due_cycles: int = 30) -> Result:
    ours.migrate(dsn)
    env = ours._env(dsn)
    env["BENCH_PERIODIC"] = json.dumps(SPEC)
    out = subprocess.run(
        [sys.executable, "-m", "bench.periodic", str(cycles), str(due_cycles)],
        cwd=ours.ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    data: dict[str, Any] = json.loads(out.stdout.splitlines()[-1])
    return Result(
        f"periodic: a claim cycle's tick check, {SCHEDULES} schedules, none due",
        data["idle_us"],
        "us/cycle",
        notes=(
            f"{data['idle_queries']} queries in {cycles:,} cycles; a cycle with every "
            f"tick due: {data['due_ms']:.2f} ms, {data['due_queries'] / due_cycles:.0f} "
            f"statement, {SCHEDULES} jobs"
        ),
        extra=data,
    )


def throughput(dsn: str, *, jobs: int, runners: int) -> Result:
    os.environ["BENCH_PERIODIC"] = json.dumps(SPEC)  # read by bench/settings.py
    try:
        result = ours.throughput(dsn, jobs=jobs, runners=runners)
    finally:
        del os.environ["BENCH_PERIODIC"]
    result.name = f"{result.name}, {SCHEDULES} periodic schedules declared"
    return result


def _measure(cycles: int, due_cycles: int) -> dict[str, Any]:
    import datetime as dt

    import django

    django.setup()
    from django.db import connection

    from django_future.periodic import Ticker

    queries = []

    def count(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        queries.append(sql)
        return execute(sql, params, many, context)

    ticker = Ticker(runner="bench:periodic")
    ticker.start()
    first = min(ticker._next.values())  # the next minute
    with connection.execute_wrapper(count):
        idle_at = first - dt.timedelta(milliseconds=1)
        began = time.perf_counter()
        for _ in range(cycles):
            ticker.enqueue_due(idle_at)
        idle = time.perf_counter() - began
        idle_queries = len(queries)
        began = time.perf_counter()
        made = 0
        for minute in range(due_cycles):
            made += len(ticker.enqueue_due(first + dt.timedelta(minutes=minute)))
        due = time.perf_counter() - began
    return {
        "idle_us": idle / cycles * 1e6,
        "idle_queries": idle_queries,
        "due_ms": due / due_cycles * 1e3,
        "due_queries": len(queries) - idle_queries,
        "jobs_made": made,
    }


if __name__ == "__main__":
    print(json.dumps(_measure(int(sys.argv[1]), int(sys.argv[2]))))
