"""Shared pieces of the benchmark harness: scratch databases, timing, results.

Every benchmark gets a fresh database on the same server, so that each system
starts from empty tables and ratios compare like with like.
"""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import psycopg
import psycopg.conninfo


class Skipped(Exception):
    """A figure that cannot be measured here, for the reason given (a part that needs
    what this tree does not have); the bench says so and goes on."""


@dataclass
class Result:
    """One measured figure."""

    name: str  # e.g. "django-future-ledger, 4 runners, 1 job per claim"
    value: float  # the figure, in `unit`
    unit: str  # "jobs/s", "tps", "MiB"
    jobs: int = 0
    seconds: float = 0.0
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def machine_cpu() -> tuple[int, int, int] | None:
    """The whole machine's CPU time since boot, in clock ticks: (idle, stolen, total), from
    the first line of ``/proc/stat``; None where there is none (not Linux). Idle counts the
    time waiting on the disk too; stolen is what the hypervisor gave to other guests while
    one of ours wanted to run, as far as it tells."""
    try:
        with open("/proc/stat") as stat:
            ticks = [int(x) for x in stat.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    if len(ticks) < 8:
        return None
    # user nice system idle iowait irq softirq steal (guest time is already in user)
    return ticks[3] + ticks[4], ticks[7], sum(ticks)


def machine_share(
    before: tuple[int, int, int] | None, after: tuple[int, int, int] | None
) -> dict[str, float] | None:
    """What share of the machine's CPU time between two ``machine_cpu()`` readings was
    idle and what share was stolen by the host (0.0 to 1.0)."""
    if before is None or after is None or after[2] <= before[2]:
        return None
    total = after[2] - before[2]
    return {
        "idle": round((after[0] - before[0]) / total, 3),
        "steal": round((after[1] - before[1]) / total, 3),
    }


@contextlib.contextmanager
def scratch_database(
    admin_dsn: str, prefix: str = "bench", template: str | None = None
) -> Iterator[str]:
    """A new database on the server of ``admin_dsn``, empty or a copy of ``template``;
    its conninfo. Dropped after. Its sessions time their WAL flushes where the server
    lets us say so (``track_wal_io_timing``: a superuser's setting)."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    copy = f' TEMPLATE "{template}"' if template else ""
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"{copy}')
        try:  # every session on it, so that wal_stats can say how long flushes took
            conn.execute(f'ALTER DATABASE "{name}" SET track_wal_io_timing = on')
        except psycopg.errors.InsufficientPrivilege:
            pass  # a superuser's setting: the flushes are then counted, not timed
    try:
        yield psycopg.conninfo.make_conninfo(admin_dsn, dbname=name)
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class WalReading(NamedTuple):
    """The server's WAL statistics at one moment (see ``wal_stats``)."""

    flushes: int
    flush_ms: float | None  # None where the server does not time them
    records: int
    bytes: int


def wal_stats(dsn: str) -> Callable[[], WalReading]:
    """A reader of the server's WAL so far: how many flushes and the milliseconds they
    took (None where the server does not time them: ``track_wal_io_timing`` off), and
    how many records and bytes were written.

    Cluster-wide: read it around a run with nothing else writing (autovacuum's work
    during the run counts, as part of the run's). PostgreSQL 18 counts the flushes in
    ``pg_stat_io`` (object ``wal``), 14 to 17 in ``pg_stat_wal``; the records and bytes
    are in ``pg_stat_wal`` on all of them. A backend reports its counts when it exits
    or goes idle, so read after the workers are gone.
    """
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SHOW server_version_num").fetchone()
        assert row is not None
        version = int(row[0])
    if version >= 180000:
        flushes = "SELECT sum(fsyncs)::bigint, sum(fsync_time) FROM pg_stat_io WHERE object = 'wal'"
    else:
        flushes = "SELECT wal_sync, wal_sync_time FROM pg_stat_wal"
    sql = (
        f"SELECT f.*, w.wal_records, w.wal_bytes, current_setting('track_wal_io_timing')"
        f" FROM ({flushes}) f, pg_stat_wal w"
    )

    def read() -> WalReading:
        with psycopg.connect(dsn, autocommit=True) as conn:
            row = conn.execute(sql).fetchone()
        assert row is not None
        count, ms, records, size, timed = row
        return WalReading(
            int(count or 0), float(ms or 0) if timed == "on" else None, int(records), int(size)
        )

    return read


def wal_per_job(before: WalReading, after: WalReading, jobs: int) -> dict[str, float]:
    """From two readings of ``wal_stats`` around a drain of ``jobs`` jobs: the WAL
    records and bytes written per job, the flushes per job and, where timed, the
    microseconds each took."""
    count = after.flushes - before.flushes
    figures = {
        "wal_records_per_job": (after.records - before.records) / jobs,
        "wal_bytes_per_job": (after.bytes - before.bytes) / jobs,
        "flushes_per_job": count / jobs,
    }
    if after.flush_ms is not None and before.flush_ms is not None and count > 0:
        figures["us_per_flush"] = (after.flush_ms - before.flush_ms) * 1e3 / count
    return figures


def count_wal(dsn: str, jobs: int, run: Callable[[], object]) -> dict[str, float]:
    """Call ``run``, a drain of ``jobs`` jobs, and return what ``wal_per_job`` makes of
    the server's WAL around it."""
    read = wal_stats(dsn)
    before = read()
    run()
    return wal_per_job(before, read(), jobs)


def drain_result(
    name: str, *, jobs: int, seconds: float, notes: str, wal: dict[str, float]
) -> Result:
    """The jobs/s figure of a drain, with what it wrote to the WAL and how often it
    flushed in the notes and the extras."""
    return Result(
        name=name,
        value=jobs / seconds,
        unit="jobs/s",
        jobs=jobs,
        seconds=seconds,
        notes=f"{notes}; {describe_wal(wal)}",
        extra=wal,
    )


def describe_wal(figures: dict[str, float]) -> str:
    """One line of what ``wal_per_job`` measured."""
    took = f", {figures['us_per_flush']:.0f} us each" if "us_per_flush" in figures else ""
    written = ""
    if "wal_bytes_per_job" in figures:
        written = (
            f"WAL {figures['wal_bytes_per_job']:,.0f} B in"
            f" {figures['wal_records_per_job']:.1f} records/job; "
        )
    return f"{written}WAL flushes {figures['flushes_per_job']:.2f}/job{took}"


def analyze(dsn: str) -> None:
    """VACUUM ANALYZE the whole database: every system's queue is loaded, then this, then
    its workers start. A table loaded in bulk and never analyzed gives the planner no
    idea how many rows are due, and a claim planned on that guess can read every due row
    for each job until autovacuum's first pass (seen with ours: about 350 jobs/s for the
    first 4 seconds over 20,000 due jobs, then about 2,000)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


def wait_for(
    predicate: Callable[[], bool], *, timeout: float, interval: float = 0.05, what: str = ""
) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"benchmark timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def count(dsn: str, sql: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(sql).fetchone()
        return int(row[0]) if row else 0


def stop_all(procs: list[subprocess.Popen[Any]], timeout: float = 15) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


class ReadyWorkers:
    """A peer's worker processes, started so that their start-up is not timed.

    Each worker is ``command(ready_file)``: it imports and connects, writes its
    ready file, then waits for a line on stdin before it starts working. Use as a
    context manager; on exit the workers are stopped, and ``exit_codes`` and
    ``unclean_exits`` (the output tail of those that did not exit 0) are set.
    """

    def __init__(
        self,
        label: str,
        command: Callable[[Path], list[str]],
        count: int,
        *,
        env: dict[str, str],
        cwd: Path,
        startup_timeout: float = 60.0,
    ) -> None:
        self.label = label
        self.command = command
        self.count = count
        self.env = env
        self.cwd = cwd
        self.startup_timeout = startup_timeout
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []
        self.exit_codes: list[int | None] = []
        self.unclean_exits: dict[int, str] = {}
        self.spawned = 0.0
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> ReadyWorkers:
        tmp = Path(self._stack.enter_context(tempfile.TemporaryDirectory(prefix="bench_")))
        ready = [tmp / f"ready{i}" for i in range(self.count)]
        self.spawned = time.perf_counter()
        for i in range(self.count):
            self.logs.append(tmp / f"worker{i}.log")
            log = self._stack.enter_context(self.logs[-1].open("wb"))
            self.procs.append(
                subprocess.Popen(
                    self.command(ready[i]),
                    cwd=self.cwd,
                    env=self.env,
                    stdin=subprocess.PIPE,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        self._stack.callback(self._stop)

        def all_ready() -> bool:
            self.check_alive("while starting")
            return all(path.exists() for path in ready)

        try:
            wait_for(all_ready, timeout=self.startup_timeout, what=f"{self.label} workers to start")
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def _stop(self) -> None:
        stop_all(self.procs)
        self.exit_codes = [p.returncode for p in self.procs]
        self.unclean_exits = {
            i: self.tail(i, 800) for i, code in enumerate(self.exit_codes) if code
        }

    def tail(self, i: int, limit: int = 4000) -> str:
        path = self.logs[i]
        text = path.read_text(errors="replace") if path.exists() else ""
        return text[-limit:].strip() or "(no output)"

    def all_output(self, limit: int = 1500) -> str:
        return "\n".join(self.tail(i, limit) for i in range(len(self.logs)))

    def check_alive(self, when: str) -> None:
        for i, proc in enumerate(self.procs):
            if proc.poll() is not None:
                raise RuntimeError(
                    f"{self.label} worker {i} exited with code {proc.returncode} {when}; "
                    f"its output:\n{self.tail(i)}"
                )

    def go(self) -> float:
        """Tell every worker to start; return the time it was told."""
        started = time.perf_counter()
        for proc in self.procs:
            assert proc.stdin is not None  # Popen(stdin=PIPE)
            try:
                proc.stdin.write(b"go\n")
                proc.stdin.close()
            except BrokenPipeError:  # it died after saying ready: report why
                proc.wait(timeout=5)
                self.check_alive("after starting")
                raise
        return started

    def wait_all(self, timeout: float = 3600.0) -> None:
        """After ``go``: wait until every worker has exited by itself (workers that stop
        when nothing is left to do). Raises, with its output, if one failed."""
        deadline = time.monotonic() + timeout
        for i, proc in enumerate(self.procs):
            try:
                code = proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                raise TimeoutError(f"{self.label} workers did not finish in {timeout}s") from None
            if code != 0:
                raise RuntimeError(
                    f"{self.label} worker {i} exited with code {code}; its output:\n{self.tail(i)}"
                )

    def drain(
        self, conn: psycopg.Connection[Any], pending: Any, *, jobs: int, poll: float = 0.01
    ) -> tuple[float, float]:
        """Say go, then poll ``pending`` (a query answering one boolean: is work left?)
        until it answers false. Returns (seconds from go, seconds from spawning)."""
        timeout = max(120.0, jobs / 20)
        started = self.go()
        deadline = started + timeout
        while conn.execute(pending).fetchone() != (False,):
            self.check_alive("before all jobs were done")
            if time.perf_counter() > deadline:
                raise TimeoutError(f"{self.label} workers did not finish {jobs} jobs in {timeout}s")
            time.sleep(poll)
        finished = time.perf_counter()
        return finished - started, finished - self.spawned
