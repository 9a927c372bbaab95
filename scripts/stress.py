#!/usr/bin/env python3
"""Stress: many runners over many jobs while runners are killed at random.

    python3 dev.py stress                      # 8 runners, 20,000 jobs (a few minutes)
    python3 dev.py stress --jobs 2000 --runners 4 --kill-every 0.5

It loads a mix of jobs (most quick, some failing for good, some failing before
they succeed, some slow; some atomic; all with retries), keeps N worker runners
alive the way cron would restart them, SIGKILLs one at random every few seconds
(and SIGTERMs one now and then), and waits until every job is finished. Then it
proves from the database:

- every job ran at most once per attempt: each attempt writes a row under a
  unique (job, attempt) constraint, and the ledger has one "started" per attempt;
- no job is lost or stuck: every job ends complete or failed, none scheduled,
  claimed or running;
- the job table is exactly the fold of the ledger (``ledger.verify()``).

It runs in a database of its own, created on the server of DATABASE_URL and
dropped afterwards (``--keep`` keeps it). Exits non-zero if a check fails.
``run_stress()`` is also called, small, by the test suite.
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

# callable, share of the jobs, retries, expected final status
MIX: list[tuple[str, float, int, str]] = [
    ("tests.handlers.stress_quick", 0.80, 3, "complete"),
    ("tests.handlers.stress_fail", 0.05, 2, "failed"),
    ("tests.handlers.stress_flaky", 0.10, 4, "complete"),
    ("tests.handlers.stress_slow", 0.05, 4, "complete"),
]


@dataclass
class StressResult:
    jobs: int
    seconds: float
    runners_started: int = 0
    killed: int = 0
    terminated: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    events: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    unexpected: dict[str, int] = field(default_factory=dict)

    def report(self) -> str:
        lines = [
            f"jobs: {self.jobs}, finished in {self.seconds:.1f} s "
            f"({self.jobs / self.seconds:.0f} jobs/s including kills and retry delays)",
            f"runner processes started: {self.runners_started}; "
            f"killed with SIGKILL: {self.killed}; stopped with SIGTERM: {self.terminated}",
            "final statuses: " + ", ".join(f"{k} {v}" for k, v in sorted(self.statuses.items())),
            "events: " + ", ".join(f"{k} {v}" for k, v in sorted(self.events.items())),
        ]
        if self.unexpected:
            lines.append(
                "jobs whose outcome differs from their handler's plan (kills used up their "
                "retries): " + ", ".join(f"{k} {v}" for k, v in sorted(self.unexpected.items()))
            )
        lines.append(
            "checks: " + ("all passed" if not self.problems else f"{len(self.problems)} FAILED")
        )
        lines += [f"  FAIL: {p}" for p in self.problems]
        return "\n".join(lines)


def load_jobs(n: int, seed: int) -> dict[str, str]:
    """Schedule ``n`` jobs in one statement per kind, straight into the ledger
    (the fold makes their rows); return the planned final status per callable."""
    from django.db import connection

    rng = random.Random(seed)
    counts: collections.Counter[str] = collections.Counter()
    for _ in range(n):
        r, acc = rng.random(), 0.0
        for name, share, _retries, _final in MIX:
            acc += share
            if r < acc:
                counts[name] += 1
                break
        else:
            counts[MIX[0][0]] += 1
    with connection.cursor() as cursor:
        for name, _share, retries, _final in MIX:
            cursor.execute(
                """
                INSERT INTO django_future_jobevent (job_id, seq, kind, data)
                SELECT nextval(pg_get_serial_sequence('django_future_scheduledjob', 'id')), 1,
                       'scheduled',
                       jsonb_build_object(
                           'callable_name', %(name)s::text,
                           'args', '[]'::jsonb, 'kwargs', '{}'::jsonb,
                           'time_slot_start', statement_timestamp(),
                           'time_slot_end', NULL,
                           'atomic', i %% 5 = 0,
                           'retries', %(retries)s::int,
                           'retry_delay', 0.2, 'retry_max_delay', 1.0)
                FROM generate_series(1, %(n)s) AS i
                """,
                {"name": name, "retries": retries, "n": counts[name]},
            )
    return {name: final for name, _s, _r, final in MIX}


def runner_env() -> dict[str, str]:
    import psycopg.conninfo
    from django.db import connection

    s = connection.settings_dict
    env = dict(os.environ)
    env["DATABASE_URL"] = psycopg.conninfo.make_conninfo(
        dbname=s["NAME"],
        user=s["USER"] or None,
        password=s["PASSWORD"] or None,
        host=s["HOST"] or None,
        port=str(s["PORT"]) if s["PORT"] else None,
    )
    env["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    env["PYTHONPATH"] = str(ROOT)
    return env


def unfinished() -> int:
    from django_future.models import ScheduledJob

    return ScheduledJob.objects.exclude(status__in=ScheduledJob.FINAL_STATUSES).count()


def run_stress(
    *,
    jobs: int,
    runners: int,
    kill_every: float,
    lease: float = 2.0,
    batch_size: int = 5,
    seed: int = 1,
    deadline: float = 1800,
    log: Any = print,
) -> StressResult:
    """Run the stress on Django's current database (already migrated and empty)."""
    rng = random.Random(seed)
    plan = load_jobs(jobs, seed)
    log(f"scheduled {jobs} jobs; starting {runners} runners (lease {lease}s, batch {batch_size})")
    env = runner_env()
    env["DJANGO_FUTURE_LEASE"] = str(lease)
    env["DJANGO_FUTURE_POLL_INTERVAL"] = "1"
    result = StressResult(jobs=jobs, seconds=0.0)
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> None:
        # Like a cron run that ends itself after a while; the supervisor starts the next.
        args = ["--worker", "-i", "--batch-size", str(batch_size), "--time-limit", "20"]
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "django", "runscheduledjobs", *args],
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        result.runners_started += 1

    began = time.monotonic()
    next_kill = began + kill_every
    last_note = began
    try:
        while (left := unfinished()) > 0:
            now = time.monotonic()
            if now - began > deadline:
                result.problems.append(f"{left} jobs unfinished after {deadline} s")
                break
            procs = [p for p in procs if p.poll() is None]
            while len(procs) < runners:
                start()
            if now >= next_kill:
                victim = rng.choice(procs)
                if rng.random() < 0.8:
                    victim.send_signal(signal.SIGKILL)
                    result.killed += 1
                else:
                    victim.send_signal(signal.SIGTERM)
                    result.terminated += 1
                next_kill = now + kill_every
            if now - last_note > 10:
                log(f"  {time.monotonic() - began:5.0f} s: {left} jobs unfinished")
                last_note = now
            time.sleep(0.1)
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    result.seconds = time.monotonic() - began
    check(result, plan)
    return result


