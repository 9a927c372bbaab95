#!/usr/bin/env python3
"""Benchmarks: django-future-ledger against its peers, on one server, in one run.

    python3 dev.py bench              # the full run (about ten minutes here)
    python3 dev.py bench --quick      # smaller numbers, for a smoke test
    python3 dev.py bench --only ours  # a subset: ours, peers, floor, bulk, history, memory, cpu,
                                      # enqueue, tasks, periodic, dashboard, metrics
    python3 dev.py bench --repeat 3   # every figure the median of three interleaved runs

Every figure comes from the same PostgreSQL server in the same run, each
benchmark in a fresh database, so that the ratios are fair on a shared, noisy
machine. Prints one table with absolute figures, then the targets as ratios,
and writes everything as JSON (``.bench/results.json`` unless ``--json``).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
#: The batch our runners claim in the batched tasks figure: 10, as pgqueuer's managers in
#: the batched figure above; a task's started_at is its batch's claim time (docs/tasks.md).
TASK_BATCH = 10
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import cpu, dashboard, enqueue, floor, metrics, ours, periodic  # noqa: E402
from bench.common import (  # noqa: E402
    Result,
    Skipped,
    machine_cpu,
    machine_share,
    scratch_database,
)

GROUPS = (
    "ours",
    "peers",
    "floor",
    "bulk",
    "history",
    "memory",
    "cpu",
    "enqueue",
    "tasks",
    "periodic",
    "dashboard",
    "metrics",
)


def version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


class Harness:
    def __init__(self, admin_dsn: str) -> None:
        self.admin_dsn = admin_dsn
        self.results: dict[str, Result] = {}
        self.samples: dict[str, dict[int, Result]] = {}  # key -> {round: result}
        self.round = 1
        self.skipped: dict[str, str] = {}

    def measure(self, key: str, label: str, fn: Callable[[str], Result]) -> None:
        """Measure ``fn`` once per repetition, interleaved with the other benchmarks by
        main(); the figure kept is the median, so that one noisy moment does not decide."""
        print(f"- {label} ...", end=" ", flush=True)
        started = time.perf_counter()
        cpu_before = machine_cpu()
        try:
            with scratch_database(self.admin_dsn) as dsn:
                result = fn(dsn)
        except ImportError as exc:
            self.skipped[key] = f"not installed ({exc.name})"
            print(f"skipped: {self.skipped[key]}")
            return
        except Skipped as exc:  # what it needs is not in this tree
            self.skipped[key] = str(exc)
            print(f"skipped: {exc}")
            return
        except Exception as exc:  # one failed benchmark must not hide the rest
            self.skipped[key] = f"failed: {type(exc).__name__}: {str(exc)[:300]}"
            print(self.skipped[key])
            return
        # How busy the machine was, its set-up included: a figure measured while the host
        # took CPU from us (steal) is not the code's figure.
        share = machine_share(cpu_before, machine_cpu())
        if share is not None:
            result.extra["machine"] = share
        rounds = self.samples.setdefault(key, {})
        rounds[self.round] = result
        runs = sorted(rounds.values(), key=lambda r: r.value)
        self.results[key] = runs[len(runs) // 2]
        if len(runs) > 1:
            self.results[key].extra["all_runs"] = [round(r.value, 1) for r in runs]
            self.results[key].extra["rounds"] = {
                str(n): round(r.value, 1) for n, r in sorted(rounds.items())
            }
        if key in self.skipped:
            # An earlier round failed; the figure stands on the rounds that worked.
            self.results[key].extra["failed_rounds"] = self.skipped.pop(key)
        took = f"{time.perf_counter() - started:.0f} s"
        if share is not None:
            took += f"; CPU idle {share['idle']:.0%}, stolen {share['steal']:.0%}"
        print(f"{result.value:,.1f} {result.unit} ({took})")

    def ratio(self, a: str, b: str | list[str]) -> tuple[float | None, str]:
        keys = [b] if isinstance(b, str) else b
        present = [k for k in keys if k in self.results]
        if a not in self.results or not present:
            return None, "n/a"
        best = max(present, key=lambda k: self.results[k].value)
        return self.results[a].value / self.results[best].value, best

    def ratios_by_round(self, a: str, b: str | list[str]) -> dict[int, float]:
        """``ratio`` round by round: the figures of ``a`` and of the best of ``b`` measured
        in the same round, where a round measured both. With ``--repeat``, the spread of
        these says how far the ratio of the medians can be trusted on a noisy machine."""
        keys = [b] if isinstance(b, str) else b
        ratios = {}
        for n, result in self.samples.get(a, {}).items():
            against = [self.samples[k][n].value for k in keys if n in self.samples.get(k, {})]
            if against:
                ratios[n] = result.value / max(against)
        return ratios


@dataclass(frozen=True)
class Figure:
    label: str
    group: str  # what --only selects it by
    run: Callable[[str], Result]


def _peer(module: str) -> Any:
    """A peer's benchmark module, imported when its figure is measured: a peer that is not
    installed makes its figures "skipped", not the whole run fail."""
    return importlib.import_module(f"bench.peers.{module}")


def plan(*, quick: bool) -> dict[str, Figure]:
    """Every figure of the bench, by key, in the order of the printed table; ``quick``
    for smaller numbers (a smoke test)."""
    # One process working one job at a time takes several seconds over 5,000 jobs. Four
    # take 2-3 s, where one burst of the machine's other work moves a figure by up to
    # 1.4x: they get 20,000 jobs (in 3 interleaved rounds, ours ran 1,508-2,115 jobs/s
    # over 5,000 and 1,919-1,948 over 20,000; procrastinate 495-570 and 527-571).
    jobs = 1_000 if quick else 5_000
    jobs_4 = 2_000 if quick else 20_000
    batched_jobs = 5_000 if quick else 30_000
    bulk_jobs = 5_000 if quick else 50_000
    history_big = 100_000 if quick else 1_000_000
    small, big = (500, 5_000) if quick else (1_000, 100_000)
    pgbench_seconds = 5 if quick else 10
    # One enqueue call per job, each its own transaction: a few seconds per loop.
    enqueue_calls = 500 if quick else 3_000
    figures = {
        "ours_1": Figure(
            "ours, 1 runner", "ours", lambda d: ours.throughput(d, jobs=jobs, runners=1)
        ),
        "ours_4": Figure(
            "ours, 4 runners", "ours", lambda d: ours.throughput(d, jobs=jobs_4, runners=4)
        ),
        "ours_4_batched": Figure(
            "ours, 4 runners, batches of 50",
            "ours",
            lambda d: ours.throughput(d, jobs=batched_jobs, runners=4, batch_size=50),
        ),
    }
    for n in (1, 4):
        count = jobs if n == 1 else jobs_4
        figures[f"procrastinate_{n}"] = Figure(
            f"procrastinate, {n} worker(s)",
            "peers",
            lambda d, n=n, count=count: _peer("procrastinate_bench").throughput(
                d, jobs=count, workers=n
            ),
        )
        figures[f"django_tasks_{n}"] = Figure(
            f"django-tasks-db, {n} worker(s)",
            "peers",
            lambda d, n=n, count=count: _peer("django_tasks_bench").throughput(
                d, jobs=count, workers=n
            ),
        )
    figures.update(
        {
            "pgqueuer_1": Figure(
                "pgqueuer, 1 manager, batch 1",
                "peers",
                lambda d: _peer("pgqueuer_bench").throughput(d, jobs=jobs, workers=1, batch_size=1),
            ),
            "pgqueuer_4_batched": Figure(
                "pgqueuer, 4 managers, batch 10",
                "peers",
                lambda d: _peer("pgqueuer_bench").throughput(
                    d, jobs=batched_jobs, workers=4, batch_size=10
                ),
            ),
            "pgqueuer_enqueue": Figure(
                "pgqueuer batch enqueue",
                "peers",
                lambda d: _peer("pgqueuer_bench").enqueue_rate(d, jobs=bulk_jobs),
            ),
            "bare_4": Figure(
                "bare SKIP LOCKED queue, 4 workers",
                "floor",
                lambda d: floor.bare_queue(d, jobs=jobs_4, workers=4),
            ),
            "bare_4_batched": Figure(
                "bare SKIP LOCKED queue, 4 workers, batches of 50",
                "floor",
                lambda d: floor.bare_queue(d, jobs=batched_jobs, workers=4, batch=50),
            ),
            "bare_4_step": Figure(
                "bare queue, 4 workers, 1 statement per job",
                "floor",
                lambda d: floor.bare_queue(d, jobs=jobs_4, workers=4, step="bare"),
            ),
            "minimal_4": Figure(
                "bare queue + minimal ledger, 4 workers",
                "floor",
                lambda d: floor.bare_queue(d, jobs=jobs_4, workers=4, step="minimal"),
            ),
            "rows_4": Figure(
                "our rows by hand, 4 workers",
                "floor",
                lambda d: floor.our_rows(d, jobs=jobs_4, workers=4),
            ),
            "step_4": Figure(
                "our step by a bare client, 4 workers",
                "floor",
                lambda d: floor.our_step(d, jobs=jobs_4, workers=4),
            ),
            "pgbench_4": Figure(
                "pgbench, 4 clients",
                "floor",
                lambda d: floor.pgbench(d, clients=4, seconds=pgbench_seconds),
            ),
            "bulk": Figure(
                "ours, schedule_jobs", "bulk", lambda d: ours.bulk_schedule(d, jobs=bulk_jobs)
            ),
            "bulk_rows": Figure(
                "our rows by hand, bulk",
                "bulk",
                lambda d: floor.our_rows_bulk(d, jobs=bulk_jobs),
            ),
        }
    )
    for key, size in (("history_10k", 10_000), ("history_1m", history_big)):
        figures[key] = Figure(
            f"ours with {size:,} historical events, 4 runners",
            "history",
            lambda d, size=size: ours.with_history(
                d, history=size, jobs=jobs_4, runners=4, batch_size=1
            ),
        )
    for key, system, label in (
        ("enqueue_tasks_db", "tasks_db", "django-tasks-db, Task.enqueue() loop"),
        ("enqueue_ours", "schedule_job", "ours, schedule_job() loop"),
        ("enqueue_unique", "unique", "ours, schedule_job() loop with a unique key"),
        ("enqueue_backend", "backend", "ours, Task.enqueue() loop through LedgerBackend"),
        ("enqueue_sql", "sql", "our schedule statement by a bare psycopg loop"),
        ("enqueue_floor", "floor", "bare INSERT loop, one row per transaction"),
    ):
        figures[key] = Figure(
            label,
            "enqueue",
            lambda d, s=system: enqueue.loop(d, system=s, jobs=enqueue_calls),
        )
    figures["tasks_db_4"] = Figure(
        "django-tasks-db tasks, 4 db_worker processes",
        "tasks",
        lambda d: _peer("django_tasks_bench").throughput(d, jobs=jobs_4, workers=4),
    )
    figures["tasks_ours_4"] = Figure(
        "tasks through LedgerBackend, 4 runners",
        "tasks",
        lambda d: enqueue.tasks_throughput(d, jobs=jobs_4, runners=4),
    )
    figures["tasks_ours_4_batched"] = Figure(
        f"tasks through LedgerBackend, 4 runners, batches of {TASK_BATCH}",
        "tasks",
        lambda d: enqueue.tasks_throughput(d, jobs=jobs_4, runners=4, batch_size=TASK_BATCH),
    )
    figures["memory_small"] = Figure(
        f"runner memory over {small:,} jobs", "memory", lambda d: ours.memory(d, jobs=small)
    )
    figures["memory_big"] = Figure(
        f"runner memory over {big:,} jobs", "memory", lambda d: ours.memory(d, jobs=big)
    )
    for system in ("ours", "bare"):
        for batch, count in ((1, jobs_4), (50, batched_jobs)):
            figures[f"cpu_{system}_{batch}"] = Figure(
                f"CPU per job, {system}, batch {batch}",
                "cpu",
                lambda d, s=system, b=batch, n=count: cpu.split(d, system=s, jobs=n, batch=b),
            )
    figures["ours_4_periodic"] = Figure(
        "ours, 4 runners, 20 periodic schedules declared",
        "periodic",
        lambda d: periodic.throughput(d, jobs=jobs_4, runners=4),
    )
    figures["periodic_cycle"] = Figure(
        "periodic: a claim cycle's tick check", "periodic", periodic.cycle_cost
    )
    figures["dashboard"] = Figure("dashboard page at 1M events", "dashboard", dashboard.render)
    figures["metrics_scrape"] = Figure(
        f"metrics: database time per scrape at {history_big:,} events",
        "metrics",
        lambda d: metrics.scrape_cost(d, history=history_big),
    )
    if sorted(figures) != sorted(key for block in BLOCKS for key in block):
        raise RuntimeError("bench/run.py: BLOCKS must name every figure of plan() once")
    return figures


# The order of measurement within a round. The figures that a target (or a layer of the
# ledger's cost) sets against each other are measured one right after the other, in a
# block; on this shared machine a figure can move by 1.5x within minutes, and a ratio
# of two figures taken minutes apart measures the minutes as much as the code. In
# every other round each block runs backwards, so that no figure always goes first.
# ours_4 serves two targets: it sits between the peers it is set against and the bare
# queue, and the floors follow in the order of the ledger's layers (docs/benchmarks.md).
BLOCKS: tuple[tuple[str, ...], ...] = (
    ("ours_1", "procrastinate_1", "django_tasks_1", "pgqueuer_1"),
    (
        "django_tasks_4",
        "procrastinate_4",
        "ours_4",
        "ours_4_periodic",  # right after ours_4: the ratio is what the schedules cost
        "periodic_cycle",
        "bare_4",
        "step_4",
        "rows_4",
        "minimal_4",
        "bare_4_step",
        "pgbench_4",
    ),
    ("pgqueuer_4_batched", "ours_4_batched", "bare_4_batched"),
    ("pgqueuer_enqueue", "bulk", "bulk_rows"),
    ("history_10k", "history_1m"),
    ("memory_small", "memory_big"),
    ("cpu_ours_1", "cpu_bare_1", "cpu_ours_50", "cpu_bare_50"),
    (
        "enqueue_tasks_db",
        "enqueue_ours",
        "enqueue_unique",
        "enqueue_backend",
        "enqueue_sql",
        "enqueue_floor",
    ),
    ("tasks_db_4", "tasks_ours_4", "tasks_ours_4_batched"),
    ("dashboard",),
    ("metrics_scrape",),
)


def measuring_order(round_: int) -> list[str]:
    """The keys in the order round ``round_`` (from 1) measures them: BLOCKS, each block
    forwards in odd rounds and backwards in even ones."""
    return [key for block in BLOCKS for key in (block if round_ % 2 else block[::-1])]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller numbers (a smoke test)")
    parser.add_argument("--only", nargs="+", choices=GROUPS, default=list(GROUPS))
    parser.add_argument("--json", type=Path, default=ROOT / ".bench" / "results.json")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        metavar="N",
        help="run everything N times, interleaved, and keep each figure's median",
    )
    options = parser.parse_args()
    admin = os.environ.get("DATABASE_URL", "").strip()
    if not admin:
        sys.exit("bench: set DATABASE_URL, or run it with `python3 dev.py bench`")

    h = Harness(admin)
    only = set(options.only)
    figures = plan(quick=options.quick)
    print(
        f"benchmarks on {platform.node()}: {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )

    for round_ in range(1, options.repeat + 1):
        h.round = round_
        if options.repeat > 1:
            print(f"round {round_} of {options.repeat}")
        for key in measuring_order(round_):
            figure = figures[key]
            if figure.group in only:
                h.measure(key, figure.label, figure.run)

    report(h, options.json, quick=options.quick, order=list(figures))
    return 0


TARGETS: list[tuple[str, str, str | list[str], str, float]] = [
    # (label, numerator, denominator(s), comparison, bound)
    (
        "one job per claim, 4 runners vs the better of procrastinate and django-tasks-db (4)",
        "ours_4",
        ["procrastinate_4", "django_tasks_4"],
        ">=",
        4.0,
    ),
    (
        "batched, 4 runners vs pgqueuer's best (4 managers, batch 10)",
        "ours_4_batched",
        ["pgqueuer_4_batched", "pgqueuer_1"],
        ">=",
        1.0,
    ),
    (
        "bare SKIP LOCKED queue vs ours (what the ledger costs), 4 workers each",
        "bare_4",
        "ours_4",
        "<=",
        1.3,
    ),
    (
        "the same, batches of 50: bare batched queue vs ours batched (for information)",
        "bare_4_batched",
        "ours_4_batched",
        "<=",
        1.3,
    ),
    (
        "for information: bare queue, 1 statement per job as our runner, vs ours",
        "bare_4_step",
        "ours_4",
        "<=",
        1.3,
    ),
    (
        "for information: that queue vs it with a minimal ledger (what any ledger costs)",
        "bare_4_step",
        "minimal_4",
        "<=",
        1.3,
    ),
    (
        "for information: minimal ledger vs our rows by hand (what our rows add)",
        "minimal_4",
        "rows_4",
        "<=",
        1.3,
    ),
    (
        "for information: bare queue vs our rows by hand (triggers off; what the rows cost)",
        "bare_4",
        "rows_4",
        "<=",
        1.3,
    ),
    (
        "for information: our rows by hand vs ours (what our code costs over its rows)",
        "rows_4",
        "ours_4",
        "<=",
        1.3,
    ),
    (
        "for information: our rows by hand vs our step by a bare client (the step's SQL)",
        "rows_4",
        "step_4",
        "<=",
        1.3,
    ),
    (
        "for information: bare queue vs our step by a bare client (the step, with no runner)",
        "bare_4",
        "step_4",
        "<=",
        1.3,
    ),
    (
        "for information: our step by a bare client vs ours (our runner's Python, Django)",
        "step_4",
        "ours_4",
        "<=",
        1.3,
    ),
    (
        "for information: our step by a bare client vs the better peer (any Python runner's most)",
        "step_4",
        ["procrastinate_4", "django_tasks_4"],
        ">=",
        4.0,
    ),
    ("throughput with 1M historical events vs with 10k", "history_1m", "history_10k", ">=", 0.9),
    ("bulk scheduling vs pgqueuer batch enqueue", "bulk", "pgqueuer_enqueue", ">=", 1.0),
    (
        "for information: our rows by hand, bulk, vs pgqueuer batch enqueue",
        "bulk_rows",
        "pgqueuer_enqueue",
        ">=",
        1.0,
    ),
    ("runner peak memory, 100k jobs vs 1k jobs", "memory_big", "memory_small", "<=", 1.1),
    (
        "enqueue loop, one job per call: schedule_job vs django-tasks-db's Task.enqueue()",
        "enqueue_ours",
        "enqueue_tasks_db",
        ">=",
        2.0,
    ),
    (
        "enqueue loop, one job per call: Task.enqueue() through LedgerBackend vs django-tasks-db's",
        "enqueue_backend",
        "enqueue_tasks_db",
        ">=",
        2.0,
    ),
    (
        "for information: bare INSERT loop vs django-tasks-db's (the most any enqueue loop can reach)",
        "enqueue_floor",
        "enqueue_tasks_db",
        ">=",
        2.0,
    ),
    (
        "for information: our statement by a bare loop vs django-tasks-db's (what our SQL allows)",
        "enqueue_sql",
        "enqueue_tasks_db",
        ">=",
        2.0,
    ),
    (
        "for information: bare INSERT loop vs our statement by a bare loop (what our SQL costs)",
        "enqueue_floor",
        "enqueue_sql",
        "<=",
        1.3,
    ),
    (
        "for information: our statement by a bare loop vs schedule_job's (what our Python costs)",
        "enqueue_sql",
        "enqueue_ours",
        "<=",
        1.3,
    ),
    (
        "for information: schedule_job with a unique key vs without (what a key costs)",
        "enqueue_unique",
        "enqueue_ours",
        ">=",
        0.9,
    ),
    (
        "tasks through 4 runners: LedgerBackend + runscheduledjobs vs django-tasks-db + db_worker",
        "tasks_ours_4",
        "tasks_db_4",
        ">=",
        4.0,
    ),
    (
        f"the same, our runners claiming batches of {TASK_BATCH} (runscheduledjobs --batch-size)",
        "tasks_ours_4_batched",
        "tasks_db_4",
        ">=",
        4.0,
    ),
]


def _meets(ratio: float, op: str, bound: float) -> bool:
    return ratio >= bound if op == ">=" else ratio <= bound


def report(h: Harness, path: Path, *, quick: bool, order: list[str]) -> None:
    """Print the table (figures in ``order``, not in the order measured) and the targets,
    and write both as JSON to ``path``."""
    results = {key: h.results[key] for key in order if key in h.results}
    rows = [
        (r.name, f"{r.value:,.1f}", r.unit, f"{r.seconds:.1f}", r.notes) for r in results.values()
    ]
    print()
    widths = [
        max(len(str(x)) for x in col)
        for col in zip(("figure", "value", "unit", "s", "notes"), *rows, strict=False)
    ]
    header = ("figure", "value", "unit", "s", "notes")
    print("  ".join(str(c).ljust(w) for c, w in zip(header, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    for key, why in h.skipped.items():
        print(f"{key}: {why}")
    print()
    targets = []
    for label, a, b, op, bound in TARGETS:
        value, against = h.ratio(a, b)
        ok = None if value is None else _meets(value, op, bound)
        mark = "n/a" if ok is None else ("met" if ok else "NOT met")
        shown = "n/a" if value is None else f"{value:.2f}x"
        print(f"{mark:>8}  {shown:>7}  (target {op} {bound}x)  {label} [{a} / {against}]")
        rounds = h.ratios_by_round(a, b)
        met_in = sum(1 for r in rounds.values() if _meets(r, op, bound))
        if len(rounds) > 1:
            each = ", ".join(f"{r:.2f}" for _, r in sorted(rounds.items()))
            print(f"{'':>19}round by round: {each}; met in {met_in} of {len(rounds)}")
        targets.append(
            {
                "label": label,
                "ratio": value,
                "op": op,
                "bound": bound,
                "met": ok,
                "numerator": a,
                "denominator": against,
                "by_round": {str(n): round(r, 3) for n, r in sorted(rounds.items())},
                "rounds_met": met_in,
            }
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            {
                "quick": quick,
                "machine": {
                    "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                    "platform": platform.platform(),
                },
                "versions": {
                    d: version(d)
                    for d in (
                        "django-future-ledger",
                        "Django",
                        "psycopg",
                        "procrastinate",
                        "django-tasks",
                        "django-tasks-db",
                        "pgqueuer",
                        "asyncpg",
                    )
                },
                "results": {k: r.as_dict() for k, r in results.items()},
                "skipped": h.skipped,
                "targets": targets,
            },
            indent=2,
        )
    )
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    sys.exit(main())
