"""Side by side: our runners on variants of the database's functions or of their own code.

For work on the SQL the runners call (the step function, the fold, the hash),
and for work on the runner's Python code, where the whole benchmark is too slow
and too noisy to tell 10% apart. One template database is migrated and loaded
with due jobs once; every round then makes one copy of it per variant (CREATE
DATABASE ... TEMPLATE) and drains it with real ``runscheduledjobs`` processes.
A variant is a SQL file, applied to its copy, or a directory: another source
tree (``git worktree add /tmp/before HEAD~1``), whose code the runners import
instead of this tree's; its migrations must match this tree's. Variants run
interleaved, in a rotating order, so that the machine's drift falls on all of
them alike. The baseline is this tree, with the schema as migrated.

    python3 dev.py compare [--jobs N] [--runners N] [--rounds N] [--batch N] VARIANT ...

Prints, per variant, the median over rounds of jobs/s (first claim to last
completion, on the database's clock), the server's CPU per job (every
PostgreSQL process, from /proc: Linux and a local server only) and the
runners' CPU per job, each with its ratio to the baseline, and in how many
rounds the variant beat the baseline's figure of the same round. Then what
the server wrote to its WAL per job, in bytes and records, and its flushes per
job and how long each took (the whole server's, read from its statistics
around each drain; timed where the benchmark may set ``track_wal_io_timing``
on its copies, which takes a superuser, as on the embedded server).
``bench/variants/asynchronous_commit.sql`` is a variant for measuring only:
what waiting for those flushes costs.

With ``--step``, each copy is drained instead by one bare psycopg loop sending our
runner's step (``bench.floor.OurStep``), and the figures are that one backend's
own CPU per step, user and system, read from /proc. No runners and no other
client share the machine's two cores with it, so it tells the cost of a change
to the SQL apart to a few per cent, where four runners' jobs/s cannot; it says
nothing of the runner's Python, and source-tree variants are refused.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import psycopg
import psycopg.conninfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import cpu, floor, ours
from bench.common import count_wal, describe_wal, scratch_database

BASELINE = "as migrated"


def one_run(
    admin_dsn: str,
    template: str,
    variant: Path | None,
    *,
    jobs: int,
    runners: int,
    batch: int,
    step: bool = False,
) -> dict[str, float]:
    with scratch_database(admin_dsn, "cmp", template=template) as dsn:
        root = ours.ROOT
        if variant is not None and variant.is_dir():
            root = variant.resolve()
        elif variant is not None:
            with psycopg.connect(dsn, autocommit=True) as conn:
                # several statements: the simple query protocol
                conn.execute(variant.read_text().encode())
        fig: dict[str, float] = {}

        def drain() -> None:
            if step:
                fig.update(step_cpu(dsn))
                return
            client, server_s = cpu.measure(
                dsn,
                lambda: ours.run_runners(
                    dsn, jobs=jobs, runners=runners, batch_size=batch, root=root
                ),
            )
            fig["jobs_s"] = jobs / ours.busy_seconds(dsn)
            fig["server_us"] = server_s * 1e6 / jobs
            fig["client_us"] = client * 1e6 / jobs

        fig.update(count_wal(dsn, jobs, drain))
        return fig


def step_cpu(dsn: str) -> dict[str, float]:
    """Drain ``dsn`` with one bare loop sending our step: steps/s and the backend's own
    CPU per step (``server_us`` user plus system, ``client_us`` user alone)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        step = floor.OurStep(conn)
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
        assert row is not None
        backend = int(row[0])
        user0, system0 = cpu.process_cpu(backend)
        started = time.perf_counter()
        ran = step.drain()
        seconds = time.perf_counter() - started
        user, system = cpu.process_cpu(backend)
    if not ran:
        raise RuntimeError("no job was due")
    return {
        "jobs_s": ran / seconds,
        "server_us": (user - user0 + system - system0) * 1e6 / ran,
        "client_us": (user - user0) * 1e6 / ran,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "variants", nargs="*", type=Path, help="SQL files or source trees, one per variant"
    )
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--runners", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=1, help="runscheduledjobs --batch-size")
    parser.add_argument(
        "--step",
        action="store_true",
        help="one bare loop sending our step; the backend's own CPU per step (SQL variants)",
    )
    args = parser.parse_args()
    admin_dsn = os.environ["DATABASE_URL"]
    variants: dict[str, Path | None] = {BASELINE: None}
    for path in args.variants:
        if not path.exists():
            parser.error(f"{path}: no such SQL file or source tree")
        if path.is_dir() and not (path / "django_future" / "runner" / "loop.py").is_file():
            parser.error(f"{path}: not a source tree of django-future-ledger")
        if path.is_dir() and args.step:
            parser.error(f"{path}: --step sends this tree's step; it takes SQL variants only")
        variants[str(path)] = path

    if args.step:
        server, client, how = "backend", "user", "one bare loop sending our step"
    else:
        server, client, how = "server", "runners", f"{args.runners} runners, batch {args.batch}"
    figures: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
    with scratch_database(admin_dsn, prefix="cmp_template") as template_dsn:
        ours.migrate(template_dsn)
        ours.load(template_dsn, args.jobs)  # and analyzes it
        template = psycopg.conninfo.conninfo_to_dict(template_dsn)["dbname"]
        assert isinstance(template, str)
        names = list(variants)
        for rnd in range(args.rounds):
            order = names[rnd % len(names) :] + names[: rnd % len(names)]
            for name in order:
                fig = one_run(
                    admin_dsn,
                    template,
                    variants[name],
                    jobs=args.jobs,
                    runners=args.runners,
                    batch=args.batch,
                    step=args.step,
                )
                figures[name].append(fig)
                print(
                    f"round {rnd + 1}: {name:<40} {fig['jobs_s']:8,.0f} jobs/s"
                    f"  {server} {fig['server_us']:5.0f} us  {client} {fig['client_us']:5.0f} us"
                    f"  {describe_wal(fig)}",
                    flush=True,
                )

    base = _medians(figures[BASELINE])
    print(f"\nmedians of {args.rounds} rounds; {args.jobs:,} jobs, {how}")
    print(
        f"{'variant':<40} {'jobs/s':>14} {server + ' us/job':>20} {client + ' us/job':>20}"
        f"  {'cheaper' if args.step else 'faster'} than the baseline in the same round"
    )
    for name, figs in figures.items():
        med = _medians(figs)
        # Round by round against the baseline's figure of the same round: how often the
        # variant was ahead, and the spread of its ratio, which says how far to trust the
        # ratio of the medians on a noisy machine.
        # With --step, by the backend's CPU: one client's jobs/s is mostly waiting for
        # its commits to reach the disk.
        ratios = [
            b["server_us"] / f["server_us"] if args.step else f["jobs_s"] / b["jobs_s"]
            for f, b in zip(figs, figures[BASELINE], strict=True)
        ]
        ahead = (
            ""
            if name == BASELINE
            else (
                f"  {sum(r > 1 for r in ratios)} of {len(ratios)} rounds"
                f" ({min(ratios):.2f}x to {max(ratios):.2f}x)"
            )
        )
        print(
            f"{name:<40} {med['jobs_s']:7,.0f} {med['jobs_s'] / base['jobs_s']:5.2f}x"
            f" {med['server_us']:12.0f} {med['server_us'] / base['server_us']:5.2f}x"
            f" {med['client_us']:12.0f} {med['client_us'] / base['client_us']:5.2f}x{ahead}"
        )
    print("\nWAL (medians): written per job, flushes per job and how long each took")
    for name, figs in figures.items():
        med = _medians(figs)
        print(f"{name:<40} {describe_wal(med)}")
    return 0


def _medians(figs: list[dict[str, float]]) -> dict[str, float]:
    """Each figure's median over the rounds that have it (every round, or none)."""
    return {k: statistics.median(f[k] for f in figs) for k in figs[0] if all(k in f for f in figs)}


if __name__ == "__main__":
    sys.exit(main())