def check(result: StressResult, plan: dict[str, str]) -> None:
    from django.db import connection

    from django_future import ledger
    from django_future.models import JobEvent, ScheduledJob

    problems = result.problems
    result.statuses = dict(
        collections.Counter(ScheduledJob.objects.values_list("status", flat=True))
    )
    result.events = dict(collections.Counter(JobEvent.objects.values_list("kind", flat=True)))
    if sum(result.statuses.values()) != result.jobs:
        problems.append(f"{sum(result.statuses.values())} job rows for {result.jobs} jobs")
    stuck = {s: n for s, n in result.statuses.items() if s not in ScheduledJob.FINAL_STATUSES}
    if stuck:
        problems.append(f"jobs not finished: {stuck}")
    with connection.cursor() as cursor:
        # One "started" event per attempt on every job, not counting a start handed
        # back ("released" right after it) because the runner stopped before calling it.
        cursor.execute(
            """
            SELECT count(*) FROM django_future_scheduledjob j
            WHERE j.attempts <> (
                SELECT count(*) FILTER (WHERE e.kind = 'started')
                       - count(*) FILTER (WHERE e.kind = 'released' AND e.prev = 'started')
                FROM (SELECT kind, lag(kind) OVER (ORDER BY seq) AS prev
                      FROM django_future_jobevent WHERE job_id = j.id) e
            )
            """
        )
        if (n := cursor.fetchone()[0]) != 0:
            problems.append(f"{n} jobs whose attempts differ from their started events")
        # Each attempt ran at most once: the handlers' rows are unique per (job, attempt),
        # and no job row may show more runs than the ledger shows attempts.
        cursor.execute(
            """
            SELECT count(*) FROM django_future_scheduledjob j
            WHERE (SELECT count(*) FROM testapp_jobrun r WHERE r.job_id = j.id) > j.attempts
            """
        )
        if (n := cursor.fetchone()[0]) != 0:
            problems.append(f"{n} jobs ran more often than they were started")
        cursor.execute(
            "SELECT count(*) FROM django_future_jobevent "
            "WHERE kind = 'failed' AND data->>'error' LIKE '%%one_run_per_attempt%%'"
        )
        if (n := cursor.fetchone()[0]) != 0:
            problems.append(f"{n} attempts ran twice (unique constraint violated)")
        # A completed job ran its last attempt exactly once.
        cursor.execute(
            """
            SELECT count(*) FROM django_future_scheduledjob j
            WHERE j.status = 'complete' AND NOT EXISTS (
                SELECT 1 FROM testapp_jobrun r WHERE r.job_id = j.id AND r.attempt = j.attempts)
            """
        )
        if (n := cursor.fetchone()[0]) != 0:
            problems.append(f"{n} completed jobs have no run of their last attempt")
    differences = ledger.verify()
    if differences:
        problems.append(f"projection differs from the ledger for {len(differences)} jobs")
    unexpected: collections.Counter[str] = collections.Counter()
    for name, status, error in ScheduledJob.objects.values_list("callable_name", "status", "error"):
        if status != plan[name]:
            why = (error or "").strip().splitlines()[-1:] or [""]
            unexpected[f"{name.rsplit('.', 1)[1]} -> {status} ({why[0][:60]})"] += 1
    result.unexpected = dict(unexpected)
    for key in result.unexpected:
        if "RunnerLost" not in key:
            problems.append(f"unexpected outcome not explained by a kill: {key}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--runners", type=int, default=8)
    parser.add_argument("--kill-every", type=float, default=2.0, metavar="SECONDS")
    parser.add_argument("--lease", type=float, default=2.0, metavar="SECONDS")
    parser.add_argument("--batch-size", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the stress database")
    options = parser.parse_args()

    url = os.environ.get("DATABASE_URL", "").strip()
    if not url:
        sys.exit("stress: set DATABASE_URL, or run it with `python3 dev.py stress`")
    import psycopg
    import psycopg.conninfo

    name = f"django_future_stress_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    os.environ["DATABASE_URL"] = psycopg.conninfo.make_conninfo(url, dbname=name)
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    sys.path.insert(0, str(ROOT))
    try:
        import django
        from django.core.management import call_command

        django.setup()
        call_command("migrate", verbosity=0)
        print(f"stress database: {name}")
        result = run_stress(
            jobs=options.jobs,
            runners=options.runners,
            kill_every=options.kill_every,
            lease=options.lease,
            batch_size=options.batch_size,
            seed=options.seed,
        )
        print()
        print(result.report())
        from django.db import connections

        connections.close_all()
    finally:
        if not options.keep:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return 1 if result.problems else 0


if __name__ == "__main__":
    sys.exit(main())
